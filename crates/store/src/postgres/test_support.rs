//! Direct connections for the test harness, which creates and drops databases and counts
//! rows behind the store's back.

use super::connect::Target;
use super::sql::describe;
use crate::{Result, StoreError};

pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let target = Target::parse(url)?;
    let (client, connection) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(|e| StoreError::Database(describe(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

/// `url` with its database name replaced by `name`.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map_or(0, |scheme| scheme + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}
