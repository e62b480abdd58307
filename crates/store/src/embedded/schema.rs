//! The schema of `store.sqlite3` and how it moves forward. `PRAGMA user_version` is the
//! number of migration steps applied; a store written by an older sealpost is brought up
//! to date on open, each missing step in order, all in one transaction.

use rusqlite::{Connection, TransactionBehavior};

use super::sql_error;
use crate::{Result, StoreError};

/// Steps are only ever appended: an existing step is never edited, since stores in the
/// field have already run it.
const MIGRATIONS: &[&str] = &[
    // 1: accounts, mailboxes, messages and the outbound queue.
    "
    CREATE TABLE domains (
        name TEXT PRIMARY KEY NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        address       TEXT NOT NULL UNIQUE,
        domain        TEXT NOT NULL REFERENCES domains(name),
        password_hash TEXT NOT NULL
    );

    -- The last UIDVALIDITY handed out. Kept apart from the mailboxes so a mailbox that
    -- is deleted and created again still gets a greater value (RFC 9051 §2.3.1.1).
    CREATE TABLE uid_validity (
        last INTEGER NOT NULL
    );
    INSERT INTO uid_validity (last) VALUES (0);

    CREATE TABLE mailboxes (
        id             INTEGER PRIMARY KEY,
        account        INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name           TEXT NOT NULL,
        uid_validity   INTEGER NOT NULL,
        uid_next       INTEGER NOT NULL DEFAULT 1,
        highest_modseq INTEGER NOT NULL DEFAULT 1,
        special_use    TEXT,
        subscribed     INTEGER NOT NULL DEFAULT 1,
        UNIQUE (account, name)
    );

    -- A message's bytes, stored once however many mailboxes and queue entries share it.
    CREATE TABLE blobs (
        id  INTEGER PRIMARY KEY,
        raw BLOB NOT NULL
    );

    CREATE TABLE messages (
        mailbox       INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid           INTEGER NOT NULL,
        blob          INTEGER NOT NULL REFERENCES blobs(id),
        -- IMAP flags are atoms, so one space-separated string holds them all.
        flags         TEXT NOT NULL DEFAULT '',
        internal_date INTEGER NOT NULL,
        size          INTEGER NOT NULL,
        modseq        INTEGER NOT NULL,
        PRIMARY KEY (mailbox, uid)
    ) WITHOUT ROWID;
    CREATE INDEX messages_by_blob ON messages (blob);

    CREATE TABLE queue (
        id           INTEGER PRIMARY KEY,
        blob         INTEGER NOT NULL REFERENCES blobs(id),
        sender       TEXT NOT NULL,
        size         INTEGER NOT NULL,
        created      INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX queue_by_blob ON queue (blob);

    CREATE TABLE queue_recipients (
        queue      INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        position   INTEGER NOT NULL,
        address    TEXT NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        last_error TEXT,
        PRIMARY KEY (queue, position)
    ) WITHOUT ROWID;
    ",
    // 2: tombstones of expunged messages, for QRESYNC's VANISHED (RFC 7162 §3.2.10).
    "
    CREATE TABLE expunged (
        mailbox INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid     INTEGER NOT NULL,
        -- The mailbox's MODSEQ of the expunge that removed it.
        modseq  INTEGER NOT NULL,
        PRIMARY KEY (mailbox, uid)
    ) WITHOUT ROWID;
    CREATE INDEX expunged_by_modseq ON expunged (mailbox, modseq);
    ",
    // 3: DMARC (RFC 9990): evaluations of incoming mail for the aggregate reports we send,
    // the reports queued (one per policy domain and period), and reports others send us.
    // Lists of auth results are stored one per line, fields tab-separated.
    "
    CREATE TABLE dmarc_evaluations (
        id            INTEGER PRIMARY KEY,
        evaluated_at  INTEGER NOT NULL,
        source_ip     TEXT NOT NULL,
        header_from   TEXT NOT NULL,
        envelope_from TEXT NOT NULL,
        envelope_to   TEXT NOT NULL,
        policy_domain TEXT NOT NULL,
        p             TEXT NOT NULL,
        sp            TEXT,
        np            TEXT,
        adkim_strict  INTEGER NOT NULL,
        aspf_strict   INTEGER NOT NULL,
        testing       INTEGER NOT NULL,
        fo            TEXT,
        disposition   TEXT NOT NULL,
        dkim_aligned  INTEGER NOT NULL,
        spf_aligned   INTEGER NOT NULL,
        dkim          TEXT NOT NULL,
        spf           TEXT NOT NULL,
        rua           TEXT NOT NULL
    );
    CREATE INDEX dmarc_evaluations_by_time ON dmarc_evaluations (evaluated_at);

    CREATE TABLE dmarc_reports_sent (
        policy_domain TEXT NOT NULL,
        begin         INTEGER NOT NULL,
        end           INTEGER NOT NULL,
        report_id     TEXT NOT NULL,
        queue_id      INTEGER,
        PRIMARY KEY (policy_domain, begin)
    ) WITHOUT ROWID;

    CREATE TABLE dmarc_reports (
        id            INTEGER PRIMARY KEY,
        org_name      TEXT NOT NULL,
        email         TEXT NOT NULL,
        report_id     TEXT NOT NULL,
        begin         INTEGER NOT NULL,
        end           INTEGER NOT NULL,
        policy_domain TEXT NOT NULL,
        p             TEXT NOT NULL,
        sp            TEXT,
        np            TEXT,
        adkim_strict  INTEGER NOT NULL,
        aspf_strict   INTEGER NOT NULL,
        testing       INTEGER NOT NULL,
        fo            TEXT,
        UNIQUE (org_name, report_id)
    );
    CREATE INDEX dmarc_reports_by_domain ON dmarc_reports (policy_domain, begin);

    CREATE TABLE dmarc_report_rows (
        report        INTEGER NOT NULL REFERENCES dmarc_reports(id) ON DELETE CASCADE,
        position      INTEGER NOT NULL,
        source_ip     TEXT,
        count         INTEGER NOT NULL,
        disposition   TEXT NOT NULL,
        dkim_aligned  INTEGER NOT NULL,
        spf_aligned   INTEGER NOT NULL,
        header_from   TEXT NOT NULL,
        envelope_from TEXT NOT NULL,
        dkim          TEXT NOT NULL,
        spf           TEXT NOT NULL,
        PRIMARY KEY (report, position)
    ) WITHOUT ROWID;
    ",
    // 4: outbound delivery. Queue entries carry REQUIRETLS (RFC 8689), the last attempt's
    // TLS policy and a worker's lease; small per-domain facts of the delivery side
    // (downgrade memory, cached MTA-STS policies); the TLS outcome of each session for
    // TLS-RPT (RFC 8460); and the reports queued, DMARC's and TLS-RPT's, each kind
    // de-duplicated on its own.
    "
    ALTER TABLE queue ADD COLUMN require_tls INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue ADD COLUMN policy TEXT;
    -- Until when a worker holds the entry (seconds since the epoch); 0 when none does.
    ALTER TABLE queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX queue_by_next_attempt ON queue (next_attempt);

    CREATE TABLE delivery_memos (
        kind   TEXT NOT NULL,
        -- Lower-case.
        domain TEXT NOT NULL,
        value  TEXT NOT NULL,
        PRIMARY KEY (kind, domain)
    ) WITHOUT ROWID;

    CREATE TABLE tls_results (
        id             INTEGER PRIMARY KEY,
        at             INTEGER NOT NULL,
        policy_domain  TEXT NOT NULL,
        policy_type    TEXT NOT NULL,
        -- One policy string per line.
        policy_strings TEXT NOT NULL,
        mx_host        TEXT NOT NULL,
        receiving_ip   TEXT,
        result_type    TEXT,
        failure_detail TEXT
    );
    CREATE INDEX tls_results_by_time ON tls_results (at);

    CREATE TABLE reports_sent (
        kind          TEXT NOT NULL CHECK (kind IN ('dmarc', 'tls')),
        -- Lower-case.
        policy_domain TEXT NOT NULL,
        begin         INTEGER NOT NULL,
        end           INTEGER NOT NULL,
        report_id     TEXT NOT NULL,
        queue_id      INTEGER,
        PRIMARY KEY (kind, policy_domain, begin)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO reports_sent (kind, policy_domain, begin, end, report_id, queue_id)
        SELECT 'dmarc', lower(policy_domain), begin, end, report_id, queue_id
        FROM dmarc_reports_sent;
    DROP TABLE dmarc_reports_sent;
    ",
];

/// Applies the steps this store has not seen yet and returns how many that was.
pub(super) fn migrate(conn: &mut Connection) -> Result<usize> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error("begin migration"))?;
    let version: usize = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql_error("read schema version"))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "the store's schema is version {version}, newer than the {} this sealpost \
             knows: run the newer sealpost that wrote it",
            MIGRATIONS.len()
        )));
    }
    for (done, step) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(step)
            .map_err(sql_error("apply schema migration"))?;
        tx.pragma_update(None, "user_version", done + 1)
            .map_err(sql_error("record schema version"))?;
    }
    tx.commit().map_err(sql_error("commit migration"))?;
    Ok(MIGRATIONS.len() - version)
}

/// A store as an older sealpost left it: only the first `version` steps applied.
#[cfg(test)]
pub(super) fn create_at_version(conn: &Connection, version: usize) {
    for step in &MIGRATIONS[..version] {
        conn.execute_batch(step).expect("apply old migration step");
    }
    conn.pragma_update(None, "user_version", version)
        .expect("record old schema version");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_migration_step_is_applied_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len());
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        let version: usize = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }

    #[test]
    fn a_version_1_store_keeps_its_mailboxes_and_gains_tombstones() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO domains VALUES ('example.test');
             INSERT INTO accounts VALUES (1, 'a@example.test', 'example.test', 'x');
             INSERT INTO mailboxes (id, account, name, uid_validity) VALUES (7, 1, 'INBOX', 1);",
        )
        .unwrap();

        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len() - 1);

        conn.execute(
            "INSERT INTO expunged (mailbox, uid, modseq) VALUES (7, 1, 2)",
            [],
        )
        .unwrap();
        let mailboxes: i64 = conn
            .query_row("SELECT COUNT(*) FROM mailboxes", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mailboxes, 1);
    }

    #[test]
    fn a_schema_newer_than_this_build_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", MIGRATIONS.len() + 1)
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::Database(_))));
    }
}
