//! The change feed across nodes, by PostgreSQL's own LISTEN/NOTIFY: every write
//! transaction that changes something sends its changes with `pg_notify` before it
//! commits (PostgreSQL delivers them at commit, in commit order, and drops them on
//! rollback), and each node keeps one connection listening that turns other nodes'
//! notifications back into [`Change`]s on its own broadcast channel. A node announces its
//! own changes directly after commit, as the embedded store does, and skips its echo.

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};
use tokio_postgres::AsyncMessage;

use super::connect::Target;
use super::sql::{self, describe};
use crate::{Change, Result};

pub(super) const CHANNEL: &str = "sealpost_changes";

/// PostgreSQL refuses payloads of 8000 bytes or more; changes are split below that.
const MAX_PAYLOAD: usize = 7000;

/// UIDs per change in a notification, so one change always fits a payload.
const UIDS_PER_CHANGE: usize = 500;

/// How long the listener waits before reconnecting, at first and at most.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// One notification: which node wrote, and what changed.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Notification {
    node: String,
    changes: Vec<WireChange>,
}

/// [`Change`] as JSON; kept apart from the public type so the wire format is stated here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireChange {
    MessageAdded {
        account: i64,
        mailbox: i64,
        uid: u32,
    },
    FlagsChanged {
        account: i64,
        mailbox: i64,
        uids: Vec<u32>,
    },
    Expunged {
        account: i64,
        mailbox: i64,
        uids: Vec<u32>,
    },
    MailboxesChanged {
        account: i64,
    },
    QueueAdded {
        id: i64,
    },
}

/// The payloads announcing `changes` from `node`, each below PostgreSQL's limit.
pub(super) fn payloads(node: &str, changes: &[Change]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut batch: Vec<WireChange> = Vec::new();
    let mut batch_size = 0;
    for change in changes.iter().flat_map(to_wire) {
        let size = serde_json::to_string(&change).map_or(0, |text| text.len() + 1);
        if !batch.is_empty() && batch_size + size > MAX_PAYLOAD {
            payloads.push(encode(node, std::mem::take(&mut batch)));
            batch_size = 0;
        }
        batch_size += size;
        batch.push(change);
    }
    if !batch.is_empty() {
        payloads.push(encode(node, batch));
    }
    payloads
}

fn encode(node: &str, changes: Vec<WireChange>) -> String {
    let notification = Notification {
        node: node.to_string(),
        changes,
    };
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_string(&notification).unwrap_or_default()
}

/// A change as one or more wire changes, long UID lists split up.
fn to_wire(change: &Change) -> Vec<WireChange> {
    match change {
        Change::MessageAdded {
            account,
            mailbox,
            uid,
        } => vec![WireChange::MessageAdded {
            account: *account,
            mailbox: *mailbox,
            uid: *uid,
        }],
        Change::FlagsChanged {
            account,
            mailbox,
            uids,
        } => uids
            .chunks(UIDS_PER_CHANGE)
            .map(|uids| WireChange::FlagsChanged {
                account: *account,
                mailbox: *mailbox,
                uids: uids.to_vec(),
            })
            .collect(),
        Change::Expunged {
            account,
            mailbox,
            uids,
        } => uids
            .chunks(UIDS_PER_CHANGE)
            .map(|uids| WireChange::Expunged {
                account: *account,
                mailbox: *mailbox,
                uids: uids.to_vec(),
            })
            .collect(),
        Change::MailboxesChanged { account } => {
            vec![WireChange::MailboxesChanged { account: *account }]
        }
        Change::QueueAdded { id } => vec![WireChange::QueueAdded { id: *id }],
    }
}

fn from_wire(change: WireChange) -> Change {
    match change {
        WireChange::MessageAdded {
            account,
            mailbox,
            uid,
        } => Change::MessageAdded {
            account,
            mailbox,
            uid,
        },
        WireChange::FlagsChanged {
            account,
            mailbox,
            uids,
        } => Change::FlagsChanged {
            account,
            mailbox,
            uids,
        },
        WireChange::Expunged {
            account,
            mailbox,
            uids,
        } => Change::Expunged {
            account,
            mailbox,
            uids,
        },
        WireChange::MailboxesChanged { account } => Change::MailboxesChanged { account },
        WireChange::QueueAdded { id } => Change::QueueAdded { id },
    }
}

/// The changes another node announced; `None` for our own echo or a payload that is
/// not ours to read (logged, and otherwise ignored).
fn decode(own_node: &str, payload: &str) -> Option<Vec<Change>> {
    match serde_json::from_str::<Notification>(payload) {
        Ok(notification) if notification.node == own_node => None,
        Ok(notification) => Some(notification.changes.into_iter().map(from_wire).collect()),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a malformed change notification");
            None
        }
    }
}

/// Sends the changes inside the caller's transaction; they go out when it commits.
pub(super) async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    changes: &[Change],
) -> Result<()> {
    for payload in payloads(node, changes) {
        sql::execute(
            tx,
            "announce changes",
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &payload],
        )
        .await?;
    }
    Ok(())
}

/// Listens until the task is aborted (when the store is dropped), reconnecting after a
/// lost connection. `ready` hears how the first LISTEN went, so the store is not handed
/// out before it would hear other nodes' changes.
pub(super) async fn listen(
    target: Target,
    node: String,
    feed: broadcast::Sender<Change>,
    ready: oneshot::Sender<std::result::Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut pause = RECONNECT_FIRST;
    loop {
        match listen_once(&target, &node, &feed, &mut ready).await {
            Ok(()) => {
                tracing::warn!(
                    database = %target.describe(),
                    "the change feed's connection to the database closed; reconnecting \
                     (changes of other nodes until then are not announced here)"
                );
                pause = RECONNECT_FIRST;
            }
            Err(e) if ready.is_some() => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                }
                return;
            }
            Err(e) => tracing::warn!(
                database = %target.describe(),
                error = %e,
                "the change feed's connection to the database failed; reconnecting"
            ),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RECONNECT_MAX);
    }
}

/// One connection's life: LISTEN, then forward notifications until it ends.
async fn listen_once(
    target: &Target,
    node: &str,
    feed: &broadcast::Sender<Change>,
    ready: &mut Option<oneshot::Sender<std::result::Result<(), String>>>,
) -> std::result::Result<(), String> {
    let (client, mut connection) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(|e| describe(&e))?;
    let (messages_in, mut messages) = tokio::sync::mpsc::unbounded_channel();
    // The connection only makes progress while polled; this task polls it and hands on
    // what arrives, while `client` issues the LISTEN.
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            let end = message.is_err();
            if messages_in.send(message).is_err() || end {
                break;
            }
        }
    });
    let listening = client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| describe(&e));
    if let Err(e) = listening {
        driver.abort();
        return Err(e);
    }
    tracing::debug!(database = %target.describe(), "listening for changes of other nodes");
    if let Some(ready) = ready.take() {
        let _ = ready.send(Ok(()));
    }
    while let Some(message) = messages.recv().await {
        match message {
            Ok(AsyncMessage::Notification(notification)) => {
                for change in decode(node, notification.payload()).into_iter().flatten() {
                    // No subscribers is fine: nobody is waiting for news.
                    let _ = feed.send(change);
                }
            }
            Ok(AsyncMessage::Notice(notice)) => {
                tracing::debug!(notice = %notice.message(), "database notice");
            }
            Ok(_) => {}
            Err(e) => {
                driver.abort();
                return Err(describe(&e));
            }
        }
    }
    driver.abort();
    drop(client);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_the_own_echo_is_skipped() {
        let changes = vec![
            Change::MessageAdded {
                account: 1,
                mailbox: 2,
                uid: 3,
            },
            Change::FlagsChanged {
                account: 1,
                mailbox: 2,
                uids: vec![3, 4],
            },
            Change::Expunged {
                account: 1,
                mailbox: 2,
                uids: vec![5],
            },
            Change::MailboxesChanged { account: 1 },
            Change::QueueAdded { id: 9 },
        ];
        let payloads = payloads("a", &changes);
        assert_eq!(payloads.len(), 1);
        assert_eq!(decode("b", &payloads[0]), Some(changes));
        assert_eq!(decode("a", &payloads[0]), None);
        assert_eq!(decode("b", "not json"), None);
    }

    #[test]
    fn long_uid_lists_are_split_into_payloads_postgresql_accepts() {
        let uids: Vec<u32> = (4_000_000_000..4_000_020_000).collect();
        let change = Change::Expunged {
            account: 1,
            mailbox: 2,
            uids: uids.clone(),
        };
        let payloads = payloads("node", &[change]);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let mut seen = Vec::new();
        for payload in &payloads {
            for change in decode("other", payload).unwrap() {
                let Change::Expunged { uids, .. } = change else {
                    panic!("{change:?}");
                };
                seen.extend(uids);
            }
        }
        assert_eq!(seen, uids);
    }
}
