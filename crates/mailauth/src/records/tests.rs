use super::*;

fn records() -> DomainRecords {
    DomainRecords {
        domain: "Example.ORG".into(),
        hostname: "mail.example.org".into(),
        dkim: vec![
            (
                "s20261128r".into(),
                format!("v=DKIM1; k=rsa; p={}", "A".repeat(392)),
            ),
            (
                "s20261128e".into(),
                "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into(),
            ),
        ],
        dmarc_rua: "dmarc-reports@example.org".into(),
        tls_rpt_rua: "tls-reports@example.org".into(),
        tlsa: vec!["ab".repeat(32)],
    }
}

#[test]
fn long_txt_values_are_split_into_255_octet_strings() {
    let value = "x".repeat(600);
    let text = txt_strings(&value);
    let pieces: Vec<&str> = text.split(' ').collect();
    let lengths: Vec<usize> = pieces.iter().map(|p| p.len() - 2).collect();
    assert_eq!(lengths, [255, 255, 90]);
    assert_eq!(txt_strings("v=spf1 mx -all"), "\"v=spf1 mx -all\"");
    assert_eq!(txt_strings("a\"b\\c"), "\"a\\\"b\\\\c\"");
}

#[test]
fn the_zone_names_every_record_with_absolute_names() {
    let zone = records().zone_text();
    for expected in [
        "example.org. 3600 IN MX 10 mail.example.org.",
        "example.org. 3600 IN TXT \"v=spf1 mx -all\"",
        "s20261128r._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=rsa; p=",
        "s20261128e._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=ed25519; p=11qY",
        "_dmarc.example.org. 3600 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.org\"",
        "_mta-sts.example.org. 3600 IN TXT \"v=STSv1; id=",
        ";   mode: testing",
        ";   mx: mail.example.org",
        "https://mta-sts.Example.ORG/.well-known/mta-sts.txt",
        "_smtp._tls.example.org. 3600 IN TXT \"v=TLSRPTv1; rua=mailto:tls-reports@example.org\"",
        "_25._tcp.mail.example.org. 3600 IN TLSA 3 1 1 abab",
    ] {
        assert!(zone.contains(expected), "missing {expected:?} in\n{zone}");
    }
}

#[test]
fn the_mta_sts_id_changes_with_the_policy_only() {
    let a = records();
    let mut b = records();
    b.dkim.clear();
    assert_eq!(
        mta_sts_id(&a.mta_sts_policy()),
        mta_sts_id(&b.mta_sts_policy())
    );
    b.hostname = "mx2.example.org".into();
    let id = mta_sts_id(&b.mta_sts_policy());
    assert_ne!(mta_sts_id(&a.mta_sts_policy()), id);
    assert!(id.len() <= 32 && id.bytes().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn without_a_certificate_the_tlsa_record_is_explained_not_invented() {
    let mut r = records();
    r.tlsa.clear();
    let zone = r.zone_text();
    assert!(!zone.contains("TLSA 3 1 1"));
    assert!(zone.contains("no certificate yet"));
}

#[test]
fn tlsa_is_the_sha256_of_the_subject_public_key_info() {
    // A self-signed Ed25519 certificate and the SHA-256 of its SPKI, both made with
    // `openssl req -x509 -newkey ed25519` and `openssl x509 -pubkey | openssl pkey
    // -pubin -outform DER | sha256sum`.
    let pem = include_str!("testdata/ed25519-cert.pem");
    let expected = include_str!("testdata/ed25519-cert.spki-sha256").trim();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    assert_eq!(tlsa_3_1_1(&der).unwrap(), expected);
    assert!(tlsa_3_1_1(b"not a certificate").is_err());
}
