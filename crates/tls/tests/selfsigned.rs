//! The no-configuration bootstrap: a generated CA and server certificate in DATA/tls/.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use sealpost_tls::{AppProtocol, TlsError, TlsServer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

const DAY: i64 = 86_400;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[test]
fn bootstrap_writes_a_ca_a_server_certificate_and_private_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TlsServer::load(settings(dir.path(), None)).expect("load");
    let tls = dir.path().join("data/tls");
    assert_eq!(
        server.ca_certificate_path(),
        Some(tls.join("ca.pem").as_path())
    );
    assert_eq!(mode(&tls.join("key.pem")), 0o600);
    assert_eq!(mode(&tls.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&tls), 0o700);
    assert!(!std::fs::read_dir(&tls).expect("dir").any(|e| {
        e.expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")
    }));

    let ca_pem = read(&tls.join("ca.pem"));
    let (_, ca_pem) = parse_x509_pem(&ca_pem).expect("ca pem");
    let ca = ca_pem.parse_x509().expect("ca cert");
    assert_eq!(
        ca.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok()),
        Some("sealpost CA for mail.example.test")
    );
    let constraints = ca
        .basic_constraints()
        .expect("bc")
        .expect("bc present")
        .value;
    assert!(constraints.ca);
    assert_eq!(constraints.path_len_constraint, Some(0));
    let usage = ca.key_usage().expect("ku").expect("ku present").value;
    assert!(usage.key_cert_sign() && usage.crl_sign() && !usage.digital_signature());
    let ca_start = ca.validity().not_before.timestamp();
    let ca_end = ca.validity().not_after.timestamp();
    assert!(
        (now() - ca_start - 3600).abs() < 120,
        "CA backdated one hour"
    );
    assert!(
        (ca_end - now() - 3652 * DAY).abs() < DAY,
        "CA valid ten years"
    );

    let cert_pem = read(&tls.join("cert.pem"));
    let (_, cert_pem) = parse_x509_pem(&cert_pem).expect("cert pem");
    let cert = cert_pem.parse_x509().expect("server cert");
    assert_eq!(cert.issuer(), ca.subject());
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok()),
        Some("mail.example.test")
    );
    let sans = cert
        .subject_alternative_name()
        .expect("san")
        .expect("san present");
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &sans.value.general_names {
        match name {
            GeneralName::DNSName(n) => dns.push(n.to_string()),
            GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(dns, ["mail.example.test", "localhost"]);
    let mut v6 = vec![0u8; 16];
    v6[15] = 1;
    assert_eq!(ips, [vec![127, 0, 0, 1], v6]);
    let constraints = cert
        .basic_constraints()
        .expect("bc")
        .expect("bc present")
        .value;
    assert!(!constraints.ca);
    let eku = cert
        .extended_key_usage()
        .expect("eku")
        .expect("eku present")
        .value;
    assert!(eku.server_auth && !eku.client_auth && !eku.any);
    let start = cert.validity().not_before.timestamp();
    let end = cert.validity().not_after.timestamp();
    assert!((now() - start - 3600).abs() < 120, "backdated one hour");
    assert_eq!(
        end - start,
        825 * DAY,
        "825 days, the most Apple clients accept"
    );
    assert_eq!(
        pem::parse_chain_len(&read(&tls.join("cert.pem"))),
        1,
        "cert.pem holds the server certificate only"
    );
}

/// A tiny PEM block counter, to avoid a dependency for one assertion.
mod pem {
    pub fn parse_chain_len(bytes: &[u8]) -> usize {
        String::from_utf8_lossy(bytes)
            .matches("-----BEGIN CERTIFICATE-----")
            .count()
    }
}

#[test]
fn bootstrap_files_are_reused_on_the_next_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = dir.path().join("data/tls");
    TlsServer::load(settings(dir.path(), None)).expect("first load");
    let files = ["ca.pem", "ca-key.pem", "cert.pem", "key.pem"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| read(&tls.join(f))).collect();
    TlsServer::load(settings(dir.path(), None)).expect("second load");
    let after: Vec<Vec<u8>> = files.iter().map(|f| read(&tls.join(f))).collect();
    assert_eq!(before, after);
}

#[tokio::test]
async fn generated_certificate_verifies_against_the_generated_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TlsServer::load(settings(dir.path(), None)).expect("load");
    let ca = cert_der(
        &String::from_utf8(read(server.ca_certificate_path().expect("ca"))).expect("utf8"),
    );
    let listener = serve(server.acceptor("imaps", AppProtocol::Imap, true)).await;
    for name in ["mail.example.test", "localhost", "127.0.0.1"] {
        connect(listener.addr, client_config(&ca), name)
            .await
            .unwrap_or_else(|e| panic!("verify as {name}: {e}"));
    }
}

#[test]
fn a_new_hostname_reissues_the_server_certificate_under_the_same_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = dir.path().join("data/tls");
    TlsServer::load(settings(dir.path(), None)).expect("first load");
    let ca_before = read(&tls.join("ca.pem"));
    let cert_before = read(&tls.join("cert.pem"));
    let mut renamed = settings(dir.path(), None);
    renamed.hostname = "mx.example.test".into();
    TlsServer::load(renamed).expect("load with new hostname");
    assert_eq!(read(&tls.join("ca.pem")), ca_before, "CA kept");
    let cert_after = read(&tls.join("cert.pem"));
    assert_ne!(cert_after, cert_before, "server certificate reissued");
    let (_, pem) = parse_x509_pem(&cert_after).expect("pem");
    let cert = pem.parse_x509().expect("cert");
    let sans = cert
        .subject_alternative_name()
        .expect("san")
        .expect("san present");
    assert!(
        sans.value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName("mx.example.test")))
    );
    assert_eq!(mode(&tls.join("key.pem")), 0o600);
}

#[tokio::test]
async fn a_missing_server_certificate_is_reissued_from_the_existing_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = dir.path().join("data/tls");
    TlsServer::load(settings(dir.path(), None)).expect("first load");
    let ca_before = read(&tls.join("ca.pem"));
    std::fs::remove_file(tls.join("cert.pem")).expect("rm");
    let server = TlsServer::load(settings(dir.path(), None)).expect("reload");
    assert_eq!(read(&tls.join("ca.pem")), ca_before);
    let ca = cert_der(&String::from_utf8(ca_before).expect("utf8"));
    let listener = serve(server.acceptor("imaps", AppProtocol::Imap, true)).await;
    connect(listener.addr, client_config(&ca), "mail.example.test")
        .await
        .expect("reissued certificate chains to the old CA");
}

#[test]
fn a_missing_ca_next_to_existing_certificates_is_an_error_not_a_new_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = dir.path().join("data/tls");
    TlsServer::load(settings(dir.path(), None)).expect("first load");
    std::fs::remove_file(tls.join("ca.pem")).expect("rm");
    let cert_before = read(&tls.join("cert.pem"));
    match TlsServer::load(settings(dir.path(), None)) {
        Err(TlsError::Config(message)) => assert!(message.contains("ca.pem"), "{message}"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a new CA was made silently"),
    }
    assert!(!tls.join("ca.pem").exists());
    assert_eq!(read(&tls.join("cert.pem")), cert_before);
}

#[test]
fn an_empty_hostname_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = settings(dir.path(), None);
    settings.hostname = String::new();
    assert!(matches!(
        TlsServer::load(settings),
        Err(TlsError::Config(_))
    ));
}

#[test]
fn a_server_certificate_near_its_end_is_reissued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = dir.path().join("data/tls");
    TlsServer::load(settings(dir.path(), None)).expect("first load");
    // Replace the server certificate with one from the same CA that ends in 10 days.
    let ca_key =
        rcgen::KeyPair::from_pem(&String::from_utf8(read(&tls.join("ca-key.pem"))).expect("utf8"))
            .expect("ca key");
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "sealpost CA for mail.example.test",
    );
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["mail.example.test".to_string()]).expect("params");
    params.not_before = ::time::OffsetDateTime::now_utc() - ::time::Duration::days(100);
    params.not_after = ::time::OffsetDateTime::now_utc() + ::time::Duration::days(10);
    let short = params.signed_by(&key, &issuer).expect("cert");
    std::fs::write(tls.join("cert.pem"), short.pem()).expect("write");
    std::fs::write(tls.join("key.pem"), key.serialize_pem()).expect("write");

    TlsServer::load(settings(dir.path(), None)).expect("load");
    let (_, pem) = parse_x509_pem(&read(&tls.join("cert.pem"))).expect("pem");
    let cert = pem.parse_x509().expect("cert");
    assert!(cert.validity().not_after.timestamp() > now() + 800 * DAY);
}
