//! The engine: facts about a domain (MX hosts, DNSSEC, TLSA, MTA-STS, overrides,
//! downgrade memory, the message's REQUIRETLS) in, one plan per MX host out, the
//! strongest policy that applies deciding each host (see [`PolicyKind::PRECEDENCE`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::ServerName;
use sealpost_dns::{Dnssec, LookupError, Resolver, Tlsa};
use sealpost_store::{Store, TlsSessionResult};

use super::dane::{self, DaneCheck};
use super::memory::DowngradeMemory;
use super::mta_sts::{self, MtaSts, StsMode, StsState};
use super::mx::{self, MxHost};
use super::results::ResultBuffer;
use super::verifier::{Check, HostCheck, PlannedVerifier};
use super::{HostPlan, PolicyKind, ReportPolicy, Route, RouteError, SessionTls, Verification};
use crate::{DeliverySettings, DomainOverride};

/// What the queue worker asks a route for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest {
    /// The recipient domain (any case, with or without a trailing dot), or an address
    /// literal such as `[192.0.2.1]`.
    pub domain: String,
    /// The message carries REQUIRETLS (RFC 8689): every host must be verified, and the
    /// MX must be DNSSEC-secure or validated by MTA-STS.
    pub require_tls: bool,
    /// The message has `TLS-Required: No` (RFC 8689 §5): the recipient's DANE, MTA-STS
    /// and our downgrade memory are ignored and delivery is opportunistic; sessions are
    /// still recorded.
    pub tls_required_no: bool,
}

/// Decides routes and learns from sessions. Cheap to clone: clones share caches.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<DeliverySettings>,
    resolver: Resolver,
    provider: Arc<CryptoProvider>,
    /// PKIX against `settings.roots`; `None` when there are none.
    pkix: Option<Arc<WebPkiServerVerifier>>,
    /// PKIX against a domain's pinned CA; `None` when the pin is not a usable CA (then
    /// nothing verifies for that domain, which is the safe reading of the config).
    pinned_ca: HashMap<String, Option<Arc<WebPkiServerVerifier>>>,
    mta_sts: MtaSts,
    memory: DowngradeMemory,
    results: ResultBuffer,
}

/// What is known about the destination domain, for every host's decision.
struct DomainFacts<'a> {
    domain: &'a str,
    sts: &'a StsState,
    overrides: Option<&'a DomainOverride>,
    seen_before: bool,
    require_tls: bool,
    tls_required_no: bool,
}

/// Why a host is not in the route.
struct Excluded {
    reason: String,
    /// A DNS failure, not a policy's verdict: it may be usable later.
    temporary: bool,
}

impl Excluded {
    fn by_policy(reason: String) -> Self {
        Self {
            reason,
            temporary: false,
        }
    }
}

/// What TLSA says about one MX host (RFC 7672 §2.2).
enum DaneState {
    /// DANE does not apply: an insecure MX, address or TLSA answer, or no TLSA records.
    NotApplicable,
    /// Secure TLSA records, at least one usable: all of them (for TLS-RPT) and the
    /// usable ones.
    Usable { all: Vec<Tlsa>, usable: Vec<Tlsa> },
    /// Secure TLSA records, none usable: TLS is mandatory, authentication impossible.
    Unusable(Vec<Tlsa>),
    /// The TLSA lookup of a secure host failed or was bogus: the host must not be used
    /// (never downgrade, RFC 7672 §2.2).
    Failed(String),
}

impl PolicyEngine {
    pub fn new(settings: Arc<DeliverySettings>, resolver: Resolver, store: Arc<dyn Store>) -> Self {
        let provider = sealpost_tls::crypto_provider();
        let pkix = pkix_verifier(&settings.roots, &provider);
        if pkix.is_none() {
            tracing::warn!(target: "delivery", "no trusted root certificates: no MX certificate or MTA-STS policy host can verify");
        }
        let pinned_ca = settings
            .domains
            .iter()
            .filter_map(|(domain, overrides)| {
                let ca = overrides.pinned_ca.as_ref()?;
                let verifier = pkix_verifier(std::slice::from_ref(ca), &provider);
                if verifier.is_none() {
                    tracing::warn!(target: "delivery", %domain, "the pinned CA is not a usable trust anchor: nothing will verify for this domain");
                }
                Some((domain.to_ascii_lowercase(), verifier))
            })
            .collect();
        let sts_tls = mta_sts::client_config(&settings.roots, &provider);
        Self {
            inner: Arc::new(Inner {
                mta_sts: MtaSts::new(
                    resolver.clone(),
                    Arc::clone(&store),
                    settings.mta_sts_port,
                    sts_tls,
                ),
                memory: DowngradeMemory::new(Arc::clone(&store)),
                results: ResultBuffer::new(store),
                settings,
                resolver,
                provider,
                pkix,
                pinned_ca,
            }),
        }
    }

    /// Where mail for the domain goes and what TLS each host needs.
    pub async fn route(&self, request: &RouteRequest) -> Result<Route, RouteError> {
        let domain = request.domain.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ip) = mx::address_literal(&domain) {
            return Ok(self.literal_route(domain, ip));
        }
        let hosts = mx::resolve(&self.inner.resolver, &domain).await?;
        let now = unix_now();
        let sts = self.inner.mta_sts.state(&domain, now).await;
        let facts = DomainFacts {
            domain: &domain,
            sts: &sts,
            overrides: self.inner.settings.domains.get(&domain),
            seen_before: self.inner.settings.downgrade_memory
                && self.inner.memory.remembers(&domain).await,
            require_tls: request.require_tls,
            tls_required_no: request.tls_required_no,
        };
        // RFC 8689 §4.2.1: REQUIRETLS needs MX records that DNSSEC or an MTA-STS policy
        // vouches for; otherwise an attacker could have named the MX. Only a policy in
        // `enforce` mode vouches: one in `testing` mode is its domain saying the MX list
        // is not to be acted on yet (RFC 8461 §5), and refusing is the side that cannot
        // send a REQUIRETLS message to a host an attacker named.
        let mx_secure = hosts.iter().all(|host| host.mx_secure);
        if request.require_tls && !mx_secure {
            match &sts {
                StsState::Policy(active) if active.policy.mode == StsMode::Enforce => {}
                StsState::Policy(_) => {
                    return Err(RouteError::RequireTlsUnmet(format!(
                        "REQUIRETLS: the MX records of {domain} are not DNSSEC-signed and its \
                         MTA-STS policy is in testing mode, which does not vouch for them \
                         (RFC 8689 §4.2.1)"
                    )));
                }
                // The policy may be fetchable later; the message waits for it.
                StsState::Unavailable { detail, .. } => {
                    return Err(RouteError::Temporary(format!(
                        "REQUIRETLS: the MX records of {domain} are not DNSSEC-signed and its \
                         MTA-STS policy cannot be had: {detail}"
                    )));
                }
                StsState::Absent => {
                    return Err(RouteError::RequireTlsUnmet(format!(
                        "REQUIRETLS: the MX records of {domain} are not DNSSEC-signed and it \
                         publishes no MTA-STS policy (RFC 8689 §4.2.1)"
                    )));
                }
            }
        }

        let mut plans = Vec::with_capacity(hosts.len());
        let mut left_out = Vec::new();
        for host in hosts {
            let dane = self.dane_state(&host).await;
            match self.plan_host(&facts, host, dane) {
                Ok(plan) => plans.push(plan),
                Err(excluded) => left_out.push(excluded),
            }
        }
        let Some(policy) = plans
            .iter()
            .map(|plan| plan.policy)
            .min_by_key(|p| p.rank())
        else {
            let reasons: Vec<&str> = left_out.iter().map(|e| e.reason.as_str()).collect();
            let reasons = reasons.join("; ");
            // A host that failed DNS may be usable later; one the policy rules out is not.
            let temporary = left_out.iter().any(|excluded| excluded.temporary);
            return Err(if request.require_tls && !temporary {
                RouteError::RequireTlsUnmet(format!(
                    "REQUIRETLS: no MX host of {domain} can be verified: {reasons}"
                ))
            } else {
                RouteError::Temporary(reasons)
            });
        };
        Ok(Route {
            domain,
            policy,
            hosts: plans,
        })
    }

    /// After a session with `host` at `address`: remembers verified TLS (downgrade
    /// memory) and records the session for TLS-RPT. Never fails; store errors are logged.
    pub async fn learn(
        &self,
        route: &Route,
        host: &HostPlan,
        address: IpAddr,
        outcome: &SessionTls,
    ) {
        let now = unix_now();
        if self.inner.settings.downgrade_memory
            && let SessionTls::Tls {
                verification: Verification::Verified { how },
                ..
            } = outcome
            && verified_by_pkix(how)
        {
            self.inner.memory.remember(&route.domain, now).await;
        }
        if self.inner.settings.tls_reports
            && let Some(result) = session_result(route, host, address, outcome, now)
        {
            self.inner.results.push(result);
        }
    }

    /// Writes the buffered TLS-RPT results now (at shutdown).
    pub async fn flush(&self) {
        self.inner.results.flush().await;
    }

    /// The policy part of the delivery log line:
    /// `policy=<kind> verified=<yes|no|-> check="<how, or why not>"`.
    pub fn explain(_route: &Route, host: &HostPlan, outcome: &SessionTls) -> String {
        let (verified, check) = match outcome {
            SessionTls::Tls { verification, .. } => match verification {
                Verification::Verified { how } => ("yes", how.clone()),
                Verification::Failed {
                    result_type,
                    detail,
                } => ("no", format!("{result_type}: {detail}")),
            },
            SessionTls::HandshakeFailed {
                detail,
                verification,
            } => match verification {
                Some(Verification::Failed {
                    result_type,
                    detail,
                }) => ("no", format!("{result_type}: {detail}")),
                _ => ("no", format!("handshake failed: {detail}")),
            },
            SessionTls::NoStarttls => ("-", "no STARTTLS offered".to_string()),
            SessionTls::Unreachable => ("-", "not connected".to_string()),
        };
        format!(
            "policy={} verified={verified} check=\"{}\"",
            host.policy.as_str(),
            check.replace('"', "'")
        )
    }

    /// DANE applies only when the MX and the host's addresses are DNSSEC-secure; then
    /// the TLSA answer decides.
    async fn dane_state(&self, host: &MxHost) -> DaneState {
        if !(host.mx_secure && host.addresses_secure) {
            return DaneState::NotApplicable;
        }
        let name = format!("_25._tcp.{}", host.name);
        match self.inner.resolver.tlsa(&name).await {
            Ok(answer) => match answer.dnssec {
                Dnssec::Bogus => DaneState::Failed(format!(
                    "{}: the TLSA records fail DNSSEC validation",
                    host.name
                )),
                // RFC 7672 §2.2: TLSA records from an insecure zone are ignored.
                Dnssec::Insecure => DaneState::NotApplicable,
                Dnssec::Secure if answer.records.is_empty() => DaneState::NotApplicable,
                Dnssec::Secure => {
                    let usable: Vec<Tlsa> = answer
                        .records
                        .iter()
                        .filter(|record| dane::usable(record))
                        .cloned()
                        .collect();
                    if usable.is_empty() {
                        DaneState::Unusable(answer.records)
                    } else {
                        DaneState::Usable {
                            all: answer.records,
                            usable,
                        }
                    }
                }
            },
            Err(LookupError::NoData(_) | LookupError::NxDomain(_)) => DaneState::NotApplicable,
            Err(error) => {
                DaneState::Failed(format!("{}: the TLSA lookup failed: {error}", host.name))
            }
        }
    }

    /// The plan for one host, or why it is left out.
    fn plan_host(
        &self,
        facts: &DomainFacts<'_>,
        host: MxHost,
        dane: DaneState,
    ) -> Result<HostPlan, Excluded> {
        let report = Arc::new(report_policy(&dane, facts.sts));
        let server_name = ServerName::try_from(host.name.clone())
            .map_err(|_| Excluded::by_policy(format!("{} is not a host name", host.name)))?;
        let plan = |policy, check: HostCheck, tls_required| HostPlan {
            name: host.name.clone(),
            addresses: host.addresses.clone(),
            tls_required,
            verification: Arc::new(PlannedVerifier::new(
                check,
                Arc::clone(&self.inner.provider),
            )),
            policy,
            report: Arc::clone(&report),
        };
        let verified = |checks: Vec<Check>| HostCheck {
            checks,
            enforce: true,
            unauthenticated: None,
            server_name: server_name.clone(),
        };
        let recorded = |checks: Vec<Check>| HostCheck {
            enforce: false,
            ..verified(checks)
        };

        if facts.tls_required_no && !facts.require_tls {
            return Ok(plan(
                PolicyKind::Opportunistic,
                recorded(vec![self.roots_check()]),
                false,
            ));
        }
        let sts = match facts.sts {
            StsState::Policy(active) => Some(active),
            _ => None,
        };
        match dane {
            DaneState::Failed(reason) => {
                return Err(Excluded {
                    reason,
                    temporary: true,
                });
            }
            DaneState::Usable { usable, .. } => {
                let mut checks = vec![Check::Dane(DaneCheck {
                    records: usable,
                    names: reference_names(&server_name, facts.domain),
                    provider: Arc::clone(&self.inner.provider),
                })];
                checks.extend(self.spki_pin(facts));
                return Ok(plan(PolicyKind::Dane, verified(checks), true));
            }
            DaneState::NotApplicable | DaneState::Unusable(_) => {}
        }
        if let Some(active) = sts.filter(|active| active.policy.mode == StsMode::Enforce) {
            if !active.policy.allows_mx(&host.name) {
                return Err(Excluded::by_policy(not_in_sts_policy(
                    &host.name,
                    facts.domain,
                )));
            }
            return Ok(plan(
                PolicyKind::MtaStsEnforce,
                verified(self.pkix_checks(facts)),
                true,
            ));
        }
        if let Some(checks) = self.override_checks(facts) {
            return Ok(plan(PolicyKind::Override, verified(checks), true));
        }
        if facts.seen_before {
            return Ok(plan(
                PolicyKind::SeenBefore,
                verified(self.pkix_checks(facts)),
                true,
            ));
        }
        if facts.require_tls {
            // Without DNSSEC the MX is only vouched for by an MTA-STS policy in enforce
            // mode (RFC 8689 §4.2.1), whose hosts were planned above; with it, every MX is.
            if !host.mx_secure {
                return Err(Excluded::by_policy(format!(
                    "REQUIRETLS: nothing vouches for {} as an MX of {} (no DNSSEC, no \
                     MTA-STS policy in enforce mode naming it)",
                    host.name, facts.domain
                )));
            }
            return Ok(plan(
                PolicyKind::RequireTls,
                verified(self.pkix_checks(facts)),
                true,
            ));
        }
        if let DaneState::Unusable(records) = dane {
            let check = HostCheck {
                unauthenticated: Some(Verification::Failed {
                    result_type: "tlsa-invalid",
                    detail: format!(
                        "none of the {} TLSA records is usable; TLS is required without \
                         authentication (RFC 7672 §2.2)",
                        records.len()
                    ),
                }),
                ..recorded(Vec::new())
            };
            return Ok(plan(PolicyKind::Dane, check, true));
        }
        if let Some(active) = sts.filter(|active| active.policy.mode == StsMode::Testing) {
            // RFC 8461 §5: deliver anyway, but an MX the policy does not name is a
            // failure to report, as is a certificate that does not verify.
            let mut checks = Vec::new();
            if !active.policy.allows_mx(&host.name) {
                checks.push(Check::Refused(not_in_sts_policy(&host.name, facts.domain)));
            }
            checks.extend(self.pkix_checks(facts));
            return Ok(plan(PolicyKind::MtaStsTesting, recorded(checks), false));
        }
        Ok(plan(
            PolicyKind::Opportunistic,
            recorded(vec![self.roots_check()]),
            false,
        ))
    }

    /// `[192.0.2.1]`: that host, opportunistic TLS (no name to verify a certificate
    /// against).
    fn literal_route(&self, domain: String, ip: IpAddr) -> Route {
        let check = HostCheck {
            checks: vec![self.roots_check()],
            enforce: false,
            unauthenticated: None,
            server_name: ServerName::IpAddress(ip.into()),
        };
        Route {
            domain: domain.clone(),
            policy: PolicyKind::Opportunistic,
            hosts: vec![HostPlan {
                name: domain,
                addresses: vec![ip],
                tls_required: false,
                verification: Arc::new(PlannedVerifier::new(
                    check,
                    Arc::clone(&self.inner.provider),
                )),
                policy: PolicyKind::Opportunistic,
                report: Arc::new(ReportPolicy::no_policy()),
            }],
        }
    }

    fn roots_check(&self) -> Check {
        Check::Pkix {
            verifier: self.inner.pkix.clone(),
            label: "pkix",
        }
    }

    /// PKIX for the host name: to the pinned CA when the domain has one, else to the
    /// roots; and the pinned SPKI on top when there is one.
    fn pkix_checks(&self, facts: &DomainFacts<'_>) -> Vec<Check> {
        let mut checks = vec![
            self.pinned_ca_check(facts)
                .unwrap_or_else(|| self.roots_check()),
        ];
        checks.extend(self.spki_pin(facts));
        checks
    }

    /// The override's checks when it asks for verified TLS (explicitly, or by pinning a
    /// CA or key): a pinned CA replaces the roots, a pinned SPKI alone needs no CA.
    fn override_checks(&self, facts: &DomainFacts<'_>) -> Option<Vec<Check>> {
        let overrides = facts.overrides?;
        if !(overrides.require_verified_tls
            || overrides.pinned_ca.is_some()
            || overrides.pinned_spki_sha256.is_some())
        {
            return None;
        }
        let mut checks: Vec<Check> = self.pinned_ca_check(facts).into_iter().collect();
        if checks.is_empty() && overrides.pinned_spki_sha256.is_none() {
            checks.push(self.roots_check());
        }
        checks.extend(self.spki_pin(facts));
        Some(checks)
    }

    fn pinned_ca_check(&self, facts: &DomainFacts<'_>) -> Option<Check> {
        let verifier = self.inner.pinned_ca.get(facts.domain)?;
        Some(Check::Pkix {
            verifier: verifier.clone(),
            label: "pinned ca",
        })
    }

    fn spki_pin(&self, facts: &DomainFacts<'_>) -> Option<Check> {
        let pin = facts.overrides?.pinned_spki_sha256?;
        Some(Check::PinnedSpki(pin))
    }
}

/// What TLS-RPT files a host's sessions under: its TLSA records when DANE applies, else
/// the domain's MTA-STS policy, else no policy.
fn report_policy(dane: &DaneState, sts: &StsState) -> ReportPolicy {
    match (dane, sts) {
        (DaneState::Usable { all: records, .. } | DaneState::Unusable(records), _) => {
            ReportPolicy {
                policy_type: "tlsa",
                strings: records.iter().map(dane::presentation).collect(),
                unavailable: None,
            }
        }
        (_, StsState::Policy(active)) => ReportPolicy {
            policy_type: "sts",
            strings: active.policy.lines.clone(),
            unavailable: None,
        },
        (
            _,
            StsState::Unavailable {
                result_type,
                detail,
            },
        ) => ReportPolicy {
            policy_type: "sts",
            strings: Vec::new(),
            unavailable: Some((result_type, detail.clone())),
        },
        _ => ReportPolicy::no_policy(),
    }
}

/// One session as TLS-RPT counts it (RFC 8460 §4.3), `None` when there was no session.
fn session_result(
    route: &Route,
    host: &HostPlan,
    address: IpAddr,
    outcome: &SessionTls,
    now: i64,
) -> Option<TlsSessionResult> {
    let failure: Option<(String, String)> = match outcome {
        SessionTls::Unreachable => return None,
        SessionTls::Tls { verification, .. } => match verification {
            // Without a policy there is nothing for a certificate to fail.
            Verification::Failed {
                result_type,
                detail,
            } if host.report.policy_type != "no-policy-found" => {
                Some((result_type.to_string(), detail.clone()))
            }
            _ => None,
        },
        SessionTls::NoStarttls => Some((
            "starttls-not-supported".into(),
            "the MX did not offer STARTTLS".into(),
        )),
        SessionTls::HandshakeFailed {
            detail,
            verification,
        } => Some(match verification {
            Some(Verification::Failed {
                result_type,
                detail,
            }) => (result_type.to_string(), detail.clone()),
            _ => ("validation-failure".into(), detail.clone()),
        }),
    };
    // A policy that could not be fetched fails every session under it.
    let failure = match &host.report.unavailable {
        Some((result_type, detail)) if failure.is_none() => {
            Some((result_type.to_string(), detail.clone()))
        }
        _ => failure,
    };
    let (result_type, failure_detail) = failure.unzip();
    Some(TlsSessionResult {
        at: now,
        policy_domain: route.domain.clone(),
        policy_type: host.report.policy_type.to_string(),
        policy_strings: host.report.strings.clone(),
        mx_host: host.name.clone(),
        receiving_ip: Some(address),
        result_type,
        failure_detail,
    })
}

/// The verdict included a PKIX path (to the roots or the pinned CA), which is what the
/// downgrade memory will demand later. DANE or a pinned key alone does not count: a
/// domain with a self-signed DANE-EE certificate that drops its TLSA records must not be
/// held to a PKIX certificate it never had.
fn verified_by_pkix(how: &str) -> bool {
    how.split(" + ")
        .any(|check| check == "pkix" || check == "pinned ca")
}

fn not_in_sts_policy(host: &str, domain: &str) -> String {
    format!("{host} is not an MX the MTA-STS policy of {domain} allows")
}

/// RFC 7672 §3.2.3: a DANE-TA leaf may name the MX host or the destination domain.
fn reference_names(mx: &ServerName<'static>, domain: &str) -> Vec<ServerName<'static>> {
    let mut names = vec![mx.clone()];
    if let Ok(domain) = ServerName::try_from(domain.to_string())
        && domain != *mx
    {
        names.push(domain);
    }
    names
}

fn pkix_verifier(
    roots: &[rustls_pki_types::CertificateDer<'static>],
    provider: &Arc<CryptoProvider>,
) -> Option<Arc<WebPkiServerVerifier>> {
    let mut store = RootCertStore::empty();
    let (_, rejected) = store.add_parsable_certificates(roots.iter().cloned());
    if rejected > 0 {
        tracing::warn!(target: "delivery", rejected, "some root certificates are not usable trust anchors");
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(provider))
        .build()
        .ok()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests;
