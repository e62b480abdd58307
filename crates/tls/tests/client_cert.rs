//! `[tls] client_ca`: client certificates are requested, never required, and only a
//! certificate chaining to the configured CA yields identities.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};
use sealpost_tls::{AppProtocol, TlsServer};

struct Fixture {
    _dir: tempfile::TempDir,
    server_ca: TestCa,
    server: Arc<TlsServer>,
}

fn fixture(client_ca: Option<&TestCa>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_ca = TestCa::new("Server CA");
    let (cert, key, _) = server_ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let mut settings = settings(
        dir.path(),
        Some(write_pair(dir.path(), "cert", &cert, &key)),
    );
    if let Some(ca) = client_ca {
        let path = dir.path().join("client-ca.pem");
        std::fs::write(&path, &ca.pem).expect("write");
        settings.client_ca = Some(path);
    }
    let server = TlsServer::load(settings).expect("load");
    Fixture {
        _dir: dir,
        server_ca,
        server,
    }
}

fn client_with_cert(
    f: &Fixture,
    (cert, key): (String, String),
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    client_builder(rustls::crypto::aws_lc_rs::default_provider(), versions)
        .with_root_certificates(roots(&[&f.server_ca.der]))
        .with_client_auth_cert(vec![cert_der(&cert)], key_der(&key))
        .expect("client cert")
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[tokio::test]
async fn a_certificate_from_the_client_ca_is_verified_with_its_email_identity() {
    let client_ca = TestCa::new("Client CA");
    let f = fixture(Some(&client_ca));
    let mut listener = serve(f.server.acceptor("submissions", AppProtocol::Smtp, true)).await;
    for version in BOTH {
        let config = client_with_cert(
            &f,
            client_ca.client("Alice@Example.TEST", false),
            &[version],
        );
        connect(listener.addr, config, "mail.example.test")
            .await
            .expect("handshake");
        let info = listener.next_handshake().await.expect("server handshake");
        let cert = info
            .client_cert
            .clone()
            .expect("client certificate reported");
        assert!(cert.verified, "{:?}", version.version);
        assert_eq!(cert.subject, "CN=Test User");
        assert_eq!(info.verified_identities(), ["alice@example.test"]);
        assert!(
            info.to_string().contains("client_cert_verified=true"),
            "{info}"
        );
    }
}

#[tokio::test]
async fn an_address_in_the_subject_cn_is_the_identity_when_there_is_no_email_san() {
    let client_ca = TestCa::new("Client CA");
    let f = fixture(Some(&client_ca));
    let mut listener = serve(f.server.acceptor("submissions", AppProtocol::Smtp, true)).await;
    let config = client_with_cert(&f, client_ca.client("Bob@Example.test", true), BOTH);
    connect(listener.addr, config, "mail.example.test")
        .await
        .expect("handshake");
    let info = listener.next_handshake().await.expect("server handshake");
    assert_eq!(info.verified_identities(), ["bob@example.test"]);
}

#[tokio::test]
async fn a_certificate_from_another_ca_connects_but_is_unverified() {
    let client_ca = TestCa::new("Client CA");
    let stranger = TestCa::new("Stranger CA");
    let f = fixture(Some(&client_ca));
    let mut listener = serve(f.server.acceptor("submissions", AppProtocol::Smtp, true)).await;
    for version in BOTH {
        let config = client_with_cert(
            &f,
            stranger.client("mallory@example.test", false),
            &[version],
        );
        connect(listener.addr, config, "mail.example.test")
            .await
            .expect("handshake must still succeed");
        let info = listener.next_handshake().await.expect("server handshake");
        let cert = info
            .client_cert
            .clone()
            .expect("client certificate reported");
        assert!(!cert.verified, "{:?}", version.version);
        assert!(cert.identities.is_empty());
        assert!(info.verified_identities().is_empty());
        assert!(
            info.to_string().contains("client_cert_verified=false"),
            "{info}"
        );
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_connects_when_client_ca_is_set() {
    let client_ca = TestCa::new("Client CA");
    let f = fixture(Some(&client_ca));
    let mut listener = serve(f.server.acceptor("imaps", AppProtocol::Imap, true)).await;
    connect(
        listener.addr,
        client_config(&f.server_ca.der),
        "mail.example.test",
    )
    .await
    .expect("handshake");
    let info = listener.next_handshake().await.expect("server handshake");
    assert_eq!(info.client_cert, None);
    assert!(info.verified_identities().is_empty());
}

/// A client certificate resolver that counts how often the server asked for one.
#[derive(Debug)]
struct CountingResolver {
    key: Arc<CertifiedKey>,
    asked: AtomicUsize,
    hints: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl ResolvesClientCert for CountingResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        *self.hints.lock().expect("lock") = root_hint_subjects.iter().map(|h| h.to_vec()).collect();
        Some(self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

async fn requests_for(f: &Fixture, client_ca: &TestCa) -> (usize, Vec<Vec<u8>>) {
    let (cert, key) = client_ca.client("alice@example.test", false);
    let resolver = Arc::new(CountingResolver {
        key: Arc::new(
            CertifiedKey::from_der(
                vec![cert_der(&cert)],
                key_der(&key),
                &rustls::crypto::aws_lc_rs::default_provider(),
            )
            .expect("certified key"),
        ),
        asked: AtomicUsize::new(0),
        hints: Default::default(),
    });
    let config = client_builder(rustls::crypto::aws_lc_rs::default_provider(), BOTH)
        .with_root_certificates(roots(&[&f.server_ca.der]))
        .with_client_cert_resolver(resolver.clone());
    let mut listener = serve(f.server.acceptor("imaps", AppProtocol::Imap, true)).await;
    connect(listener.addr, config, "mail.example.test")
        .await
        .expect("handshake");
    listener.next_handshake().await.expect("server handshake");
    let hints = resolver.hints.lock().expect("lock").clone();
    (resolver.asked.load(Ordering::SeqCst), hints)
}

#[tokio::test]
async fn client_certificates_are_requested_only_with_client_ca() {
    let client_ca = TestCa::new("Client CA");
    let without = fixture(None);
    assert_eq!(requests_for(&without, &client_ca).await.0, 0);

    let with = fixture(Some(&client_ca));
    let (asked, hints) = requests_for(&with, &client_ca).await;
    assert_eq!(asked, 1);
    // The request names the client CA, so clients pick the right certificate.
    let (_, ca) = x509_parser::parse_x509_certificate(&client_ca.der).expect("ca");
    assert_eq!(hints, [ca.subject().as_raw().to_vec()]);
}

#[tokio::test]
async fn a_client_certificate_without_its_private_key_fails_the_handshake() {
    // Accepting unverified certificates must not mean accepting certificates the client
    // does not own: CertificateVerify is still checked.
    let client_ca = TestCa::new("Client CA");
    let f = fixture(Some(&client_ca));
    let (cert, _) = client_ca.client("alice@example.test", false);
    let (_, wrong_key) = client_ca.client("mallory@example.test", false);
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key_der(&wrong_key))
        .expect("key");
    let stolen = Arc::new(CountingResolver {
        key: Arc::new(CertifiedKey::new(vec![cert_der(&cert)], signing_key)),
        asked: AtomicUsize::new(0),
        hints: Default::default(),
    });
    let mut listener = serve(f.server.acceptor("submissions", AppProtocol::Smtp, true)).await;
    for version in BOTH {
        let config = client_builder(rustls::crypto::aws_lc_rs::default_provider(), &[version])
            .with_root_certificates(roots(&[&f.server_ca.der]))
            .with_client_cert_resolver(stolen.clone());
        // The TLS 1.3 client may finish before the server's verdict; the server decides.
        let _ = connect(listener.addr, config, "mail.example.test").await;
        let error = listener
            .next_handshake()
            .await
            .expect_err("a certificate without its key was accepted");
        assert!(
            error.contains("BadSignature"),
            "{:?}: {error}",
            version.version
        );
    }
}
