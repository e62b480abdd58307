//! Shared pieces of the TLS tests: a test CA issuing certificates into a temp dir, a
//! server loop on 127.0.0.1 that reports each handshake, and a rustls client.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};
use sealpost_tls::{Line, MailStream, TlsAcceptor, TlsInfo, TlsSettings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub enum KeyKind {
    Ecdsa,
    Rsa,
}

/// A CA for tests, and the certificates it issues.
pub struct TestCa {
    pub pem: String,
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`; returns (cert PEM, key PEM, cert DER).
    pub fn server(
        &self,
        names: &[&str],
        kind: KeyKind,
    ) -> (String, String, CertificateDer<'static>) {
        let key = match kind {
            KeyKind::Ecdsa => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyKind::Rsa => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
        }
        .expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    /// A client certificate with `email` as rfc822Name SAN (or, with `cn_only`, as the
    /// subject CN and no SAN); returns (cert PEM, key PEM).
    pub fn client(&self, email: &str, cn_only: bool) -> (String, String) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if cn_only {
            params.distinguished_name.push(DnType::CommonName, email);
        } else {
            params
                .distinguished_name
                .push(DnType::CommonName, "Test User");
            params.subject_alt_names = vec![SanType::Rfc822Name(email.try_into().expect("ia5"))];
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes a cert/key pair as `<stem>.pem` / `<stem>-key.pem` in `dir`.
pub fn write_pair(dir: &Path, stem: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&cert_path, cert).expect("write cert");
    std::fs::write(&key_path, key).expect("write key");
    (cert_path, key_path)
}

pub fn settings(dir: &Path, cert: Option<(PathBuf, PathBuf)>) -> TlsSettings {
    let (cert, key) = match cert {
        Some((c, k)) => (Some(c), Some(k)),
        None => (None, None),
    };
    TlsSettings {
        hostname: "mail.example.test".into(),
        data_dir: dir.join("data"),
        cert,
        key,
        extra: Vec::new(),
        client_ca: None,
    }
}

/// A listening test server: every connection is handshaken with `acceptor` (implicit TLS),
/// its `TlsInfo` (or handshake error) reported on `handshakes`, then greeted with
/// "220 ready" and echoed line by line.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub handshakes: mpsc::UnboundedReceiver<Result<TlsInfo, String>>,
}

impl TestServer {
    pub async fn next_handshake(&mut self) -> Result<TlsInfo, String> {
        tokio::time::timeout(WAIT, self.handshakes.recv())
            .await
            .expect("server reported no handshake in time")
            .expect("server loop ended")
    }
}

pub async fn serve(acceptor: TlsAcceptor) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut stream = match acceptor.accept(MailStream::plain(tcp, peer)).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = tx.send(Ok(stream.tls().cloned().expect("TLS info")));
                echo(&mut stream).await;
            });
        }
    });
    TestServer {
        addr,
        handshakes: rx,
    }
}

/// Greets, then echoes lines until the client goes away.
pub async fn echo(stream: &mut MailStream) {
    if stream.write_all(b"220 ready\r\n").await.is_err() {
        return;
    }
    while let Ok(Line::Complete(line)) = stream.read_line(1000).await {
        if stream.write_all(&line).await.is_err() {
            return;
        }
    }
}

pub fn roots(cas: &[&CertificateDer<'static>]) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add((*ca).clone()).expect("root");
    }
    Arc::new(roots)
}

/// A client as a mail client would be configured: rustls defaults on aws-lc-rs (which
/// offer more than our server accepts), verifying against `ca`.
pub fn client_config(ca: &CertificateDer<'static>) -> ClientConfig {
    client_builder(
        rustls::crypto::aws_lc_rs::default_provider(),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    )
    .with_root_certificates(roots(&[ca]))
    .with_no_client_auth()
}

pub fn client_builder(
    provider: rustls::crypto::CryptoProvider,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("client versions")
}

pub async fn connect(
    addr: std::net::SocketAddr,
    config: ClientConfig,
    server_name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("client handshake timed out")
}

/// The end-entity certificate the server presented.
pub fn server_leaf(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("server certificate")
        .clone()
        .into_owned()
}

/// Reads one line from a client stream (after the handshake this also processes any
/// NewSessionTicket messages the server sent before it).
pub async fn read_line(tls: &mut BufReader<TlsStream<TcpStream>>) -> String {
    let mut line = String::new();
    tokio::time::timeout(WAIT, tls.read_line(&mut line))
        .await
        .expect("read timed out")
        .expect("read");
    line
}

pub async fn send_line(tls: &mut BufReader<TlsStream<TcpStream>>, line: &str) {
    tls.get_mut()
        .write_all(line.as_bytes())
        .await
        .expect("write");
    tls.get_mut().flush().await.expect("flush");
}

pub fn cert_der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("cert pem")
}

pub fn key_der(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("key pem")
}

/// A server-certificate verifier for tests: verifies chain and signatures properly, but
/// can pretend to support RSA signatures only (like an old client), or check the
/// certificate against a fixed name instead of the SNI that was sent.
#[derive(Debug)]
pub struct TestVerifier {
    inner: Arc<WebPkiServerVerifier>,
    rsa_only: bool,
    verify_as: Option<ServerName<'static>>,
}

impl TestVerifier {
    fn new(ca: &CertificateDer<'static>, rsa_only: bool, verify_as: Option<&str>) -> Arc<Self> {
        let inner = WebPkiServerVerifier::builder_with_provider(
            roots(&[ca]),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .expect("verifier");
        Arc::new(Self {
            inner,
            rsa_only,
            verify_as: verify_as.map(|n| ServerName::try_from(n.to_string()).expect("name")),
        })
    }

    pub fn rsa_only(ca: &CertificateDer<'static>) -> Arc<Self> {
        Self::new(ca, true, None)
    }

    pub fn verify_as(ca: &CertificateDer<'static>, name: &str) -> Arc<Self> {
        Self::new(ca, false, Some(name))
    }
}

impl ServerCertVerifier for TestVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = self.verify_as.as_ref().unwrap_or(server_name);
        self.inner
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let rsa = [
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
        ];
        self.inner
            .supported_verify_schemes()
            .into_iter()
            .filter(|s| !self.rsa_only || rsa.contains(s))
            .collect()
    }
}

/// A client with `verifier` and rustls' default aws-lc-rs provider.
pub fn client_with_verifier(
    verifier: Arc<TestVerifier>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    client_builder(rustls::crypto::aws_lc_rs::default_provider(), versions)
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

/// A client session store that counts the TLS 1.3 tickets it is given.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<ClientSessionMemoryCache>,
    pub tickets: AtomicUsize,
}

impl CountingStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(ClientSessionMemoryCache::new(32)),
            tickets: AtomicUsize::new(0),
        })
    }

    pub fn count(&self) -> usize {
        self.tickets.load(Ordering::SeqCst)
    }
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group)
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value)
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name)
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.tickets.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(server_name, value)
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}
