//! The contract every backend keeps: one suite of tests run against the embedded store
//! and against PostgreSQL. `backend_tests!` turns each `async fn name(store: TestStore)`
//! into `embedded::name` and `postgres::name`.
//!
//! The PostgreSQL variants use the server at `SEALPOST_TEST_POSTGRES_URL` (scripts/test
//! starts a throw-away one with `scripts/postgres`), each test in a database of its own
//! that is dropped afterwards. Without the variable they fail under CI (`CI=true`) and are
//! skipped, with a note, elsewhere.

mod accounts;
mod connections;
pub(crate) mod dmarc;
mod import;
mod mailboxes;
mod nodes;
pub(crate) mod queue;

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::TempDir;

use crate::{
    Account, Delivery, EmbeddedStore, LocalTarget, MailboxId, Outbound, PostgresStore, Store,
};

pub(crate) const POSTGRES_URL_VARIABLE: &str = "SEALPOST_TEST_POSTGRES_URL";

/// Instantiates each listed test for both backends.
macro_rules! backend_tests {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::backend_tests::TestStore::embedded()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(store) = $crate::backend_tests::TestStore::postgres().await {
                        let database = store.database();
                        super::$test(store).await;
                        if let Some(database) = database {
                            database.remove().await;
                        }
                    }
                }
            )*
        }
    };
}
pub(crate) use backend_tests;

/// A store for one test, on a backend of its own: a temporary directory, or a database
/// created for the test and dropped after it (by `backend_tests!`, once the test has
/// closed its store; a failed test leaves its database to the next run's sweep).
pub(crate) struct TestStore {
    // Declared first so it is dropped (connections closed) before the database goes.
    store: Arc<dyn Store>,
    place: Place,
}

enum Place {
    Embedded(TempDir),
    Postgres(TestDatabase),
}

impl TestStore {
    pub(crate) fn embedded() -> Self {
        let dir = TempDir::new().expect("temporary directory");
        let store = EmbeddedStore::open(dir.path()).expect("open embedded store");
        Self {
            store: Arc::new(store),
            place: Place::Embedded(dir),
        }
    }

    /// A fresh database on the test server; `None` (the test skipped) when there is no
    /// server outside CI.
    pub(crate) async fn postgres() -> Option<Self> {
        let server = postgres_url()?;
        let database = TestDatabase::create(&server).await;
        let store = PostgresStore::connect(&database.url)
            .await
            .expect("connect to the test database");
        Some(Self {
            store: Arc::new(store),
            place: Place::Postgres(database),
        })
    }

    /// The store as a shareable handle, for tests that spawn tasks.
    pub(crate) fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Closes the store and opens it again on the same data, as a restart would.
    pub(crate) async fn reopen(&mut self) {
        match &self.place {
            Place::Embedded(dir) => {
                // Every write the test awaited is committed, so a second store on the
                // file sees it all; the first closes as it is replaced.
                self.store = Arc::new(EmbeddedStore::open(dir.path()).expect("reopen store"));
            }
            Place::Postgres(database) => {
                self.store = Arc::new(
                    PostgresStore::connect(&database.url)
                        .await
                        .expect("reconnect to the test database"),
                );
            }
        }
    }

    /// How many stored message bodies there are: bytes are shared between copies and
    /// must go when the last reference does.
    pub(crate) async fn blob_count(&self) -> i64 {
        match &self.place {
            Place::Embedded(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("store.sqlite3"))
                    .expect("open store file");
                conn.query_row("SELECT COUNT(*) FROM blobs", [], |row| row.get(0))
                    .expect("count blobs")
            }
            Place::Postgres(database) => database.count("SELECT count(*) FROM blobs").await,
        }
    }

    pub(crate) fn database(&self) -> Option<TestDatabase> {
        self.database_ref().cloned()
    }

    fn database_ref(&self) -> Option<&TestDatabase> {
        match &self.place {
            Place::Postgres(database) => Some(database),
            Place::Embedded(_) => None,
        }
    }
}

impl Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.store
    }
}

/// The test server's URL, or `None` outside CI when there is none.
pub(crate) fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "{POSTGRES_URL_VARIABLE} is not set: under CI the PostgreSQL tests must run \
             (scripts/test starts a server with scripts/postgres and sets it)"
        ),
        _ => {
            static NOTED: std::sync::Once = std::sync::Once::new();
            NOTED.call_once(|| {
                eprintln!(
                    "note: {POSTGRES_URL_VARIABLE} is not set; the PostgreSQL variants of \
                     the store tests are skipped (scripts/postgres start DIR prints a URL)"
                );
            });
            None
        }
    }
}

/// A database created for one test on the test server.
#[derive(Clone)]
pub(crate) struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create(server: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sealpost_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = crate::postgres::test_support::connect(server)
            .await
            .expect("connect to the test server");
        sweep_databases_of_finished_runs(&admin).await;
        // Separately: a multi-statement string would be one transaction, which
        // CREATE DATABASE refuses.
        for statement in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .expect("create test database");
        }
        let url = crate::postgres::test_support::with_database(server, &name);
        Self {
            server: server.to_string(),
            name,
            url,
        }
    }

    /// Drops the database, cutting off connections a test left open.
    pub(crate) async fn remove(self) {
        let removed = async {
            let admin = crate::postgres::test_support::connect(&self.server).await?;
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await
                .map_err(|e| crate::StoreError::Database(e.to_string()))
        };
        if let Err(e) = removed.await {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }

    async fn count(&self, query: &str) -> i64 {
        let client = crate::postgres::test_support::connect(&self.url)
            .await
            .expect("connect to the test database");
        client
            .query_one(query, &[])
            .await
            .expect("count rows")
            .get(0)
    }
}

/// Drops the databases that test processes no longer running left behind (a failed
/// test skips its cleanup), once per process.
async fn sweep_databases_of_finished_runs(admin: &tokio_postgres::Client) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(rows) = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'sealpost_test_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).unwrap_or_default();
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

pub(crate) async fn create(store: &dyn Store, address: &str) -> Account {
    store
        .create_account(address, "$argon2id$test")
        .await
        .expect("create account")
}

pub(crate) fn inbox(account: &Account) -> LocalTarget {
    LocalTarget {
        account: account.id,
        mailbox: "INBOX".into(),
    }
}

pub(crate) fn delivery(
    raw: &[u8],
    local: Vec<LocalTarget>,
    outbound: Option<Outbound>,
) -> Delivery {
    Delivery {
        raw: Arc::new(raw.to_vec()),
        internal_date: 1_700_000_000,
        local,
        outbound,
    }
}

pub(crate) fn outbound(recipients: &[&str]) -> Outbound {
    Outbound {
        sender: "alice@example.test".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        require_tls: false,
    }
}

pub(crate) async fn mailbox_id(store: &dyn Store, account: &Account, name: &str) -> MailboxId {
    store
        .mailbox(account.id, name)
        .await
        .unwrap()
        .expect("mailbox exists")
        .id
}
