//! DMARC bookkeeping (RFC 9990): evaluations of incoming mail, from which the aggregate
//! reports we send are built (queued by [`super::reports_sent`]), and the aggregate
//! reports other organisations send us.

use std::net::IpAddr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, Row, ToSql, params};

use super::sql_error;
use crate::lines::{self, decode_dkim, decode_spf, encode_dkim, encode_spf};
use crate::{
    DmarcAggregateReport, DmarcDisposition, DmarcEvaluationRecord, DmarcPolicyPublished,
    DmarcReportRow, Result,
};

pub(super) fn record_evaluation(conn: &Connection, record: &DmarcEvaluationRecord) -> Result<()> {
    let policy = &record.policy;
    conn.prepare_cached(
        "INSERT INTO dmarc_evaluations (evaluated_at, source_ip, header_from, envelope_from, \
             envelope_to, policy_domain, p, sp, np, adkim_strict, aspf_strict, testing, fo, \
             disposition, dkim_aligned, spf_aligned, dkim, spf, rua) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            record.evaluated_at,
            record.source_ip.to_string(),
            record.header_from,
            record.envelope_from,
            record.envelope_to,
            record.policy_domain,
            policy.p,
            policy.sp,
            policy.np,
            policy.adkim_strict,
            policy.aspf_strict,
            policy.testing,
            policy.fo,
            record.disposition,
            record.dkim_aligned,
            record.spf_aligned,
            encode_dkim(&record.dkim),
            encode_spf(record.spf.as_slice()),
            lines::encode(record.rua.iter().map(|uri| [uri.as_str()])),
        ])
    })
    .map_err(sql_error("record DMARC evaluation"))?;
    Ok(())
}

pub(super) fn evaluations(
    conn: &Connection,
    from: i64,
    until: i64,
) -> Result<Vec<DmarcEvaluationRecord>> {
    let mut select = conn
        .prepare_cached(
            "SELECT evaluated_at, source_ip, header_from, envelope_from, envelope_to, \
                    policy_domain, p, sp, np, adkim_strict, aspf_strict, testing, fo, \
                    disposition, dkim_aligned, spf_aligned, dkim, spf, rua \
             FROM dmarc_evaluations WHERE evaluated_at >= ?1 AND evaluated_at < ?2 \
             ORDER BY evaluated_at, id",
        )
        .map_err(sql_error("list DMARC evaluations"))?;
    let rows = select
        .query_map([from, until], |row| {
            Ok(DmarcEvaluationRecord {
                evaluated_at: row.get(0)?,
                source_ip: ip(row, 1)?,
                header_from: row.get(2)?,
                envelope_from: row.get(3)?,
                envelope_to: row.get(4)?,
                policy_domain: row.get(5)?,
                policy: policy(row, 6)?,
                disposition: row.get(13)?,
                dkim_aligned: row.get(14)?,
                spf_aligned: row.get(15)?,
                dkim: decode_dkim(&row.get::<_, String>(16)?),
                spf: decode_spf(&row.get::<_, String>(17)?).into_iter().next(),
                rua: lines::decode(&row.get::<_, String>(18)?)
                    .into_iter()
                    .filter_map(|fields| fields.into_iter().next())
                    .collect(),
            })
        })
        .map_err(sql_error("list DMARC evaluations"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(sql_error("read DMARC evaluation"))
}

pub(super) fn prune_evaluations(conn: &Connection, before: i64) -> Result<u64> {
    let removed = conn
        .prepare_cached("DELETE FROM dmarc_evaluations WHERE evaluated_at < ?1")
        .and_then(|mut delete| delete.execute([before]))
        .map_err(sql_error("prune DMARC evaluations"))?;
    Ok(removed as u64)
}

/// Stores a received report; `false` if the same organisation's report ID is stored.
pub(super) fn store_report(conn: &Connection, report: &DmarcAggregateReport) -> Result<bool> {
    let policy = &report.policy;
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO dmarc_reports (org_name, email, report_id, begin, end, \
                 policy_domain, p, sp, np, adkim_strict, aspf_strict, testing, fo) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                report.org_name,
                report.email,
                report.report_id,
                report.begin,
                report.end,
                report.policy_domain.to_ascii_lowercase(),
                policy.p,
                policy.sp,
                policy.np,
                policy.adkim_strict,
                policy.aspf_strict,
                policy.testing,
                policy.fo,
            ])
        })
        .map_err(sql_error("store DMARC report"))?;
    if inserted == 0 {
        return Ok(false);
    }
    let id = conn.last_insert_rowid();
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO dmarc_report_rows (report, position, source_ip, count, disposition, \
                 dkim_aligned, spf_aligned, header_from, envelope_from, dkim, spf) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(sql_error("store DMARC report row"))?;
    for (position, row) in report.rows.iter().enumerate() {
        insert
            .execute(params![
                id,
                position,
                row.source_ip.map(|ip| ip.to_string()),
                row.count,
                row.disposition,
                row.dkim_aligned,
                row.spf_aligned,
                row.header_from,
                row.envelope_from,
                encode_dkim(&row.dkim),
                encode_spf(&row.spf),
            ])
            .map_err(sql_error("store DMARC report row"))?;
    }
    Ok(true)
}

pub(super) fn reports(conn: &Connection, policy_domain: &str) -> Result<Vec<DmarcAggregateReport>> {
    let mut select = conn
        .prepare_cached(
            "SELECT id, org_name, email, report_id, begin, end, policy_domain, p, sp, np, \
                    adkim_strict, aspf_strict, testing, fo \
             FROM dmarc_reports WHERE policy_domain = ?1 ORDER BY begin, id",
        )
        .map_err(sql_error("list DMARC reports"))?;
    let headers = select
        .query_map([policy_domain.to_ascii_lowercase()], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                DmarcAggregateReport {
                    org_name: row.get(1)?,
                    email: row.get(2)?,
                    report_id: row.get(3)?,
                    begin: row.get(4)?,
                    end: row.get(5)?,
                    policy_domain: row.get(6)?,
                    policy: policy(row, 7)?,
                    rows: Vec::new(),
                },
            ))
        })
        .map_err(sql_error("list DMARC reports"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error("read DMARC report"))?;
    let mut rows = conn
        .prepare_cached(
            "SELECT source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, \
                    envelope_from, dkim, spf \
             FROM dmarc_report_rows WHERE report = ?1 ORDER BY position",
        )
        .map_err(sql_error("list DMARC report rows"))?;
    let mut reports = Vec::with_capacity(headers.len());
    for (id, mut report) in headers {
        report.rows = rows
            .query_map([id], |row| {
                Ok(DmarcReportRow {
                    source_ip: row
                        .get::<_, Option<String>>(0)?
                        .and_then(|ip| ip.parse().ok()),
                    count: row.get(1)?,
                    disposition: row.get(2)?,
                    dkim_aligned: row.get(3)?,
                    spf_aligned: row.get(4)?,
                    header_from: row.get(5)?,
                    envelope_from: row.get(6)?,
                    dkim: decode_dkim(&row.get::<_, String>(7)?),
                    spf: decode_spf(&row.get::<_, String>(8)?),
                })
            })
            .map_err(sql_error("list DMARC report rows"))?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_error("read DMARC report row"))?;
        reports.push(report);
    }
    Ok(reports)
}

/// The seven policy columns starting at `first`: p, sp, np, adkim, aspf, testing, fo.
fn policy(row: &Row<'_>, first: usize) -> rusqlite::Result<DmarcPolicyPublished> {
    Ok(DmarcPolicyPublished {
        p: row.get(first)?,
        sp: row.get(first + 1)?,
        np: row.get(first + 2)?,
        adkim_strict: row.get(first + 3)?,
        aspf_strict: row.get(first + 4)?,
        testing: row.get(first + 5)?,
        fo: row.get(first + 6)?,
    })
}

fn ip(row: &Row<'_>, index: usize) -> rusqlite::Result<IpAddr> {
    let text: String = row.get(index)?;
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl ToSql for DmarcDisposition {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for DmarcDisposition {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        DmarcDisposition::parse(text).ok_or_else(|| {
            FromSqlError::Other(format!("unknown DMARC disposition {text:?}").into())
        })
    }
}
