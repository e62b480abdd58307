//! Small durable facts the delivery side keeps about a recipient domain, by kind: that
//! it has offered TLS before (so a later plaintext session is a downgrade to refuse) or
//! its cached MTA-STS policy (RFC 8461 §5). Shared by every node, so a downgrade one node
//! saw is refused by all. The store does not read the values; domains are stored
//! lower-case so lookups ignore case.

use deadpool_postgres::GenericClient;

use super::sql::{self, get};
use crate::Result;

/// `domain` must already be canonical (see [`crate::names::domain`]).
pub(super) async fn memo(
    db: &impl GenericClient,
    kind: &str,
    domain: &str,
) -> Result<Option<String>> {
    sql::row(
        db,
        "read delivery memo",
        "SELECT value FROM delivery_memos WHERE kind = $1 AND domain = $2",
        &[&kind, &domain],
    )
    .await?
    .map(|row| get(&row, 0))
    .transpose()
}

/// Replaces the memo, or with `None` forgets it.
pub(super) async fn set(
    db: &impl GenericClient,
    kind: &str,
    domain: &str,
    value: Option<&str>,
) -> Result<()> {
    match value {
        Some(value) => {
            sql::execute(
                db,
                "write delivery memo",
                "INSERT INTO delivery_memos (kind, domain, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (kind, domain) DO UPDATE SET value = excluded.value",
                &[&kind, &domain, &value],
            )
            .await?
        }
        None => {
            sql::execute(
                db,
                "write delivery memo",
                "DELETE FROM delivery_memos WHERE kind = $1 AND domain = $2",
                &[&kind, &domain],
            )
            .await?
        }
    };
    Ok(())
}

/// Every memo of `kind` as (domain, value), by domain.
pub(super) async fn memos(db: &impl GenericClient, kind: &str) -> Result<Vec<(String, String)>> {
    sql::rows(
        db,
        "list delivery memos",
        "SELECT domain, value FROM delivery_memos WHERE kind = $1 ORDER BY domain",
        &[&kind],
    )
    .await?
    .iter()
    .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
    .collect()
}
