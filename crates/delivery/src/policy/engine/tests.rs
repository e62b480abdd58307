//! Precedence, end to end through DNS: a real DNS server on loopback with an unsigned
//! zone (provably insecure) and a signed one (secure, with TLSA records, one of them
//! bogus), MTA-STS policies already in the store's cache, and the embedded store.

use sealpost_store::EmbeddedStore;
use sealpost_testdns::{TestDns, Zone};
use tempfile::TempDir;

use super::*;
use crate::policy::memory::TLS_SEEN_MEMO;
use crate::policy::mta_sts::{CachedPolicy, MTA_STS_MEMO};
use crate::policy::test_dns::{self, Dns};

const TLSA_HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const UNSIGNED: &str = r#"
plain            MX  10 mx.plain
mx.plain         A   127.0.0.1
sts              MX  10 mx.sts
sts              MX  20 rogue.sts
mx.sts           A   127.0.0.1
rogue.sts        A   127.0.0.2
_mta-sts.sts     TXT "v=STSv1; id=1"
testing          MX  10 mx.testing
testing          MX  20 rogue.testing
mx.testing       A   127.0.0.1
rogue.testing    A   127.0.0.2
_mta-sts.testing TXT "v=STSv1; id=1"
nomatch          MX  10 rogue.nomatch
rogue.nomatch    A   127.0.0.2
_mta-sts.nomatch TXT "v=STSv1; id=1"
nullmx           MX  0 .
unfetchable      MX  10 mx.unfetchable
mx.unfetchable   A   127.0.0.1
_mta-sts.unfetchable TXT "v=STSv1; id=5"
"#;

fn signed_zone() -> String {
    format!(
        r#"
@                    MX   10 mx
mx                   A    127.0.0.1
_25._tcp.mx          TLSA 3 1 1 {TLSA_HEX}
_mta-sts             TXT  "v=STSv1; id=1"
nodane               MX   10 mx.nodane
mx.nodane            A    127.0.0.1
unusable             MX   10 mx.unusable
mx.unusable          A    127.0.0.1
_25._tcp.mx.unusable TLSA 1 1 1 {TLSA_HEX}
broken               MX   10 mx.broken
broken               MX   20 mx.nodane
mx.broken            A    127.0.0.1
_25._tcp.mx.broken   TLSA 3 1 1 {TLSA_HEX}
allbroken            MX   10 mx.broken
"#
    )
}

const ENFORCE: &str =
    "version: STSv1\nmode: enforce\nmx: mx.sts.example.test\nmx: *.example.net\nmax_age: 86400\n";
const TESTING: &str =
    "version: STSv1\nmode: testing\nmx: mx.testing.example.test\nmax_age: 86400\n";
const NOMATCH: &str =
    "version: STSv1\nmode: enforce\nmx: mx.nomatch.example.test\nmax_age: 86400\n";
const DANE_STS: &str = "version: STSv1\nmode: enforce\nmx: other.example.net\nmax_age: 86400\n";

struct Setup {
    _dns: Dns,
    _dir: TempDir,
    store: Arc<dyn Store>,
    resolver: Resolver,
}

impl Setup {
    fn engine(&self, settings: DeliverySettings) -> PolicyEngine {
        PolicyEngine::new(
            Arc::new(settings),
            self.resolver.clone(),
            Arc::clone(&self.store),
        )
    }

    fn default_engine(&self) -> PolicyEngine {
        self.engine(DeliverySettings::default())
    }
}

async fn setup() -> Setup {
    let dns = test_dns::start(
        TestDns::builder()
            .zone(Zone::parse("example.test", UNSIGNED).unwrap())
            .zone(Zone::parse("dane.test", &signed_zone()).unwrap().signed())
            .bogus("_25._tcp.mx.broken.dane.test")
            .unwrap(),
    )
    .await;
    let dir = TempDir::new().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let now = unix_now();
    for (domain, policy) in [
        ("sts.example.test", ENFORCE),
        ("testing.example.test", TESTING),
        ("nomatch.example.test", NOMATCH),
        ("dane.test", DANE_STS),
    ] {
        let cached = CachedPolicy {
            id: "1".into(),
            policy: policy.into(),
            fetched_at: now,
            max_age: 86400,
        };
        store
            .set_delivery_memo(
                MTA_STS_MEMO,
                domain,
                Some(serde_json::to_string(&cached).unwrap()),
            )
            .await
            .unwrap();
    }
    let resolver = dns.resolver.clone();
    Setup {
        _dns: dns,
        _dir: dir,
        store,
        resolver,
    }
}

fn request(domain: &str) -> RouteRequest {
    RouteRequest {
        domain: domain.into(),
        require_tls: false,
        tls_required_no: false,
    }
}

fn require_tls(domain: &str) -> RouteRequest {
    RouteRequest {
        require_tls: true,
        ..request(domain)
    }
}

fn tls_required_no(domain: &str) -> RouteRequest {
    RouteRequest {
        tls_required_no: true,
        ..request(domain)
    }
}

fn names(route: &Route) -> Vec<&str> {
    route.hosts.iter().map(|host| host.name.as_str()).collect()
}

fn verified() -> SessionTls {
    SessionTls::Tls {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
        verification: Verification::Verified { how: "pkix".into() },
    }
}

fn unverified() -> SessionTls {
    SessionTls::Tls {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
        verification: Verification::Failed {
            result_type: "certificate-not-trusted",
            detail: "pkix: invalid peer certificate: UnknownIssuer".into(),
        },
    }
}

#[tokio::test]
async fn with_no_policy_delivery_is_opportunistic() {
    let setup = setup().await;
    let route = setup
        .default_engine()
        .route(&request("Plain.Example.Test."))
        .await
        .unwrap();
    assert_eq!(route.domain, "plain.example.test");
    assert_eq!(route.policy, PolicyKind::Opportunistic);
    let host = &route.hosts[0];
    assert_eq!(host.name, "mx.plain.example.test");
    assert!(!host.tls_required);
    assert_eq!(host.report.policy_type, "no-policy-found");
    assert_eq!(host.verification.describe(), "pkix, not required");
}

#[tokio::test]
async fn dane_applies_to_a_secure_host_with_usable_tlsa_and_outranks_mta_sts() {
    let setup = setup().await;
    let route = setup
        .default_engine()
        .route(&request("dane.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::Dane);
    // The MTA-STS policy of dane.test allows no MX; DANE still decides (RFC 8461 §2).
    assert_eq!(names(&route), ["mx.dane.test"]);
    let host = &route.hosts[0];
    assert!(host.tls_required);
    assert_eq!(host.report.policy_type, "tlsa");
    assert_eq!(host.report.strings, [format!("3 1 1 {TLSA_HEX}")]);
    assert_eq!(host.verification.describe(), "dane (1 tlsa records)");
    let connector = host.verification.connector();
    assert_eq!(
        connector.server_name,
        ServerName::try_from("mx.dane.test").unwrap()
    );
}

#[tokio::test]
async fn a_secure_host_without_tlsa_is_not_dane() {
    let setup = setup().await;
    let route = setup
        .default_engine()
        .route(&request("nodane.dane.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::Opportunistic);
}

#[tokio::test]
async fn unusable_tlsa_records_make_tls_mandatory_without_authentication() {
    let setup = setup().await;
    let route = setup
        .default_engine()
        .route(&request("unusable.dane.test"))
        .await
        .unwrap();
    let host = &route.hosts[0];
    assert_eq!(host.policy, PolicyKind::Dane);
    assert!(host.tls_required);
    assert_eq!(
        host.verification.describe(),
        "unauthenticated (no usable tlsa record)"
    );
    assert_eq!(host.report.policy_type, "tlsa");
}

#[tokio::test]
async fn a_bogus_tlsa_answer_makes_that_host_unusable_never_a_downgrade() {
    let setup = setup().await;
    let engine = setup.default_engine();
    let route = engine.route(&request("broken.dane.test")).await.unwrap();
    assert_eq!(names(&route), ["mx.nodane.dane.test"]);
    let error = engine
        .route(&request("allbroken.dane.test"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RouteError::Temporary(reason) if reason.contains("mx.broken.dane.test")),
        "{error}"
    );
}

#[tokio::test]
async fn mta_sts_enforce_keeps_only_the_policys_mx_hosts_and_requires_verified_tls() {
    let setup = setup().await;
    let engine = setup.default_engine();
    let route = engine.route(&request("sts.example.test")).await.unwrap();
    assert_eq!(route.policy, PolicyKind::MtaStsEnforce);
    assert_eq!(names(&route), ["mx.sts.example.test"]);
    let host = &route.hosts[0];
    assert!(host.tls_required);
    assert_eq!(host.verification.describe(), "pkix");
    assert_eq!(host.report.policy_type, "sts");
    assert_eq!(host.report.strings[1], "mode: enforce");

    let error = engine
        .route(&request("nomatch.example.test"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RouteError::Temporary(reason) if reason.contains("rogue.nomatch")),
        "{error}"
    );
}

#[tokio::test]
async fn mta_sts_testing_delivers_to_every_mx_without_requiring_tls() {
    let setup = setup().await;
    let route = setup
        .default_engine()
        .route(&request("testing.example.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::MtaStsTesting);
    assert_eq!(
        names(&route),
        ["mx.testing.example.test", "rogue.testing.example.test"]
    );
    assert!(route.hosts.iter().all(|host| !host.tls_required));
    assert!(
        route
            .hosts
            .iter()
            .all(|host| host.report.policy_type == "sts")
    );
}

#[tokio::test]
async fn under_mta_sts_testing_an_mx_outside_the_policy_is_recorded_as_a_failure() {
    let setup = setup().await;
    let route = setup
        .default_engine()
        .route(&request("testing.example.test"))
        .await
        .unwrap();
    assert_eq!(route.hosts[0].verification.describe(), "pkix, not required");
    assert_eq!(
        route.hosts[1].verification.describe(),
        "not in policy + pkix, not required"
    );
}

#[tokio::test]
async fn an_announced_policy_that_cannot_be_fetched_is_reported_and_holds_requiretls_back() {
    let setup = setup().await;
    let engine = setup.default_engine();
    let route = engine
        .route(&request("unfetchable.example.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::Opportunistic);
    let host = &route.hosts[0];
    assert_eq!(host.report.policy_type, "sts");
    assert_eq!(
        host.report.unavailable.as_ref().map(|(t, _)| *t),
        Some("sts-policy-fetch-error")
    );
    engine
        .learn(&route, host, host.addresses[0], &verified())
        .await;
    engine.flush().await;
    let results = setup.store.tls_results(0, i64::MAX).await.unwrap();
    assert_eq!(
        results[0].result_type.as_deref(),
        Some("sts-policy-fetch-error")
    );
    // REQUIRETLS waits for the policy rather than bouncing.
    assert!(matches!(
        engine.route(&require_tls("unfetchable.example.test")).await,
        Err(RouteError::Temporary(_))
    ));
}

#[tokio::test]
async fn an_override_requires_verified_tls_with_its_pins() {
    let setup = setup().await;
    let mut settings = DeliverySettings::default();
    settings.domains.insert(
        "plain.example.test".into(),
        DomainOverride {
            require_verified_tls: true,
            ..Default::default()
        },
    );
    settings.domains.insert(
        "testing.example.test".into(),
        DomainOverride {
            pinned_spki_sha256: Some([7; 32]),
            ..Default::default()
        },
    );
    let engine = setup.engine(settings);
    let route = engine.route(&request("plain.example.test")).await.unwrap();
    assert_eq!(route.policy, PolicyKind::Override);
    assert!(route.hosts[0].tls_required);
    assert_eq!(route.hosts[0].verification.describe(), "pkix");
    // A pin alone is an override too, and outranks MTA-STS testing.
    let route = engine
        .route(&request("testing.example.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::Override);
    assert_eq!(route.hosts[0].verification.describe(), "pinned spki");
    // Under MTA-STS enforce the pin is checked on top of PKIX.
    let mut settings = DeliverySettings::default();
    settings.domains.insert(
        "sts.example.test".into(),
        DomainOverride {
            pinned_spki_sha256: Some([7; 32]),
            ..Default::default()
        },
    );
    let route = setup
        .engine(settings)
        .route(&request("sts.example.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::MtaStsEnforce);
    assert_eq!(route.hosts[0].verification.describe(), "pkix + pinned spki");
}

#[tokio::test]
async fn a_domain_seen_with_verified_tls_requires_it_from_then_on() {
    let setup = setup().await;
    let engine = setup.default_engine();
    let route = engine.route(&request("plain.example.test")).await.unwrap();
    let host = &route.hosts[0];
    // An unverified session teaches nothing.
    engine
        .learn(&route, host, host.addresses[0], &unverified())
        .await;
    assert_eq!(
        engine
            .route(&request("plain.example.test"))
            .await
            .unwrap()
            .policy,
        PolicyKind::Opportunistic
    );
    engine
        .learn(&route, host, host.addresses[0], &verified())
        .await;
    assert!(
        setup
            .store
            .delivery_memo(TLS_SEEN_MEMO, "plain.example.test")
            .await
            .unwrap()
            .is_some()
    );
    let route = engine.route(&request("plain.example.test")).await.unwrap();
    assert_eq!(route.policy, PolicyKind::SeenBefore);
    assert!(route.hosts[0].tls_required);
    assert_eq!(route.hosts[0].verification.describe(), "pkix");
    // DANE alone (say, a self-signed certificate pinned by TLSA) teaches nothing: the
    // memory would later demand a PKIX certificate the domain never had.
    let dane = engine.route(&request("dane.test")).await.unwrap();
    let dane_verified = SessionTls::Tls {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
        verification: Verification::Verified {
            how: "dane-ee 3 1 1".into(),
        },
    };
    engine
        .learn(
            &dane,
            &dane.hosts[0],
            dane.hosts[0].addresses[0],
            &dane_verified,
        )
        .await;
    assert!(
        setup
            .store
            .delivery_memo(TLS_SEEN_MEMO, "dane.test")
            .await
            .unwrap()
            .is_none()
    );
    // Switched off, the memory is neither used nor written.
    let forgetful = setup.engine(DeliverySettings {
        downgrade_memory: false,
        ..DeliverySettings::default()
    });
    assert_eq!(
        forgetful
            .route(&request("plain.example.test"))
            .await
            .unwrap()
            .policy,
        PolicyKind::Opportunistic
    );
    let sts = forgetful.route(&request("sts.example.test")).await.unwrap();
    forgetful
        .learn(&sts, &sts.hosts[0], sts.hosts[0].addresses[0], &verified())
        .await;
    assert!(
        setup
            .store
            .delivery_memo(TLS_SEEN_MEMO, "sts.example.test")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn requiretls_needs_a_secure_or_mta_sts_vouched_mx() {
    let setup = setup().await;
    let engine = setup.default_engine();
    assert!(matches!(
        engine.route(&require_tls("plain.example.test")).await,
        Err(RouteError::RequireTlsUnmet(_))
    ));
    // DNSSEC-secure MX records: every host, verified.
    let route = engine
        .route(&require_tls("nodane.dane.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::RequireTls);
    assert!(route.hosts[0].tls_required);
    // An MTA-STS policy in enforce mode vouches for the hosts it names only...
    let route = engine
        .route(&require_tls("sts.example.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::MtaStsEnforce);
    assert_eq!(names(&route), ["mx.sts.example.test"]);
    assert!(route.hosts[0].tls_required);
    // ...one in testing mode for none (RFC 8689 §4.2.1): the message cannot go.
    match engine.route(&require_tls("testing.example.test")).await {
        Err(RouteError::RequireTlsUnmet(reason)) => {
            assert!(reason.contains("testing mode"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // DANE stays DANE.
    assert_eq!(
        engine
            .route(&require_tls("dane.test"))
            .await
            .unwrap()
            .policy,
        PolicyKind::Dane
    );
    // A DNS failure of every host is temporary, REQUIRETLS or not.
    assert!(matches!(
        engine.route(&require_tls("allbroken.dane.test")).await,
        Err(RouteError::Temporary(_))
    ));
    // Mandatory unauthenticated TLS is not enough for REQUIRETLS: PKIX is required.
    let route = engine
        .route(&require_tls("unusable.dane.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::RequireTls);
    assert_eq!(route.hosts[0].verification.describe(), "pkix");
}

#[tokio::test]
async fn tls_required_no_ignores_every_recipient_policy_but_still_reports_under_it() {
    let setup = setup().await;
    let engine = setup.default_engine();
    let route = engine.route(&tls_required_no("dane.test")).await.unwrap();
    assert_eq!(route.policy, PolicyKind::Opportunistic);
    assert!(!route.hosts[0].tls_required);
    assert_eq!(route.hosts[0].report.policy_type, "tlsa");
    let route = engine
        .route(&tls_required_no("sts.example.test"))
        .await
        .unwrap();
    assert_eq!(
        names(&route),
        ["mx.sts.example.test", "rogue.sts.example.test"]
    );
    assert!(route.hosts.iter().all(|host| !host.tls_required));
    setup
        .store
        .set_delivery_memo(TLS_SEEN_MEMO, "plain.example.test", Some("1".into()))
        .await
        .unwrap();
    let route = engine
        .route(&tls_required_no("plain.example.test"))
        .await
        .unwrap();
    assert_eq!(route.policy, PolicyKind::Opportunistic);
}

#[tokio::test]
async fn route_errors_of_the_mx_lookup_pass_through() {
    let setup = setup().await;
    let engine = setup.default_engine();
    assert_eq!(
        engine
            .route(&request("nullmx.example.test"))
            .await
            .unwrap_err(),
        RouteError::NullMx("nullmx.example.test".into())
    );
    assert!(matches!(
        engine.route(&request("missing.example.test")).await,
        Err(RouteError::NoSuchDomain(_))
    ));
}

#[tokio::test]
async fn an_address_literal_is_its_own_opportunistic_host() {
    let setup = setup().await;
    let route = setup
        .default_engine()
        .route(&request("[127.0.0.9]"))
        .await
        .unwrap();
    assert_eq!(
        route.hosts[0].addresses,
        ["127.0.0.9".parse::<IpAddr>().unwrap()]
    );
    assert!(!route.hosts[0].tls_required);
}

#[tokio::test]
async fn sessions_are_recorded_for_tls_rpt_by_their_result_type() {
    let setup = setup().await;
    let engine = setup.default_engine();
    let sts = engine.route(&request("sts.example.test")).await.unwrap();
    let sts_host = &sts.hosts[0];
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    engine.learn(&sts, sts_host, ip, &verified()).await;
    engine
        .learn(&sts, sts_host, ip, &SessionTls::NoStarttls)
        .await;
    engine
        .learn(
            &sts,
            sts_host,
            ip,
            &SessionTls::HandshakeFailed {
                detail: "invalid peer certificate".into(),
                verification: Some(Verification::Failed {
                    result_type: "certificate-host-mismatch",
                    detail: "pkix: name mismatch".into(),
                }),
            },
        )
        .await;
    engine
        .learn(&sts, sts_host, ip, &SessionTls::Unreachable)
        .await;
    // No policy: an unverified certificate is no failure.
    let plain = engine.route(&request("plain.example.test")).await.unwrap();
    engine
        .learn(&plain, &plain.hosts[0], ip, &unverified())
        .await;
    engine.flush().await;

    let results = setup.store.tls_results(0, i64::MAX).await.unwrap();
    let summary: Vec<(&str, &str, Option<&str>)> = results
        .iter()
        .map(|r| {
            (
                r.policy_domain.as_str(),
                r.policy_type.as_str(),
                r.result_type.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("sts.example.test", "sts", None),
            ("sts.example.test", "sts", Some("starttls-not-supported")),
            ("sts.example.test", "sts", Some("certificate-host-mismatch")),
            ("plain.example.test", "no-policy-found", None),
        ]
    );
    assert_eq!(results[0].mx_host, "mx.sts.example.test");
    assert_eq!(results[0].receiving_ip, Some(ip));
    assert_eq!(results[0].policy_strings.len(), 5);
    assert_eq!(
        results[2].failure_detail.as_deref(),
        Some("pkix: name mismatch")
    );
}

#[tokio::test]
async fn results_reach_the_store_within_a_second_without_a_flush() {
    let setup = setup().await;
    let engine = setup.default_engine();
    let route = engine.route(&request("plain.example.test")).await.unwrap();
    engine
        .learn(
            &route,
            &route.hosts[0],
            route.hosts[0].addresses[0],
            &verified(),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(setup.store.tls_results(0, i64::MAX).await.unwrap().len(), 1);
}

#[tokio::test]
async fn explain_names_the_policy_and_the_verdict_in_one_token_each() {
    let setup = setup().await;
    let route = setup
        .default_engine()
        .route(&request("sts.example.test"))
        .await
        .unwrap();
    let host = &route.hosts[0];
    assert_eq!(
        PolicyEngine::explain(&route, host, &verified()),
        "policy=mta-sts-enforce verified=yes check=\"pkix\""
    );
    assert_eq!(
        PolicyEngine::explain(&route, host, &SessionTls::NoStarttls),
        "policy=mta-sts-enforce verified=- check=\"no STARTTLS offered\""
    );
    assert!(
        PolicyEngine::explain(&route, host, &unverified())
            .starts_with("policy=mta-sts-enforce verified=no check=\"certificate-not-trusted: ")
    );
}

/// Through DNS and a real handshake: a signed zone publishes `3 1 1` of one self-signed
/// certificate; the route to it accepts a server presenting that certificate and refuses
/// one presenting another, whatever names they carry.
#[tokio::test]
async fn a_dane_route_accepts_exactly_the_certificate_its_tlsa_record_names() {
    use crate::policy::test_pki::{self_signed, server_config, spki_sha256};

    let pinned = self_signed(&["not-the-mx.example"], 30);
    let other = self_signed(&["mx.pinned.test"], 30);
    let hex: String = spki_sha256(&pinned.der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let zone = format!("@ MX 10 mx\nmx A 127.0.0.1\n_25._tcp.mx TLSA 3 1 1 {hex}\n");
    let dns = test_dns::start(
        TestDns::builder().zone(Zone::parse("pinned.test", &zone).unwrap().signed()),
    )
    .await;
    let dir = TempDir::new().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let engine = PolicyEngine::new(
        Arc::new(DeliverySettings::default()),
        dns.resolver.clone(),
        store,
    );
    let route = engine.route(&request("pinned.test")).await.unwrap();
    assert_eq!(route.policy, PolicyKind::Dane);
    let host = &route.hosts[0];

    for (served, accepted) in [(&pinned, true), (&other, false)] {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor =
            tokio_rustls::TlsAcceptor::from(server_config(vec![served.der.clone()], served.key()));
        let server = tokio::spawn(async move { acceptor.accept(server_io).await.is_ok() });
        let connector = host.verification.connector();
        let client = tokio_rustls::TlsConnector::from(Arc::clone(&connector.config))
            .connect(connector.server_name.clone(), client_io)
            .await;
        let _ = server.await;
        assert_eq!(client.is_ok(), accepted);
        let verdict = connector.verdict.get().cloned().unwrap();
        if accepted {
            assert_eq!(
                verdict,
                Verification::Verified {
                    how: "dane-ee 3 1 1".into()
                }
            );
        } else {
            assert!(matches!(
                verdict,
                Verification::Failed {
                    result_type: "tlsa-invalid",
                    ..
                }
            ));
        }
    }
}
