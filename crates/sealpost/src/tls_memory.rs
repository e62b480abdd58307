//! `sealpost tls-memory list|reset`: the downgrade memory (issue 4, as chasquid's
//! domaininfo). A domain whose MX once showed verified TLS gets mail only over verified
//! TLS from then on; when a domain really has lost its certificate, `reset` lets mail
//! flow again under whatever policy it publishes.

use anyhow::bail;
use clap::Subcommand;
use sealpost_delivery::policy::TLS_SEEN_MEMO;

use crate::account::open_store;
use crate::config::Config;
use crate::queue::rfc3339;

#[derive(Subcommand)]
pub enum TlsMemoryCommand {
    /// Every domain that showed verified TLS, and since when.
    List,
    /// Forget a domain: its next delivery is judged by its published policy alone.
    Reset { domain: String },
}

pub async fn run(command: TlsMemoryCommand, config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        TlsMemoryCommand::List => {
            for (domain, value) in store.delivery_memos(TLS_SEEN_MEMO).await? {
                println!("{domain} verified TLS since {}", since(&value));
            }
        }
        TlsMemoryCommand::Reset { domain } => {
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            if store.delivery_memo(TLS_SEEN_MEMO, &domain).await?.is_none() {
                bail!(
                    "{domain} is not in the TLS memory: `sealpost tls-memory list` shows the domains that are"
                );
            }
            store
                .set_delivery_memo(TLS_SEEN_MEMO, &domain, None)
                .await?;
            println!(
                "{domain} forgotten: verified TLS is no longer required unless its policy asks"
            );
        }
    }
    Ok(())
}

/// The memo holds seconds since the epoch; anything else is shown as it is.
fn since(value: &str) -> String {
    value
        .trim()
        .parse::<i64>()
        .map(rfc3339)
        .unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_time_is_shown_as_rfc3339() {
        assert_eq!(since("1746100500"), "2025-05-01T11:55:00Z");
        assert_eq!(since("not a time"), "not a time");
    }
}
