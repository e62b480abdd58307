//! The POP3 service end to end on loopback: the real driver, the embedded store and a
//! self-signed TLS server, one listener like port 110 (STLS) and one like 995 (implicit
//! TLS), talked to by a small client written for these tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sealpost_pop3::{MaildropLocks, Pop3Limits, Pop3Service};
use sealpost_store::{
    AccountId, Delivery, EmbeddedStore, LocalTarget, Login, LoginPolicy, Store, password,
};
use sealpost_tls::{AppProtocol, MailStream, TlsServer, TlsSettings};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(10);
const ALICE: &str = "alice@example.test";
const PASSWORD: &str = "correct horse";

struct Server {
    store: Arc<EmbeddedStore>,
    alice: AccountId,
    /// Like port 110: plaintext, STLS offered.
    plain: SocketAddr,
    /// Like port 995: implicit TLS.
    implicit: SocketAddr,
    connector: TlsConnector,
    /// The server's generated CA, for clients that bring their own certificate.
    ca: Vec<u8>,
    shutdown: watch::Sender<bool>,
    /// One message per session that has ended.
    ended: mpsc::UnboundedReceiver<()>,
    _dir: TempDir,
}

impl Server {
    async fn start() -> Server {
        Server::build(Pop3Limits::default(), None).await
    }

    async fn with_limits(limits: Pop3Limits) -> Server {
        Server::build(limits, None).await
    }

    /// Client certificates are requested and verified against `client_ca`.
    async fn with_client_ca(client_ca: &ClientCa) -> Server {
        Server::build(Pop3Limits::default(), Some(client_ca)).await
    }

    async fn build(limits: Pop3Limits, client_ca: Option<&ClientCa>) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).expect("store"));
        let hash = password::hash(PASSWORD).expect("hash");
        let alice = store
            .create_account(ALICE, &hash)
            .await
            .expect("account")
            .id;
        let client_ca = client_ca.map(|ca| {
            let path = dir.path().join("client-ca.pem");
            std::fs::write(&path, &ca.pem).expect("write client CA");
            path
        });
        let tls = TlsServer::load(TlsSettings {
            hostname: "mail.example.test".into(),
            data_dir: dir.path().join("data"),
            cert: None,
            key: None,
            extra: Vec::new(),
            client_ca,
        })
        .expect("self-signed TLS");
        let ca = std::fs::read(tls.ca_certificate_path().expect("self-signed")).expect("CA");
        let service = Arc::new(Pop3Service {
            hostname: "mail.example.test".into(),
            store: store.clone(),
            login: Arc::new(Login::new(store.clone(), LoginPolicy::default())),
            tls: tls.acceptor("pop3", AppProtocol::Pop3, true),
            limits,
            maildrop_locks: MaildropLocks::default(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let plain = listen(
            service.clone(),
            false,
            shutdown_rx.clone(),
            ended_tx.clone(),
        )
        .await;
        let implicit = listen(service, true, shutdown_rx, ended_tx).await;
        Server {
            store,
            alice,
            plain,
            implicit,
            connector: connector(&ca, None),
            ca,
            shutdown,
            ended,
            _dir: dir,
        }
    }

    async fn deliver(&self, raw: &[u8]) -> u32 {
        let delivered = self
            .store
            .deliver(Delivery {
                raw: Arc::new(raw.to_vec()),
                internal_date: 0,
                local: vec![LocalTarget {
                    account: self.alice,
                    mailbox: "INBOX".into(),
                }],
                outbound: None,
            })
            .await
            .expect("deliver");
        delivered.messages[0].1
    }

    async fn inbox_uids(&self) -> Vec<u32> {
        let inbox = self
            .store
            .mailbox(self.alice, "INBOX")
            .await
            .expect("store")
            .expect("INBOX");
        let messages = self.store.messages(inbox.id).await.expect("messages");
        messages.iter().map(|m| m.uid).collect()
    }

    async fn session_ended(&mut self) {
        tokio::time::timeout(WAIT, self.ended.recv())
            .await
            .expect("session ends in time")
            .expect("listener alive");
    }

    /// Port 110, greeting read.
    async fn plain(&self) -> Client<TcpStream> {
        let tcp = TcpStream::connect(self.plain).await.expect("connect");
        let mut client = Client::new(tcp);
        assert_eq!(client.line().await, "+OK sealpost POP3 ready\r\n");
        client
    }

    /// Port 995, greeting read.
    async fn implicit(&self) -> Client<TlsStream<TcpStream>> {
        self.implicit_with(&self.connector).await
    }

    /// Port 995 presenting a client certificate.
    async fn implicit_with_certificate(
        &self,
        certificate: (CertificateDer<'static>, PrivateKeyDer<'static>),
    ) -> Client<TlsStream<TcpStream>> {
        self.implicit_with(&connector(&self.ca, Some(certificate)))
            .await
    }

    async fn implicit_with(&self, connector: &TlsConnector) -> Client<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.implicit).await.expect("connect");
        let name = ServerName::try_from("mail.example.test").expect("name");
        let tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake");
        let mut client = Client::new(tls);
        assert_eq!(client.line().await, "+OK sealpost POP3 ready\r\n");
        client
    }

    /// Port 110 after STLS.
    async fn upgraded(&self) -> Client<TlsStream<TcpStream>> {
        let mut client = self.plain().await;
        assert_eq!(
            client.command("STLS").await,
            "+OK begin TLS negotiation\r\n"
        );
        self.starttls(client).await
    }

    async fn starttls(&self, client: Client<TcpStream>) -> Client<TlsStream<TcpStream>> {
        assert!(
            client.io.buffer().is_empty(),
            "nothing may follow the STLS reply"
        );
        Client::new(self.handshake(client.io.into_inner()).await)
    }

    async fn handshake(&self, tcp: TcpStream) -> TlsStream<TcpStream> {
        let name = ServerName::try_from("mail.example.test").expect("name");
        tokio::time::timeout(WAIT, self.connector.connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake")
    }
}

async fn listen(
    service: Arc<Pop3Service>,
    implicit_tls: bool,
    shutdown: watch::Receiver<bool>,
    ended: mpsc::UnboundedSender<()>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let service = service.clone();
            let shutdown = shutdown.clone();
            let ended = ended.clone();
            tokio::spawn(async move {
                let stream = MailStream::plain(tcp, peer);
                let stream = if implicit_tls {
                    match service.tls.accept(stream).await {
                        Ok(stream) => stream,
                        Err(_) => return,
                    }
                } else {
                    stream
                };
                service.serve(stream, shutdown).await;
                let _ = ended.send(());
            });
        }
    });
    addr
}

fn connector(
    ca_pem: &[u8],
    certificate: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let builder = ClientConfig::builder_with_provider(sealpost_tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match certificate {
        Some((cert, key)) => builder
            .with_client_auth_cert(vec![cert], key)
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// A CA issuing client certificates, as `[tls] client_ca` names.
struct ClientCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClientCa {
    fn new() -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Client CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate naming `email` as its rfc822Name.
    fn client(&self, email: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Test User");
        params.subject_alt_names = vec![SanType::Rfc822Name(email.try_into().expect("IA5"))];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("client certificate");
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
        (cert.der().clone(), key)
    }
}

struct Client<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(io: S) -> Self {
        Self {
            io: BufReader::new(io),
        }
    }

    async fn raw_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        tokio::time::timeout(WAIT, self.io.read_until(b'\n', &mut line))
            .await
            .expect("reply in time")
            .expect("read");
        line
    }

    async fn line(&mut self) -> String {
        String::from_utf8(self.raw_line().await).expect("UTF-8 reply")
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.expect("write");
        self.io.get_mut().flush().await.expect("flush");
    }

    async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await
    }

    /// The rest of a multi-line response, dot-unstuffed, without the terminator.
    async fn body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.raw_line().await;
            assert!(
                !line.is_empty(),
                "connection closed inside a multi-line response"
            );
            if line == b".\r\n" {
                return body;
            }
            body.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
        }
    }

    async fn multiline(&mut self, line: &str) -> (String, String) {
        let status = self.command(line).await;
        assert!(status.starts_with("+OK"), "{line}: {status}");
        (status, String::from_utf8(self.body().await).expect("UTF-8"))
    }

    async fn login(&mut self) {
        assert_eq!(
            self.command(&format!("USER {ALICE}")).await,
            "+OK send PASS\r\n"
        );
        let reply = self.command(&format!("PASS {PASSWORD}")).await;
        assert!(reply.starts_with("+OK alice@example.test has "), "{reply}");
    }

    async fn expect_closed(&mut self) {
        assert!(
            self.raw_line().await.is_empty(),
            "the server closes the connection"
        );
    }
}

const MESSAGE: &[u8] =
    b"From: bob@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n.\r\nplain\r\n";

#[tokio::test]
async fn capa_before_stls_hides_user_and_plain() {
    let server = Server::start().await;
    let mut client = server.plain().await;
    let (_, capa) = client.multiline("CAPA").await;
    assert!(capa.contains("STLS\r\n"));
    assert!(!capa.contains("USER"));
    assert!(!capa.contains("SASL"));
}

#[tokio::test]
async fn user_refused_before_stls_on_port_110() {
    let server = Server::start().await;
    let mut client = server.plain().await;
    assert!(
        client
            .command(&format!("USER {ALICE}"))
            .await
            .starts_with("-ERR [AUTH] ")
    );
    assert!(
        client
            .command(&format!("PASS {PASSWORD}"))
            .await
            .starts_with("-ERR [AUTH] ")
    );
    let plain = STANDARD.encode(format!("\0{ALICE}\0{PASSWORD}"));
    assert!(
        client
            .command(&format!("AUTH PLAIN {plain}"))
            .await
            .starts_with("-ERR [AUTH] ")
    );
    assert!(client.command("STAT").await.starts_with("-ERR"));
}

#[tokio::test]
async fn capa_after_stls_shows_user_and_plain_not_stls() {
    let server = Server::start().await;
    let mut client = server.upgraded().await;
    let (_, capa) = client.multiline("CAPA").await;
    assert!(capa.contains("USER\r\n"));
    assert!(capa.contains("SASL PLAIN\r\n"));
    assert!(!capa.contains("STLS"));
    client.login().await;
}

#[tokio::test]
async fn stls_discards_pipelined_commands() {
    let server = Server::start().await;
    let mut client = server.plain().await;
    // An attacker on the path appends a USER to the client's STLS (CVE-2011-0411).
    client
        .send(format!("STLS\r\nUSER {ALICE}\r\n").as_bytes())
        .await;
    assert_eq!(client.line().await, "+OK begin TLS negotiation\r\n");
    let mut client = server.starttls(client).await;
    assert_eq!(
        client.command(&format!("PASS {PASSWORD}")).await,
        "-ERR USER first\r\n",
        "the injected USER must not reach the TLS session"
    );
}

#[tokio::test]
async fn retr_and_dele_over_implicit_tls() {
    let mut server = Server::start().await;
    let first = server.deliver(MESSAGE).await;
    let second = server.deliver(b"Subject: two\r\n\r\nbody\r\n").await;
    let mut client = server.implicit().await;
    client.login().await;
    assert_eq!(
        client.command("STAT").await,
        format!("+OK 2 {}\r\n", MESSAGE.len() + 22)
    );
    let (status, text) = client.multiline("RETR 1").await;
    assert_eq!(status, format!("+OK {} octets\r\n", MESSAGE.len()));
    assert_eq!(text.as_bytes(), MESSAGE);
    assert_eq!(client.command("DELE 1").await, "+OK message 1 deleted\r\n");
    assert_eq!(
        client.command("QUIT").await,
        "+OK mail.example.test POP3 server signing off (1 messages deleted)\r\n"
    );
    client.expect_closed().await;
    server.session_ended().await;
    assert_eq!(server.inbox_uids().await, [second]);
    assert_ne!(first, second);
}

#[tokio::test]
async fn dele_takes_effect_only_at_quit() {
    let mut server = Server::start().await;
    let uids = [
        server.deliver(MESSAGE).await,
        server.deliver(MESSAGE).await,
        server.deliver(MESSAGE).await,
    ];
    let mut client = server.upgraded().await;
    client.login().await;
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    assert!(client.command("DELE 3").await.starts_with("+OK"));
    assert_eq!(
        server.inbox_uids().await,
        uids,
        "nothing deleted before QUIT"
    );
    assert!(client.command("QUIT").await.starts_with("+OK"));
    server.session_ended().await;
    assert_eq!(server.inbox_uids().await, [uids[1]]);
}

#[tokio::test]
async fn dropped_connection_deletes_nothing() {
    let mut server = Server::start().await;
    let uids = [server.deliver(MESSAGE).await, server.deliver(MESSAGE).await];
    let mut client = server.implicit().await;
    client.login().await;
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    assert!(client.command("DELE 2").await.starts_with("+OK"));
    drop(client);
    server.session_ended().await;
    assert_eq!(server.inbox_uids().await, uids);
}

#[tokio::test]
async fn second_session_for_same_maildrop_is_refused() {
    let mut server = Server::start().await;
    server.deliver(MESSAGE).await;
    let mut first = server.implicit().await;
    first.login().await;

    let mut second = server.upgraded().await;
    assert!(
        second
            .command(&format!("USER {ALICE}"))
            .await
            .starts_with("+OK")
    );
    assert!(
        second
            .command(&format!("PASS {PASSWORD}"))
            .await
            .starts_with("-ERR [IN-USE] ")
    );

    // The lock goes with the first session, even when it just disappears.
    drop(first);
    server.session_ended().await;
    second.login().await;
}

#[tokio::test]
async fn uidl_is_stable_across_sessions() {
    let mut server = Server::start().await;
    for _ in 0..3 {
        server.deliver(MESSAGE).await;
    }
    let mut client = server.implicit().await;
    client.login().await;
    let (_, before) = client.multiline("UIDL").await;
    let ids: Vec<String> = before
        .lines()
        .map(|l| l.split_once(' ').expect("n id").1.to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter()
            .all(|id| id.bytes().all(|b| (0x21..=0x7e).contains(&b))),
        "RFC 1939 §7: printable, no spaces"
    );
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    assert!(client.command("QUIT").await.starts_with("+OK"));
    server.session_ended().await;
    server.deliver(MESSAGE).await;

    let mut client = server.implicit().await;
    client.login().await;
    let (_, after) = client.multiline("UIDL").await;
    let after: Vec<String> = after
        .lines()
        .map(|l| l.split_once(' ').expect("n id").1.to_string())
        .collect();
    assert_eq!(after.len(), 3);
    assert_eq!(after[..2], ids[1..], "the survivors keep their ids");
    assert!(!ids.contains(&after[2]), "a new message gets a new id");
    assert_eq!(
        client.command("UIDL 1").await,
        format!("+OK 1 {}\r\n", ids[1]),
    );
}

#[tokio::test]
async fn list_sizes_are_octets_of_crlf_form() {
    let server = Server::start().await;
    server.deliver(MESSAGE).await;
    let mut client = server.implicit().await;
    client.login().await;
    assert_eq!(
        client.command("LIST 1").await,
        format!("+OK 1 {}\r\n", MESSAGE.len())
    );
    let (status, list) = client.multiline("LIST").await;
    assert_eq!(
        status,
        format!("+OK 1 messages ({} octets)\r\n", MESSAGE.len())
    );
    assert_eq!(list, format!("1 {}\r\n", MESSAGE.len()));
    // What RETR sends before dot-stuffing is exactly that many octets.
    let (_, text) = client.multiline("RETR 1").await;
    assert_eq!(text.len(), MESSAGE.len());
}

#[tokio::test]
async fn retr_of_a_large_message_is_exact() {
    let server = Server::start().await;
    let mut message = b"Subject: big\r\n\r\n".to_vec();
    while message.len() < 1024 * 1024 {
        message.extend_from_slice(b".a line starting with a dot, then some text\r\n");
        message.extend_from_slice(b"..two dots\r\n.\r\nordinary line of body text\r\n");
    }
    server.deliver(&message).await;
    let mut client = server.upgraded().await;
    client.login().await;
    let status = client.command("RETR 1").await;
    assert_eq!(status, format!("+OK {} octets\r\n", message.len()));
    assert_eq!(client.body().await, message);
    assert_eq!(client.command("NOOP").await, "+OK\r\n");
}

#[tokio::test]
async fn top_returns_headers_and_n_lines() {
    let server = Server::start().await;
    server.deliver(MESSAGE).await;
    let mut client = server.implicit().await;
    client.login().await;
    let (_, top) = client.multiline("TOP 1 1").await;
    assert_eq!(
        top,
        "From: bob@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n"
    );
}

#[tokio::test]
async fn message_numbers_are_fixed_for_the_session() {
    let server = Server::start().await;
    server.deliver(MESSAGE).await;
    let mut client = server.implicit().await;
    client.login().await;
    server.deliver(MESSAGE).await;
    assert_eq!(
        client.command("STAT").await,
        format!("+OK 1 {}\r\n", MESSAGE.len())
    );
    assert_eq!(client.command("LIST 2").await, "-ERR no such message\r\n");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_reply() {
    let server = Server::start().await;
    let mut client = server.implicit().await;
    let mut replies = Vec::new();
    for user in [ALICE, "nobody@example.test"] {
        assert_eq!(
            client.command(&format!("USER {user}")).await,
            "+OK send PASS\r\n"
        );
        replies.push(client.command("PASS wrong").await);
    }
    assert_eq!(replies[0], "-ERR [AUTH] invalid credentials\r\n");
    assert_eq!(replies[0], replies[1]);
}

#[tokio::test]
async fn auth_plain_logs_in_with_continuation() {
    let server = Server::start().await;
    let mut client = server.implicit().await;
    assert_eq!(client.command("AUTH PLAIN").await, "+ \r\n");
    let response = STANDARD.encode(format!("\0{ALICE}\0{PASSWORD}"));
    let reply = client.command(&response).await;
    assert!(
        reply.starts_with("+OK alice@example.test has 0 messages"),
        "{reply}"
    );
}

#[tokio::test]
async fn overlong_command_line_is_refused_and_the_session_continues() {
    let server = Server::start().await;
    let mut client = server.plain().await;
    let reply = client.command(&format!("NOOP {}", "x".repeat(300))).await;
    assert!(reply.starts_with("-ERR line too long"), "{reply}");
    assert!(client.command("CAPA").await.starts_with("+OK"));
}

#[tokio::test]
async fn shutdown_ends_a_waiting_session_without_update() {
    let mut server = Server::start().await;
    let uid = server.deliver(MESSAGE).await;
    let mut client = server.implicit().await;
    client.login().await;
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    server.shutdown.send(true).expect("sessions listening");
    assert_eq!(client.line().await, "-ERR server shutting down\r\n");
    client.expect_closed().await;
    server.session_ended().await;
    assert_eq!(server.inbox_uids().await, [uid]);
}

#[tokio::test]
async fn idle_timeout_closes_without_update() {
    let mut server = Server::with_limits(Pop3Limits {
        idle_timeout: Duration::from_millis(300),
        ..Pop3Limits::default()
    })
    .await;
    let uid = server.deliver(MESSAGE).await;
    let mut client = server.implicit().await;
    client.login().await;
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    assert_eq!(
        client.line().await,
        "-ERR idle too long, closing connection\r\n"
    );
    client.expect_closed().await;
    server.session_ended().await;
    assert_eq!(server.inbox_uids().await, [uid]);
}

#[tokio::test]
async fn auth_external_logs_in_with_a_verified_client_certificate() {
    let client_ca = ClientCa::new();
    let server = Server::with_client_ca(&client_ca).await;
    let mut client = server
        .implicit_with_certificate(client_ca.client(ALICE))
        .await;
    let (_, capa) = client.multiline("CAPA").await;
    assert!(capa.contains("SASL PLAIN EXTERNAL\r\n"), "{capa}");
    let reply = client.command("AUTH EXTERNAL =").await;
    assert!(
        reply.starts_with("+OK alice@example.test has 0 messages"),
        "{reply}"
    );
}

#[tokio::test]
async fn auth_external_for_a_certificate_naming_no_account_fails() {
    let client_ca = ClientCa::new();
    let server = Server::with_client_ca(&client_ca).await;
    let mut client = server
        .implicit_with_certificate(client_ca.client("stranger@example.test"))
        .await;
    assert_eq!(
        client.command("AUTH EXTERNAL =").await,
        "-ERR [AUTH] invalid credentials\r\n"
    );
    let alice = STANDARD.encode(ALICE);
    assert_eq!(
        client.command(&format!("AUTH EXTERNAL {alice}")).await,
        "-ERR [AUTH] invalid credentials\r\n",
        "the certificate cannot be used to act as someone it does not name"
    );
}

#[tokio::test]
async fn auth_external_is_not_offered_without_a_client_certificate() {
    let client_ca = ClientCa::new();
    let server = Server::with_client_ca(&client_ca).await;
    let mut client = server.implicit().await;
    let (_, capa) = client.multiline("CAPA").await;
    assert!(capa.contains("SASL PLAIN\r\n"), "{capa}");
    assert_eq!(
        client.command("AUTH EXTERNAL =").await,
        "-ERR [AUTH] no verified client certificate\r\n"
    );
}
