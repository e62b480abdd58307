//! `sealpost mail list|cat`: read what the store holds for an account, exactly as stored.

use std::io::Write;

use anyhow::{Context, anyhow};
use clap::Subcommand;
use sealpost_store::Store;

use crate::account::open_store;
use crate::config::Config;

#[derive(Subcommand)]
pub enum MailCommand {
    /// One line per message: UID, size in octets, Message-ID.
    List {
        address: String,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
    /// Write one message's stored bytes to standard output.
    Cat {
        address: String,
        uid: u32,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
}

pub async fn run(command: MailCommand, config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        MailCommand::List { address, mailbox } => {
            let mailbox = find_mailbox(&*store, &address, &mailbox).await?;
            let mut out = std::io::stdout().lock();
            for meta in store.messages(mailbox).await? {
                let raw = store
                    .message_raw(mailbox, meta.uid)
                    .await?
                    .unwrap_or_default();
                let id = message_id(&raw).unwrap_or("-");
                writeln!(out, "{} {} {}", meta.uid, meta.size, id)?;
            }
        }
        MailCommand::Cat {
            address,
            uid,
            mailbox,
        } => {
            let mailbox_id = find_mailbox(&*store, &address, &mailbox).await?;
            let raw = store
                .message_raw(mailbox_id, uid)
                .await?
                .ok_or_else(|| anyhow!("no message with UID {uid} in {mailbox} of {address}"))?;
            std::io::stdout().lock().write_all(&raw)?;
        }
    }
    Ok(())
}

async fn find_mailbox(store: &dyn Store, address: &str, name: &str) -> anyhow::Result<i64> {
    let account = store
        .account(address)
        .await?
        .with_context(|| format!("no account {address}"))?;
    let mailbox = store
        .mailbox(account.id, name)
        .await?
        .with_context(|| format!("{address} has no mailbox {name}"))?;
    Ok(mailbox.id)
}

/// The value of the first Message-ID header in the message's header section.
fn message_id(raw: &[u8]) -> Option<&str> {
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    raw[..header_end]
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"message-id")
                .then(|| std::str::from_utf8(&value[1..]).ok())
                .flatten()
        })
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::message_id;

    #[test]
    fn message_id_is_read_from_the_header_section_only() {
        let raw = b"Received: x\r\nMessage-Id: <a@b>\r\n\r\nMessage-ID: <body@b>\r\n";
        assert_eq!(message_id(raw), Some("<a@b>"));
        assert_eq!(message_id(b"Subject: x\r\n\r\nMessage-ID: <c@d>\r\n"), None);
    }
}
