//! The default backend: one SQLite file in the data directory, needing no server.
//!
//! Writes go through a single writer thread that commits them in groups (see
//! [`writer`]); reads run on a small pool of read-only connections (see [`readers`]).
//! WAL mode lets the two proceed side by side, and `synchronous=FULL` makes every commit
//! an fsync, which is what lets a delivery's 250 reply promise the message is on disk.

mod accounts;
mod delivery_memos;
mod dmarc;
mod expunge;
mod flags;
mod mailboxes;
mod messages;
mod queue;
mod readers;
mod reports_sent;
mod schema;
mod tls_results;
mod writer;

#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::broadcast;

use self::readers::Readers;
use self::writer::Writer;
use crate::flags::FlagSet;
use crate::rules::{self, ReportKind};
use crate::{
    Account, AccountId, Appended, Change, Copied, Delivered, Delivery, DmarcAggregateReport,
    DmarcEvaluationRecord, FlagUpdate, FlagsUpdated, Mailbox, MailboxId, MessageMeta, NewMessage,
    OutgoingReport, QueueAttempt, QueueEntry, QueueId, Result, Store, StoreError, TlsSessionResult,
    names,
};

/// The file inside the data directory.
const FILE_NAME: &str = "store.sqlite3";

/// How long a connection waits for a lock held by another (such as a second sealpost
/// process running `account add`) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Changes a slow subscriber may fall behind by before it is told it lagged.
const FEED_CAPACITY: usize = 1024;

/// The SQLite-backed [`Store`]. Dropping it lets the writer finish its current batch and
/// waits for its thread to exit, so a reopen right after sees every acknowledged write.
pub struct EmbeddedStore {
    writer: Writer,
    readers: Arc<Readers>,
    feed: broadcast::Sender<Change>,
}

impl EmbeddedStore {
    /// Opens `data_dir/store.sqlite3`, creating the directory and the database on first
    /// start and bringing an older schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Database(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(FILE_NAME);
        let mut conn = Connection::open(&path)
            .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", path.display())))?;
        configure_writer(&conn)?;
        schema::migrate(&mut conn)?;
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        Ok(Self {
            writer: Writer::spawn(conn, feed.clone())?,
            readers: Readers::new(path),
            feed,
        })
    }

    /// How many transactions the writer has committed since `open`. Fewer commits than
    /// writes is group commit at work: each commit is one fsync.
    pub fn commit_count(&self) -> u64 {
        self.writer.commit_count()
    }
}

fn configure_writer(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql_error("set busy timeout"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sql_error("enable WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database(format!(
            "the file system of the data directory does not support SQLite's WAL mode \
             (got {mode:?}): put data_dir on a local file system"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql_error("set synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sql_error("enable foreign keys"))
}

/// Wraps a SQLite error with what the store was doing when it happened.
fn sql_error(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Database(format!("{context}: {e}"))
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error().is_some_and(|e| {
        e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    })
}

/// Seconds since the Unix epoch; a clock before 1970 counts as the epoch.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn add_domain(&self, domain: &str) -> Result<()> {
        let domain = names::domain(domain)?;
        self.writer
            .submit(move |conn, _| accounts::add_domain(conn, &domain))
            .await
    }

    async fn domains(&self) -> Result<Vec<String>> {
        self.readers.run(accounts::domains).await
    }

    async fn is_local_domain(&self, domain: &str) -> Result<bool> {
        let Ok(domain) = names::domain(domain) else {
            return Ok(false);
        };
        self.readers
            .run(move |conn| accounts::is_local_domain(conn, &domain))
            .await
    }

    async fn create_account(&self, address: &str, password_hash: &str) -> Result<Account> {
        let address = names::account_address(address)?;
        let password_hash = password_hash.to_string();
        self.writer
            .submit(move |conn, _| {
                accounts::create_account(conn, &address, &password_hash, unix_now())
            })
            .await
    }

    /// A malformed address is simply not an account: login and certificate lookups pass
    /// whatever the client sent, and must see "no such account", not an error.
    async fn account(&self, address: &str) -> Result<Option<Account>> {
        let Ok(address) = names::account_address(address) else {
            return Ok(None);
        };
        self.readers
            .run(move |conn| accounts::account(conn, &address.address))
            .await
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        self.readers.run(accounts::accounts).await
    }

    async fn set_password_hash(&self, address: &str, password_hash: &str) -> Result<()> {
        let address = names::account_address(address)?;
        let password_hash = password_hash.to_string();
        self.writer
            .submit(move |conn, _| {
                accounts::set_password_hash(conn, &address.address, &password_hash)
            })
            .await
    }

    async fn remove_account(&self, address: &str) -> Result<()> {
        let address = names::account_address(address)?;
        self.writer
            .submit(move |conn, _| accounts::remove_account(conn, &address.address))
            .await
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.readers
            .run(move |conn| mailboxes::mailboxes(conn, account))
            .await
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
        let name = names::mailbox(name).to_string();
        self.readers
            .run(move |conn| mailboxes::mailbox(conn, account, &name))
            .await
    }

    async fn deliver(&self, delivery: Delivery) -> Result<Delivered> {
        rules::check_delivery(&delivery)?;
        self.writer
            .submit(move |conn, changes| messages::deliver(conn, &delivery, unix_now(), changes))
            .await
    }

    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        self.readers
            .run(move |conn| messages::messages(conn, mailbox))
            .await
    }

    async fn message_raw(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>> {
        self.readers
            .run(move |conn| messages::message_raw(conn, mailbox, uid))
            .await
    }

    async fn messages_raw(
        &self,
        mailbox: MailboxId,
        uids: Vec<u32>,
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        self.readers
            .run(move |conn| {
                let mut found = Vec::with_capacity(uids.len());
                for uid in uids {
                    if let Some(raw) = messages::message_raw(conn, mailbox, uid)? {
                        found.push((uid, raw));
                    }
                }
                Ok(found)
            })
            .await
    }

    async fn create_mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox> {
        let name = names::new_mailbox(name)?;
        self.writer
            .submit(move |conn, changes| {
                mailboxes::create(conn, account, &name, unix_now(), changes)
            })
            .await
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = names::mailbox(name).to_string();
        self.writer
            .submit(move |conn, changes| mailboxes::delete(conn, account, &name, changes))
            .await
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let from = names::mailbox(from).to_string();
        let to = names::new_mailbox(to)?;
        self.writer
            .submit(move |conn, changes| {
                mailboxes::rename(conn, account, &from, &to, unix_now(), changes)
            })
            .await
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let name = names::mailbox(name).to_string();
        self.writer
            .submit(move |conn, changes| {
                mailboxes::set_subscribed(conn, account, &name, subscribed, changes)
            })
            .await
    }

    async fn append(&self, mailbox: MailboxId, message: NewMessage) -> Result<Appended> {
        let flags = FlagSet::parse(&message.flags)?;
        self.writer
            .submit(move |conn, changes| messages::append(conn, mailbox, &message, &flags, changes))
            .await
    }

    async fn update_flags(&self, mailbox: MailboxId, update: FlagUpdate) -> Result<FlagsUpdated> {
        let flags = FlagSet::parse(&update.flags)?;
        self.writer
            .submit(move |conn, changes| {
                flags::update_flags(conn, mailbox, &update, &flags, changes)
            })
            .await
    }

    async fn expunge(&self, mailbox: MailboxId, uids: Option<Vec<u32>>) -> Result<Vec<u32>> {
        self.writer
            .submit(move |conn, changes| expunge::expunge(conn, mailbox, uids.as_deref(), changes))
            .await
    }

    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: Vec<u32>,
        to: MailboxId,
    ) -> Result<Copied> {
        self.writer
            .submit(move |conn, changes| messages::copy_messages(conn, from, &uids, to, changes))
            .await
    }

    async fn move_messages(
        &self,
        from: MailboxId,
        uids: Vec<u32>,
        to: MailboxId,
    ) -> Result<Copied> {
        self.writer
            .submit(move |conn, changes| messages::move_messages(conn, from, &uids, to, changes))
            .await
    }

    async fn expunged_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<u32>> {
        self.readers
            .run(move |conn| expunge::expunged_since(conn, mailbox, modseq))
            .await
    }

    async fn mailbox_by_id(&self, mailbox: MailboxId) -> Result<Option<Mailbox>> {
        self.readers
            .run(move |conn| mailboxes::by_id(conn, mailbox))
            .await
    }

    async fn queue_entries(&self) -> Result<Vec<QueueEntry>> {
        self.readers.run(queue::entries).await
    }

    async fn queue_message(&self, id: QueueId) -> Result<Option<Vec<u8>>> {
        self.readers.run(move |conn| queue::message(conn, id)).await
    }

    async fn claim_queue_entries(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>> {
        self.writer
            .submit(move |conn, _| queue::claim(conn, now, lease_until, limit))
            .await
    }

    async fn renew_queue_leases(&self, ids: Vec<QueueId>, lease_until: i64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.writer
            .submit(move |conn, _| queue::renew_leases(conn, &ids, lease_until))
            .await
    }

    async fn finish_queue_attempt(&self, attempt: QueueAttempt) -> Result<()> {
        self.writer
            .submit(move |conn, _| queue::finish_attempt(conn, &attempt))
            .await
    }

    async fn retry_queue_entry(&self, id: QueueId, now: i64) -> Result<bool> {
        self.writer
            .submit(move |conn, _| queue::retry(conn, id, now))
            .await
    }

    async fn drop_queue_entry(&self, id: QueueId) -> Result<bool> {
        self.writer
            .submit(move |conn, _| queue::drop_entry(conn, id))
            .await
    }

    /// A malformed domain has no memo, as it is no local domain (`is_local_domain`).
    async fn delivery_memo(&self, kind: &str, domain: &str) -> Result<Option<String>> {
        let Ok(domain) = names::domain(domain) else {
            return Ok(None);
        };
        let kind = kind.to_string();
        self.readers
            .run(move |conn| delivery_memos::memo(conn, &kind, &domain))
            .await
    }

    async fn set_delivery_memo(
        &self,
        kind: &str,
        domain: &str,
        value: Option<String>,
    ) -> Result<()> {
        let domain = names::domain(domain)?;
        let kind = kind.to_string();
        self.writer
            .submit(move |conn, _| delivery_memos::set(conn, &kind, &domain, value.as_deref()))
            .await
    }

    async fn delivery_memos(&self, kind: &str) -> Result<Vec<(String, String)>> {
        let kind = kind.to_string();
        self.readers
            .run(move |conn| delivery_memos::memos(conn, &kind))
            .await
    }

    async fn record_tls_results(&self, results: Vec<TlsSessionResult>) -> Result<()> {
        self.writer
            .submit(move |conn, _| tls_results::record(conn, &results))
            .await
    }

    async fn tls_results(&self, from: i64, until: i64) -> Result<Vec<TlsSessionResult>> {
        self.readers
            .run(move |conn| tls_results::results(conn, from, until))
            .await
    }

    async fn prune_tls_results(&self, before: i64) -> Result<u64> {
        self.writer
            .submit(move |conn, _| tls_results::prune(conn, before))
            .await
    }

    async fn queue_tls_report(&self, report: OutgoingReport) -> Result<Option<QueueId>> {
        rules::check_report(ReportKind::Tls, &report)?;
        self.writer
            .submit(move |conn, changes| {
                reports_sent::queue_once(conn, ReportKind::Tls, &report, unix_now(), changes)
            })
            .await
    }

    async fn record_dmarc_evaluation(&self, record: DmarcEvaluationRecord) -> Result<()> {
        self.writer
            .submit(move |conn, _| dmarc::record_evaluation(conn, &record))
            .await
    }

    async fn dmarc_evaluations(&self, from: i64, until: i64) -> Result<Vec<DmarcEvaluationRecord>> {
        self.readers
            .run(move |conn| dmarc::evaluations(conn, from, until))
            .await
    }

    async fn prune_dmarc_evaluations(&self, before: i64) -> Result<u64> {
        self.writer
            .submit(move |conn, _| dmarc::prune_evaluations(conn, before))
            .await
    }

    async fn queue_dmarc_report(&self, report: OutgoingReport) -> Result<Option<QueueId>> {
        rules::check_report(ReportKind::Dmarc, &report)?;
        self.writer
            .submit(move |conn, changes| {
                reports_sent::queue_once(conn, ReportKind::Dmarc, &report, unix_now(), changes)
            })
            .await
    }

    async fn store_dmarc_report(&self, report: DmarcAggregateReport) -> Result<bool> {
        self.writer
            .submit(move |conn, _| dmarc::store_report(conn, &report))
            .await
    }

    async fn dmarc_reports(&self, policy_domain: &str) -> Result<Vec<DmarcAggregateReport>> {
        let domain = policy_domain.to_string();
        self.readers
            .run(move |conn| dmarc::reports(conn, &domain))
            .await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }
}
