//! The TLS outcome of each outbound SMTP session, kept until the daily TLS-RPT report
//! (RFC 8460 §4) about the recipient domain has been built from it.

use deadpool_postgres::GenericClient;

use super::sql::{self, get};
use crate::{Result, TlsSessionResult, lines};

/// Stores the batch; the caller runs it in one transaction, so it is kept whole or not
/// at all.
pub(super) async fn record(db: &impl GenericClient, results: &[TlsSessionResult]) -> Result<()> {
    for result in results {
        let policy_strings =
            lines::encode(result.policy_strings.iter().map(|line| [line.as_str()]));
        let receiving_ip = result.receiving_ip.map(|ip| ip.to_string());
        sql::execute(
            db,
            "record TLS result",
            "INSERT INTO tls_results (at, policy_domain, policy_type, policy_strings, \
                 mx_host, receiving_ip, result_type, failure_detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &result.at,
                &result.policy_domain,
                &result.policy_type,
                &policy_strings,
                &result.mx_host,
                &receiving_ip,
                &result.result_type,
                &result.failure_detail,
            ],
        )
        .await?;
    }
    Ok(())
}

/// The outcomes recorded in `[from, until)`, oldest first.
pub(super) async fn results(
    db: &impl GenericClient,
    from: i64,
    until: i64,
) -> Result<Vec<TlsSessionResult>> {
    sql::rows(
        db,
        "list TLS results",
        "SELECT at, policy_domain, policy_type, policy_strings, mx_host, receiving_ip, \
                result_type, failure_detail \
         FROM tls_results WHERE at >= $1 AND at < $2 ORDER BY at, id",
        &[&from, &until],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(TlsSessionResult {
            at: get(row, 0)?,
            policy_domain: get(row, 1)?,
            policy_type: get(row, 2)?,
            policy_strings: lines::decode(&get::<String>(row, 3)?)
                .into_iter()
                .filter_map(|fields| fields.into_iter().next())
                .collect(),
            mx_host: get(row, 4)?,
            // Written from an `IpAddr`, so it parses; anything else is left out.
            receiving_ip: get::<Option<String>>(row, 5)?.and_then(|ip| ip.parse().ok()),
            result_type: get(row, 6)?,
            failure_detail: get(row, 7)?,
        })
    })
    .collect()
}

/// Forgets the outcomes recorded before `before`; returns how many.
pub(super) async fn prune(db: &impl GenericClient, before: i64) -> Result<u64> {
    sql::execute(
        db,
        "prune TLS results",
        "DELETE FROM tls_results WHERE at < $1",
        &[&before],
    )
    .await
}
