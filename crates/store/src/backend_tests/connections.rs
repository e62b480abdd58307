//! How the PostgreSQL store reaches its server: TLS verified against `sslrootcert` (the
//! test server's own CA, see scripts/postgres), refused against roots that do not know
//! the server, and plaintext only when the URL says `sslmode=disable`.

use super::postgres_url;
use crate::postgres::test_support;
use crate::{PostgresStore, StoreError};

/// The test server's URL with `sslmode` and `sslrootcert` replaced by `tls`; `None`
/// when the test server has no TLS set up (its URL names no `sslrootcert`).
fn server_with(tls: &str) -> Option<String> {
    let url = postgres_url()?;
    let (base, query) = url.split_once('?')?;
    if !query.contains("sslrootcert=") {
        return None;
    }
    let mut kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with("sslmode=") && !pair.starts_with("sslrootcert="))
        .collect();
    kept.push(tls);
    Some(format!("{base}?{}", kept.join("&")))
}

async fn uses_tls(url: &str) -> bool {
    let client = test_support::connect(url).await.expect("connect");
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("read TLS state")
        .get(0)
}

fn root_of(url: &str) -> String {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("sslrootcert="))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn require_connects_with_tls_verified_against_sslrootcert() {
    let Some(server) = postgres_url() else {
        return;
    };
    let root = root_of(&server);
    if root.is_empty() {
        return;
    }
    for mode in ["require", "verify-full", "prefer"] {
        let url = server_with(&format!("sslmode={mode}&sslrootcert={root}")).unwrap();
        assert!(uses_tls(&url).await, "sslmode={mode} used TLS");
    }
    let url = server_with(&format!("sslmode=require&sslrootcert={root}")).unwrap();
    PostgresStore::connect(&url)
        .await
        .expect("the store connects over verified TLS");
}

#[tokio::test]
async fn a_server_certificate_the_roots_do_not_know_is_refused() {
    // The system's roots do not include the test server's own CA.
    let Some(url) = server_with("sslmode=require") else {
        return;
    };
    let Err(StoreError::Database(message)) = PostgresStore::connect(&url).await else {
        panic!("connected to a server whose certificate nobody vouches for");
    };
    assert!(
        message.contains("cannot connect to PostgreSQL"),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("certificate") || message.contains("UnknownIssuer"),
        "{message}"
    );
}

#[tokio::test]
async fn sslmode_disable_connects_in_plaintext() {
    let Some(url) = server_with("sslmode=disable") else {
        return;
    };
    assert!(!uses_tls(&url).await);
}
