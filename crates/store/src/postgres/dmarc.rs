//! DMARC bookkeeping (RFC 9990): evaluations of incoming mail, from which the aggregate
//! reports we send are built (queued by [`super::reports_sent`]), and the aggregate
//! reports other organisations send us.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::sql::{self, get, get_u64, to_i64};
use crate::lines::{self, decode_dkim, decode_spf, encode_dkim, encode_spf};
use crate::{
    DmarcAggregateReport, DmarcDisposition, DmarcEvaluationRecord, DmarcPolicyPublished,
    DmarcReportRow, Result, StoreError,
};

pub(super) async fn record_evaluation(
    db: &impl GenericClient,
    record: &DmarcEvaluationRecord,
) -> Result<()> {
    let policy = &record.policy;
    sql::execute(
        db,
        "record DMARC evaluation",
        "INSERT INTO dmarc_evaluations (evaluated_at, source_ip, header_from, envelope_from, \
             envelope_to, policy_domain, p, sp, np, adkim_strict, aspf_strict, testing, fo, \
             disposition, dkim_aligned, spf_aligned, dkim, spf, rua) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19)",
        &[
            &record.evaluated_at,
            &record.source_ip.to_string(),
            &record.header_from,
            &record.envelope_from,
            &record.envelope_to,
            &record.policy_domain,
            &policy.p.as_str(),
            &policy.sp.map(DmarcDisposition::as_str),
            &policy.np.map(DmarcDisposition::as_str),
            &policy.adkim_strict,
            &policy.aspf_strict,
            &policy.testing,
            &policy.fo,
            &record.disposition.as_str(),
            &record.dkim_aligned,
            &record.spf_aligned,
            &encode_dkim(&record.dkim),
            &encode_spf(record.spf.as_slice()),
            &lines::encode(record.rua.iter().map(|uri| [uri.as_str()])),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn evaluations(
    db: &impl GenericClient,
    from: i64,
    until: i64,
) -> Result<Vec<DmarcEvaluationRecord>> {
    sql::rows(
        db,
        "list DMARC evaluations",
        "SELECT evaluated_at, source_ip, header_from, envelope_from, envelope_to, \
                policy_domain, p, sp, np, adkim_strict, aspf_strict, testing, fo, \
                disposition, dkim_aligned, spf_aligned, dkim, spf, rua \
         FROM dmarc_evaluations WHERE evaluated_at >= $1 AND evaluated_at < $2 \
         ORDER BY evaluated_at, id",
        &[&from, &until],
    )
    .await?
    .iter()
    .map(|row| {
        let source_ip: String = get(row, 1)?;
        Ok(DmarcEvaluationRecord {
            evaluated_at: get(row, 0)?,
            source_ip: source_ip.parse().map_err(|_| {
                StoreError::Database(format!("stored source IP {source_ip:?} does not parse"))
            })?,
            header_from: get(row, 2)?,
            envelope_from: get(row, 3)?,
            envelope_to: get(row, 4)?,
            policy_domain: get(row, 5)?,
            policy: policy(row, 6)?,
            disposition: disposition(&get::<String>(row, 13)?)?,
            dkim_aligned: get(row, 14)?,
            spf_aligned: get(row, 15)?,
            dkim: decode_dkim(&get::<String>(row, 16)?),
            spf: decode_spf(&get::<String>(row, 17)?).into_iter().next(),
            rua: lines::decode(&get::<String>(row, 18)?)
                .into_iter()
                .filter_map(|fields| fields.into_iter().next())
                .collect(),
        })
    })
    .collect()
}

pub(super) async fn prune_evaluations(db: &impl GenericClient, before: i64) -> Result<u64> {
    sql::execute(
        db,
        "prune DMARC evaluations",
        "DELETE FROM dmarc_evaluations WHERE evaluated_at < $1",
        &[&before],
    )
    .await
}

/// Stores a received report; `false` if the same organisation's report ID is stored.
pub(super) async fn store_report(
    tx: &Transaction<'_>,
    report: &DmarcAggregateReport,
) -> Result<bool> {
    let policy = &report.policy;
    let inserted = sql::row(
        tx,
        "store DMARC report",
        "INSERT INTO dmarc_reports (org_name, email, report_id, begin_at, end_at, \
             policy_domain, p, sp, np, adkim_strict, aspf_strict, testing, fo) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT DO NOTHING RETURNING id",
        &[
            &report.org_name,
            &report.email,
            &report.report_id,
            &report.begin,
            &report.end,
            &report.policy_domain.to_ascii_lowercase(),
            &policy.p.as_str(),
            &policy.sp.map(DmarcDisposition::as_str),
            &policy.np.map(DmarcDisposition::as_str),
            &policy.adkim_strict,
            &policy.aspf_strict,
            &policy.testing,
            &policy.fo,
        ],
    )
    .await?;
    let Some(inserted) = inserted else {
        return Ok(false);
    };
    let id: i64 = get(&inserted, 0)?;
    for (position, row) in report.rows.iter().enumerate() {
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        sql::execute(
            tx,
            "store DMARC report row",
            "INSERT INTO dmarc_report_rows (report, position, source_ip, count, disposition, \
                 dkim_aligned, spf_aligned, header_from, envelope_from, dkim, spf) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &id,
                &position,
                &row.source_ip.map(|ip| ip.to_string()),
                &to_i64(row.count)?,
                &row.disposition.as_str(),
                &row.dkim_aligned,
                &row.spf_aligned,
                &row.header_from,
                &row.envelope_from,
                &encode_dkim(&row.dkim),
                &encode_spf(&row.spf),
            ],
        )
        .await?;
    }
    Ok(true)
}

pub(super) async fn reports(
    db: &impl GenericClient,
    policy_domain: &str,
) -> Result<Vec<DmarcAggregateReport>> {
    let headers = sql::rows(
        db,
        "list DMARC reports",
        "SELECT id, org_name, email, report_id, begin_at, end_at, policy_domain, p, sp, np, \
                adkim_strict, aspf_strict, testing, fo \
         FROM dmarc_reports WHERE policy_domain = $1 ORDER BY begin_at, id",
        &[&policy_domain.to_ascii_lowercase()],
    )
    .await?;
    let mut reports = Vec::with_capacity(headers.len());
    for header in &headers {
        let id: i64 = get(header, 0)?;
        let rows = sql::rows(
            db,
            "list DMARC report rows",
            "SELECT source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, \
                    envelope_from, dkim, spf \
             FROM dmarc_report_rows WHERE report = $1 ORDER BY position",
            &[&id],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(DmarcReportRow {
                source_ip: get::<Option<String>>(row, 0)?.and_then(|ip| ip.parse().ok()),
                count: get_u64(row, 1)?,
                disposition: disposition(&get::<String>(row, 2)?)?,
                dkim_aligned: get(row, 3)?,
                spf_aligned: get(row, 4)?,
                header_from: get(row, 5)?,
                envelope_from: get(row, 6)?,
                dkim: decode_dkim(&get::<String>(row, 7)?),
                spf: decode_spf(&get::<String>(row, 8)?),
            })
        })
        .collect::<Result<_>>()?;
        reports.push(DmarcAggregateReport {
            org_name: get(header, 1)?,
            email: get(header, 2)?,
            report_id: get(header, 3)?,
            begin: get(header, 4)?,
            end: get(header, 5)?,
            policy_domain: get(header, 6)?,
            policy: policy(header, 7)?,
            rows,
        });
    }
    Ok(reports)
}

/// The seven policy columns starting at `first`: p, sp, np, adkim, aspf, testing, fo.
fn policy(row: &Row, first: usize) -> Result<DmarcPolicyPublished> {
    Ok(DmarcPolicyPublished {
        p: disposition(&get::<String>(row, first)?)?,
        sp: optional_disposition(get(row, first + 1)?)?,
        np: optional_disposition(get(row, first + 2)?)?,
        adkim_strict: get(row, first + 3)?,
        aspf_strict: get(row, first + 4)?,
        testing: get(row, first + 5)?,
        fo: get(row, first + 6)?,
    })
}

fn disposition(text: &str) -> Result<DmarcDisposition> {
    DmarcDisposition::parse(text)
        .ok_or_else(|| StoreError::Database(format!("unknown DMARC disposition {text:?}")))
}

fn optional_disposition(text: Option<String>) -> Result<Option<DmarcDisposition>> {
    text.as_deref().map(disposition).transpose()
}
