//! `sealpost domain add|list|rotate-keys`: local domains and their DKIM keys.
//!
//! Adding a domain makes it local, gives it an RSA-2048 and an Ed25519 DKIM key, and
//! creates the two mailboxes its DNS records send reports to (`dmarc-reports@` and
//! `tls-reports@`), so that reports are accepted on port 25 from the start.

use std::io::{Read, Write};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Subcommand;
use sealpost_mailauth::{DkimSigner, KeyDirectory};
use sealpost_store::{Store, password};

use crate::account::open_store;
use crate::config::Config;

/// Where DMARC aggregate reports for a local domain go (its `rua`).
pub const DMARC_REPORTS_LOCAL_PART: &str = "dmarc-reports";
/// Where TLS-RPT reports for a local domain go.
pub const TLS_REPORTS_LOCAL_PART: &str = "tls-reports";

#[derive(Subcommand)]
pub enum DomainCommand {
    /// Make a domain local and create its DKIM keys (existing keys are kept).
    Add { domain: String },
    /// List the local domains with their active DKIM selectors.
    List,
    /// Make new DKIM keys under today's selectors; the old ones stay on disk, so keep
    /// their DNS records until mail signed with them has been delivered.
    RotateKeys { domain: String },
    /// Sign the message on standard input with the domain's DKIM keys and write it,
    /// signatures first, to standard output (to check the published records, or to sign
    /// mail that leaves another way).
    Sign { domain: String },
}

pub async fn run(command: DomainCommand, config: &Config) -> anyhow::Result<()> {
    let keys = KeyDirectory::new(&config.data_dir);
    match command {
        DomainCommand::Add { domain } => {
            let store = open_store(config).await?;
            let was_local = store.is_local_domain(&domain).await?;
            store
                .add_domain(&domain)
                .await
                .with_context(|| format!("cannot add the domain {domain}"))?;
            let (active, created) = keys
                .ensure(&domain, today())
                .with_context(|| format!("cannot create the DKIM keys of {domain}"))?;
            let domain = active.domain.clone();
            println!(
                "{domain} {}",
                if was_local {
                    "was already a local domain"
                } else {
                    "is now a local domain"
                }
            );
            for key in &active.keys {
                let state = if created.contains(&key.algorithm) {
                    "created"
                } else {
                    "kept"
                };
                println!(
                    "DKIM {} key {} {state} ({})",
                    key.algorithm,
                    key.selector,
                    key.path.display()
                );
            }
            for local_part in [DMARC_REPORTS_LOCAL_PART, TLS_REPORTS_LOCAL_PART] {
                let address = format!("{local_part}@{domain}");
                if create_report_mailbox(&*store, &address).await? {
                    println!("created {address} for incoming reports");
                }
            }
            println!("publish its DNS records: sealpost dns {domain}");
        }
        DomainCommand::List => {
            let store = open_store(config).await?;
            for domain in store.domains().await? {
                let selectors = match keys.load(&domain) {
                    Ok(Some(active)) => active
                        .keys
                        .iter()
                        .map(|k| format!("{}={}", k.algorithm.key_type(), k.selector))
                        .collect::<Vec<_>>()
                        .join(" "),
                    Ok(None) => "no DKIM keys (sealpost domain add creates them)".into(),
                    Err(e) => format!("DKIM keys unreadable: {e}"),
                };
                println!("{domain} {selectors}");
            }
        }
        DomainCommand::RotateKeys { domain } => {
            let store = open_store(config).await?;
            if !store.is_local_domain(&domain).await? {
                anyhow::bail!("{domain} is not a local domain: sealpost domain add {domain}");
            }
            let active = keys
                .rotate(&domain, today())
                .with_context(|| format!("cannot rotate the DKIM keys of {domain}"))?;
            for key in &active.keys {
                println!("DKIM {} key {} is now active", key.algorithm, key.selector);
            }
            println!(
                "publish the new records (sealpost dns {}) before mail is signed with them",
                active.domain
            );
        }
        DomainCommand::Sign { domain } => {
            let signer = DkimSigner::load(&config.data_dir).context("cannot load the DKIM keys")?;
            let mut message = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut message)
                .context("cannot read the message from standard input")?;
            let signature = signer.sign(&domain, &message).with_context(|| {
                format!("{domain} has no DKIM keys: run `sealpost domain add {domain}` first")
            })?;
            let mut out = std::io::stdout().lock();
            out.write_all(&signature)?;
            out.write_all(&message)?;
        }
    }
    Ok(())
}

/// Creates a report mailbox with a random password nobody knows (set one with
/// `sealpost account passwd` to read it over IMAP); `false` if it existed.
async fn create_report_mailbox(store: &dyn Store, address: &str) -> anyhow::Result<bool> {
    if store.account(address).await?.is_some() {
        return Ok(false);
    }
    let secret = BASE64.encode(rand::random::<[u8; 32]>());
    let hash = tokio::task::spawn_blocking(move || password::hash(&secret)).await??;
    store
        .create_account(address, &hash)
        .await
        .with_context(|| format!("cannot create the report mailbox {address}"))?;
    Ok(true)
}

/// Today in UTC: the date in new selectors.
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}
