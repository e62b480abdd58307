//! Test doubles: an in-memory `Store`, an in-memory connection with a stand-in STARTTLS,
//! and an SMTP client that reads whole replies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sealpost_store::{
    Account, AccountId, Appended, Change, Copied, Delivered, Delivery, FlagUpdate, FlagsUpdated,
    Login, LoginPolicy, Mailbox, MailboxId, MessageMeta, NewMessage, QueueEntry, QueueId, Store,
    StoreError,
};
use sealpost_tls::{ClientCert, TlsError, TlsInfo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::task::JoinHandle;

use sealpost_mailauth::{DkimSigner, InboundVerifier};

use crate::driver::{self, Env};
use crate::session::SessionConfig;
use crate::transport::Connection;
use crate::{ListenerKind, SmtpLimits};

pub(crate) const HOSTNAME: &str = "mx.example.test";
pub(crate) const PASSWORD: &str = "correct horse";

static PASSWORD_HASH: LazyLock<String> =
    LazyLock::new(|| sealpost_store::password::hash(PASSWORD).expect("hashing a test password"));

pub(crate) fn alice() -> Account {
    Account {
        id: 1,
        address: "alice@example.test".into(),
        password_hash: PASSWORD_HASH.clone(),
    }
}

pub(crate) fn bob() -> Account {
    Account {
        id: 2,
        address: "bob@example.test".into(),
        password_hash: PASSWORD_HASH.clone(),
    }
}

/// A TLS 1.3 report as the tls crate would produce it.
pub(crate) fn tls_info() -> TlsInfo {
    TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
        group: "X25519MLKEM768".into(),
        ..TlsInfo::default()
    }
}

/// A TLS report with a verified client certificate for `identity`.
pub(crate) fn tls_info_with_certificate(identity: &str) -> TlsInfo {
    TlsInfo {
        client_cert: Some(ClientCert {
            subject: format!("CN={identity}"),
            verified: true,
            identities: vec![identity.to_string()],
        }),
        ..tls_info()
    }
}

/// `example.test` with alice and bob; records deliveries.
pub(crate) struct FakeStore {
    domains: Vec<String>,
    accounts: Vec<Account>,
    deliveries: Mutex<Vec<Delivery>>,
    dmarc: Mutex<Vec<sealpost_store::DmarcEvaluationRecord>>,
    fail_deliveries: AtomicBool,
    /// When set, each delivery waits for a permit (to observe what happens meanwhile).
    gate: Option<Arc<Semaphore>>,
    changes: broadcast::Sender<Change>,
}

impl FakeStore {
    pub(crate) fn new() -> Self {
        Self {
            domains: vec!["example.test".into()],
            accounts: vec![alice(), bob()],
            deliveries: Mutex::new(Vec::new()),
            dmarc: Mutex::new(Vec::new()),
            fail_deliveries: AtomicBool::new(false),
            gate: None,
            changes: broadcast::channel(1).0,
        }
    }

    pub(crate) fn gated(gate: Arc<Semaphore>) -> Self {
        Self {
            gate: Some(gate),
            ..Self::new()
        }
    }

    pub(crate) fn fail_deliveries(&self) {
        self.fail_deliveries.store(true, Ordering::SeqCst);
    }

    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// The DMARC evaluations recorded so far.
    pub(crate) fn dmarc_evaluations(&self) -> Vec<sealpost_store::DmarcEvaluationRecord> {
        self.dmarc.lock().unwrap().clone()
    }

    /// The stored bytes of the only delivery.
    pub(crate) fn only_message(&self) -> Vec<u8> {
        let deliveries = self.deliveries();
        assert_eq!(deliveries.len(), 1, "expected exactly one delivery");
        deliveries[0].raw.as_ref().clone()
    }
}

fn not_in_fake<T>() -> sealpost_store::Result<T> {
    Err(StoreError::Database("not in the fake store".into()))
}

#[async_trait]
impl Store for FakeStore {
    async fn add_domain(&self, _domain: &str) -> sealpost_store::Result<()> {
        not_in_fake()
    }

    async fn domains(&self) -> sealpost_store::Result<Vec<String>> {
        Ok(self.domains.clone())
    }

    async fn is_local_domain(&self, domain: &str) -> sealpost_store::Result<bool> {
        Ok(self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)))
    }

    async fn create_account(&self, _address: &str, _hash: &str) -> sealpost_store::Result<Account> {
        not_in_fake()
    }

    async fn account(&self, address: &str) -> sealpost_store::Result<Option<Account>> {
        Ok(self
            .accounts
            .iter()
            .find(|a| a.address.eq_ignore_ascii_case(address))
            .cloned())
    }

    async fn accounts(&self) -> sealpost_store::Result<Vec<Account>> {
        Ok(self.accounts.clone())
    }

    async fn set_password_hash(&self, _address: &str, _hash: &str) -> sealpost_store::Result<()> {
        not_in_fake()
    }

    async fn remove_account(&self, _address: &str) -> sealpost_store::Result<()> {
        not_in_fake()
    }

    async fn mailboxes(&self, _account: AccountId) -> sealpost_store::Result<Vec<Mailbox>> {
        not_in_fake()
    }

    async fn mailbox(
        &self,
        _account: AccountId,
        _name: &str,
    ) -> sealpost_store::Result<Option<Mailbox>> {
        not_in_fake()
    }

    async fn deliver(&self, delivery: Delivery) -> sealpost_store::Result<Delivered> {
        if let Some(gate) = &self.gate {
            let _permit = gate.acquire().await;
        }
        if self.fail_deliveries.load(Ordering::SeqCst) {
            return Err(StoreError::Database("disk full".into()));
        }
        let delivered = Delivered {
            messages: delivery.local.iter().map(|t| (t.account, 1)).collect(),
            queue_id: delivery.outbound.as_ref().map(|_| 1),
        };
        self.deliveries.lock().unwrap().push(delivery);
        Ok(delivered)
    }

    async fn messages(&self, _mailbox: MailboxId) -> sealpost_store::Result<Vec<MessageMeta>> {
        not_in_fake()
    }

    async fn message_raw(
        &self,
        _mailbox: MailboxId,
        _uid: u32,
    ) -> sealpost_store::Result<Option<Vec<u8>>> {
        not_in_fake()
    }

    async fn create_mailbox(
        &self,
        _account: AccountId,
        _name: &str,
    ) -> sealpost_store::Result<Mailbox> {
        not_in_fake()
    }

    async fn delete_mailbox(&self, _account: AccountId, _name: &str) -> sealpost_store::Result<()> {
        not_in_fake()
    }

    async fn rename_mailbox(
        &self,
        _account: AccountId,
        _from: &str,
        _to: &str,
    ) -> sealpost_store::Result<()> {
        not_in_fake()
    }

    async fn set_subscribed(
        &self,
        _account: AccountId,
        _name: &str,
        _subscribed: bool,
    ) -> sealpost_store::Result<()> {
        not_in_fake()
    }

    async fn append(
        &self,
        _mailbox: MailboxId,
        _message: NewMessage,
    ) -> sealpost_store::Result<Appended> {
        not_in_fake()
    }

    async fn update_flags(
        &self,
        _mailbox: MailboxId,
        _update: FlagUpdate,
    ) -> sealpost_store::Result<FlagsUpdated> {
        not_in_fake()
    }

    async fn expunge(
        &self,
        _mailbox: MailboxId,
        _uids: Option<Vec<u32>>,
    ) -> sealpost_store::Result<Vec<u32>> {
        not_in_fake()
    }

    async fn copy_messages(
        &self,
        _from: MailboxId,
        _uids: Vec<u32>,
        _to: MailboxId,
    ) -> sealpost_store::Result<Copied> {
        not_in_fake()
    }

    async fn move_messages(
        &self,
        _from: MailboxId,
        _uids: Vec<u32>,
        _to: MailboxId,
    ) -> sealpost_store::Result<Copied> {
        not_in_fake()
    }

    async fn expunged_since(
        &self,
        _mailbox: MailboxId,
        _modseq: u64,
    ) -> sealpost_store::Result<Vec<u32>> {
        not_in_fake()
    }

    async fn mailbox_by_id(&self, _mailbox: MailboxId) -> sealpost_store::Result<Option<Mailbox>> {
        not_in_fake()
    }

    async fn queue_entries(&self) -> sealpost_store::Result<Vec<QueueEntry>> {
        not_in_fake()
    }

    async fn queue_message(&self, _id: QueueId) -> sealpost_store::Result<Option<Vec<u8>>> {
        not_in_fake()
    }

    async fn claim_queue_entries(
        &self,
        _now: i64,
        _lease_until: i64,
        _limit: usize,
    ) -> sealpost_store::Result<Vec<QueueEntry>> {
        Ok(Vec::new())
    }

    async fn renew_queue_leases(
        &self,
        _ids: Vec<QueueId>,
        _lease_until: i64,
    ) -> sealpost_store::Result<()> {
        // No queue here: nothing is leased.
        Ok(())
    }

    async fn finish_queue_attempt(
        &self,
        _attempt: sealpost_store::QueueAttempt,
    ) -> sealpost_store::Result<()> {
        Err(sealpost_store::StoreError::NotFound("queue entry".into()))
    }

    async fn retry_queue_entry(&self, _id: QueueId, _now: i64) -> sealpost_store::Result<bool> {
        Ok(false)
    }

    async fn drop_queue_entry(&self, _id: QueueId) -> sealpost_store::Result<bool> {
        Ok(false)
    }

    async fn delivery_memo(
        &self,
        _kind: &str,
        _domain: &str,
    ) -> sealpost_store::Result<Option<String>> {
        Ok(None)
    }

    async fn set_delivery_memo(
        &self,
        _kind: &str,
        _domain: &str,
        _value: Option<String>,
    ) -> sealpost_store::Result<()> {
        Ok(())
    }

    async fn delivery_memos(&self, _kind: &str) -> sealpost_store::Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    async fn record_tls_results(
        &self,
        _results: Vec<sealpost_store::TlsSessionResult>,
    ) -> sealpost_store::Result<()> {
        Ok(())
    }

    async fn tls_results(
        &self,
        _from: i64,
        _until: i64,
    ) -> sealpost_store::Result<Vec<sealpost_store::TlsSessionResult>> {
        Ok(Vec::new())
    }

    async fn prune_tls_results(&self, _before: i64) -> sealpost_store::Result<u64> {
        Ok(0)
    }

    async fn queue_tls_report(
        &self,
        _report: sealpost_store::OutgoingReport,
    ) -> sealpost_store::Result<Option<QueueId>> {
        Ok(None)
    }

    async fn record_dmarc_evaluation(
        &self,
        record: sealpost_store::DmarcEvaluationRecord,
    ) -> sealpost_store::Result<()> {
        self.dmarc.lock().unwrap().push(record);
        Ok(())
    }

    async fn dmarc_evaluations(
        &self,
        _from: i64,
        _until: i64,
    ) -> sealpost_store::Result<Vec<sealpost_store::DmarcEvaluationRecord>> {
        Ok(Vec::new())
    }

    async fn prune_dmarc_evaluations(&self, _before: i64) -> sealpost_store::Result<u64> {
        Ok(0)
    }

    async fn queue_dmarc_report(
        &self,
        _report: sealpost_store::OutgoingReport,
    ) -> sealpost_store::Result<Option<QueueId>> {
        Ok(None)
    }

    async fn store_dmarc_report(
        &self,
        _report: sealpost_store::DmarcAggregateReport,
    ) -> sealpost_store::Result<bool> {
        Ok(false)
    }

    async fn dmarc_reports(
        &self,
        _policy_domain: &str,
    ) -> sealpost_store::Result<Vec<sealpost_store::DmarcAggregateReport>> {
        Ok(Vec::new())
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

/// Stands in for the TLS acceptor: "upgrading" keeps the pipe but reports `info`, or
/// fails like a broken handshake.
pub(crate) struct FakeAcceptor {
    pub info: TlsInfo,
    pub fail: bool,
}

/// One end of an in-memory pipe, recording every write the driver makes.
pub(crate) struct FakeConnection {
    io: DuplexStream,
    buf: Vec<u8>,
    tls: Option<TlsInfo>,
    writes: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Connection for FakeConnection {
    type Acceptor = FakeAcceptor;

    fn peer(&self) -> SocketAddr {
        "192.0.2.7:40000".parse().expect("a socket address")
    }

    fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    fn buffered(&self) -> &[u8] {
        &self.buf
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = self.io.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writes.lock().unwrap().push(bytes.to_vec());
        self.io.write_all(bytes).await
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        self.io.shutdown().await
    }

    async fn start_tls(mut self, acceptor: &FakeAcceptor) -> Result<Self, TlsError> {
        if acceptor.fail {
            return Err(TlsError::HandshakeTimeout);
        }
        // Like the real upgrade: plaintext pipelined after STARTTLS is thrown away.
        self.buf.clear();
        self.tls = Some(acceptor.info.clone());
        Ok(self)
    }
}

/// The client's end: sends raw bytes, reads whole (possibly multi-line) replies.
pub(crate) struct Client {
    reader: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    writer: tokio::io::WriteHalf<DuplexStream>,
}

impl Client {
    pub(crate) async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.writer
            .write_all(bytes.as_ref())
            .await
            .expect("writing to the server");
    }

    /// The next reply, all its lines; empty once the server has closed.
    pub(crate) async fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                    .await
                    .expect("a reply within 10s")
                    .expect("reading a reply");
            if read == 0 {
                return reply;
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// Sends a command line (CRLF added) and returns the reply.
    pub(crate) async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Sends a command and checks the reply starts with `expected`.
    pub(crate) async fn expect(&mut self, line: &str, expected: &str) {
        let reply = self.command(line).await;
        assert!(
            reply.starts_with(expected),
            "{line:?} got {reply:?}, expected {expected:?}"
        );
    }

    /// Whether the server closed the connection (no more replies) within a while.
    pub(crate) async fn is_closed(&mut self) -> bool {
        self.reply().await.is_empty()
    }

    /// Whether anything arrives within `wait`.
    pub(crate) async fn silent_for(&mut self, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(wait, self.reader.read(&mut byte))
            .await
            .is_err()
    }
}

/// How to start a test session.
pub(crate) struct Setup {
    pub kind: ListenerKind,
    pub limits: SmtpLimits,
    /// The connection is TLS from the start (465).
    pub implicit_tls: Option<TlsInfo>,
    /// STARTTLS is possible, with this stand-in acceptor.
    pub acceptor: Option<FakeAcceptor>,
    pub store: Arc<FakeStore>,
    pub verifier: Option<Arc<InboundVerifier>>,
    pub signer: Option<Arc<DkimSigner>>,
}

impl Setup {
    pub(crate) fn new(kind: ListenerKind) -> Self {
        Self {
            kind,
            limits: SmtpLimits::default(),
            implicit_tls: None,
            acceptor: Some(FakeAcceptor {
                info: tls_info(),
                fail: false,
            }),
            store: Arc::new(FakeStore::new()),
            verifier: None,
            signer: None,
        }
    }

    /// Runs the driver over an in-memory pipe.
    pub(crate) fn start(self) -> Running {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let writes = Arc::new(Mutex::new(Vec::new()));
        let conn = FakeConnection {
            io: server_io,
            buf: Vec::new(),
            tls: self.implicit_tls,
            writes: writes.clone(),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let store = self.store.clone();
        let config = SessionConfig {
            kind: self.kind,
            hostname: HOSTNAME.into(),
            limits: self.limits,
            starttls: self.acceptor.is_some(),
            verify: self.verifier.is_some(),
            sign: self.signer.is_some(),
        };
        let acceptor = self.acceptor;
        let (verifier, signer) = (self.verifier, self.signer);
        let task = tokio::spawn(async move {
            let store_dyn: Arc<dyn Store> = store.clone();
            let login = Login::new(store_dyn.clone(), LoginPolicy::default());
            let recorder = crate::DmarcRecorder::start(store_dyn.clone());
            let env = Env {
                store: &store_dyn,
                login: &login,
                verifier: verifier.as_deref(),
                signer: signer.as_deref(),
                dmarc_recorder: Some(&recorder),
            };
            driver::run(config, env, conn, acceptor.as_ref(), shutdown_rx).await;
        });
        let (reader, writer) = tokio::io::split(client_io);
        Running {
            client: Client {
                reader: BufReader::new(reader),
                writer,
            },
            store: self.store,
            writes,
            shutdown,
            task,
        }
    }
}

pub(crate) struct Running {
    pub client: Client,
    pub store: Arc<FakeStore>,
    /// Every write the driver made, in order.
    pub writes: Arc<Mutex<Vec<Vec<u8>>>>,
    pub shutdown: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

impl Running {
    /// Reads the greeting and sends EHLO.
    pub(crate) async fn greet(&mut self) {
        let greeting = self.client.reply().await;
        assert_eq!(greeting, format!("220 {HOSTNAME} ESMTP sealpost\r\n"));
        self.client.expect("EHLO client.example.org", "250-").await;
    }

    /// Waits for the session task to end.
    pub(crate) async fn finished(self) {
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("session ended within 10s")
            .expect("session task did not panic");
    }
}
