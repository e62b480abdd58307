//! The shared backend: one PostgreSQL database that every sealpost node points at
//! (`[store] url = "postgres://…"`), so any node accepts mail for any account and serves
//! it over IMAP and POP3.
//!
//! Each write is one transaction on a pooled connection, committed before the call
//! returns; every connection runs with `synchronous_commit = on`, so a commit is on the
//! database's disk (and its synchronous standbys') before a delivery is acknowledged.
//! Deliveries that arrive together share a transaction (see [`intake`]).
//! UIDs and MODSEQs come from the mailbox row under its lock (see [`mailboxes`]); queue
//! claims skip the rows other nodes are leasing (see [`queue`]); changes travel to the
//! other nodes by LISTEN/NOTIFY (see [`feed`]).

mod accounts;
mod connect;
mod delivery_memos;
mod dmarc;
mod expunge;
mod feed;
mod flags;
pub(crate) mod import;
mod intake;
mod mailboxes;
mod messages;
mod queue;
mod reports_sent;
mod schema;
mod session_locks;
mod sql;
mod tls_results;

#[cfg(test)]
pub(crate) mod test_support;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use deadpool_postgres::{Pool, Transaction};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use self::connect::Target;
use self::intake::Intake;
use self::session_locks::SessionLocks;
use self::sql::db_error;
use crate::flags::FlagSet;
use crate::rules::{self, ReportKind};
use crate::{
    Account, AccountId, Appended, Change, Copied, Delivered, Delivery, DmarcAggregateReport,
    DmarcEvaluationRecord, FlagUpdate, FlagsUpdated, Mailbox, MailboxId, MessageMeta, NewMessage,
    OutgoingReport, QueueAttempt, QueueEntry, QueueId, Result, SessionLock, SessionLockGuard,
    Store, StoreError, TlsSessionResult, names,
};

/// Changes a slow subscriber may fall behind by before it is told it lagged.
const FEED_CAPACITY: usize = 1024;

/// The PostgreSQL-backed [`Store`]. Dropping it stops its change-feed listener and
/// intake workers; pooled connections close as they are dropped.
pub struct PostgresStore {
    node: Node,
    intake: Intake,
    listener: JoinHandle<()>,
    session_locks: Arc<SessionLocks>,
}

/// This node's handle on the database: the pool, and the change feed its writes go to.
#[derive(Clone)]
struct Node {
    pool: Pool,
    feed: broadcast::Sender<Change>,
    /// Random per instance: marks this node's notifications so it skips their echo.
    id: Arc<str>,
}

impl PostgresStore {
    /// Connects to the database at `url` (see [`connect`] for its TLS settings), brings
    /// its schema up to date, and starts listening for other nodes' changes.
    pub async fn connect(url: &str) -> Result<Self> {
        let target = Target::parse(url)?;
        let pool = target.pool()?;
        let mut client = pool.get().await.map_err(|e| {
            StoreError::Database(format!(
                "cannot connect to PostgreSQL at {}{}: {}",
                target.describe(),
                if target.uses_tls() { " (TLS)" } else { "" },
                pool_error(&e)
            ))
        })?;
        let applied = schema::migrate(&mut client).await?;
        if applied > 0 {
            tracing::info!(database = %target.describe(), steps = applied, "database schema migrated");
        }
        schema::check_not_half_migrated(&client).await?;
        drop(client);
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let node = node_id()?;
        let session_locks = SessionLocks::new(target.clone());
        let (ready, listening) = tokio::sync::oneshot::channel();
        let listener = tokio::spawn(feed::listen(target, node.clone(), feed.clone(), ready));
        match listening.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(StoreError::Database(format!(
                    "cannot listen for other nodes' changes: {e}"
                )));
            }
            Err(_) => return Err(StoreError::Closed),
        }
        let node = Node {
            pool,
            feed,
            id: node.into(),
        };
        Ok(Self {
            intake: Intake::start(node.clone()),
            node,
            listener,
            session_locks,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.node.client().await
    }

    async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&Transaction<'_>, &mut Vec<Change>) -> Result<T>,
    ) -> Result<T> {
        self.node.write(work).await
    }
}

impl Node {
    async fn client(&self) -> Result<deadpool_postgres::Client> {
        let client = self.pool.get().await.map_err(|e| {
            StoreError::Database(format!("no database connection: {}", pool_error(&e)))
        })?;
        Ok(client)
    }

    /// Runs `work` in one transaction and commits it; the changes `work` records are sent
    /// to the other nodes as part of the commit and announced here right after it, before
    /// the caller hears the result (so a caller whose write resolved finds its change in
    /// the feed). Nothing is committed if `work` fails.
    async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&Transaction<'_>, &mut Vec<Change>) -> Result<T>,
    ) -> Result<T> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db_error("begin transaction"))?;
        let mut changes = Vec::new();
        let value = work(&tx, &mut changes).await?;
        feed::notify(&tx, &self.id, &changes).await?;
        tx.commit().await.map_err(db_error("commit"))?;
        for change in changes {
            // No subscribers is fine: nobody is waiting for news.
            let _ = self.feed.send(change);
        }
        Ok(value)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.session_locks.close();
    }
}

fn pool_error(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(e) => sql::describe(e),
        other => other.to_string(),
    }
}

fn node_id() -> Result<String> {
    let mut bytes = [0u8; 12];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Database("no randomness for the node id".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Seconds since the Unix epoch; a clock before 1970 counts as the epoch.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[async_trait]
impl Store for PostgresStore {
    async fn add_domain(&self, domain: &str) -> Result<()> {
        let domain = names::domain(domain)?;
        accounts::add_domain(&self.client().await?, &domain).await
    }

    async fn domains(&self) -> Result<Vec<String>> {
        accounts::domains(&self.client().await?).await
    }

    async fn is_local_domain(&self, domain: &str) -> Result<bool> {
        let Ok(domain) = names::domain(domain) else {
            return Ok(false);
        };
        accounts::is_local_domain(&self.client().await?, &domain).await
    }

    async fn create_account(&self, address: &str, password_hash: &str) -> Result<Account> {
        let address = names::account_address(address)?;
        self.write(async |tx, _| {
            accounts::create_account(tx, &address, password_hash, unix_now()).await
        })
        .await
    }

    /// A malformed address is simply not an account: login and certificate lookups pass
    /// whatever the client sent, and must see "no such account", not an error.
    async fn account(&self, address: &str) -> Result<Option<Account>> {
        let Ok(address) = names::account_address(address) else {
            return Ok(None);
        };
        accounts::account(&self.client().await?, &address.address).await
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        accounts::accounts(&self.client().await?).await
    }

    async fn set_password_hash(&self, address: &str, password_hash: &str) -> Result<()> {
        let address = names::account_address(address)?;
        accounts::set_password_hash(&self.client().await?, &address.address, password_hash).await
    }

    async fn remove_account(&self, address: &str) -> Result<()> {
        let address = names::account_address(address)?;
        self.write(async |tx, _| accounts::remove_account(tx, &address.address).await)
            .await
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        mailboxes::mailboxes(&self.client().await?, account).await
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
        let name = names::mailbox(name);
        mailboxes::mailbox(&self.client().await?, account, name).await
    }

    async fn deliver(&self, delivery: Delivery) -> Result<Delivered> {
        rules::check_delivery(&delivery)?;
        self.intake.deliver(delivery).await
    }

    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        messages::messages(&self.client().await?, mailbox).await
    }

    async fn message_raw(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>> {
        messages::message_raw(&self.client().await?, mailbox, uid).await
    }

    async fn messages_raw(
        &self,
        mailbox: MailboxId,
        uids: Vec<u32>,
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        messages::messages_raw(&self.client().await?, mailbox, &uids).await
    }

    async fn create_mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox> {
        let name = names::new_mailbox(name)?;
        self.write(async |tx, changes| {
            mailboxes::create(tx, account, &name, unix_now(), changes).await
        })
        .await
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = names::mailbox(name);
        self.write(async |tx, changes| mailboxes::delete(tx, account, name, changes).await)
            .await
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let from = names::mailbox(from);
        let to = names::new_mailbox(to)?;
        self.write(async |tx, changes| {
            mailboxes::rename(tx, account, from, &to, unix_now(), changes).await
        })
        .await
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let name = names::mailbox(name);
        self.write(async |tx, changes| {
            mailboxes::set_subscribed(tx, account, name, subscribed, changes).await
        })
        .await
    }

    async fn append(&self, mailbox: MailboxId, message: NewMessage) -> Result<Appended> {
        let flags = FlagSet::parse(&message.flags)?;
        self.write(async |tx, changes| {
            messages::append(tx, mailbox, &message, &flags, changes).await
        })
        .await
    }

    async fn update_flags(&self, mailbox: MailboxId, update: FlagUpdate) -> Result<FlagsUpdated> {
        let flags = FlagSet::parse(&update.flags)?;
        self.write(async |tx, changes| {
            flags::update_flags(tx, mailbox, &update, &flags, changes).await
        })
        .await
    }

    async fn expunge(&self, mailbox: MailboxId, uids: Option<Vec<u32>>) -> Result<Vec<u32>> {
        self.write(async |tx, changes| {
            expunge::expunge(tx, mailbox, uids.as_deref(), changes).await
        })
        .await
    }

    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: Vec<u32>,
        to: MailboxId,
    ) -> Result<Copied> {
        self.write(async |tx, changes| messages::copy_messages(tx, from, &uids, to, changes).await)
            .await
    }

    async fn move_messages(
        &self,
        from: MailboxId,
        uids: Vec<u32>,
        to: MailboxId,
    ) -> Result<Copied> {
        self.write(async |tx, changes| messages::move_messages(tx, from, &uids, to, changes).await)
            .await
    }

    async fn expunged_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<u32>> {
        expunge::expunged_since(&self.client().await?, mailbox, modseq).await
    }

    async fn mailbox_by_id(&self, mailbox: MailboxId) -> Result<Option<Mailbox>> {
        mailboxes::by_id(&self.client().await?, mailbox).await
    }

    async fn queue_entries(&self) -> Result<Vec<QueueEntry>> {
        queue::entries(&self.client().await?).await
    }

    async fn queue_message(&self, id: QueueId) -> Result<Option<Vec<u8>>> {
        queue::message(&self.client().await?, id).await
    }

    async fn claim_queue_entries(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>> {
        self.write(async |tx, _| queue::claim(tx, now, lease_until, limit).await)
            .await
    }

    async fn renew_queue_leases(&self, ids: Vec<QueueId>, lease_until: i64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        queue::renew_leases(&self.client().await?, &ids, lease_until).await
    }

    async fn finish_queue_attempt(&self, attempt: QueueAttempt) -> Result<()> {
        self.write(async |tx, _| queue::finish_attempt(tx, &attempt).await)
            .await
    }

    async fn retry_queue_entry(&self, id: QueueId, now: i64) -> Result<bool> {
        queue::retry(&self.client().await?, id, now).await
    }

    async fn drop_queue_entry(&self, id: QueueId) -> Result<bool> {
        self.write(async |tx, _| queue::drop_entry(tx, id).await)
            .await
    }

    /// A malformed domain has no memo, as it is no local domain (`is_local_domain`).
    async fn delivery_memo(&self, kind: &str, domain: &str) -> Result<Option<String>> {
        let Ok(domain) = names::domain(domain) else {
            return Ok(None);
        };
        delivery_memos::memo(&self.client().await?, kind, &domain).await
    }

    async fn set_delivery_memo(
        &self,
        kind: &str,
        domain: &str,
        value: Option<String>,
    ) -> Result<()> {
        let domain = names::domain(domain)?;
        delivery_memos::set(&self.client().await?, kind, &domain, value.as_deref()).await
    }

    async fn delivery_memos(&self, kind: &str) -> Result<Vec<(String, String)>> {
        delivery_memos::memos(&self.client().await?, kind).await
    }

    async fn record_tls_results(&self, results: Vec<TlsSessionResult>) -> Result<()> {
        self.write(async |tx, _| tls_results::record(tx, &results).await)
            .await
    }

    async fn tls_results(&self, from: i64, until: i64) -> Result<Vec<TlsSessionResult>> {
        tls_results::results(&self.client().await?, from, until).await
    }

    async fn prune_tls_results(&self, before: i64) -> Result<u64> {
        tls_results::prune(&self.client().await?, before).await
    }

    async fn queue_tls_report(&self, report: OutgoingReport) -> Result<Option<QueueId>> {
        rules::check_report(ReportKind::Tls, &report)?;
        self.write(async |tx, changes| {
            reports_sent::queue_once(tx, ReportKind::Tls, &report, unix_now(), changes).await
        })
        .await
    }

    async fn record_dmarc_evaluation(&self, record: DmarcEvaluationRecord) -> Result<()> {
        dmarc::record_evaluation(&self.client().await?, &record).await
    }

    async fn dmarc_evaluations(&self, from: i64, until: i64) -> Result<Vec<DmarcEvaluationRecord>> {
        dmarc::evaluations(&self.client().await?, from, until).await
    }

    async fn prune_dmarc_evaluations(&self, before: i64) -> Result<u64> {
        dmarc::prune_evaluations(&self.client().await?, before).await
    }

    async fn queue_dmarc_report(&self, report: OutgoingReport) -> Result<Option<QueueId>> {
        rules::check_report(ReportKind::Dmarc, &report)?;
        self.write(async |tx, changes| {
            reports_sent::queue_once(tx, ReportKind::Dmarc, &report, unix_now(), changes).await
        })
        .await
    }

    async fn store_dmarc_report(&self, report: DmarcAggregateReport) -> Result<bool> {
        self.write(async |tx, _| dmarc::store_report(tx, &report).await)
            .await
    }

    async fn dmarc_reports(&self, policy_domain: &str) -> Result<Vec<DmarcAggregateReport>> {
        dmarc::reports(&self.client().await?, policy_domain).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.node.feed.subscribe()
    }

    /// An advisory lock every node honours (see [`session_locks`]).
    async fn try_session_lock(&self, lock: SessionLock) -> Result<Option<SessionLockGuard>> {
        self.session_locks.try_lock(lock).await
    }
}
