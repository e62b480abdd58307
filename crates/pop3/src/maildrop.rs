//! The maildrop of one session: the account's INBOX as it was at login (RFC 1939 §4).
//! Message numbers index this snapshot, so they stay fixed for the whole session even
//! when mail arrives or another client expunges meanwhile.

use sealpost_store::{Mailbox, MailboxId, MessageMeta};

use crate::command::MessageNumber;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    uid: u32,
    size: u64,
    deleted: bool,
}

/// A message as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaildropMessage {
    pub uid: u32,
    /// The stored size, which is what RETR sends before dot-stuffing: stored messages
    /// are CRLF already. The exception is a message stored without a final CRLF (BDAT,
    /// IMAP APPEND): RETR must add one before the terminator, 2 octets the store's size
    /// does not count, and finding those messages at login would mean reading them all.
    pub size: u64,
}

/// Why a message number names no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSuchMessage {
    OutOfRange,
    /// Marked deleted in this session: invisible until RSET (RFC 1939 §5).
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maildrop {
    mailbox: MailboxId,
    uid_validity: u32,
    entries: Vec<Entry>,
}

impl Maildrop {
    /// The snapshot of `mailbox` holding `messages` (in UID order, as the store lists them).
    pub fn new(mailbox: &Mailbox, messages: &[MessageMeta]) -> Self {
        Self {
            mailbox: mailbox.id,
            uid_validity: mailbox.uid_validity,
            entries: messages
                .iter()
                .map(|m| Entry {
                    uid: m.uid,
                    size: m.size,
                    deleted: false,
                })
                .collect(),
        }
    }

    pub fn mailbox(&self) -> MailboxId {
        self.mailbox
    }

    /// A visible message by its number.
    pub fn get(&self, number: MessageNumber) -> Result<MaildropMessage, NoSuchMessage> {
        let entry = number
            .0
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .ok_or(NoSuchMessage::OutOfRange)?;
        if entry.deleted {
            return Err(NoSuchMessage::Deleted);
        }
        Ok(MaildropMessage {
            uid: entry.uid,
            size: entry.size,
        })
    }

    /// Visible messages with their numbers, in order.
    pub fn visible(&self) -> impl Iterator<Item = (usize, MaildropMessage)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.deleted)
            .map(|(i, e)| {
                (
                    i + 1,
                    MaildropMessage {
                        uid: e.uid,
                        size: e.size,
                    },
                )
            })
    }

    /// Count and total size of the visible messages (STAT, RFC 1939 §5).
    pub fn stat(&self) -> (usize, u64) {
        self.visible().fold((0, 0), |(count, octets), (_, m)| {
            (count + 1, octets + m.size)
        })
    }

    /// The unique-id listing of UIDL (RFC 1939 §7): UIDVALIDITY and UID together never
    /// name two different messages, and stay the same across sessions.
    pub fn unique_id(&self, message: MaildropMessage) -> String {
        format!("{}.{}", self.uid_validity, message.uid)
    }

    pub fn delete(&mut self, number: MessageNumber) -> Result<(), NoSuchMessage> {
        self.get(number)?;
        if let Some(entry) = self.entries.get_mut(number.0 - 1) {
            entry.deleted = true;
        }
        Ok(())
    }

    /// Unmarks every deletion (RSET).
    pub fn undelete_all(&mut self) {
        for entry in &mut self.entries {
            entry.deleted = false;
        }
    }

    /// What UPDATE removes, in UID order.
    pub fn deleted_uids(&self) -> Vec<u32> {
        self.entries
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.uid)
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn mailbox(id: MailboxId, uid_validity: u32) -> Mailbox {
        Mailbox {
            id,
            account: 1,
            name: "INBOX".into(),
            uid_validity,
            uid_next: 100,
            highest_modseq: 1,
            special_use: None,
            subscribed: true,
        }
    }

    pub(crate) fn meta(uid: u32, size: u64) -> MessageMeta {
        MessageMeta {
            mailbox: 7,
            uid,
            flags: Vec::new(),
            internal_date: 0,
            size,
            modseq: 1,
        }
    }

    fn maildrop() -> Maildrop {
        Maildrop::new(&mailbox(7, 42), &[meta(3, 100), meta(5, 200), meta(9, 300)])
    }

    #[test]
    fn numbers_are_one_based_positions_in_the_snapshot() {
        let drop = maildrop();
        assert_eq!(drop.get(MessageNumber(2)).map(|m| m.uid), Ok(5));
        assert_eq!(drop.get(MessageNumber(0)), Err(NoSuchMessage::OutOfRange));
        assert_eq!(drop.get(MessageNumber(4)), Err(NoSuchMessage::OutOfRange));
        assert_eq!(
            drop.get(MessageNumber(usize::MAX)),
            Err(NoSuchMessage::OutOfRange)
        );
    }

    #[test]
    fn deleted_messages_are_invisible_until_reset() {
        let mut drop = maildrop();
        drop.delete(MessageNumber(2)).unwrap();
        assert_eq!(drop.get(MessageNumber(2)), Err(NoSuchMessage::Deleted));
        assert_eq!(drop.delete(MessageNumber(2)), Err(NoSuchMessage::Deleted));
        assert_eq!(drop.stat(), (2, 400));
        let numbers: Vec<usize> = drop.visible().map(|(n, _)| n).collect();
        assert_eq!(numbers, [1, 3]);
        assert_eq!(drop.deleted_uids(), [5]);
        drop.undelete_all();
        assert_eq!(drop.stat(), (3, 600));
        assert!(drop.deleted_uids().is_empty());
    }

    #[test]
    fn unique_ids_combine_uidvalidity_and_uid() {
        let drop = maildrop();
        let ids: Vec<String> = drop.visible().map(|(_, m)| drop.unique_id(m)).collect();
        assert_eq!(ids, ["42.3", "42.5", "42.9"]);
    }
}
