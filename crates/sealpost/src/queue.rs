//! `sealpost queue list`: the outbound queue as the store holds it.

use std::io::Write;

use crate::account::open_store;
use crate::config::Config;

pub async fn list(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let mut out = std::io::stdout().lock();
    for entry in store.queue_entries().await? {
        let recipients: Vec<&str> = entry
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        let sender = if entry.sender.is_empty() {
            "<>"
        } else {
            &entry.sender
        };
        writeln!(
            out,
            "{} {} {} {}",
            entry.id,
            sender,
            recipients.join(","),
            entry.size
        )?;
    }
    Ok(())
}
