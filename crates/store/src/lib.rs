//! The one door to stored state: accounts, domains, mailboxes, messages, the outbound
//! queue and the change feed. Protocol crates hold an `Arc<dyn Store>` and never learn
//! which backend is behind it (DESIGN.md, "Storage").

mod embedded;
mod error;
mod login;
mod names;
pub mod password;
mod types;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use embedded::EmbeddedStore;
pub use error::StoreError;
pub use login::{Login, LoginError, LoginPolicy};
pub use types::*;

pub type Result<T> = std::result::Result<T, StoreError>;

/// Mailboxes every new account gets, with their RFC 6154 special-use attribute.
pub const DEFAULT_MAILBOXES: &[(&str, Option<&str>)] = &[
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Makes `domain` local (idempotent). Domains are stored lower-case.
    async fn add_domain(&self, domain: &str) -> Result<()>;
    async fn domains(&self) -> Result<Vec<String>>;
    async fn is_local_domain(&self, domain: &str) -> Result<bool>;

    /// Creates the account, its domain (if new) and the default mailboxes in one
    /// transaction. `AlreadyExists` if the address is taken.
    async fn create_account(&self, address: &str, password_hash: &str) -> Result<Account>;
    /// Looks an account up by address, case-insensitively.
    async fn account(&self, address: &str) -> Result<Option<Account>>;
    async fn accounts(&self) -> Result<Vec<Account>>;
    async fn set_password_hash(&self, address: &str, password_hash: &str) -> Result<()>;
    /// Removes the account with its mailboxes and messages. `NotFound` if absent.
    async fn remove_account(&self, address: &str) -> Result<()>;

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>>;

    /// Stores one received message durably: a copy in each local mailbox and, when
    /// `outbound` is set, one queue entry, all in one transaction. Returns only after the
    /// transaction is on disk (fsync'd), so the caller may then acknowledge it.
    async fn deliver(&self, delivery: Delivery) -> Result<Delivered>;

    /// Metadata of every message in the mailbox, in UID order.
    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>>;
    /// The exact stored bytes of one message.
    async fn message_raw(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>>;

    /// Every entry of the outbound queue, oldest first.
    async fn queue_entries(&self) -> Result<Vec<QueueEntry>>;
    async fn queue_message(&self, id: QueueId) -> Result<Option<Vec<u8>>>;

    /// Changes as they commit; IMAP IDLE subscribes here.
    fn subscribe(&self) -> broadcast::Receiver<Change>;
}
