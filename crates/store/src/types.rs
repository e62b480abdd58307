use std::sync::Arc;

pub type AccountId = i64;
pub type MailboxId = i64;
pub type QueueId = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// Lower-case `local@domain`.
    pub address: String,
    /// PHC string (argon2id), see [`crate::password`].
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account: AccountId,
    pub name: String,
    pub uid_validity: u32,
    /// The UID the next message will get; UIDs are never reused.
    pub uid_next: u32,
    pub highest_modseq: u64,
    /// RFC 6154 attribute, e.g. `\Sent`.
    pub special_use: Option<String>,
    pub subscribed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub mailbox: MailboxId,
    pub uid: u32,
    pub flags: Vec<String>,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
    pub size: u64,
    pub modseq: u64,
}

/// Where a local copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    pub account: AccountId,
    pub mailbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message exactly as it will be read back (trace headers included).
    pub raw: Arc<Vec<u8>>,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
    pub local: Vec<LocalTarget>,
    pub outbound: Option<Outbound>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// One per local target, in the same order.
    pub messages: Vec<(MailboxId, u32)>,
    pub queue_id: Option<QueueId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: QueueId,
    pub sender: String,
    pub recipients: Vec<QueueRecipient>,
    pub size: u64,
    pub created: i64,
    pub next_attempt: i64,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecipient {
    pub address: String,
    pub status: RecipientStatus,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientStatus {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub raw: Arc<Vec<u8>>,
    pub flags: Vec<String>,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub uid_validity: u32,
    pub uid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOperation {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    pub uids: Vec<u32>,
    pub operation: FlagOperation,
    pub flags: Vec<String>,
    pub unchanged_since: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagsUpdated {
    /// Messages whose flags changed, with their new flags and MODSEQ.
    pub changed: Vec<MessageMeta>,
    /// UIDs left alone because their MODSEQ exceeded `unchanged_since`.
    pub modified: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub uid_validity: u32,
    /// (source UID, new UID), in source UID order.
    pub uids: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    MessageAdded {
        account: AccountId,
        mailbox: MailboxId,
        uid: u32,
    },
    FlagsChanged {
        account: AccountId,
        mailbox: MailboxId,
        uids: Vec<u32>,
    },
    Expunged {
        account: AccountId,
        mailbox: MailboxId,
        uids: Vec<u32>,
    },
    MailboxesChanged {
        account: AccountId,
    },
    QueueAdded {
        id: QueueId,
    },
}
