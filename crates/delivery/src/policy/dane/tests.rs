use aws_lc_rs::digest::{SHA256, SHA512};

use super::*;
use crate::policy::test_pki::{TestCa, self_signed};

fn tlsa(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
    Tlsa {
        usage,
        selector,
        matching,
        data,
    }
}

fn spki(certificate: &CertificateDer<'_>) -> Vec<u8> {
    webpki::EndEntityCert::try_from(certificate)
        .unwrap()
        .subject_public_key_info()
        .as_ref()
        .to_vec()
}

fn hash(algorithm: &'static digest::Algorithm, data: &[u8]) -> Vec<u8> {
    digest::digest(algorithm, data).as_ref().to_vec()
}

fn check(records: Vec<Tlsa>, names: &[&str]) -> DaneCheck {
    DaneCheck {
        records,
        names: names
            .iter()
            .map(|n| ServerName::try_from(n.to_string()).unwrap())
            .collect(),
        provider: sealpost_tls::crypto_provider(),
    }
}

fn failed_type(result: Result<String, Verification>) -> &'static str {
    match result {
        Err(Verification::Failed { result_type, .. }) => result_type,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn only_dane_usages_with_known_parameters_are_usable() {
    assert!(usable(&tlsa(3, 1, 1, vec![0; 32])));
    assert!(usable(&tlsa(2, 0, 2, vec![0; 64])));
    assert!(usable(&tlsa(3, 0, 0, vec![1, 2, 3])));
    // PKIX-TA and PKIX-EE are unusable for SMTP (RFC 7672 §3.1.3).
    assert!(!usable(&tlsa(0, 1, 1, vec![0; 32])));
    assert!(!usable(&tlsa(1, 1, 1, vec![0; 32])));
    // Unknown selector or matching type, or a digest of the wrong length.
    assert!(!usable(&tlsa(3, 2, 1, vec![0; 32])));
    assert!(!usable(&tlsa(3, 1, 3, vec![0; 32])));
    assert!(!usable(&tlsa(3, 1, 1, vec![0; 31])));
    assert!(!usable(&tlsa(3, 1, 2, vec![0; 32])));
    assert_eq!(presentation(&tlsa(3, 1, 1, vec![0xab, 0x01])), "3 1 1 ab01");
}

#[test]
fn dane_ee_matches_the_leaf_by_every_selector_and_matching_type() {
    let leaf = self_signed(&["mx.example.test"], 30);
    let spki = spki(&leaf.der);
    for record in [
        tlsa(3, 1, 1, hash(&SHA256, &spki)),
        tlsa(3, 1, 2, hash(&SHA512, &spki)),
        tlsa(3, 1, 0, spki.clone()),
        tlsa(3, 0, 1, hash(&SHA256, leaf.der.as_ref())),
        tlsa(3, 0, 2, hash(&SHA512, leaf.der.as_ref())),
        tlsa(3, 0, 0, leaf.der.to_vec()),
    ] {
        let header = format!(
            "dane-ee {} {} {}",
            record.usage, record.selector, record.matching
        );
        let result =
            check(vec![record], &["mx.example.test"]).verify(&leaf.der, &[], UnixTime::now());
        assert_eq!(result, Ok(header));
    }
}

#[test]
fn dane_ee_ignores_names_and_expiry() {
    let leaf = self_signed(&["somewhere.else"], -5);
    let record = tlsa(3, 1, 1, hash(&SHA256, &spki(&leaf.der)));
    let result = check(vec![record], &["mx.example.test"]).verify(&leaf.der, &[], UnixTime::now());
    assert_eq!(result, Ok("dane-ee 3 1 1".into()));
}

#[test]
fn a_chain_no_record_matches_is_tlsa_invalid() {
    let leaf = self_signed(&["mx.example.test"], 30);
    let other = self_signed(&["mx.example.test"], 30);
    let record = tlsa(3, 1, 1, hash(&SHA256, &spki(&other.der)));
    let result = check(vec![record], &["mx.example.test"]).verify(&leaf.der, &[], UnixTime::now());
    assert_eq!(failed_type(result), "tlsa-invalid");
}

#[test]
fn dane_ta_anchors_the_presented_issuer_and_checks_the_name() {
    let ca = TestCa::new("DANE TA");
    let leaf = ca.leaf(&["mx.example.test"], 30);
    let chain = [ca.der.clone()];
    let by_cert = tlsa(2, 0, 1, hash(&SHA256, ca.der.as_ref()));
    let by_key = tlsa(2, 1, 1, hash(&SHA256, &spki(&ca.der)));
    for record in [by_cert, by_key] {
        let header = format!("dane-ta 2 {} 1", record.selector);
        let result = check(vec![record], &["mx.example.test", "example.test"]).verify(
            &leaf.der,
            &chain,
            UnixTime::now(),
        );
        assert_eq!(result, Ok(header));
    }
}

#[test]
fn dane_ta_leaf_may_name_the_destination_domain_instead_of_the_mx() {
    let ca = TestCa::new("DANE TA");
    let leaf = ca.leaf(&["example.test"], 30);
    let record = tlsa(2, 0, 1, hash(&SHA256, ca.der.as_ref()));
    let result = check(vec![record], &["mx.example.test", "example.test"]).verify(
        &leaf.der,
        std::slice::from_ref(&ca.der),
        UnixTime::now(),
    );
    assert_eq!(result, Ok("dane-ta 2 0 1".into()));
}

#[test]
fn dane_ta_with_a_wrong_name_is_a_host_mismatch() {
    let ca = TestCa::new("DANE TA");
    let leaf = ca.leaf(&["other.example"], 30);
    let record = tlsa(2, 0, 1, hash(&SHA256, ca.der.as_ref()));
    let result = check(vec![record], &["mx.example.test", "example.test"]).verify(
        &leaf.der,
        std::slice::from_ref(&ca.der),
        UnixTime::now(),
    );
    assert_eq!(failed_type(result), "certificate-host-mismatch");
}

#[test]
fn dane_ta_with_an_expired_leaf_is_expired() {
    let ca = TestCa::new("DANE TA");
    let leaf = ca.leaf(&["mx.example.test"], -3);
    let record = tlsa(2, 0, 1, hash(&SHA256, ca.der.as_ref()));
    let result = check(vec![record], &["mx.example.test"]).verify(
        &leaf.der,
        std::slice::from_ref(&ca.der),
        UnixTime::now(),
    );
    assert_eq!(failed_type(result), "certificate-expired");
}

#[test]
fn dane_ta_whose_anchor_is_not_presented_does_not_match() {
    let ca = TestCa::new("DANE TA");
    let leaf = ca.leaf(&["mx.example.test"], 30);
    let record = tlsa(2, 0, 1, hash(&SHA256, ca.der.as_ref()));
    let result = check(vec![record], &["mx.example.test"]).verify(&leaf.der, &[], UnixTime::now());
    assert_eq!(failed_type(result), "tlsa-invalid");
}

#[test]
fn dane_ta_does_not_accept_a_leaf_from_another_ca_presented_beside_the_anchor() {
    let anchor = TestCa::new("DANE TA");
    let other = TestCa::new("Someone else");
    let leaf = other.leaf(&["mx.example.test"], 30);
    let record = tlsa(2, 0, 1, hash(&SHA256, anchor.der.as_ref()));
    let result = check(vec![record], &["mx.example.test"]).verify(
        &leaf.der,
        &[anchor.der.clone(), other.der.clone()],
        UnixTime::now(),
    );
    assert_eq!(failed_type(result), "certificate-not-trusted");
}
