//! What a handshake negotiates: versions, groups, ciphers, ALPN, session tickets, and
//! that older or weaker handshakes are refused outright.

mod common;

use std::sync::Arc;

use common::*;
use rustls::HandshakeKind;
use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs::{self, kx_group};
use sealpost_tls::{AppProtocol, TlsServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Fixture {
    _dir: tempfile::TempDir,
    ca: TestCa,
    server: Arc<TlsServer>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (cert, key, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let pair = write_pair(dir.path(), "cert", &cert, &key);
    let server = TlsServer::load(settings(dir.path(), Some(pair))).expect("load");
    Fixture {
        _dir: dir,
        ca,
        server,
    }
}

#[tokio::test]
async fn tls13_prefers_aes_128_gcm_and_hybrid_post_quantum_group() {
    let f = fixture();
    let mut server = serve(f.server.acceptor("smtps", AppProtocol::Smtp, true)).await;
    let tls = connect(server.addr, client_config(&f.ca.der), "mail.example.test")
        .await
        .expect("handshake");
    let info = server.next_handshake().await.expect("server handshake");
    assert_eq!(info.version, "TLSv1.3");
    // The rustls client lists AES-256 first; the server's order wins.
    assert_eq!(info.cipher, "TLS13_AES_128_GCM_SHA256");
    assert_eq!(info.group, "X25519MLKEM768");
    assert_eq!(info.received_clause(), "TLSv1.3 TLS_AES_128_GCM_SHA256");
    let conn = tls.get_ref().1;
    assert_eq!(
        conn.negotiated_key_exchange_group().map(|g| g.name()),
        Some(rustls::NamedGroup::X25519MLKEM768)
    );
}

#[tokio::test]
async fn x25519_is_used_when_the_client_offers_no_post_quantum_group() {
    let f = fixture();
    let mut server = serve(f.server.acceptor("smtps", AppProtocol::Smtp, true)).await;
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        ..aws_lc_rs::default_provider()
    };
    let config = client_builder(provider, &[&rustls::version::TLS13])
        .with_root_certificates(roots(&[&f.ca.der]))
        .with_no_client_auth();
    connect(server.addr, config, "mail.example.test")
        .await
        .expect("handshake");
    let info = server.next_handshake().await.expect("server handshake");
    assert_eq!(info.group, "X25519");
}

#[tokio::test]
async fn tls12_uses_ecdhe_with_aead() {
    let f = fixture();
    let mut server = serve(f.server.acceptor("smtps", AppProtocol::Smtp, true)).await;
    let config = client_builder(aws_lc_rs::default_provider(), &[&rustls::version::TLS12])
        .with_root_certificates(roots(&[&f.ca.der]))
        .with_no_client_auth();
    connect(server.addr, config, "mail.example.test")
        .await
        .expect("handshake");
    let info = server.next_handshake().await.expect("server handshake");
    assert_eq!(info.version, "TLSv1.2");
    assert_eq!(info.cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    // The hybrid group is TLS 1.3 only.
    assert_eq!(info.group, "X25519");
}

#[tokio::test]
async fn client_with_only_groups_we_do_not_offer_is_refused() {
    let f = fixture();
    let mut server = serve(f.server.acceptor("smtps", AppProtocol::Smtp, true)).await;
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: vec![kx_group::MLKEM768],
        ..aws_lc_rs::default_provider()
    };
    let config = client_builder(provider, &[&rustls::version::TLS13])
        .with_root_certificates(roots(&[&f.ca.der]))
        .with_no_client_auth();
    assert!(
        connect(server.addr, config, "mail.example.test")
            .await
            .is_err()
    );
    assert!(server.next_handshake().await.is_err());
}

/// Builds a raw ClientHello record, for handshakes no modern library will send.
fn client_hello(legacy_version: [u8; 2], suites: &[u16], extensions: &[u8]) -> Vec<u8> {
    let mut body = legacy_version.to_vec();
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for suite in suites {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(extensions);
    let mut handshake = vec![1]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![22, 3, 1]; // handshake record
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

fn extension(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// signature_algorithms, supported_groups (x25519, P-256), ec_point_formats.
fn modern_extensions() -> Vec<u8> {
    let mut extensions = extension(0x000d, &[0, 4, 0x04, 0x03, 0x04, 0x01]);
    extensions.extend(extension(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]));
    extensions.extend(extension(0x000b, &[1, 0]));
    extensions
}

/// Sends `hello` and returns the alert description the server answered with.
async fn alert_for(hello: Vec<u8>) -> u8 {
    let f = fixture();
    let mut server = serve(f.server.acceptor("smtps", AppProtocol::Smtp, true)).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(&hello).await.expect("write");
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply))
        .await
        .expect("server did not answer")
        .expect("read");
    assert!(server.next_handshake().await.is_err(), "server accepted");
    assert!(reply.len() >= 7, "no alert: {reply:?}");
    assert_eq!(reply[0], 21, "expected an alert record: {reply:?}");
    assert_eq!(reply[5], 2, "expected a fatal alert: {reply:?}");
    reply[6]
}

#[tokio::test]
async fn tls10_and_tls11_client_hellos_are_refused() {
    // RFC 8996: TLS 1.0 and 1.1 MUST NOT be negotiated. The hello carries everything
    // else a server could want, so only the version is at fault.
    for version in [[3, 1], [3, 2]] {
        let suites = [0xc02b, 0xc013, 0xc014, 0x002f, 0x0035];
        let alert = alert_for(client_hello(version, &suites, &modern_extensions())).await;
        assert_eq!(alert, 70, "protocol_version alert for {version:?}");
    }
}

#[tokio::test]
async fn tls12_client_hello_without_ecdhe_aead_suites_is_refused() {
    let suites = [
        0x009c, // TLS_RSA_WITH_AES_128_GCM_SHA256: no forward secrecy
        0x009e, // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256: finite-field DH
        0x002f, // TLS_RSA_WITH_AES_128_CBC_SHA
        0xc013, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: CBC
        0xc023, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: CBC
        0x0005, // TLS_RSA_WITH_RC4_128_SHA
    ];
    let alert = alert_for(client_hello([3, 3], &suites, &modern_extensions())).await;
    assert_eq!(alert, 40, "handshake_failure alert");
}

fn alpn_client(ca: &TestCa, protocols: &[&[u8]]) -> rustls::ClientConfig {
    let mut config = client_config(&ca.der);
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    config
}

#[tokio::test]
async fn alpn_for_another_protocol_is_refused() {
    // ALPACA: a client talking IMAP must not be able to land on the SMTP port.
    let f = fixture();
    let mut server = serve(f.server.acceptor("smtps", AppProtocol::Smtp, true)).await;
    let result = connect(
        server.addr,
        alpn_client(&f.ca, &[b"imap"]),
        "mail.example.test",
    )
    .await;
    assert!(result.is_err(), "handshake must fail");
    let error = server
        .next_handshake()
        .await
        .expect_err("server must refuse");
    assert!(
        error.contains("doesn't support any known protocol"),
        "{error}"
    );
}

#[tokio::test]
async fn alpn_for_the_listeners_protocol_is_accepted() {
    let f = fixture();
    for (protocol, id) in [
        (AppProtocol::Smtp, "smtp"),
        (AppProtocol::Imap, "imap"),
        (AppProtocol::Pop3, "pop3"),
    ] {
        let mut server = serve(f.server.acceptor("any", protocol, true)).await;
        let tls = connect(
            server.addr,
            alpn_client(&f.ca, &[b"h2", id.as_bytes()]),
            "mail.example.test",
        )
        .await
        .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(id.as_bytes()));
        let info = server.next_handshake().await.expect("server handshake");
        assert_eq!(info.alpn.as_deref(), Some(id));
    }
}

#[tokio::test]
async fn no_alpn_is_accepted() {
    let f = fixture();
    let mut server = serve(f.server.acceptor("imaps", AppProtocol::Imap, true)).await;
    connect(server.addr, alpn_client(&f.ca, &[]), "mail.example.test")
        .await
        .expect("handshake");
    let info = server.next_handshake().await.expect("server handshake");
    assert_eq!(info.alpn, None);
}

fn counting_client(ca: &TestCa, store: &Arc<CountingStore>) -> rustls::ClientConfig {
    let mut config = client_config(&ca.der);
    config.resumption = Resumption::store(store.clone());
    config
}

async fn greeted(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> BufReader<tokio_rustls::client::TlsStream<TcpStream>> {
    let tls = connect(addr, config, "mail.example.test")
        .await
        .expect("handshake");
    let mut tls = BufReader::new(tls);
    assert_eq!(read_line(&mut tls).await, "220 ready\r\n");
    tls
}

#[tokio::test]
async fn session_tickets_are_issued_when_enabled_and_resume_on_other_listeners() {
    let f = fixture();
    let mut imaps = serve(f.server.acceptor("imaps", AppProtocol::Imap, true)).await;
    let mut submissions = serve(f.server.acceptor("submissions", AppProtocol::Smtp, true)).await;
    let store = CountingStore::new();
    // One client config: rustls clients only resume with the verifier that made the ticket.
    let config = counting_client(&f.ca, &store);
    let first = greeted(imaps.addr, config.clone()).await;
    imaps.next_handshake().await.expect("first handshake");
    assert!(store.count() > 0, "no NewSessionTicket received");
    assert_eq!(
        first.get_ref().get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );
    let second = greeted(submissions.addr, config).await;
    submissions
        .next_handshake()
        .await
        .expect("second handshake");
    assert_eq!(
        second.get_ref().get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed),
        "one ticket key is shared by all listeners with tickets on"
    );
}

#[tokio::test]
async fn no_session_tickets_when_disabled() {
    let f = fixture();
    let mut smtp = serve(f.server.acceptor("smtp", AppProtocol::Smtp, false)).await;
    let store = CountingStore::new();
    let config = counting_client(&f.ca, &store);
    let mut tls = greeted(smtp.addr, config.clone()).await;
    smtp.next_handshake().await.expect("handshake");
    // A round trip after the greeting: anything sent before it has been processed.
    send_line(&mut tls, "NOOP\r\n").await;
    assert_eq!(read_line(&mut tls).await, "NOOP\r\n");
    assert_eq!(store.count(), 0, "NewSessionTicket sent with tickets off");
    let again = greeted(smtp.addr, config).await;
    smtp.next_handshake().await.expect("handshake");
    assert_eq!(
        again.get_ref().get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );
}

#[tokio::test]
async fn acceptor_config_has_no_early_data_and_server_cipher_order() {
    let f = fixture();
    let config = f.server.acceptor("smtp", AppProtocol::Smtp, false).config();
    assert_eq!(config.max_early_data_size, 0);
    assert!(config.ignore_client_order);
    assert_eq!(config.send_tls13_tickets, 0);
    assert!(!config.ticketer.enabled());
    assert_eq!(config.alpn_protocols, vec![b"smtp".to_vec()]);
    let with_tickets = f.server.acceptor("imaps", AppProtocol::Imap, true).config();
    assert!(with_tickets.ticketer.enabled());
    assert!(with_tickets.send_tls13_tickets > 0);
    assert_eq!(with_tickets.max_early_data_size, 0);
}
