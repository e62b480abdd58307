//! `sealpost queue list|retry|drop`: the outbound queue as the store holds it, and the
//! admin's two levers on it. A running server picks up `retry` within seconds (its worker
//! looks at the queue every few seconds); `drop` takes effect at once, and a delivery
//! already under way for the entry finds it gone when it reports.

use std::io::Write;

use anyhow::bail;
use clap::Subcommand;
use sealpost_store::{QueueEntry, QueueId, RecipientStatus, Store};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::account::open_store;
use crate::config::Config;

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Every entry: id, sender, size, attempts, next try, the TLS policy of the last
    /// attempt, and each recipient's status with its last error.
    List {
        /// One JSON array of entries instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make an entry due now (a running server tries it within seconds).
    Retry { id: QueueId },
    /// Remove an entry: its pending recipients get nothing, not even a DSN.
    Drop { id: QueueId },
}

pub async fn run(command: QueueCommand, config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        QueueCommand::List { json } => list(&*store, json).await,
        QueueCommand::Retry { id } => {
            if !store.retry_queue_entry(id, unix_now()).await? {
                bail!("no queue entry {id}: `sealpost queue list` shows the queue");
            }
            println!("queue entry {id} is due now");
            Ok(())
        }
        QueueCommand::Drop { id } => {
            if !store.drop_queue_entry(id).await? {
                bail!("no queue entry {id}: `sealpost queue list` shows the queue");
            }
            println!("dropped queue entry {id}");
            Ok(())
        }
    }
}

async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let entries = store.queue_entries().await?;
    let mut out = std::io::stdout().lock();
    if json {
        let entries: Vec<serde_json::Value> = entries.iter().map(entry_json).collect();
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        return Ok(());
    }
    for entry in &entries {
        write!(out, "{}", entry_text(entry))?;
    }
    Ok(())
}

/// ```text
/// 42 alice@example.test 4096 bytes, queued 2025-05-01T11:55:00Z, 2 attempts, next try 2025-05-01T12:05:00Z
///   policy: mta-sts-enforce: verified (pkix)
///   bob@example.org pending: mx.example.org [192.0.2.25] said: 451 4.7.1 later (in reply to RCPT TO)
///   carol@example.org delivered
/// ```
fn entry_text(entry: &QueueEntry) -> String {
    let mut text = format!(
        "{} {} {} bytes, queued {}, {} attempt{}, next try {}{}\n",
        entry.id,
        sender(entry),
        entry.size,
        rfc3339(entry.created),
        entry.attempts,
        if entry.attempts == 1 { "" } else { "s" },
        rfc3339(entry.next_attempt),
        if entry.require_tls {
            ", REQUIRETLS"
        } else {
            ""
        },
    );
    if let Some(policy) = &entry.policy {
        text.push_str(&format!("  policy: {policy}\n"));
    }
    for recipient in &entry.recipients {
        text.push_str(&format!(
            "  {} {}",
            recipient.address,
            status(recipient.status)
        ));
        if let Some(error) = &recipient.last_error {
            text.push_str(&format!(": {error}"));
        }
        text.push('\n');
    }
    text
}

fn entry_json(entry: &QueueEntry) -> serde_json::Value {
    let recipients: Vec<serde_json::Value> = entry
        .recipients
        .iter()
        .map(|r| {
            json!({
                "address": r.address,
                "status": status(r.status),
                "last_error": r.last_error,
            })
        })
        .collect();
    json!({
        "id": entry.id,
        "sender": entry.sender,
        "size": entry.size,
        "created": rfc3339(entry.created),
        "attempts": entry.attempts,
        "next_attempt": rfc3339(entry.next_attempt),
        "require_tls": entry.require_tls,
        "policy": entry.policy,
        "recipients": recipients,
    })
}

fn sender(entry: &QueueEntry) -> &str {
    if entry.sender.is_empty() {
        "<>"
    } else {
        &entry.sender
    }
}

fn status(status: RecipientStatus) -> &'static str {
    match status {
        RecipientStatus::Pending => "pending",
        RecipientStatus::Delivered => "delivered",
        RecipientStatus::Failed => "failed",
    }
}

pub(crate) fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use sealpost_store::QueueRecipient;

    use super::*;

    fn entry() -> QueueEntry {
        QueueEntry {
            id: 42,
            sender: "alice@example.test".into(),
            recipients: vec![
                QueueRecipient {
                    address: "bob@example.org".into(),
                    status: RecipientStatus::Pending,
                    last_error: Some("mx.example.org [192.0.2.25] said: 451 4.7.1 later".into()),
                },
                QueueRecipient {
                    address: "carol@example.org".into(),
                    status: RecipientStatus::Delivered,
                    last_error: None,
                },
            ],
            size: 4096,
            created: 1_746_100_500,
            next_attempt: 1_746_101_100,
            attempts: 2,
            require_tls: false,
            policy: Some("mta-sts-enforce: verified (pkix)".into()),
        }
    }

    #[test]
    fn text_lists_entry_policy_and_each_recipient() {
        assert_eq!(
            entry_text(&entry()),
            "42 alice@example.test 4096 bytes, queued 2025-05-01T11:55:00Z, 2 attempts, next try 2025-05-01T12:05:00Z\n\
             \x20 policy: mta-sts-enforce: verified (pkix)\n\
             \x20 bob@example.org pending: mx.example.org [192.0.2.25] said: 451 4.7.1 later\n\
             \x20 carol@example.org delivered\n"
        );
    }

    #[test]
    fn null_sender_and_requiretls_are_shown() {
        let entry = QueueEntry {
            sender: String::new(),
            require_tls: true,
            attempts: 1,
            policy: None,
            ..entry()
        };
        let text = entry_text(&entry);
        assert!(text.starts_with("42 <> 4096 bytes, queued "), "{text}");
        assert!(
            text.contains(" 1 attempt, ") && text.contains(", REQUIRETLS\n"),
            "{text}"
        );
        assert!(!text.contains("policy:"), "{text}");
    }

    #[test]
    fn json_has_every_field() {
        let value = entry_json(&entry());
        assert_eq!(value["id"], 42);
        assert_eq!(value["next_attempt"], "2025-05-01T12:05:00Z");
        assert_eq!(value["policy"], "mta-sts-enforce: verified (pkix)");
        assert_eq!(value["recipients"][0]["status"], "pending");
        assert_eq!(
            value["recipients"][1]["last_error"],
            serde_json::Value::Null
        );
    }
}
