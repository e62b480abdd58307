//! MTA-STS (RFC 8461): discovering a domain's policy and keeping it.
//!
//! `_mta-sts.<domain>` TXT says a policy exists and names its version (`id`); the policy
//! itself is fetched over HTTPS from `mta-sts.<domain>` (see `https_get`) and kept in the
//! store's delivery memos until its `max_age` runs out, so it survives restarts and keeps
//! protecting the domain when an attacker removes the TXT record or blocks the fetch
//! (§3.3, §5.1). A changed `id` makes us fetch again; a failed refresh keeps the cached
//! policy. Fetch failures are remembered for a few minutes so a broken policy host does
//! not cost every message a 10-second fetch.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use sealpost_dns::Resolver;
use sealpost_store::Store;
use serde::{Deserialize, Serialize};

use super::https_get::{FetchError, HttpsGet};

/// The delivery memo kind policies are cached under, one per domain.
pub const MTA_STS_MEMO: &str = "mta-sts";

/// RFC 8461 §3.3: policies are small; a bigger answer is refused.
const MAX_POLICY: usize = 64 * 1024;
/// RFC 8461 §3.2: the largest max_age, about a year.
const MAX_AGE_LIMIT: u64 = 31_557_600;
/// How long one fetch may take, connection to last byte (RFC 8461 §3.3 suggests about a
/// minute at most; a slow policy host delays the domain's mail by this much).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a failed fetch is not retried for the same domain and `id`.
const FAILURE_BACKOFF: Duration = Duration::from_secs(300);

/// `mode:` of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsMode {
    Enforce,
    Testing,
    None,
}

/// A parsed policy (RFC 8461 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    pub mode: StsMode,
    /// Seconds the policy may be cached.
    pub max_age: u64,
    /// `mx:` patterns, lower-case: a host name, or `*.` and a domain.
    pub mx: Vec<String>,
    /// The policy's non-empty lines, as TLS-RPT reports it (RFC 8460 §4.4).
    pub lines: Vec<String>,
}

/// Why a policy text is not a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsPolicyError {
    #[error("the policy has no \"version: STSv1\"")]
    Version,
    #[error("the policy's mode {0:?} is not enforce, testing or none")]
    Mode(String),
    #[error("the policy has no mode")]
    NoMode,
    #[error("the policy's max_age {0:?} is not a number of seconds")]
    MaxAge(String),
    #[error("the policy has no max_age")]
    NoMaxAge,
    #[error("the policy names no mx")]
    NoMx,
    #[error("the policy is not UTF-8 text")]
    NotText,
}

impl StsPolicy {
    /// Parses a policy body (RFC 8461 §3.2): `key: value` lines ending in LF or CRLF;
    /// unknown keys are ignored, `mx` may repeat, for the other keys the first wins.
    pub fn parse(text: &str) -> Result<Self, StsPolicyError> {
        let mut version = None;
        let mut mode = None;
        let mut max_age = None;
        let mut mx = Vec::new();
        let mut lines = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            lines.push(line.to_string());
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "version" => {
                    version.get_or_insert(value);
                }
                "mode" => {
                    mode.get_or_insert(value);
                }
                "max_age" => {
                    max_age.get_or_insert(value);
                }
                "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
                _ => {}
            }
        }
        if version != Some("STSv1") {
            return Err(StsPolicyError::Version);
        }
        let mode = match mode.ok_or(StsPolicyError::NoMode)? {
            "enforce" => StsMode::Enforce,
            "testing" => StsMode::Testing,
            "none" => StsMode::None,
            other => return Err(StsPolicyError::Mode(other.to_string())),
        };
        let max_age = max_age.ok_or(StsPolicyError::NoMaxAge)?;
        // 1*10DIGIT, capped at about a year.
        if max_age.is_empty() || max_age.len() > 10 || !max_age.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(StsPolicyError::MaxAge(max_age.to_string()));
        }
        let max_age = max_age
            .parse::<u64>()
            .map_err(|_| StsPolicyError::MaxAge(max_age.to_string()))?
            .min(MAX_AGE_LIMIT);
        if mx.is_empty() && mode != StsMode::None {
            return Err(StsPolicyError::NoMx);
        }
        Ok(Self {
            mode,
            max_age,
            mx,
            lines,
        })
    }

    /// The host may receive mail under this policy (RFC 8461 §4.1).
    pub fn allows_mx(&self, host: &str) -> bool {
        self.mx.iter().any(|pattern| mx_matches(pattern, host))
    }
}

/// RFC 8461 §4.1: a pattern is a host name, or `*.` and a domain, which matches exactly
/// one more label on the left.
pub(crate) fn mx_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => host == pattern,
    }
}

/// A policy as the memo keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CachedPolicy {
    /// The TXT record's `id` the policy was fetched for.
    pub id: String,
    /// The policy text as fetched.
    pub policy: String,
    /// Seconds since the epoch.
    pub fetched_at: i64,
    pub max_age: u64,
}

impl CachedPolicy {
    fn expires(&self) -> i64 {
        self.fetched_at
            .saturating_add(i64::try_from(self.max_age).unwrap_or(i64::MAX))
    }
}

/// A policy in force: the cached entry and its parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActivePolicy {
    pub cached: CachedPolicy,
    pub policy: StsPolicy,
}

impl ActivePolicy {
    fn from_cached(cached: CachedPolicy) -> Option<Self> {
        let policy = StsPolicy::parse(&cached.policy).ok()?;
        Some(Self { cached, policy })
    }

    fn valid_at(&self, now: i64) -> bool {
        now < self.cached.expires()
    }
}

/// What MTA-STS says about a domain now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StsState {
    /// No policy: no TXT record and nothing cached, or a policy of mode `none`.
    Absent,
    Policy(Arc<ActivePolicy>),
    /// The domain announces a policy but none could be had, nor is one cached: deliver
    /// as without, and report (RFC 8461 §5, RFC 8460 `sts-*`).
    Unavailable {
        result_type: &'static str,
        detail: String,
    },
}

/// The TXT record's verdict.
enum Announcement {
    /// Exactly one `v=STSv1` record with this `id`.
    Id(String),
    /// No record (or not exactly one valid one, which RFC 8461 §3.1 counts as none).
    None,
    /// The lookup failed; nothing is known.
    Unknown,
}

/// A failed fetch, remembered for [`FAILURE_BACKOFF`].
struct RecentFailure {
    id: String,
    at: Instant,
    result_type: &'static str,
    detail: String,
}

/// Policy discovery with its caches. One per engine.
pub(crate) struct MtaSts {
    resolver: Resolver,
    store: Arc<dyn Store>,
    port: u16,
    tls: Arc<ClientConfig>,
    /// The store's memos as read or written by this process (the store stays the truth
    /// across restarts; no one else writes these memos).
    policies: Mutex<HashMap<String, Arc<ActivePolicy>>>,
    failures: Mutex<HashMap<String, RecentFailure>>,
    /// One fetch per domain at a time; others wait for its result.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl MtaSts {
    pub fn new(
        resolver: Resolver,
        store: Arc<dyn Store>,
        port: u16,
        tls: Arc<ClientConfig>,
    ) -> Self {
        Self {
            resolver,
            store,
            port,
            tls,
            policies: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        }
    }

    /// The policy that applies to `domain` at `now` (seconds since the epoch).
    pub async fn state(&self, domain: &str, now: i64) -> StsState {
        let cached = self.cached(domain, now).await;
        let id = match self.announcement(domain).await {
            Announcement::Id(id) => id,
            // §3.3/§5.1: without a (readable) record, a cached policy still applies
            // until it expires.
            Announcement::None | Announcement::Unknown => return in_force(cached),
        };
        if let Some(active) = cached.as_ref().filter(|active| active.cached.id == id) {
            return in_force(Some(Arc::clone(active)));
        }
        let lock = self.fetch_lock(domain);
        let _guard = lock.lock().await;
        // Someone may have fetched it while we waited.
        let cached = self.cached(domain, now).await;
        if let Some(active) = cached.as_ref().filter(|active| active.cached.id == id) {
            return in_force(Some(Arc::clone(active)));
        }
        if let Some(failure) = self.recent_failure(domain, &id) {
            return cached.map_or(failure, |active| in_force(Some(active)));
        }
        match self.fetch(domain, &id, now).await {
            Ok(active) => in_force(Some(active)),
            Err((result_type, detail)) => {
                tracing::info!(target: "delivery", %domain, %id, result_type, "MTA-STS policy not fetched: {detail}");
                self.remember_failure(domain, &id, result_type, &detail);
                match cached {
                    // §5.1: a failed refresh keeps the policy we have.
                    Some(active) => in_force(Some(active)),
                    None => StsState::Unavailable {
                        result_type,
                        detail,
                    },
                }
            }
        }
    }

    /// The unexpired cached policy of `domain`, from memory or else the store.
    async fn cached(&self, domain: &str, now: i64) -> Option<Arc<ActivePolicy>> {
        let remembered = lock(&self.policies).get(domain).cloned();
        let active = match remembered {
            Some(active) => active,
            None => {
                let memo = match self.store.delivery_memo(MTA_STS_MEMO, domain).await {
                    Ok(memo) => memo?,
                    Err(error) => {
                        tracing::warn!(target: "delivery", %domain, "cannot read the cached MTA-STS policy: {error}");
                        return None;
                    }
                };
                let cached: CachedPolicy = serde_json::from_str(&memo).ok()?;
                let active = Arc::new(ActivePolicy::from_cached(cached)?);
                lock(&self.policies).insert(domain.to_string(), Arc::clone(&active));
                active
            }
        };
        active.valid_at(now).then_some(active)
    }

    async fn announcement(&self, domain: &str) -> Announcement {
        let records = match self.resolver.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => records,
            Err(error) if error.is_temporary() => return Announcement::Unknown,
            Err(_) => return Announcement::None,
        };
        // §3.1: records not starting with "v=STSv1;" are discarded; not exactly one
        // left means no policy.
        let mut sts = records
            .iter()
            .filter(|record| record.starts_with(b"v=STSv1"));
        match (sts.next(), sts.next()) {
            (Some(record), None) => mail_auth::mta_sts::MtaSts::parse(record)
                .map_or(Announcement::None, |parsed| Announcement::Id(parsed.id)),
            _ => Announcement::None,
        }
    }

    async fn fetch(
        &self,
        domain: &str,
        id: &str,
        now: i64,
    ) -> Result<Arc<ActivePolicy>, (&'static str, String)> {
        let host = format!("mta-sts.{domain}");
        let addresses: Vec<IpAddr> = self.resolver.ip(&host).await.map_err(|error| {
            (
                "sts-policy-fetch-error",
                format!("{host} does not resolve: {error}"),
            )
        })?;
        let get = HttpsGet {
            host: &host,
            port: self.port,
            path: "/.well-known/mta-sts.txt",
            addresses: &addresses,
            tls: Arc::clone(&self.tls),
            max_body: MAX_POLICY,
            timeout: FETCH_TIMEOUT,
        };
        let body = get.fetch().await.map_err(|error| match error {
            FetchError::Certificate(detail) => ("sts-webpki-invalid", detail),
            FetchError::Fetch(detail) => ("sts-policy-fetch-error", detail),
        })?;
        let text = String::from_utf8(body)
            .map_err(|_| ("sts-policy-invalid", StsPolicyError::NotText.to_string()))?;
        let policy =
            StsPolicy::parse(&text).map_err(|error| ("sts-policy-invalid", error.to_string()))?;
        let cached = CachedPolicy {
            id: id.to_string(),
            policy: text,
            fetched_at: now,
            max_age: policy.max_age,
        };
        match serde_json::to_string(&cached) {
            Ok(memo) => {
                if let Err(error) = self
                    .store
                    .set_delivery_memo(MTA_STS_MEMO, domain, Some(memo))
                    .await
                {
                    tracing::warn!(target: "delivery", %domain, "cannot cache the MTA-STS policy: {error}");
                }
            }
            Err(error) => {
                tracing::warn!(target: "delivery", %domain, "cannot cache the MTA-STS policy: {error}")
            }
        }
        let active = Arc::new(ActivePolicy { cached, policy });
        lock(&self.policies).insert(domain.to_string(), Arc::clone(&active));
        lock(&self.failures).remove(domain);
        Ok(active)
    }

    fn fetch_lock(&self, domain: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut fetching = lock(&self.fetching);
        // Locks nobody holds or waits for are dropped, so the map stays small.
        fetching.retain(|_, lock| Arc::strong_count(lock) > 1);
        Arc::clone(fetching.entry(domain.to_string()).or_default())
    }

    fn recent_failure(&self, domain: &str, id: &str) -> Option<StsState> {
        let failures = lock(&self.failures);
        let failure = failures.get(domain)?;
        (failure.id == id && failure.at.elapsed() < FAILURE_BACKOFF).then(|| {
            StsState::Unavailable {
                result_type: failure.result_type,
                detail: failure.detail.clone(),
            }
        })
    }

    fn remember_failure(&self, domain: &str, id: &str, result_type: &'static str, detail: &str) {
        let mut failures = lock(&self.failures);
        failures.retain(|_, failure| failure.at.elapsed() < FAILURE_BACKOFF);
        failures.insert(
            domain.to_string(),
            RecentFailure {
                id: id.to_string(),
                at: Instant::now(),
                result_type,
                detail: detail.to_string(),
            },
        );
    }
}

/// The client config policy fetches use: PKIX against the roots, TLS 1.2 and 1.3.
pub(crate) fn client_config(
    roots: &[CertificateDer<'static>],
    provider: &Arc<CryptoProvider>,
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(roots.iter().cloned());
    let config = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("sealpost's crypto provider supports TLS 1.2 and 1.3")
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(config)
}

/// A policy of mode `none` is as good as none (RFC 8461 §5).
fn in_force(active: Option<Arc<ActivePolicy>>) -> StsState {
    match active {
        Some(active) if active.policy.mode != StsMode::None => StsState::Policy(active),
        _ => StsState::Absent,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
