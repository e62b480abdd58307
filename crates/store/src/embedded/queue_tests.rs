//! The migration that gave the embedded store its delivery side keeps what an older
//! store had queued and sent.

use tempfile::TempDir;

use super::tests::open;
use super::*;
use crate::RecipientStatus;
use crate::backend_tests::queue::{recipient, tls_report};

#[tokio::test]
async fn a_version_3_store_reaches_version_4_with_its_queue_and_sent_reports() {
    let dir = TempDir::new().unwrap();
    {
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        schema::create_at_version(&conn, 3);
        conn.execute_batch(
            "INSERT INTO blobs (id, raw) VALUES (1, X'6869');
             INSERT INTO queue (id, blob, sender, size, created, next_attempt, attempts)
                 VALUES (5, 1, 'alice@example.test', 2, 1000, 1000, 2);
             INSERT INTO queue_recipients VALUES (5, 0, 'bob@example.org', 'pending', '451');
             INSERT INTO dmarc_reports_sent VALUES ('Example.NET', 86400, 172799, 'r', NULL);",
        )
        .unwrap();
    }

    let store = open(&dir);
    let version: usize = store
        .readers
        .run(|conn| {
            conn.pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(sql_error("read schema version"))
        })
        .await
        .unwrap();
    assert_eq!(version, 4);
    let old = QueueEntry {
        id: 5,
        sender: "alice@example.test".into(),
        recipients: vec![recipient(
            "bob@example.org",
            RecipientStatus::Pending,
            Some("451"),
        )],
        size: 2,
        created: 1000,
        next_attempt: 1000,
        attempts: 2,
        require_tls: false,
        policy: None,
    };
    assert_eq!(
        store.queue_entries().await.unwrap(),
        std::slice::from_ref(&old)
    );
    assert_eq!(
        store.claim_queue_entries(1000, 1060, 10).await.unwrap(),
        [old]
    );

    let mut already_sent = tls_report("example.net", "again");
    already_sent.begin = 86_400;
    assert_eq!(store.queue_dmarc_report(already_sent).await.unwrap(), None);
}
