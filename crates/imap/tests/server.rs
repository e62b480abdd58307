//! The IMAP service end to end on loopback: the real driver, the embedded store and a
//! self-signed TLS server, one listener like port 143 (STARTTLS) and one like 993
//! (implicit TLS), talked to by a small client written for these tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sealpost_imap::{ImapLimits, ImapService};
use sealpost_store::{
    AccountId, Delivery, EmbeddedStore, LocalTarget, Login, LoginPolicy, Store, password,
};
use sealpost_tls::{AppProtocol, MailStream, TlsServer, TlsSettings};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

const WAIT: Duration = Duration::from_secs(10);
const ALICE: &str = "alice@example.test";
const PASSWORD: &str = "correct horse";

struct Server {
    store: Arc<EmbeddedStore>,
    alice: AccountId,
    /// Like port 143: plaintext, STARTTLS offered.
    plain: SocketAddr,
    /// Like port 993: implicit TLS.
    implicit: SocketAddr,
    connector: TlsConnector,
    shutdown: watch::Sender<bool>,
    _dir: TempDir,
}

impl Server {
    async fn start() -> Server {
        Server::with_limits(ImapLimits::default()).await
    }

    async fn with_limits(limits: ImapLimits) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).expect("store"));
        let hash = password::hash(PASSWORD).expect("hash");
        let alice = store
            .create_account(ALICE, &hash)
            .await
            .expect("account")
            .id;
        let tls = TlsServer::load(TlsSettings {
            hostname: "mail.example.test".into(),
            data_dir: dir.path().join("data"),
            cert: None,
            key: None,
            extra: Vec::new(),
            client_ca: None,
        })
        .expect("self-signed TLS");
        let ca = std::fs::read(tls.ca_certificate_path().expect("self-signed")).expect("CA");
        let mut service = ImapService::new(
            "mail.example.test".into(),
            store.clone(),
            Arc::new(Login::new(store.clone(), LoginPolicy::default())),
            tls.acceptor("imap", AppProtocol::Imap, true),
        );
        service.limits = limits;
        let service = Arc::new(service);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let plain = listen(service.clone(), false, shutdown_rx.clone()).await;
        let implicit = listen(service, true, shutdown_rx).await;
        Server {
            store,
            alice,
            plain,
            implicit,
            connector: connector(&ca),
            shutdown,
            _dir: dir,
        }
    }

    async fn deliver(&self, raw: &[u8]) -> u32 {
        let delivered = self
            .store
            .deliver(Delivery {
                raw: Arc::new(raw.to_vec()),
                internal_date: 1_700_000_000,
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

    async fn plaintext(&self) -> Client {
        let tcp = TcpStream::connect(self.plain).await.expect("connect");
        Client::new(Box::new(tcp)).await
    }

    async fn tls(&self) -> Client {
        let tcp = TcpStream::connect(self.implicit).await.expect("connect");
        let tls = self
            .connector
            .connect(ServerName::try_from("mail.example.test").unwrap(), tcp)
            .await
            .expect("TLS handshake");
        Client::new(Box::new(tls)).await
    }

    async fn logged_in(&self) -> Client {
        let mut client = self.tls().await;
        let reply = client
            .command("a0 LOGIN \"alice@example.test\" \"correct horse\"")
            .await;
        assert!(reply.last().unwrap().starts_with("a0 OK"), "{reply:?}");
        client
    }
}

async fn listen(
    service: Arc<ImapService>,
    implicit: bool,
    shutdown: watch::Receiver<bool>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let stream = MailStream::plain(tcp, peer);
                let stream = if implicit {
                    match service.tls.accept(stream).await {
                        Ok(stream) => stream,
                        Err(_) => return,
                    }
                } else {
                    stream
                };
                service.serve(stream, shutdown).await;
            });
        }
    });
    addr
}

fn connector(ca_pem: &[u8]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let config = ClientConfig::builder_with_provider(sealpost_tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A line-oriented IMAP client that understands literals in responses.
struct Client {
    io: BufReader<Box<dyn Io>>,
    greeting: String,
}

impl Client {
    async fn new(io: Box<dyn Io>) -> Client {
        let mut client = Client {
            io: BufReader::new(io),
            greeting: String::new(),
        };
        client.greeting = client.line().await;
        client
    }

    async fn send(&mut self, text: &str) {
        self.io
            .get_mut()
            .write_all(text.as_bytes())
            .await
            .expect("write");
        self.io.get_mut().write_all(b"\r\n").await.expect("write");
    }

    /// One response line, with any literal it announces appended.
    async fn line(&mut self) -> String {
        let mut line = String::new();
        loop {
            let mut part = Vec::new();
            let n = tokio::time::timeout(WAIT, self.io.read_until(b'\n', &mut part))
                .await
                .expect("server answers in time")
                .expect("read");
            if n == 0 {
                return line;
            }
            let text = String::from_utf8_lossy(&part).into_owned();
            line.push_str(&text);
            let Some(size) = literal_size(&text) else {
                return line;
            };
            let mut literal = vec![0; size];
            self.io.read_exact(&mut literal).await.expect("literal");
            line.push_str(&String::from_utf8_lossy(&literal));
        }
    }

    /// Sends a tagged command and collects the responses through its completion.
    async fn command(&mut self, text: &str) -> Vec<String> {
        self.send(text).await;
        let tag = text.split(' ').next().unwrap().to_string();
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            assert!(
                !line.is_empty(),
                "connection closed during {text:?}: {lines:?}"
            );
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }
}

fn literal_size(line: &str) -> Option<usize> {
    let inner = line.strip_suffix("}\r\n")?;
    let open = inner.rfind('{')?;
    inner[open + 1..].parse().ok()
}

const MESSAGE: &[u8] =
    b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nHello.\r\n";

#[tokio::test]
async fn starttls_port_refuses_login_before_tls_and_forgets_everything_after() {
    let server = Server::start().await;
    let mut client = server.plaintext().await;
    assert!(
        client
            .greeting
            .starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED "),
        "{}",
        client.greeting
    );
    assert!(client.greeting.ends_with("] sealpost ready\r\n"));
    let reply = client
        .command("a LOGIN \"alice@example.test\" \"correct horse\"")
        .await;
    assert_eq!(
        reply,
        ["a NO [PRIVACYREQUIRED] LOGIN is disabled before STARTTLS\r\n"]
    );
    let reply = client.command("b CAPABILITY").await;
    assert!(reply[0].contains(" STARTTLS LOGINDISABLED "), "{reply:?}");
    assert!(!reply[0].contains("AUTH=PLAIN"), "{reply:?}");
    let reply = client.command("c STARTTLS").await;
    assert_eq!(reply, ["c OK Begin TLS negotiation now\r\n"]);

    let tcp = client.io.into_inner();
    let tls = server
        .connector
        .connect(ServerName::try_from("mail.example.test").unwrap(), tcp)
        .await
        .expect("TLS handshake after STARTTLS");
    let mut client = Client {
        io: BufReader::new(Box::new(tls)),
        greeting: String::new(),
    };
    let reply = client.command("d CAPABILITY").await;
    assert!(reply[0].contains(" AUTH=PLAIN "), "{reply:?}");
    assert!(!reply[0].contains("STARTTLS"), "{reply:?}");
    assert!(!reply[0].contains("LOGINDISABLED"), "{reply:?}");
    let reply = client
        .command("e LOGIN \"alice@example.test\" \"correct horse\"")
        .await;
    assert!(reply[0].starts_with("e OK [CAPABILITY "), "{reply:?}");
}

#[tokio::test]
async fn idle_client_sees_a_delivery_as_exists_within_one_second() {
    let server = Server::start().await;
    let mut client = server.logged_in().await;
    let reply = client.command("b SELECT INBOX").await;
    assert!(reply.contains(&"* 0 EXISTS\r\n".to_string()), "{reply:?}");
    client.send("c IDLE").await;
    assert_eq!(client.line().await, "+ idling\r\n");

    let delivered = Instant::now();
    server.deliver(MESSAGE).await;
    let line = tokio::time::timeout(Duration::from_secs(1), client.line())
        .await
        .expect("EXISTS within 1 s");
    assert_eq!(line, "* 1 EXISTS\r\n");
    assert!(delivered.elapsed() < Duration::from_secs(1));

    // A second delivery while still idle.
    server.deliver(MESSAGE).await;
    assert_eq!(client.line().await, "* 2 EXISTS\r\n");
    client.send("DONE").await;
    assert_eq!(client.line().await, "c OK IDLE terminated\r\n");
    let reply = client.command("d UID FETCH 1:* (FLAGS)").await;
    assert_eq!(reply.len(), 3, "{reply:?}");
}

#[tokio::test]
async fn imaplib_style_session_fetches_exact_bytes() {
    let server = Server::start().await;
    for _ in 0..300 {
        server.deliver(MESSAGE).await;
    }
    let mut client = server.logged_in().await;
    client.command("b SELECT INBOX").await;
    let reply = client.command("c UID FETCH 1:* (BODY.PEEK[])").await;
    assert_eq!(reply.len(), 301);
    let expected = format!(
        "* 7 FETCH (UID 7 BODY[] {{{}}}\r\n{})\r\n",
        MESSAGE.len(),
        String::from_utf8_lossy(MESSAGE)
    );
    assert_eq!(reply[6], expected);
    assert_eq!(reply[300], "c OK FETCH completed\r\n");
    let reply = client.command("d LOGOUT").await;
    assert_eq!(
        reply,
        ["* BYE logging out\r\n", "d OK LOGOUT completed\r\n"]
    );
}

#[tokio::test]
async fn append_with_a_synchronizing_literal_waits_for_the_continuation() {
    let server = Server::start().await;
    let mut client = server.logged_in().await;
    client
        .send(&format!("b APPEND INBOX (\\Seen) {{{}}}", MESSAGE.len()))
        .await;
    assert_eq!(client.line().await, "+ Ready for literal data\r\n");
    client.io.get_mut().write_all(MESSAGE).await.unwrap();
    client.send("").await;
    let line = client.line().await;
    assert!(line.starts_with("b OK [APPENDUID "), "{line}");
    let inbox = server
        .store
        .mailbox(server.alice, "INBOX")
        .await
        .unwrap()
        .unwrap();
    let stored = server
        .store
        .message_raw(inbox.id, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, MESSAGE);
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_session_goes_on() {
    let limits = ImapLimits {
        max_line: 1024,
        max_literal: 4096,
        ..ImapLimits::default()
    };
    let server = Server::with_limits(limits).await;
    let mut client = server.logged_in().await;
    assert_eq!(
        client.command("b FROBNICATE").await,
        ["b BAD unknown command FROBNICATE\r\n"]
    );
    assert_eq!(
        client.command("c FETCH 1:* (BODY[").await,
        ["c BAD bad body section\r\n"]
    );
    // An over-long line is skipped and answered; the next command is served.
    client.send(&format!("d NOOP {}", "x".repeat(2000))).await;
    assert_eq!(client.line().await, "* BAD [TOOBIG] line too long\r\n");
    assert_eq!(client.command("e NOOP").await, ["e OK NOOP completed\r\n"]);
    // A synchronizing literal over the limit is refused before it is sent...
    client.send("f APPEND INBOX {5000}").await;
    assert_eq!(
        client.line().await,
        "f NO [TOOBIG] literal too large (APPENDLIMIT=4096)\r\n"
    );
    // ...a non-synchronizing one is read, dropped and refused.
    client.send("g APPEND INBOX {5000+}").await;
    client.io.get_mut().write_all(&[b'x'; 5000]).await.unwrap();
    client.send("").await;
    assert_eq!(
        client.line().await,
        "g BAD [TOOBIG] literal too large (APPENDLIMIT=4096)\r\n"
    );
    assert_eq!(client.command("h NOOP").await, ["h OK NOOP completed\r\n"]);
}

#[tokio::test]
async fn shutdown_says_bye_to_waiting_and_idle_sessions() {
    let server = Server::start().await;
    let mut waiting = server.plaintext().await;
    let mut idle = server.logged_in().await;
    idle.command("b SELECT INBOX").await;
    idle.send("c IDLE").await;
    assert_eq!(idle.line().await, "+ idling\r\n");
    server.shutdown.send(true).unwrap();
    assert_eq!(waiting.line().await, "* BYE server shutting down\r\n");
    assert_eq!(idle.line().await, "* BYE server shutting down\r\n");
}

#[tokio::test]
async fn inactive_sessions_are_logged_out() {
    let limits = ImapLimits {
        autologout: Duration::from_millis(300),
        login_timeout: Duration::from_millis(300),
        ..ImapLimits::default()
    };
    let server = Server::with_limits(limits).await;
    let mut client = server.logged_in().await;
    client.command("b SELECT INBOX").await;
    client.send("c IDLE").await;
    assert_eq!(client.line().await, "+ idling\r\n");
    assert_eq!(
        client.line().await,
        "* BYE autologout; idle for too long\r\n"
    );
    let mut fresh = server.tls().await;
    assert_eq!(
        fresh.line().await,
        "* BYE autologout; idle for too long\r\n"
    );
}
