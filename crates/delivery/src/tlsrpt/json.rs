//! The report document (RFC 8460 §4.4): one `policies` entry per distinct policy seen
//! during the day, with its session counts and the failures grouped by result type, MX
//! host, address and reason.

use std::collections::BTreeMap;

use sealpost_store::TlsSessionResult;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub(super) struct Report<'a> {
    pub organization_name: &'a str,
    pub contact_info: &'a str,
    pub report_id: &'a str,
    /// First and last second covered, seconds since the epoch.
    pub begin: i64,
    pub end: i64,
    pub domain: &'a str,
    pub results: &'a [TlsSessionResult],
}

/// Sessions under one policy.
#[derive(Default)]
struct PolicySessions<'a> {
    successes: u64,
    failures: u64,
    mx_hosts: Vec<&'a str>,
    failure_details: BTreeMap<FailureKey<'a>, u64>,
}

/// Failures counted together: result type, MX host, receiving address, reason.
type FailureKey<'a> = (&'a str, &'a str, Option<String>, Option<&'a str>);

impl Report<'_> {
    /// The JSON text, and how many sessions succeeded and failed.
    pub fn to_json(&self) -> (String, u64, u64) {
        let mut policies: BTreeMap<(&str, &[String]), PolicySessions<'_>> = BTreeMap::new();
        for result in self.results {
            let sessions = policies
                .entry((
                    result.policy_type.as_str(),
                    result.policy_strings.as_slice(),
                ))
                .or_default();
            if !sessions.mx_hosts.contains(&result.mx_host.as_str()) {
                sessions.mx_hosts.push(&result.mx_host);
            }
            match &result.result_type {
                None => sessions.successes += 1,
                Some(result_type) => {
                    sessions.failures += 1;
                    let key = (
                        result_type.as_str(),
                        result.mx_host.as_str(),
                        result.receiving_ip.map(|ip| ip.to_string()),
                        result.failure_detail.as_deref(),
                    );
                    *sessions.failure_details.entry(key).or_default() += 1;
                }
            }
        }
        let successes = policies.values().map(|s| s.successes).sum();
        let failures = policies.values().map(|s| s.failures).sum();
        let document = json!({
            "organization-name": self.organization_name,
            "date-range": {
                "start-datetime": rfc3339(self.begin),
                "end-datetime": rfc3339(self.end),
            },
            "contact-info": self.contact_info,
            "report-id": self.report_id,
            "policies": policies
                .iter()
                .map(|((policy_type, strings), sessions)| {
                    self.policy(policy_type, strings, sessions)
                })
                .collect::<Vec<_>>(),
        });
        (document.to_string(), successes, failures)
    }

    fn policy(
        &self,
        policy_type: &str,
        strings: &[String],
        sessions: &PolicySessions<'_>,
    ) -> Value {
        let mut policy = Map::new();
        policy.insert("policy-type".into(), policy_type.into());
        if !strings.is_empty() {
            policy.insert("policy-string".into(), strings.into());
        }
        policy.insert("policy-domain".into(), self.domain.into());
        // For MTA-STS the policy's own MX patterns (as in the RFC's example); otherwise
        // the hosts the sessions were with.
        let mx_patterns: Vec<&str> = strings
            .iter()
            .filter_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "mx").then(|| value.trim())
            })
            .collect();
        let mx_hosts = if policy_type == "sts" && !mx_patterns.is_empty() {
            mx_patterns
        } else {
            sessions.mx_hosts.clone()
        };
        policy.insert("mx-host".into(), mx_hosts.into());

        let failure_details: Vec<Value> = sessions
            .failure_details
            .iter()
            .map(|((result_type, mx_host, ip, reason), count)| {
                let mut detail = Map::new();
                detail.insert("result-type".into(), (*result_type).into());
                detail.insert("receiving-mx-hostname".into(), (*mx_host).into());
                if let Some(ip) = ip {
                    detail.insert("receiving-ip".into(), ip.as_str().into());
                }
                detail.insert("failed-session-count".into(), (*count).into());
                if let Some(reason) = reason {
                    detail.insert("failure-reason-code".into(), (*reason).into());
                }
                Value::Object(detail)
            })
            .collect();
        let mut entry = Map::new();
        entry.insert("policy".into(), Value::Object(policy));
        entry.insert(
            "summary".into(),
            json!({
                "total-successful-session-count": sessions.successes,
                "total-failure-session-count": sessions.failures,
            }),
        );
        if !failure_details.is_empty() {
            entry.insert("failure-details".into(), failure_details.into());
        }
        Value::Object(entry)
    }
}

/// `2016-04-01T00:00:00Z`.
fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
