//! The queue worker end to end on loopback, with real parts only: the sender's embedded
//! store, sealpost's port 25 SMTP service as the receiving MX (with its own store and a
//! generated CA), and `sealpost-testdns` answering the MX and address lookups.
//! (Policy variants against other peers — Postfix, MTA-STS, DANE, a STARTTLS-stripping
//! man in the middle — are the Python integration tests' job.)

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sealpost_delivery::policy::{PolicyEngine, TLS_SEEN_MEMO};
use sealpost_delivery::{DeliverySettings, QueueWorker};
use sealpost_dns::{Resolver, ResolverSettings};
use sealpost_smtp::{ListenerKind, SmtpLimits, SmtpService};
use sealpost_store::{
    Delivery, EmbeddedStore, Login, LoginPolicy, Outbound, RecipientStatus, Store,
};
use sealpost_testdns::{TestDns, TestDnsBuilder, Zone};
use sealpost_tls::{AppProtocol, MailStream, TlsServer, TlsSettings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const SENDER: &str = "alice@example.test";

/// sealpost's MX service for `example.org` on 127.0.0.1, counting connections.
struct Receiver {
    _dir: tempfile::TempDir,
    store: Arc<EmbeddedStore>,
    port: u16,
    ca: CertificateDer<'static>,
    connections: Arc<AtomicUsize>,
    _accepting: JoinHandle<()>,
    _shutdown: watch::Sender<bool>,
}

impl Receiver {
    async fn start(accounts: &[&str]) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap());
        store.add_domain("example.org").await.unwrap();
        for account in accounts {
            store.create_account(account, "x").await.unwrap();
        }
        let tls = TlsServer::load(TlsSettings {
            hostname: "mx.example.org".into(),
            data_dir: dir.path().to_path_buf(),
            cert: None,
            key: None,
            extra: Vec::new(),
            client_ca: None,
        })
        .unwrap();
        let ca = read_certificate(tls.ca_certificate_path().expect("a generated CA"));
        let dyn_store: Arc<dyn Store> = store.clone();
        let service = Arc::new(SmtpService {
            kind: ListenerKind::Mx,
            hostname: "mx.example.org".into(),
            store: dyn_store.clone(),
            login: Arc::new(Login::new(dyn_store, LoginPolicy::default())),
            tls: tls.acceptor("smtp", AppProtocol::Smtp, false),
            limits: SmtpLimits::default(),
            verifier: None,
            signer: None,
            dmarc_recorder: None,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let counted = connections.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let service = service.clone();
                let shutdown = shutdown_rx.clone();
                tokio::spawn(
                    async move { service.serve(MailStream::plain(tcp, peer), shutdown).await },
                );
            }
        });
        Receiver {
            _dir: dir,
            store,
            port,
            ca,
            connections,
            _accepting: accepting,
            _shutdown: shutdown_tx,
        }
    }

    async fn inbox(&self, address: &str) -> Vec<Vec<u8>> {
        inbox(self.store.as_ref(), address).await
    }
}

async fn inbox(store: &EmbeddedStore, address: &str) -> Vec<Vec<u8>> {
    let account = store.account(address).await.unwrap().expect("the account");
    let mailbox = store.mailbox(account.id, "INBOX").await.unwrap().unwrap();
    let mut messages = Vec::new();
    for meta in store.messages(mailbox.id).await.unwrap() {
        messages.push(
            store
                .message_raw(mailbox.id, meta.uid)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    messages
}

fn read_certificate(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

/// The sending side: its store with alice, the DNS, and a running worker.
struct Sender {
    _dir: tempfile::TempDir,
    store: Arc<EmbeddedStore>,
    _dns: TestDns,
    shutdown: watch::Sender<bool>,
    worker: JoinHandle<()>,
}

impl Sender {
    /// `dns` is what the sender's resolver asks.
    async fn start(
        dns: TestDnsBuilder,
        port: u16,
        roots: Vec<CertificateDer<'static>>,
        per_destination: usize,
    ) -> Sender {
        Self::start_with_lease(
            dns,
            port,
            roots,
            per_destination,
            DeliverySettings::default().lease,
        )
        .await
    }

    async fn start_with_lease(
        dns: TestDnsBuilder,
        port: u16,
        roots: Vec<CertificateDer<'static>>,
        per_destination: usize,
        lease: Duration,
    ) -> Sender {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        store.create_account(SENDER, "x").await.unwrap();
        // Signed root, unsigned zones: the validating resolver proves them insecure
        // (as the real tree does for most domains) rather than finding them bogus.
        let dns = dns.dnssec().start().await.unwrap();
        let anchor = dir.path().join("trust-anchor");
        std::fs::write(&anchor, dns.trust_anchor().expect("a DNSSEC test server")).unwrap();
        let resolver = Resolver::new(&ResolverSettings {
            nameservers: vec![dns.addr()],
            timeout: Duration::from_secs(2),
            trust_anchor: Some(anchor),
            ..ResolverSettings::default()
        })
        .unwrap();
        let settings = Arc::new(DeliverySettings {
            hostname: "mail.example.test".into(),
            port,
            roots,
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(2),
            per_destination,
            command_timeout: Duration::from_secs(10),
            lease,
            ..DeliverySettings::default()
        });
        let dyn_store: Arc<dyn Store> = store.clone();
        let engine = PolicyEngine::new(settings.clone(), resolver, dyn_store.clone());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let worker = QueueWorker::new(dyn_store, engine, settings)
            .sole_worker(true)
            .spawn(shutdown_rx);
        Sender {
            _dir: dir,
            store,
            _dns: dns,
            shutdown,
            worker,
        }
    }

    async fn submit(&self, recipients: &[&str], subject: &str) {
        self.submit_with(recipients, subject, false).await;
    }

    /// `require_tls`: as if submitted with `MAIL FROM:<..> REQUIRETLS` (RFC 8689).
    async fn submit_with(&self, recipients: &[&str], subject: &str, require_tls: bool) {
        let raw = format!(
            "From: {SENDER}\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.test>\r\n\r\nHello.\r\n",
            recipients.join(", ")
        );
        self.store
            .deliver(Delivery {
                raw: Arc::new(raw.into_bytes()),
                internal_date: 0,
                local: Vec::new(),
                outbound: Some(Outbound {
                    sender: SENDER.into(),
                    recipients: recipients.iter().map(|r| r.to_string()).collect(),
                    require_tls,
                }),
            })
            .await
            .unwrap();
    }

    async fn stop(self) {
        self.shutdown.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.worker)
            .await
            .expect("the worker stops")
            .unwrap();
    }
}

/// example.org: MX mx.example.org, at 127.0.0.1.
fn example_org() -> TestDnsBuilder {
    TestDns::builder()
        .zone(Zone::parse("example.org", "@ MX 10 mx.example.org.\nmx A 127.0.0.1\n").unwrap())
}

/// Polls `check` until it holds, for up to 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_message_reaches_the_mx_over_verified_tls_and_leaves_the_queue() {
    let receiver = Receiver::start(&["bob@example.org"]).await;
    let sender = Sender::start(example_org(), receiver.port, vec![receiver.ca.clone()], 4).await;
    sender.submit(&["bob@example.org"], "first").await;

    eventually("bob has the message", || async {
        receiver.inbox("bob@example.org").await.len() == 1
    })
    .await;
    eventually("the queue is empty", || async {
        sender.store.queue_entries().await.unwrap().is_empty()
    })
    .await;
    let stored = String::from_utf8(receiver.inbox("bob@example.org").await.remove(0)).unwrap();
    assert!(stored.contains("Subject: first\r\n"), "{stored}");
    // Our Received header says the hop was TLS.
    assert!(stored.contains("ESMTPS"), "{stored}");
    // The certificate verified against the configured root: the domain is now
    // remembered as one that has verified TLS.
    let memo = sender
        .store
        .delivery_memo(TLS_SEEN_MEMO, "example.org")
        .await
        .unwrap();
    assert!(memo.is_some(), "verified TLS was not remembered");
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_to_one_domain_share_few_connections() {
    let receiver = Receiver::start(&["bob@example.org", "carol@example.org"]).await;
    let sender = Sender::start(example_org(), receiver.port, vec![receiver.ca.clone()], 2).await;
    for n in 0..60 {
        sender
            .submit(&["bob@example.org", "carol@example.org"], &format!("m{n}"))
            .await;
    }
    eventually("bob and carol have all 60", || async {
        receiver.inbox("bob@example.org").await.len() == 60
            && receiver.inbox("carol@example.org").await.len() == 60
    })
    .await;
    eventually("the queue is empty", || async {
        sender.store.queue_entries().await.unwrap().is_empty()
    })
    .await;
    // Two at most at once, reused from message to message (lingering between claims):
    // two in all when nothing is slow, a few more on a loaded machine.
    let connections = receiver.connections.load(Ordering::SeqCst);
    assert!(
        connections <= 4,
        "{connections} connections for 60 messages"
    );
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_recipient_bounces_with_a_dsn_in_the_senders_inbox() {
    let receiver = Receiver::start(&["bob@example.org"]).await;
    let sender = Sender::start(example_org(), receiver.port, vec![receiver.ca.clone()], 4).await;
    sender.store.add_domain("example.test").await.unwrap();
    sender
        .submit(&["bob@example.org", "nobody@example.org"], "half")
        .await;

    eventually("the DSN arrived", || async {
        inbox(&sender.store, SENDER).await.len() == 1
    })
    .await;
    assert_eq!(receiver.inbox("bob@example.org").await.len(), 1);
    eventually("the queue is empty", || async {
        sender.store.queue_entries().await.unwrap().is_empty()
    })
    .await;
    let dsn = String::from_utf8(inbox(&sender.store, SENDER).await.remove(0)).unwrap();
    assert!(
        dsn.contains("Content-Type: multipart/report; report-type=delivery-status"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@example.org\r\n"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.1.1\r\n"), "{dsn}");
    assert!(dsn.contains("Remote-MTA: dns; mx.example.org\r\n"), "{dsn}");
    assert!(dsn.contains("Diagnostic-Code: smtp; 550 5.1.1"), "{dsn}");
    assert!(!dsn.contains("Final-Recipient: rfc822; bob@"), "{dsn}");
    assert!(dsn.contains("Subject: half\r\n"), "original headers: {dsn}");
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_mx_defers_with_the_reason_and_a_later_retry() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let sender = Sender::start(example_org(), port, Vec::new(), 4).await;
    sender.submit(&["bob@example.org"], "later").await;

    eventually("the attempt is recorded", || async {
        sender
            .store
            .queue_entries()
            .await
            .unwrap()
            .first()
            .is_some_and(|e| e.attempts >= 1)
    })
    .await;
    let entry = sender.store.queue_entries().await.unwrap().remove(0);
    assert_eq!(entry.recipients[0].status, RecipientStatus::Pending);
    let error = entry.recipients[0].last_error.clone().unwrap();
    assert!(error.contains("mx.example.org [127.0.0.1]"), "{error}");
    // first_retry is a second: it is tried again soon, and still queued.
    eventually("a second attempt", || async {
        sender
            .store
            .queue_entries()
            .await
            .unwrap()
            .first()
            .is_some_and(|e| e.attempts >= 2)
    })
    .await;
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_mx_bounces_at_once_with_5_1_10() {
    let dns = TestDns::builder().zone(Zone::parse("nomail.example", "@ MX 0 .\n").unwrap());
    let sender = Sender::start(dns, 9, Vec::new(), 4).await;
    sender.store.add_domain("example.test").await.unwrap();
    sender.submit(&["bob@nomail.example"], "nowhere").await;
    eventually("the DSN arrived", || async {
        inbox(&sender.store, SENDER).await.len() == 1
    })
    .await;
    let dsn = String::from_utf8(inbox(&sender.store, SENDER).await.remove(0)).unwrap();
    assert!(dsn.contains("Status: 5.1.10\r\n"), "{dsn}");
    assert!(dsn.contains("null MX"), "{dsn}");
    assert!(sender.store.queue_entries().await.unwrap().is_empty());
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_unattempted_entries_back_due_and_unleased() {
    // A domain whose DNS never answers keeps the attempt under way while we stop.
    let dns = TestDns::builder().silent("slow.example").unwrap();
    let sender = Sender::start(dns, 9, Vec::new(), 4).await;
    sender.submit(&["bob@slow.example"], "stuck").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = sender.store.clone();
    sender.stop().await;
    // The attempt under way was let finish (deferred) or given back: either way the
    // entry is still queued and no lease holds it.
    let entries = store.queue_entries().await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].recipients[0].status, RecipientStatus::Pending);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claimed = store
        .claim_queue_entries(now + 3600, now + 7200, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the entry is still leased after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_longer_than_the_lease_keeps_its_entry_from_other_workers() {
    // An MX that accepts and never greets holds the attempt for the command timeout
    // (10 s), five times the lease.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let _holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });
    let lease = Duration::from_secs(2);
    let sender = Sender::start_with_lease(example_org(), port, Vec::new(), 4, lease).await;
    sender.submit(&["bob@example.org"], "slow").await;
    eventually("the attempt is under way", || async {
        accepted.load(Ordering::SeqCst) >= 1
    })
    .await;

    // Another worker on the same store, claiming every quarter second for three leases,
    // never gets the entry: its lease keeps being renewed past the original expiry.
    let started = tokio::time::Instant::now();
    while started.elapsed() < lease * 3 {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let stolen = sender
            .store
            .claim_queue_entries(now, now + 60, 10)
            .await
            .unwrap();
        assert!(
            stolen.is_empty(),
            "another worker claimed the entry under way after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let entries = sender.store.queue_entries().await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].attempts, 0, "the attempt is still under way");
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiretls_message_to_a_dnssec_signed_domain_goes_over_verified_tls() {
    let receiver = Receiver::start(&["bob@example.org"]).await;
    let zone = Zone::parse("example.org", "@ MX 10 mx.example.org.\nmx A 127.0.0.1\n")
        .unwrap()
        .signed();
    let dns = TestDns::builder().zone(zone);
    let sender = Sender::start(dns, receiver.port, vec![receiver.ca.clone()], 4).await;
    sender
        .submit_with(&["bob@example.org"], "required", true)
        .await;
    eventually("bob has the message", || async {
        receiver.inbox("bob@example.org").await.len() == 1
    })
    .await;
    eventually("the queue is empty", || async {
        sender.store.queue_entries().await.unwrap().is_empty()
    })
    .await;
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiretls_message_to_an_unsigned_domain_bounces_with_5_7_30() {
    let receiver = Receiver::start(&["bob@example.org"]).await;
    let sender = Sender::start(example_org(), receiver.port, vec![receiver.ca.clone()], 4).await;
    sender.store.add_domain("example.test").await.unwrap();
    sender
        .submit_with(&["bob@example.org"], "unmet", true)
        .await;
    eventually("the DSN arrived", || async {
        inbox(&sender.store, SENDER).await.len() == 1
    })
    .await;
    let dsn = String::from_utf8(inbox(&sender.store, SENDER).await.remove(0)).unwrap();
    assert!(dsn.contains("Status: 5.7.30\r\n"), "{dsn}");
    assert!(dsn.contains("REQUIRETLS"), "{dsn}");
    assert!(receiver.inbox("bob@example.org").await.is_empty());
    assert_eq!(
        receiver.connections.load(Ordering::SeqCst),
        0,
        "nothing was sent"
    );
    sender.stop().await;
}
