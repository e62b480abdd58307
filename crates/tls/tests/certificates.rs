//! Which certificate a client gets, and which certificate files are refused at load.

mod common;

use common::*;
use sealpost_tls::{AppProtocol, TlsError, TlsServer};

#[tokio::test]
async fn sni_selects_the_certificate_naming_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (a_cert, a_key, a_der) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let (b_cert, b_key, b_der) = ca.server(&["mx.other.test"], KeyKind::Ecdsa);
    let (w_cert, w_key, w_der) = ca.server(&["*.wild.test"], KeyKind::Ecdsa);
    let mut settings = settings(
        dir.path(),
        Some(write_pair(dir.path(), "a", &a_cert, &a_key)),
    );
    settings.extra = vec![
        write_pair(dir.path(), "b", &b_cert, &b_key),
        write_pair(dir.path(), "w", &w_cert, &w_key),
    ];
    let server = TlsServer::load(settings).expect("load");
    let mut listener = serve(server.acceptor("imaps", AppProtocol::Imap, true)).await;
    for (sni, expected) in [
        ("mail.example.test", &a_der),
        ("mx.other.test", &b_der),
        ("MX.Other.TEST", &b_der),
        ("imap.wild.test", &w_der),
    ] {
        let tls = connect(listener.addr, client_config(&ca.der), sni)
            .await
            .unwrap_or_else(|e| panic!("handshake for {sni}: {e}"));
        assert_eq!(&server_leaf(&tls), expected, "certificate for {sni}");
        let info = listener.next_handshake().await.expect("server handshake");
        assert_eq!(info.sni.as_deref(), Some(sni.to_ascii_lowercase().as_str()));
    }
}

#[tokio::test]
async fn exact_names_win_over_wildcards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (w_cert, w_key, _) = ca.server(&["*.example.test"], KeyKind::Ecdsa);
    let (e_cert, e_key, e_der) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let mut settings = settings(
        dir.path(),
        Some(write_pair(dir.path(), "w", &w_cert, &w_key)),
    );
    settings.extra = vec![write_pair(dir.path(), "e", &e_cert, &e_key)];
    let server = TlsServer::load(settings).expect("load");
    let listener = serve(server.acceptor("imaps", AppProtocol::Imap, true)).await;
    let tls = connect(listener.addr, client_config(&ca.der), "mail.example.test")
        .await
        .expect("handshake");
    assert_eq!(server_leaf(&tls), e_der);
}

#[tokio::test]
async fn missing_or_unknown_sni_gets_the_first_configured_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (a_cert, a_key, a_der) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let (b_cert, b_key, _) = ca.server(&["mx.other.test"], KeyKind::Ecdsa);
    let mut settings = settings(
        dir.path(),
        Some(write_pair(dir.path(), "a", &a_cert, &a_key)),
    );
    settings.extra = vec![write_pair(dir.path(), "b", &b_cert, &b_key)];
    let server = TlsServer::load(settings).expect("load");
    let mut listener = serve(server.acceptor("imaps", AppProtocol::Imap, true)).await;

    let mut no_sni = client_config(&ca.der);
    no_sni.enable_sni = false;
    let tls = connect(listener.addr, no_sni, "mail.example.test")
        .await
        .expect("handshake without SNI");
    assert_eq!(server_leaf(&tls), a_der);
    assert_eq!(listener.next_handshake().await.expect("server").sni, None);

    // No certificate names "nothing.test"; the client checks what it gets as if it had
    // asked for mail.example.test, to see which one it was.
    let config = client_with_verifier(
        TestVerifier::verify_as(&ca.der, "mail.example.test"),
        &[&rustls::version::TLS13],
    );
    let tls = connect(listener.addr, config, "nothing.test")
        .await
        .expect("handshake");
    assert_eq!(server_leaf(&tls), a_der);
    let info = listener.next_handshake().await.expect("server");
    assert_eq!(info.sni.as_deref(), Some("nothing.test"));
}

#[tokio::test]
async fn ecdsa_is_preferred_and_rsa_only_clients_get_the_rsa_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    // RSA configured first, so ECDSA winning is the key-type preference, not the order.
    let (r_cert, r_key, r_der) = ca.server(&["mail.example.test"], KeyKind::Rsa);
    let (e_cert, e_key, e_der) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let mut settings = settings(
        dir.path(),
        Some(write_pair(dir.path(), "rsa", &r_cert, &r_key)),
    );
    settings.extra = vec![write_pair(dir.path(), "ecdsa", &e_cert, &e_key)];
    let server = TlsServer::load(settings).expect("load");
    let listener = serve(server.acceptor("submissions", AppProtocol::Smtp, true)).await;

    for (versions, label) in [
        (&[&rustls::version::TLS13][..], "TLS 1.3"),
        (&[&rustls::version::TLS12][..], "TLS 1.2"),
    ] {
        let default_client =
            client_builder(rustls::crypto::aws_lc_rs::default_provider(), versions)
                .with_root_certificates(roots(&[&ca.der]))
                .with_no_client_auth();
        let tls = connect(listener.addr, default_client, "mail.example.test")
            .await
            .expect("handshake");
        assert_eq!(server_leaf(&tls), e_der, "default client, {label}");

        let rsa_client = client_with_verifier(TestVerifier::rsa_only(&ca.der), versions);
        let tls = connect(listener.addr, rsa_client, "mail.example.test")
            .await
            .expect("handshake");
        assert_eq!(server_leaf(&tls), r_der, "RSA-only client, {label}");
    }

    // Without SNI the default identity (both certificates name the same host) still
    // follows the client's key types.
    let mut no_sni = client_config(&ca.der);
    no_sni.enable_sni = false;
    let tls = connect(listener.addr, no_sni, "mail.example.test")
        .await
        .expect("handshake");
    assert_eq!(server_leaf(&tls), e_der, "default client without SNI");
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (cert, _, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let (_, other_key, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let pair = write_pair(dir.path(), "cert", &cert, &other_key);
    match TlsServer::load(settings(dir.path(), Some(pair.clone()))) {
        Err(TlsError::KeyMismatch { cert, key, .. }) => {
            assert_eq!(cert, pair.0);
            assert_eq!(key, pair.1);
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("mismatched key accepted"),
    }
}

#[test]
fn a_mismatched_extra_pair_fails_the_whole_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (cert, key, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let (extra_cert, _, _) = ca.server(&["mx.other.test"], KeyKind::Ecdsa);
    let mut settings = settings(
        dir.path(),
        Some(write_pair(dir.path(), "cert", &cert, &key)),
    );
    settings.extra = vec![write_pair(dir.path(), "extra", &extra_cert, &key)];
    assert!(matches!(
        TlsServer::load(settings),
        Err(TlsError::KeyMismatch { .. })
    ));
}

#[test]
fn a_configured_certificate_that_is_missing_is_an_error_and_nothing_is_generated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("missing.pem");
    let key = dir.path().join("missing-key.pem");
    let settings = settings(dir.path(), Some((cert.clone(), key)));
    match TlsServer::load(settings) {
        Err(e @ TlsError::Read { .. }) => {
            assert!(e.to_string().contains("missing.pem"), "{e}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("loaded without a certificate"),
    }
    assert!(
        !dir.path().join("data").exists(),
        "self-signed files were generated"
    );
}

#[test]
fn a_configured_certificate_that_is_not_pem_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = write_pair(dir.path(), "cert", "not a certificate\n", "not a key\n");
    let error = match TlsServer::load(settings(dir.path(), Some(pair.clone()))) {
        Err(e) => e,
        Ok(_) => panic!("garbage accepted"),
    };
    assert!(
        matches!(error, TlsError::BadPem { ref path, .. } if *path == pair.0),
        "{error}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "self-signed files were generated"
    );
}

#[test]
fn cert_without_key_or_key_without_cert_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (cert, key, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let (cert, key) = write_pair(dir.path(), "cert", &cert, &key);
    let mut only_cert = settings(dir.path(), None);
    only_cert.cert = Some(cert);
    assert!(matches!(
        TlsServer::load(only_cert),
        Err(TlsError::Config(_))
    ));
    let mut only_key = settings(dir.path(), None);
    only_key.key = Some(key);
    assert!(matches!(
        TlsServer::load(only_key),
        Err(TlsError::Config(_))
    ));
    assert!(
        !dir.path().join("data").exists(),
        "self-signed files were generated"
    );
}

#[test]
fn configured_certificates_have_no_generated_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (cert, key, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let server = TlsServer::load(settings(
        dir.path(),
        Some(write_pair(dir.path(), "c", &cert, &key)),
    ))
    .expect("load");
    assert_eq!(server.ca_certificate_path(), None);
}
