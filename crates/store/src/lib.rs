//! The one door to stored state: accounts, domains, mailboxes, messages, the outbound
//! queue and the change feed. Protocol crates hold an `Arc<dyn Store>` and never learn
//! which backend is behind it (DESIGN.md, "Storage").

#[cfg(test)]
mod backend_tests;
mod embedded;
mod error;
mod flags;
mod lines;
mod login;
mod names;
pub mod password;
mod postgres;
mod rules;
mod types;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use embedded::EmbeddedStore;
pub use error::StoreError;
pub use login::{Login, LoginError, LoginPolicy};
pub use postgres::PostgresStore;
pub use postgres::import::{ImportProgress, ImportReport, import_embedded};
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

/// The hierarchy delimiter of mailbox names (RFC 9051 §5.1.1): `a/b` is `b` inside `a`.
pub const MAILBOX_DELIMITER: char = '/';

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
    /// The stored bytes of several messages in one go, as (UID, bytes) in the order
    /// asked; UIDs that no longer exist are left out. Backends override this to read a
    /// batch in one round trip (IMAP FETCH of a whole mailbox).
    async fn messages_raw(
        &self,
        mailbox: MailboxId,
        uids: Vec<u32>,
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        let mut found = Vec::with_capacity(uids.len());
        for uid in uids {
            if let Some(raw) = self.message_raw(mailbox, uid).await? {
                found.push((uid, raw));
            }
        }
        Ok(found)
    }

    /// Creates a mailbox (RFC 9051 §6.3.4), unsubscribed, with a new UIDVALIDITY greater
    /// than any given before (so a recreated name is a new mailbox to clients).
    /// `AlreadyExists` if the name is taken (INBOX in any case counts as taken); `Invalid`
    /// for an empty name, control characters, or an empty hierarchy level (`a//b`, `a/`).
    /// Parents of `a/b/c` need not exist.
    async fn create_mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox>;
    /// Deletes a mailbox and its messages; mailboxes below it stay. INBOX cannot be
    /// deleted (`Invalid`); `NotFound` if absent.
    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()>;
    /// Renames a mailbox and the mailboxes below it (`from/x` becomes `to/x`), keeping
    /// their UIDVALIDITY and messages. Renaming INBOX moves its messages into a new
    /// mailbox `to` and leaves INBOX empty (RFC 9051 §6.3.6). `NotFound` if `from` is
    /// absent, `AlreadyExists` if `to` (or a renamed child's new name) is taken.
    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    /// Marks the mailbox subscribed or not (RFC 9051 §6.3.7, §6.3.8). `NotFound` if absent:
    /// a subscription lives on the mailbox, so it cannot outlive it.
    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()>;

    /// Appends one message durably (fsync'd before returning, like `deliver`), with its
    /// flags made canonical (`\SEEN` is `\Seen`; duplicates dropped). `Invalid` for a
    /// flag that is neither a system flag nor an atom.
    async fn append(&self, mailbox: MailboxId, message: NewMessage) -> Result<Appended>;
    /// Changes flags of the given UIDs (missing UIDs are ignored). Only messages whose
    /// flags actually change get a new MODSEQ, each its own. With `unchanged_since`
    /// (RFC 7162 CONDSTORE), messages whose MODSEQ is greater are left alone and reported
    /// in `FlagsUpdated::modified`.
    async fn update_flags(&self, mailbox: MailboxId, update: FlagUpdate) -> Result<FlagsUpdated>;
    /// Removes messages flagged `\Deleted`; with `uids`, only those among them (UID
    /// EXPUNGE, and POP3's UPDATE state). Returns the removed UIDs in ascending order and
    /// remembers them for `expunged_since` under one new MODSEQ.
    async fn expunge(&self, mailbox: MailboxId, uids: Option<Vec<u32>>) -> Result<Vec<u32>>;
    /// Copies messages into `to`, keeping flags and internal date; returns (source UID,
    /// new UID) pairs in source UID order, and the target's UIDVALIDITY. Missing UIDs are
    /// skipped.
    async fn copy_messages(&self, from: MailboxId, uids: Vec<u32>, to: MailboxId)
    -> Result<Copied>;
    /// Like `copy_messages`, then expunges the sources, in one transaction (RFC 6851).
    async fn move_messages(&self, from: MailboxId, uids: Vec<u32>, to: MailboxId)
    -> Result<Copied>;
    /// UIDs expunged from the mailbox with a MODSEQ above `modseq` (QRESYNC VANISHED).
    async fn expunged_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<u32>>;
    /// A mailbox by id, with its current counters.
    async fn mailbox_by_id(&self, mailbox: MailboxId) -> Result<Option<Mailbox>>;

    /// Every entry of the outbound queue, oldest first.
    async fn queue_entries(&self) -> Result<Vec<QueueEntry>>;
    async fn queue_message(&self, id: QueueId) -> Result<Option<Vec<u8>>>;
    /// Entries due at `now` (`next_attempt <= now`) that no worker holds, oldest due
    /// first, at most `limit`; each is leased to the caller until `lease_until`, and no
    /// other claim returns it before then (a worker that dies leaves it to the next claim
    /// after the lease). Claiming is atomic: two concurrent claims never share an entry.
    async fn claim_queue_entries(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>>;
    /// Extends to `lease_until` the lease of each of `ids` that is still held (claimed and
    /// neither finished, retried nor released since): a worker calls it well before its
    /// leases run out, for every entry still under way, so a short lease is enough to
    /// hand a dead worker's entries on soon without a live worker's being claimed twice.
    /// Entries gone or no longer leased are left as they are.
    async fn renew_queue_leases(&self, ids: Vec<QueueId>, lease_until: i64) -> Result<()>;
    /// Records one delivery attempt of a claimed entry in one transaction, fsync'd before
    /// returning: the recipients named change status and error (matched by address),
    /// `attempts` grows by one, `next_attempt` and `policy` are set and the lease is
    /// released. When no recipient is pending any more the entry is removed (and its
    /// message, unless a mailbox or another entry still uses it). `NotFound` if the entry
    /// is gone (dropped by the admin meanwhile).
    async fn finish_queue_attempt(&self, attempt: QueueAttempt) -> Result<()>;
    /// Makes the entry due at `now` and releases its lease (`sealpost queue retry`);
    /// `false` if there is no such entry.
    async fn retry_queue_entry(&self, id: QueueId, now: i64) -> Result<bool>;
    /// Removes the entry and its recipients (`sealpost queue drop`); `false` if absent.
    async fn drop_queue_entry(&self, id: QueueId) -> Result<bool>;

    /// A small durable fact of the delivery side about one domain, by kind: `tls-seen`
    /// (downgrade memory) and `mta-sts` (the cached policy). Domains are matched
    /// case-insensitively.
    async fn delivery_memo(&self, kind: &str, domain: &str) -> Result<Option<String>>;
    /// Sets (or with `None` forgets) a delivery memo.
    async fn set_delivery_memo(
        &self,
        kind: &str,
        domain: &str,
        value: Option<String>,
    ) -> Result<()>;
    /// Every memo of one kind as (domain, value), by domain.
    async fn delivery_memos(&self, kind: &str) -> Result<Vec<(String, String)>>;

    /// Keeps the TLS outcome of outbound sessions for the TLS-RPT reports (RFC 8460).
    async fn record_tls_results(&self, results: Vec<TlsSessionResult>) -> Result<()>;
    /// The outcomes recorded in `[from, until)` (seconds since the epoch), oldest first.
    async fn tls_results(&self, from: i64, until: i64) -> Result<Vec<TlsSessionResult>>;
    /// Forgets the outcomes recorded before `before`; returns how many there were.
    async fn prune_tls_results(&self, before: i64) -> Result<u64>;
    /// Queues a TLS-RPT report we built, unless one for the same policy domain and period
    /// start was queued before (as `queue_dmarc_report`). `None` for such a duplicate.
    async fn queue_tls_report(&self, report: OutgoingReport) -> Result<Option<QueueId>>;

    /// Keeps one DMARC evaluation of a message received on port 25, for the aggregate
    /// reports (RFC 9990) sent to the policy domain later.
    async fn record_dmarc_evaluation(&self, record: DmarcEvaluationRecord) -> Result<()>;
    /// The evaluations made in `[from, until)` (seconds since the epoch), oldest first.
    async fn dmarc_evaluations(&self, from: i64, until: i64) -> Result<Vec<DmarcEvaluationRecord>>;
    /// Forgets the evaluations made before `before`; returns how many there were.
    async fn prune_dmarc_evaluations(&self, before: i64) -> Result<u64>;
    /// Queues an aggregate report we built, unless one for the same policy domain and
    /// period start was queued before: both in one transaction, so a report is sent once
    /// however often `send-reports` runs. `None` for such a duplicate.
    async fn queue_dmarc_report(&self, report: OutgoingReport) -> Result<Option<QueueId>>;
    /// Stores an aggregate report received from another organisation; `false` (and
    /// nothing stored) if its organisation and report ID are already stored.
    async fn store_dmarc_report(&self, report: DmarcAggregateReport) -> Result<bool>;
    /// The received reports about `policy_domain`, oldest period first.
    async fn dmarc_reports(&self, policy_domain: &str) -> Result<Vec<DmarcAggregateReport>>;

    /// Changes as they commit; IMAP IDLE subscribes here.
    fn subscribe(&self) -> broadcast::Receiver<Change>;

    /// Takes `lock` for a session unless a session on another node sharing this store
    /// holds it; `None` when taken. Sessions of one process also exclude each other
    /// through the protocol crates' own registries (POP3's maildrop locks, IMAP's session
    /// registry), so a store that only one process opens has nothing to add: this
    /// default grants every lock. A shared backend (PostgreSQL) overrides it.
    async fn try_session_lock(&self, lock: SessionLock) -> Result<Option<SessionLockGuard>> {
        let _ = lock;
        Ok(Some(SessionLockGuard::process_local()))
    }
}
