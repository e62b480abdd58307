//! The selected mailbox as this session has told its client about it: the seq→UID map
//! (each session has its own, RFC 9051 §2.3.1.2), the MODSEQ last reported per message,
//! and the change feed through which other sessions' and deliveries' changes arrive.
//!
//! Changes are not applied when they arrive but when the protocol lets the session
//! report them (RFC 9051 §7.5.1): new messages and flag changes after any command,
//! expunges only after commands that do not use sequence numbers (not during FETCH,
//! STORE, SEARCH). Until then an expunged message stays in the map as a ghost, so the
//! client's sequence numbers keep meaning what they meant.

use std::fmt::Write as _;

use sealpost_store::{Change, Mailbox, MailboxId, MessageMeta, Store, StoreError};
use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::command::SequenceSet;
use crate::response::{flag_list, sequence_set, untagged};
use crate::uid_map::UidMap;

/// What the client has enabled that changes how updates are reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    pub rev2: bool,
    pub condstore: bool,
    pub qresync: bool,
}

pub struct SelectedMailbox {
    pub id: MailboxId,
    pub name: String,
    pub read_only: bool,
    pub uid_validity: u32,
    uids: UidMap,
    /// The client has seen every known message's flags as of this MODSEQ (RFC 7162)...
    known_modseq: u64,
    /// ...and these messages' as of a later one (its own STORE, or FETCH setting \Seen).
    /// A watermark plus a few exceptions instead of one MODSEQ per message keeps an idle
    /// session on a big mailbox small.
    seen_later: Vec<(u32, u64)>,
    changes: broadcast::Receiver<Change>,
    /// A change may have happened that the client has not been told about.
    dirty: bool,
}

impl SelectedMailbox {
    pub fn new(
        mailbox: &Mailbox,
        messages: &[MessageMeta],
        read_only: bool,
        changes: broadcast::Receiver<Change>,
    ) -> Self {
        Self {
            id: mailbox.id,
            name: mailbox.name.clone(),
            read_only,
            uid_validity: mailbox.uid_validity,
            uids: UidMap::from_ascending(messages.iter().map(|m| m.uid)),
            known_modseq: messages.iter().map(|m| m.modseq).max().unwrap_or(0),
            seen_later: Vec::new(),
            changes,
            dirty: false,
        }
    }

    pub fn exists(&self) -> u32 {
        self.uids.len()
    }

    pub fn uids(&self) -> &UidMap {
        &self.uids
    }

    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.position(uid).map(|i| i + 1)
    }

    /// The messages a set names, as (sequence number, UID) in ascending order. `*` is
    /// the last message (or its UID); numbers beyond the mailbox name nothing.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
        let mut indices: Vec<u32> = Vec::new();
        if let Some(last_uid) = self.uids.last() {
            let len = self.uids.len();
            for (low, high) in set.ranges(if uid { last_uid } else { self.exists() }) {
                let range = if uid {
                    let start = self.uids.count_below(low);
                    let end = high
                        .checked_add(1)
                        .map_or(len, |h| self.uids.count_below(h));
                    start..end
                } else {
                    let start = low.saturating_sub(1).min(len);
                    let end = high.min(len);
                    start..end.max(start)
                };
                indices.extend(range);
            }
        }
        indices.sort_unstable();
        indices.dedup();
        indices
            .into_iter()
            .filter_map(|i| self.uids.get(i).map(|uid| (i + 1, uid)))
            .collect()
    }

    /// Records that the client has been shown `uid`'s flags as of `modseq`.
    pub fn seen_modseq(&mut self, uid: u32, modseq: u64) {
        if modseq <= self.known_modseq || self.uids.position(uid).is_none() {
            return;
        }
        match self.seen_later.iter_mut().find(|(u, _)| *u == uid) {
            Some((_, seen)) => *seen = (*seen).max(modseq),
            None => self.seen_later.push((uid, modseq)),
        }
    }

    /// The MODSEQ as of which the client has seen `uid`'s flags.
    fn known_modseq_of(&self, uid: u32) -> u64 {
        self.seen_later
            .iter()
            .find(|(u, _)| *u == uid)
            .map_or(self.known_modseq, |&(_, seen)| seen.max(self.known_modseq))
    }

    /// Something this session did itself changed the mailbox (APPEND or COPY into it).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Takes in what the change feed has delivered so far, without waiting.
    pub fn poll_changes(&mut self) {
        loop {
            match self.changes.try_recv() {
                Ok(change) => {
                    if self.concerns(&change) {
                        self.dirty = true;
                    }
                }
                Err(TryRecvError::Lagged(_)) => self.dirty = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// Waits until the feed reports a change to this mailbox (IDLE). Cancel-safe.
    pub async fn wait_for_change(&mut self) {
        loop {
            match self.changes.recv().await {
                Ok(change) if self.concerns(&change) => {
                    self.dirty = true;
                    return;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.dirty = true;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    fn concerns(&self, change: &Change) -> bool {
        match change {
            Change::MessageAdded { mailbox, .. }
            | Change::FlagsChanged { mailbox, .. }
            | Change::Expunged { mailbox, .. } => *mailbox == self.id,
            Change::MailboxesChanged { .. } | Change::QueueAdded { .. } => false,
        }
    }

    /// Tells the client what changed since it last heard: new messages (EXISTS), flag
    /// changes (FETCH), and, when `expunge_allowed`, expunges (EXPUNGE or, with QRESYNC,
    /// VANISHED).
    pub async fn report_changes(
        &mut self,
        store: &dyn Store,
        out: &mut Vec<u8>,
        expunge_allowed: bool,
        enabled: Enabled,
    ) -> Result<(), StoreError> {
        self.poll_changes();
        if !self.dirty {
            return Ok(());
        }
        let current = store.messages(self.id).await?;
        let mut ghosts = false;

        // Expunged: known here, gone from the store.
        let mut gone = Vec::new();
        let mut next = current.iter().peekable();
        for uid in self.uids.iter() {
            while next.next_if(|m| m.uid < uid).is_some() {}
            if next.peek().is_none_or(|m| m.uid != uid) {
                gone.push(uid);
            }
        }
        if !gone.is_empty() {
            if expunge_allowed {
                self.report_expunged(&gone, out, enabled);
            } else {
                ghosts = true;
            }
        }

        // Flag changes of messages the client knows.
        let mut line = String::new();
        for meta in &current {
            let Some(i) = self.uids.position(meta.uid) else {
                continue;
            };
            if meta.modseq > self.known_modseq_of(meta.uid) {
                line.clear();
                let _ = write!(line, "{} FETCH (UID {} FLAGS ", i + 1, meta.uid);
                flag_list(&mut line, &meta.flags);
                if enabled.condstore {
                    let _ = write!(line, " MODSEQ ({})", meta.modseq);
                }
                line.push(')');
                untagged(out, &line);
            }
        }

        // Every message in the store has now been reported as of its MODSEQ.
        if let Some(highest) = current.iter().map(|m| m.modseq).max() {
            self.known_modseq = self.known_modseq.max(highest);
        }
        self.seen_later.clear();

        // New messages: UIDs only grow, so they are the ones past the last known.
        let last = self.uids.last().unwrap_or(0);
        let before = self.uids.len();
        for meta in current.iter().filter(|m| m.uid > last) {
            self.uids.push(meta.uid);
        }
        if self.uids.len() != before {
            untagged(out, &format!("{} EXISTS", self.uids.len()));
        }
        self.dirty = ghosts;
        Ok(())
    }

    /// Removes expunged messages from the map and tells the client, in ascending UID
    /// order, each EXPUNGE numbered as the map stands at that moment.
    pub fn report_expunged(&mut self, uids: &[u32], out: &mut Vec<u8>, enabled: Enabled) {
        let mut removed = Vec::new();
        for &uid in uids {
            if let Some(i) = self.uids.remove(uid) {
                if !enabled.qresync {
                    untagged(out, &format!("{} EXPUNGE", i + 1));
                }
                removed.push(uid);
            }
        }
        if enabled.qresync && !removed.is_empty() {
            removed.sort_unstable();
            untagged(out, &format!("VANISHED {}", sequence_set(&removed)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::SeqNumber;

    fn mailbox(uids: &[u32]) -> SelectedMailbox {
        let (_tx, rx) = broadcast::channel(4);
        let mut selected = SelectedMailbox::new(
            &Mailbox {
                id: 1,
                account: 1,
                name: "INBOX".into(),
                uid_validity: 7,
                uid_next: 100,
                highest_modseq: 1,
                special_use: None,
                subscribed: true,
            },
            &[],
            false,
            rx,
        );
        selected.uids = UidMap::from_ascending(uids.iter().copied());
        selected
    }

    fn set(items: &[(SeqNumber, SeqNumber)]) -> SequenceSet {
        SequenceSet(items.to_vec())
    }

    #[test]
    fn sequence_and_uid_sets_resolve_against_the_session_map() {
        let m = mailbox(&[3, 5, 9, 10]);
        use SeqNumber::*;
        assert_eq!(
            m.resolve(&set(&[(Value(2), Largest)]), false),
            vec![(2, 5), (3, 9), (4, 10)]
        );
        assert_eq!(
            m.resolve(&set(&[(Value(4), Value(9)), (Value(3), Value(3))]), true),
            vec![(1, 3), (2, 5), (3, 9)]
        );
        // `n:*` with n past the last UID still names the last message (RFC 9051 §6.4.8).
        assert_eq!(
            m.resolve(&set(&[(Value(50), Largest)]), true),
            vec![(4, 10)]
        );
        assert_eq!(m.resolve(&set(&[(Value(7), Value(8))]), false), vec![]);
        assert_eq!(
            mailbox(&[]).resolve(&set(&[(Value(1), Largest)]), true),
            vec![]
        );
    }

    #[test]
    fn expunges_are_numbered_as_the_map_shrinks() {
        let mut m = mailbox(&[3, 5, 9, 10]);
        let mut out = Vec::new();
        m.report_expunged(&[5, 9], &mut out, Enabled::default());
        assert_eq!(out, b"* 2 EXPUNGE\r\n* 2 EXPUNGE\r\n");
        assert_eq!(m.uids().iter().collect::<Vec<_>>(), [3, 10]);
        let mut out = Vec::new();
        let qresync = Enabled {
            qresync: true,
            condstore: true,
            rev2: false,
        };
        m.report_expunged(&[3, 10], &mut out, qresync);
        assert_eq!(out, b"* VANISHED 3,10\r\n");
    }

    #[tokio::test]
    async fn flag_changes_are_reported_once_and_the_sessions_own_are_not_repeated() {
        use std::sync::Arc;

        use sealpost_store::{Delivery, FlagOperation, FlagUpdate, LocalTarget};

        let store = crate::memory_store::MemoryStore::new();
        let account = store.add_account("a@example.test", "pw").await;
        for _ in 0..3 {
            store
                .deliver(Delivery {
                    raw: Arc::new(b"Subject: x\r\n\r\nbody\r\n".to_vec()),
                    internal_date: 0,
                    local: vec![LocalTarget {
                        account: account.id,
                        mailbox: "INBOX".into(),
                    }],
                    outbound: None,
                })
                .await
                .unwrap();
        }
        let inbox = store.mailbox(account.id, "INBOX").await.unwrap().unwrap();
        let messages = store.messages(inbox.id).await.unwrap();
        let mut selected = SelectedMailbox::new(&inbox, &messages, false, store.subscribe());
        let flag = |uid: u32| FlagUpdate {
            uids: vec![uid],
            operation: FlagOperation::Add,
            flags: vec!["\\Flagged".into()],
            unchanged_since: None,
        };

        // The session's own STORE: already answered with its FETCH, never repeated.
        let own = store.update_flags(inbox.id, flag(1)).await.unwrap();
        selected.seen_modseq(1, own.changed[0].modseq);
        // Another session's change to message 2: reported once.
        store.update_flags(inbox.id, flag(2)).await.unwrap();
        selected.mark_dirty();
        let mut out = Vec::new();
        let enabled = Enabled::default();
        selected
            .report_changes(store.as_ref(), &mut out, true, enabled)
            .await
            .unwrap();
        assert_eq!(out, b"* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n");
        selected.mark_dirty();
        let mut again = Vec::new();
        selected
            .report_changes(store.as_ref(), &mut again, true, enabled)
            .await
            .unwrap();
        assert!(again.is_empty(), "{}", String::from_utf8_lossy(&again));
    }
}
