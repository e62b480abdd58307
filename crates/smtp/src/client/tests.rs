//! The client against the real sealpost SMTP server on loopback (TLS with a generated
//! CA), and against small scripted servers for what a well-behaved server never does:
//! injected replies, silence, floods, refusals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use sealpost_store::{Login, LoginPolicy, Store};
use sealpost_tls::{AppProtocol, Line, MailStream, TlsAcceptor, TlsServer, TlsSettings};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::*;
use crate::testing::{FakeStore, HOSTNAME};
use crate::{ListenerKind, SmtpLimits, SmtpService};

/// A generated CA and server certificate for [`HOSTNAME`], and a client that trusts it.
struct TestTls {
    _dir: TempDir,
    acceptor: TlsAcceptor,
    client: Arc<ClientConfig>,
}

fn test_tls() -> TestTls {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = TlsServer::load(TlsSettings {
        hostname: HOSTNAME.into(),
        data_dir: dir.path().into(),
        cert: None,
        key: None,
        extra: Vec::new(),
        client_ca: None,
    })
    .expect("a self-signed certificate");
    let ca = server.ca_certificate_path().expect("a generated CA");
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("the CA's PEM"))
        .expect("a usable CA");
    TestTls {
        acceptor: server.acceptor("smtp", AppProtocol::Smtp, false),
        client: Arc::new(client_config(roots)),
        _dir: dir,
    }
}

fn client_config(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(sealpost_tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from(HOSTNAME).expect("a DNS name")
}

fn settings() -> ClientSettings {
    ClientSettings {
        helo: "client.example.org".into(),
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(10),
        data_timeout: Duration::from_secs(10),
    }
}

fn envelope(sender: &str, recipients: &[&str]) -> ClientEnvelope {
    ClientEnvelope {
        sender: sender.into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        require_tls: false,
    }
}

/// The real server: the SMTP service over `MailStream`, the fake store with alice and
/// bob at example.test.
struct RealServer {
    addr: SocketAddr,
    store: Arc<FakeStore>,
    tls: TestTls,
    _shutdown: watch::Sender<bool>,
}

async fn real_server(kind: ListenerKind, limits: SmtpLimits) -> RealServer {
    let tls = test_tls();
    let store = Arc::new(FakeStore::new());
    let store_dyn: Arc<dyn Store> = store.clone();
    let service = Arc::new(SmtpService {
        kind,
        hostname: HOSTNAME.into(),
        store: store_dyn.clone(),
        login: Arc::new(Login::new(store_dyn, LoginPolicy::default())),
        tls: tls.acceptor.clone(),
        limits,
        verifier: None,
        signer: None,
        dmarc_recorder: None,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let (shutdown, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let service = service.clone();
            let shutdown = shutdown_rx.clone();
            tokio::spawn(async move {
                service.serve(MailStream::plain(tcp, peer), shutdown).await;
            });
        }
    });
    RealServer {
        addr,
        store,
        tls,
        _shutdown: shutdown,
    }
}

async fn mx() -> RealServer {
    real_server(ListenerKind::Mx, SmtpLimits::default()).await
}

/// What the store kept of the only message, less our Received header.
fn stored_body(store: &FakeStore) -> Vec<u8> {
    let raw = store.only_message();
    let marker = b" +0000\r\n";
    let end = raw
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("a Received header");
    raw[end + marker.len()..].to_vec()
}

#[tokio::test]
async fn ehlo_reads_the_real_servers_offer() {
    let server = mx().await;
    let session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    assert_eq!(session.greeting().code, 220);
    assert_eq!(
        session.capabilities(),
        &Capabilities {
            starttls: true,
            pipelining: true,
            size: Some(SmtpLimits::default().max_message_size as u64),
            smtputf8: true,
            eight_bit_mime: true,
            chunking: true,
            requiretls: false,
            enhanced_status_codes: true,
        }
    );
    assert!(session.tls().is_none());
    session.quit().await;
}

#[tokio::test]
async fn starttls_verifies_the_server_and_says_ehlo_again() {
    let server = mx().await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    let details = session
        .starttls(server.tls.client.clone(), server_name())
        .await
        .unwrap();
    assert_eq!(details.version, "TLSv1.3");
    assert!(details.cipher.starts_with("TLS13_"), "{}", details.cipher);
    assert_eq!(details.peer_certificates.len(), 1);
    assert_eq!(session.tls(), Some(&details));
    // The offer after TLS: no second STARTTLS, and REQUIRETLS now.
    assert!(!session.capabilities().starttls);
    assert!(session.capabilities().requiretls);
    // A second STARTTLS is refused here and leaves the session as it was.
    let again = session
        .starttls(server.tls.client.clone(), server_name())
        .await
        .unwrap_err();
    assert!(matches!(again, ClientError::Tls(_)), "{again:?}");
    let mut env = envelope("sender@remote.test", &["alice@example.test"]);
    env.require_tls = true;
    let transaction = session
        .send(&env, b"Subject: tls\r\n\r\nsecret\r\n")
        .await
        .unwrap();
    assert!(transaction.delivered_to_any(), "{transaction:?}");
    let delivery = &server.store.deliveries()[0];
    assert!(
        String::from_utf8_lossy(&delivery.raw).contains("(TLSv1.3 "),
        "the server saw TLS"
    );
    session.quit().await;
}

#[tokio::test]
async fn starttls_with_an_untrusted_certificate_fails_and_ends_the_session() {
    let server = mx().await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    let untrusting = Arc::new(client_config(RootCertStore::empty()));
    let error = session
        .starttls(untrusting, server_name())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Tls(_)), "{error:?}");
    assert!(!error.is_permanent());
    // Never on in plaintext after a failed handshake.
    let after = session
        .send(
            &envelope("a@remote.test", &["alice@example.test"]),
            b"x\r\n",
        )
        .await
        .unwrap_err();
    assert!(matches!(after, ClientError::Io(_)), "{after:?}");
    assert!(server.store.deliveries().is_empty());
}

#[tokio::test]
async fn pipelined_transaction_with_one_refused_recipient() {
    let server = mx().await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    let message = b"Subject: hi\r\n\r\n.leading dot, kept as is by BDAT\r\n";
    let transaction = session
        .send(
            &envelope(
                "sender@remote.test",
                &[
                    "alice@example.test",
                    "nobody@example.test",
                    "bob@example.test",
                ],
            ),
            message,
        )
        .await
        .unwrap();
    assert_eq!(transaction.mail.code, 250);
    let codes: Vec<u16> = transaction.recipients.iter().map(|r| r.code).collect();
    assert_eq!(codes, [250, 550, 250]);
    assert_eq!(transaction.recipients[1].enhanced, Some((5, 1, 1)));
    assert!(transaction.data.as_ref().unwrap().is_positive());
    assert_eq!(transaction.outcome(1).unwrap().code, 550);
    assert_eq!(stored_body(&server.store), message);
    let delivery = &server.store.deliveries()[0];
    let accounts: Vec<_> = delivery.local.iter().map(|t| t.account).collect();
    assert_eq!(accounts, [1, 2]);
    session.quit().await;
}

#[tokio::test]
async fn data_path_dot_stuffs_and_the_server_stores_the_original() {
    let server = mx().await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    // The server offers CHUNKING; pretend it does not, to go through DATA.
    session.capabilities_mut().chunking = false;
    let message = "Subject: dots\r\n\r\n.\r\n..two\r\n8-bit: Grüße\r\nno final newline".as_bytes();
    let transaction = session
        .send(&envelope("a@remote.test", &["alice@example.test"]), message)
        .await
        .unwrap();
    assert!(transaction.delivered_to_any(), "{transaction:?}");
    let mut expected = message.to_vec();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(stored_body(&server.store), expected);
}

#[tokio::test]
async fn without_pipelining_each_command_waits_for_its_reply() {
    let server = mx().await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    session.capabilities_mut().pipelining = false;
    session.capabilities_mut().chunking = false;
    let transaction = session
        .send(
            &envelope(
                "a@remote.test",
                &["nobody@example.test", "bob@example.test"],
            ),
            b"Subject: step\r\n\r\nby step\r\n",
        )
        .await
        .unwrap();
    let codes: Vec<u16> = transaction.recipients.iter().map(|r| r.code).collect();
    assert_eq!(codes, [550, 250]);
    assert!(transaction.delivered_to_any());
    assert_eq!(
        stored_body(&server.store),
        b"Subject: step\r\n\r\nby step\r\n"
    );
}

#[tokio::test]
async fn no_accepted_recipient_sends_no_data_and_the_connection_stays_usable() {
    for (pipelining, chunking) in [(true, true), (true, false), (false, false)] {
        let server = mx().await;
        let mut session = ClientSession::connect(server.addr, &settings())
            .await
            .unwrap();
        session.capabilities_mut().pipelining = pipelining;
        session.capabilities_mut().chunking = chunking;
        let transaction = session
            .send(
                &envelope("a@remote.test", &["nobody@example.test"]),
                b"Subject: lost\r\n\r\nx\r\n",
            )
            .await
            .unwrap();
        assert_eq!(transaction.mail.code, 250);
        assert_eq!(transaction.recipients[0].code, 550);
        assert_eq!(transaction.data, None);
        // The server still holds the envelope: the next send resets it first.
        let next = session
            .send(
                &envelope("a@remote.test", &["alice@example.test"]),
                b"Subject: next\r\n\r\ny\r\n",
            )
            .await
            .unwrap();
        assert!(next.delivered_to_any(), "{pipelining} {chunking}: {next:?}");
        assert_eq!(stored_body(&server.store), b"Subject: next\r\n\r\ny\r\n");
    }
}

#[tokio::test]
async fn many_messages_over_one_connection() {
    let server = mx().await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    for i in 0..5 {
        let message = format!("Subject: {i}\r\n\r\nmessage {i}\r\n");
        let transaction = session
            .send(
                &envelope("a@remote.test", &["alice@example.test"]),
                message.as_bytes(),
            )
            .await
            .unwrap();
        assert!(transaction.delivered_to_any());
        if i == 2 {
            session.reset().await.unwrap();
        }
    }
    assert_eq!(server.store.deliveries().len(), 5);
    session.quit().await;
}

#[tokio::test]
async fn refused_mail_is_every_recipients_reply() {
    // Submission refuses MAIL before AUTH.
    let server = real_server(ListenerKind::Submission, SmtpLimits::default()).await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    let transaction = session
        .send(
            &envelope("alice@example.test", &["x@remote.test", "y@remote.test"]),
            b"x\r\n",
        )
        .await
        .unwrap();
    assert_eq!(transaction.mail.code, 530);
    assert_eq!(
        transaction.recipients,
        [transaction.mail.clone(), transaction.mail.clone()]
    );
    assert_eq!(transaction.data, None);
    assert!(server.store.deliveries().is_empty());
}

#[tokio::test]
async fn message_over_the_servers_size_is_refused_without_sending_it() {
    let limits = SmtpLimits {
        max_message_size: 100,
        ..SmtpLimits::default()
    };
    let server = real_server(ListenerKind::Mx, limits).await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    let error = session
        .send(
            &envelope("a@remote.test", &["alice@example.test"]),
            &[b'x'; 101],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Unsupported(_)), "{error:?}");
    assert!(error.is_permanent());
    assert_eq!(error.enhanced(), Some((5, 3, 4)));
    // Nothing was sent, so the session carries on.
    let transaction = session
        .send(
            &envelope("a@remote.test", &["alice@example.test"]),
            b"small\r\n",
        )
        .await
        .unwrap();
    assert!(transaction.delivered_to_any());
}

#[tokio::test]
async fn utf8_addresses_go_out_with_smtputf8() {
    let server = mx().await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    let transaction = session
        .send(
            &envelope("jörg@remote.test", &["alice@example.test"]),
            b"x\r\n",
        )
        .await
        .unwrap();
    assert!(transaction.delivered_to_any(), "{transaction:?}");
}

#[tokio::test]
async fn requiretls_needs_the_server_to_offer_it() {
    let server = mx().await;
    let mut session = ClientSession::connect(server.addr, &settings())
        .await
        .unwrap();
    let mut env = envelope("a@remote.test", &["alice@example.test"]);
    env.require_tls = true;
    // In plaintext the server does not offer REQUIRETLS.
    let error = session.send(&env, b"x\r\n").await.unwrap_err();
    assert_eq!(error.enhanced(), Some((5, 7, 30)), "{error}");
    assert!(server.store.deliveries().is_empty());
}

/// One step of a scripted server.
enum Step {
    /// Write these octets.
    Send(&'static [u8]),
    /// Read a line, which must start with this.
    Expect(&'static str),
    /// The TLS handshake, as a server.
    StartTls,
    /// Say nothing more (the connection stays open until the test ends).
    Stall,
    /// Say nothing for this long.
    Sleep(Duration),
}

/// A server that plays `script` to one client; returns every line it read.
async fn scripted(
    script: Vec<Step>,
    acceptor: Option<TlsAcceptor>,
) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let task = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.expect("a client");
        let mut stream = MailStream::plain(tcp, peer);
        let mut heard = Vec::new();
        for step in script {
            match step {
                Step::Send(bytes) => stream.write_all(bytes).await.expect("writing"),
                Step::Expect(prefix) => {
                    let Ok(Line::Complete(line)) = stream.read_line(4096).await else {
                        panic!("expected {prefix:?}, the client is gone");
                    };
                    let line = String::from_utf8_lossy(&line).into_owned();
                    assert!(
                        line.starts_with(prefix),
                        "expected {prefix:?}, got {line:?}"
                    );
                    heard.push(line);
                }
                Step::StartTls => {
                    let acceptor = acceptor.as_ref().expect("an acceptor");
                    stream = sealpost_tls::starttls(stream, acceptor)
                        .await
                        .expect("the server handshake");
                }
                Step::Stall => std::future::pending::<()>().await,
                Step::Sleep(pause) => tokio::time::sleep(pause).await,
            }
        }
        heard
    });
    (addr, task)
}

#[tokio::test]
async fn replies_injected_before_the_tls_handshake_are_discarded() {
    let tls = test_tls();
    let (addr, server) = scripted(
        vec![
            Step::Send(b"220 fake ESMTP\r\n"),
            Step::Expect("EHLO client.example.org"),
            Step::Send(b"250-fake\r\n250 STARTTLS\r\n"),
            Step::Expect("STARTTLS"),
            // A man in the middle appends a reply of his own after the 220.
            Step::Send(b"220 ready\r\n250 injected\r\n"),
            Step::StartTls,
            Step::Expect("EHLO client.example.org"),
            Step::Send(b"250-fake over TLS\r\n250 PIPELINING\r\n"),
            Step::Expect("QUIT"),
            Step::Send(b"221 bye\r\n"),
        ],
        Some(tls.acceptor.clone()),
    )
    .await;
    let mut session = ClientSession::connect(addr, &settings()).await.unwrap();
    session
        .starttls(tls.client.clone(), server_name())
        .await
        .unwrap();
    // Had "250 injected" been read as the reply to the second EHLO, nothing would be
    // offered and the real EHLO reply would be answering the next command.
    assert!(session.capabilities().pipelining);
    session.quit().await;
    server.await.expect("the script ran to its end");
}

#[tokio::test]
async fn ehlo_refused_falls_back_to_helo() {
    let (addr, server) = scripted(
        vec![
            Step::Send(b"220 old\r\n"),
            Step::Expect("EHLO "),
            Step::Send(b"502 5.5.1 what?\r\n"),
            Step::Expect("HELO client.example.org"),
            Step::Send(b"250 old\r\n"),
        ],
        None,
    )
    .await;
    let session = ClientSession::connect(addr, &settings()).await.unwrap();
    assert_eq!(session.capabilities(), &Capabilities::default());
    server.await.unwrap();
}

#[tokio::test]
async fn greeting_other_than_220_is_rejected() {
    let (addr, _server) = scripted(
        vec![Step::Send(b"554 5.3.2 go away\r\n"), Step::Stall],
        None,
    )
    .await;
    let error = ClientSession::connect(addr, &settings())
        .await
        .err()
        .unwrap();
    match &error {
        ClientError::Rejected { stage, reply } => {
            assert_eq!(*stage, Stage::Greeting);
            assert_eq!(reply.code, 554);
        }
        other => panic!("{other:?}"),
    }
    assert!(error.is_permanent());
}

#[tokio::test]
async fn silent_server_times_out_at_the_stage_it_went_quiet() {
    let (addr, _server) = scripted(vec![Step::Send(b"220 hi\r\n"), Step::Stall], None).await;
    let quick = ClientSettings {
        command_timeout: Duration::from_millis(300),
        ..settings()
    };
    let error = ClientSession::connect(addr, &quick).await.err().unwrap();
    assert!(
        matches!(error, ClientError::Timeout { stage: Stage::Ehlo }),
        "{error:?}"
    );
}

/// A listener that never accepts, its accept queue filled: the kernel drops further
/// SYNs, so a new connection hangs in the handshake like one to a blackholed address.
async fn unanswered_listener() -> (SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("a port");
    let listener = socket.listen(0).expect("a listener");
    let addr = listener.local_addr().expect("an address");
    let mut queued = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => queued.push(tcp),
            Ok(Err(e)) => panic!("connecting to fill the queue: {e}"),
            Err(_) => return (addr, listener, queued),
        }
    }
    panic!("the accept queue never filled");
}

#[tokio::test]
async fn connecting_is_bounded_by_the_connect_timeout_not_the_command_timeout() {
    let (addr, _listener, _queued) = unanswered_listener().await;
    let quick_connect = ClientSettings {
        connect_timeout: Duration::from_millis(300),
        command_timeout: Duration::from_secs(60),
        ..settings()
    };
    let started = std::time::Instant::now();
    let error = ClientSession::connect(addr, &quick_connect)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            ClientError::Timeout {
                stage: Stage::Connect
            }
        ),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!error.is_permanent());
}

#[tokio::test]
async fn the_greeting_waits_for_the_command_timeout_not_the_connect_timeout() {
    let (addr, _server) = scripted(
        vec![
            Step::Sleep(Duration::from_millis(600)),
            Step::Send(b"220 hi\r\n"),
            Step::Expect("EHLO"),
            Step::Send(b"250 hi\r\n"),
        ],
        None,
    )
    .await;
    let slow_greeting_ok = ClientSettings {
        connect_timeout: Duration::from_millis(200),
        ..settings()
    };
    let session = ClientSession::connect(addr, &slow_greeting_ok).await;
    assert!(session.is_ok(), "{:?}", session.err());
}

#[tokio::test]
async fn whether_the_message_may_have_arrived_follows_how_far_the_send_got() {
    // The server closes at MAIL: nothing of the message went out.
    let (addr, _server) = scripted(
        vec![
            Step::Send(b"220 hi\r\n"),
            Step::Expect("EHLO"),
            Step::Send(b"250 hi\r\n"),
            Step::Expect("MAIL FROM:<a@x.test>"),
        ],
        None,
    )
    .await;
    let mut session = ClientSession::connect(addr, &settings()).await.unwrap();
    let error = session
        .send(&envelope("a@x.test", &["b@y.test"]), b"x\r\n")
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Io(_)), "{error:?}");
    assert!(!session.message_may_have_arrived());

    // The server closes after the message, before its verdict.
    let (addr, _server) = scripted(
        vec![
            Step::Send(b"220 hi\r\n"),
            Step::Expect("EHLO"),
            Step::Send(b"250 hi\r\n"),
            Step::Expect("MAIL FROM:<a@x.test>"),
            Step::Send(b"250 ok\r\n"),
            Step::Expect("RCPT TO:<b@y.test>"),
            Step::Send(b"250 ok\r\n"),
            Step::Expect("DATA"),
            Step::Send(b"354 go\r\n"),
            Step::Expect("x"),
            Step::Expect("."),
        ],
        None,
    )
    .await;
    let mut session = ClientSession::connect(addr, &settings()).await.unwrap();
    let error = session
        .send(&envelope("a@x.test", &["b@y.test"]), b"x\r\n")
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Io(_)), "{error:?}");
    assert!(session.message_may_have_arrived());
}

#[tokio::test]
async fn verdict_on_the_message_is_bounded_by_the_data_timeout() {
    let (addr, _server) = scripted(
        vec![
            Step::Send(b"220 hi\r\n"),
            Step::Expect("EHLO"),
            Step::Send(b"250-hi\r\n250 CHUNKING\r\n"),
            Step::Expect("MAIL FROM:<a@x.test>"),
            Step::Send(b"250 ok\r\n"),
            Step::Expect("RCPT TO:<b@y.test>"),
            Step::Send(b"250 ok\r\n"),
            Step::Expect("BDAT 3 LAST"),
            Step::Stall,
        ],
        None,
    )
    .await;
    let quick = ClientSettings {
        data_timeout: Duration::from_millis(300),
        ..settings()
    };
    let mut session = ClientSession::connect(addr, &quick).await.unwrap();
    let error = session
        .send(&envelope("a@x.test", &["b@y.test"]), b"x\r\n")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Timeout {
                stage: Stage::EndOfData
            }
        ),
        "{error:?}"
    );
    // A late verdict must never be read as the answer to anything else.
    let after = session.reset().await.unwrap_err();
    assert!(matches!(after, ClientError::Io(_)), "{after:?}");
}

#[tokio::test]
async fn endless_reply_line_is_malformed_and_ends_the_session() {
    let flood: &'static [u8] = Box::leak(vec![b'x'; 64 * 1024].into_boxed_slice());
    let (addr, _server) = scripted(
        vec![
            Step::Send(b"220 hi\r\n"),
            Step::Expect("EHLO"),
            Step::Send(b"250 "),
            Step::Send(flood),
            Step::Stall,
        ],
        None,
    )
    .await;
    let error = ClientSession::connect(addr, &settings())
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ClientError::Malformed(_)), "{error:?}");
}

#[tokio::test]
async fn smtputf8_not_offered_is_refused_before_mail() {
    let (addr, server) = scripted(
        vec![
            Step::Send(b"220 hi\r\n"),
            Step::Expect("EHLO"),
            Step::Send(b"250-hi\r\n250 PIPELINING\r\n"),
            Step::Expect("QUIT"),
            Step::Send(b"221 bye\r\n"),
        ],
        None,
    )
    .await;
    let mut session = ClientSession::connect(addr, &settings()).await.unwrap();
    let error = session
        .send(&envelope("a@x.test", &["ü@y.test"]), b"x\r\n")
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Unsupported(_)), "{error:?}");
    assert_eq!(error.enhanced(), Some((5, 6, 7)));
    session.quit().await;
    // The server heard EHLO and QUIT, no MAIL.
    assert_eq!(server.await.unwrap().len(), 2);
}

#[tokio::test]
async fn data_accepted_without_recipients_gets_a_lone_dot() {
    let (addr, server) = scripted(
        vec![
            Step::Send(b"220 hi\r\n"),
            Step::Expect("EHLO"),
            Step::Send(b"250-hi\r\n250 PIPELINING\r\n"),
            Step::Expect("MAIL FROM:<a@x.test>"),
            Step::Expect("RCPT TO:<b@y.test>"),
            Step::Expect("DATA"),
            // A broken server: 354 although the only recipient was refused.
            Step::Send(b"250 ok\r\n550 no\r\n354 go on\r\n"),
            Step::Expect(".\r\n"),
            Step::Send(b"554 no recipients\r\n"),
        ],
        None,
    )
    .await;
    let mut session = ClientSession::connect(addr, &settings()).await.unwrap();
    let transaction = session
        .send(&envelope("a@x.test", &["b@y.test"]), b"secret\r\n")
        .await
        .unwrap();
    assert_eq!(transaction.data, None);
    let heard = server.await.unwrap();
    assert_eq!(heard.last().map(String::as_str), Some(".\r\n"));
    assert!(!heard.iter().any(|l| l.contains("secret")));
}

#[tokio::test]
async fn a_go_ahead_where_a_verdict_belongs_is_malformed() {
    let (addr, _server) = scripted(
        vec![
            Step::Send(b"220 hi\r\n"),
            Step::Expect("EHLO"),
            Step::Send(b"250 hi\r\n"),
            Step::Expect("MAIL"),
            Step::Send(b"354 sure\r\n"),
            Step::Stall,
        ],
        None,
    )
    .await;
    let mut session = ClientSession::connect(addr, &settings()).await.unwrap();
    let error = session
        .send(&envelope("a@x.test", &["b@y.test"]), b"x\r\n")
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Malformed(_)), "{error:?}");
}
