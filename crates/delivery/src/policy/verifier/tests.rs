use rustls::RootCertStore;

use super::*;
use crate::policy::test_pki::{TestCa, TestLeaf, self_signed, server_config, spki_sha256};

fn pkix(ca: &TestCa) -> Check {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    Check::Pkix {
        verifier: Some(
            WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                sealpost_tls::crypto_provider(),
            )
            .build()
            .unwrap(),
        ),
        label: "pkix",
    }
}

fn planned(checks: Vec<Check>, enforce: bool, name: &str) -> PlannedVerifier {
    PlannedVerifier::new(
        HostCheck {
            checks,
            enforce,
            unauthenticated: None,
            server_name: ServerName::try_from(name.to_string()).unwrap(),
        },
        sealpost_tls::crypto_provider(),
    )
}

/// A real handshake against a server presenting `chain`: whether it completed, and the
/// verdict the connector recorded.
async fn handshake(
    verifier: &PlannedVerifier,
    chain: Vec<CertificateDer<'static>>,
    leaf: &TestLeaf,
) -> (Result<String, String>, Option<Verification>) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(chain, leaf.key()));
    let server = tokio::spawn(async move { acceptor.accept(server_io).await.map(|_| ()) });
    let connector = verifier.connector();
    let client = tokio_rustls::TlsConnector::from(Arc::clone(&connector.config))
        .connect(connector.server_name.clone(), client_io)
        .await;
    let outcome = match client {
        Ok(stream) => Ok(format!(
            "{:?}",
            stream.get_ref().1.protocol_version().unwrap()
        )),
        Err(error) => Err(error.to_string()),
    };
    let _ = server.await;
    (outcome, connector.verdict.get().cloned())
}

#[tokio::test]
async fn a_certificate_that_verifies_completes_and_records_how() {
    let ca = TestCa::new("Test CA");
    let leaf = ca.leaf(&["mx.example.test"], 30);
    let verifier = planned(vec![pkix(&ca)], true, "mx.example.test");
    let (outcome, verdict) = handshake(&verifier, vec![leaf.der.clone()], &leaf).await;
    assert_eq!(outcome, Ok("TLSv1_3".into()));
    assert_eq!(verdict, Some(Verification::Verified { how: "pkix".into() }));
}

#[tokio::test]
async fn an_enforced_check_fails_the_handshake_and_says_why() {
    let ca = TestCa::new("Test CA");
    let leaf = ca.leaf(&["wrong.example.test"], 30);
    let verifier = planned(vec![pkix(&ca)], true, "mx.example.test");
    let (outcome, verdict) = handshake(&verifier, vec![leaf.der.clone()], &leaf).await;
    let error = outcome.unwrap_err();
    assert!(error.contains("pkix"), "{error}");
    assert!(matches!(
        verdict,
        Some(Verification::Failed {
            result_type: "certificate-host-mismatch",
            ..
        })
    ));
}

#[tokio::test]
async fn an_unenforced_check_records_the_failure_and_lets_the_handshake_complete() {
    let ca = TestCa::new("Test CA");
    let untrusted = self_signed(&["mx.example.test"], 30);
    let verifier = planned(vec![pkix(&ca)], false, "mx.example.test");
    let (outcome, verdict) = handshake(&verifier, vec![untrusted.der.clone()], &untrusted).await;
    assert!(outcome.is_ok());
    assert!(matches!(
        verdict,
        Some(Verification::Failed {
            result_type: "certificate-not-trusted",
            ..
        })
    ));
    assert_eq!(verifier.describe(), "pkix, not required");
}

#[tokio::test]
async fn an_expired_certificate_is_reported_as_expired() {
    let ca = TestCa::new("Test CA");
    let leaf = ca.leaf(&["mx.example.test"], -2);
    let verifier = planned(vec![pkix(&ca)], false, "mx.example.test");
    let (_, verdict) = handshake(&verifier, vec![leaf.der.clone()], &leaf).await;
    assert!(matches!(
        verdict,
        Some(Verification::Failed {
            result_type: "certificate-expired",
            ..
        })
    ));
}

#[tokio::test]
async fn a_pinned_spki_needs_no_ca_but_must_be_the_pinned_key() {
    let pinned = self_signed(&["anything"], 30);
    let verifier = planned(
        vec![Check::PinnedSpki(spki_sha256(&pinned.der))],
        true,
        "mx.example.test",
    );
    let (outcome, verdict) = handshake(&verifier, vec![pinned.der.clone()], &pinned).await;
    assert!(outcome.is_ok());
    assert_eq!(
        verdict,
        Some(Verification::Verified {
            how: "pinned spki".into()
        })
    );
    let other = self_signed(&["mx.example.test"], 30);
    let (outcome, _) = handshake(&verifier, vec![other.der.clone()], &other).await;
    assert!(outcome.is_err());
}

#[tokio::test]
async fn every_check_must_pass() {
    let ca = TestCa::new("Test CA");
    let leaf = ca.leaf(&["mx.example.test"], 30);
    let other_key = self_signed(&["mx.example.test"], 30);
    let both = planned(
        vec![pkix(&ca), Check::PinnedSpki(spki_sha256(&leaf.der))],
        true,
        "mx.example.test",
    );
    let (_, verdict) = handshake(&both, vec![leaf.der.clone()], &leaf).await;
    assert_eq!(
        verdict,
        Some(Verification::Verified {
            how: "pkix + pinned spki".into()
        })
    );
    let wrong_pin = planned(
        vec![pkix(&ca), Check::PinnedSpki(spki_sha256(&other_key.der))],
        true,
        "mx.example.test",
    );
    let (outcome, _) = handshake(&wrong_pin, vec![leaf.der.clone()], &leaf).await;
    assert!(outcome.is_err());
}

#[tokio::test]
async fn mandatory_unauthenticated_tls_accepts_any_certificate_and_records_tlsa_invalid() {
    let leaf = self_signed(&["whatever"], -1);
    let verdict = Verification::Failed {
        result_type: "tlsa-invalid",
        detail: "none usable".into(),
    };
    let verifier = PlannedVerifier::new(
        HostCheck {
            checks: Vec::new(),
            enforce: false,
            unauthenticated: Some(verdict.clone()),
            server_name: ServerName::try_from("mx.example.test").unwrap(),
        },
        sealpost_tls::crypto_provider(),
    );
    let (outcome, recorded) = handshake(&verifier, vec![leaf.der.clone()], &leaf).await;
    assert!(outcome.is_ok());
    assert_eq!(recorded, Some(verdict));
}

#[tokio::test]
async fn no_roots_means_nothing_verifies() {
    let leaf = self_signed(&["mx.example.test"], 30);
    let verifier = planned(
        vec![Check::Pkix {
            verifier: None,
            label: "pkix",
        }],
        false,
        "mx.example.test",
    );
    assert!(matches!(
        verifier.judge(std::slice::from_ref(&leaf.der), UnixTime::now()),
        Verification::Failed {
            result_type: "certificate-not-trusted",
            ..
        }
    ));
}

#[test]
fn a_host_outside_the_policy_fails_whatever_its_certificate() {
    let ca = TestCa::new("Test CA");
    let leaf = ca.leaf(&["rogue.example.test"], 30);
    let verifier = planned(
        vec![Check::Refused("not in the policy".into()), pkix(&ca)],
        false,
        "rogue.example.test",
    );
    assert_eq!(
        verifier.judge(std::slice::from_ref(&leaf.der), UnixTime::now()),
        Verification::Failed {
            result_type: "validation-failure",
            detail: "not in the policy".into()
        }
    );
}
