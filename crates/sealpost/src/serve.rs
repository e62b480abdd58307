//! `sealpost serve`: load everything, bind every listener, and only then start serving,
//! so a bad certificate or a taken port stops the server before it accepts anything.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sealpost_delivery::policy::PolicyEngine;
use sealpost_delivery::{DeliverySettings, QueueWorker};
use sealpost_dns::Resolver;
use sealpost_imap::ImapService;
use sealpost_imap::registry::SessionRegistry;
use sealpost_mailauth::{DkimSigner, InboundVerifier};
use sealpost_pop3::Pop3Service;
use sealpost_smtp::{DmarcRecorder, ListenerKind, SmtpService};
use sealpost_store::{Login, LoginPolicy, Store};
use sealpost_tls::{AppProtocol, TlsAcceptor, TlsServer, TlsSettings};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::account::open_store;
use crate::config::{Config, ListenerName};
use crate::listener::{ConnectionLimits, Listener, Service};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Catch the stop signals before anything is announced, so a supervisor that signals
    // as soon as it sees the ready lines never kills us mid-transaction.
    let stop = StopSignals::install()?;
    let tls = TlsServer::load(tls_settings(&config)).context("cannot set up TLS")?;
    let store: Arc<dyn Store> = open_store(&config).await?;
    for domain in &config.local_domains {
        store
            .add_domain(domain)
            .await
            .with_context(|| format!("local_domains: cannot add {domain}"))?;
    }
    let login = Arc::new(Login::new(
        store.clone(),
        LoginPolicy {
            max_failures: config.limits.auth_max_failures,
            lockout: Duration::from_secs(config.limits.auth_lockout),
            ..LoginPolicy::default()
        },
    ));

    let mailauth = mailauth(&config, &store)?;
    if let Some(resolver) = mailauth.resolver.clone() {
        tokio::spawn(send_dmarc_reports(
            store.clone(),
            config.hostname.clone(),
            mailauth.signer.clone(),
            resolver,
        ));
    }

    let delivery = delivery(&config)?;

    tls.watch();
    // 143 and 993 count an account's sessions together.
    let imap_sessions = Arc::new(SessionRegistry::default());
    let mut listeners = Vec::new();
    for (name, address) in config.listeners()? {
        let socket = bind(name, address).await?;
        let acceptor = tls.acceptor(name.key(), app_protocol(name), config.session_tickets(name));
        let service = Arc::new(service(
            name,
            &config,
            &store,
            &login,
            &acceptor,
            &imap_sessions,
            &mailauth,
        ));
        println!(
            "{:<12} {}  {}",
            name.key(),
            socket.local_addr()?,
            tls_mode(name)
        );
        listeners.push(Listener {
            name,
            socket,
            implicit_tls: name.implicit_tls().then_some(acceptor),
            service,
        });
    }
    match tls.ca_certificate_path() {
        Some(ca) => println!(
            "clients must trust the generated CA certificate {}",
            ca.display()
        ),
        None => println!("serving the configured certificate"),
    }

    let limits = ConnectionLimits::new(
        config.limits.max_connections,
        config.limits.max_connections_per_ip,
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut accepting = Vec::new();
    for listener in listeners {
        accepting.push(tokio::spawn(
            listener.run(limits.clone(), shutdown_rx.clone()),
        ));
    }
    let worker =
        delivery.map(|delivery| delivery.start(&store, &mailauth.signer, shutdown_rx.clone()));

    let signal_name = stop.wait().await;
    info!(
        signal = signal_name,
        "stopping: no new connections, finishing sessions in flight"
    );
    let _ = shutdown_tx.send(true);
    for task in accepting {
        let _ = task.await;
    }
    let grace = Duration::from_secs(config.limits.shutdown_grace);
    match tokio::time::timeout(grace, limits.total.acquire_many(limits.max_total)).await {
        Ok(_) => {}
        Err(_) => warn!(
            grace_secs = grace.as_secs(),
            "sessions still open after the grace period; stopping anyway (nothing they sent was acknowledged)"
        ),
    }
    // The worker stopped taking new messages at the signal, with the listeners; this
    // waits for the attempts it was writing back (bounded by its own grace).
    if let Some(worker) = worker
        && tokio::time::timeout(grace, worker).await.is_err()
    {
        warn!(
            "the queue worker did not stop in time; entries it held are retried after their lease"
        );
    }
    info!("stopped");
    Ok(())
}

/// Outbound delivery as `[delivery]` sets it up: loaded before any listener binds, so a
/// bad CA file stops the server at once; started with the listeners.
struct Delivery {
    settings: Arc<DeliverySettings>,
    resolver: Resolver,
    /// The embedded store is this server's alone, so a lease found at start was left by
    /// a crash; a shared PostgreSQL store's leases may be other nodes' and are honoured.
    sole_worker: bool,
}

fn delivery(config: &Config) -> anyhow::Result<Option<Delivery>> {
    if !config.delivery.enabled {
        info!("[delivery] enabled = false: mail for other domains stays in the queue");
        return Ok(None);
    }
    let settings = Arc::new(config.delivery_settings()?);
    let resolver = Resolver::new(&config.resolver_settings()?).context(
        "cannot set up the DNS resolver for delivery: check /etc/resolv.conf or set [dns] nameservers = [\"127.0.0.1:53\"]",
    )?;
    Ok(Some(Delivery {
        settings,
        resolver,
        sole_worker: config.store.url.trim().is_empty(),
    }))
}

impl Delivery {
    fn start(
        self,
        store: &Arc<dyn Store>,
        signer: &Arc<DkimSigner>,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let engine = PolicyEngine::new(self.settings.clone(), self.resolver.clone(), store.clone());
        info!(
            port = self.settings.port,
            per_destination = self.settings.per_destination,
            max_connections = self.settings.max_connections,
            "delivering the outbound queue"
        );
        if self.settings.tls_reports {
            tokio::spawn(send_tls_reports(
                store.clone(),
                self.resolver,
                signer.clone(),
                self.settings.clone(),
            ));
        }
        QueueWorker::new(store.clone(), engine, self.settings)
            .sole_worker(self.sole_worker)
            .spawn(shutdown)
    }
}

/// Queues the TLS-RPT reports (RFC 8460) of the days that have ended: at start, then
/// just after each UTC midnight. A day once reported is never reported again; a failure
/// never touches mail and the next run tries again.
async fn send_tls_reports(
    store: Arc<dyn Store>,
    resolver: Resolver,
    signer: Arc<DkimSigner>,
    settings: Arc<DeliverySettings>,
) {
    const DAY: i64 = 86_400;
    // Past midnight, so sessions that ended just before it are in the store.
    const AFTER_MIDNIGHT: i64 = 300;
    loop {
        let now = time::OffsetDateTime::now_utc();
        match sealpost_delivery::tlsrpt::send_reports(
            store.as_ref(),
            &resolver,
            Some(&signer),
            &settings,
            now,
        )
        .await
        {
            Ok(sent) if !sent.is_empty() => info!(reports = sent.len(), "queued TLS-RPT reports"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "TLS-RPT reports not queued; next try after midnight"),
        }
        let unix = now.unix_timestamp();
        let next = unix.div_euclid(DAY) * DAY + DAY + AFTER_MIDNIGHT;
        tokio::time::sleep(Duration::from_secs((next - unix).max(60) as u64)).await;
    }
}

fn tls_settings(config: &Config) -> TlsSettings {
    TlsSettings {
        hostname: config.hostname.clone(),
        data_dir: config.data_dir.clone(),
        cert: config.tls.cert.clone(),
        key: config.tls.key.clone(),
        extra: config
            .tls
            .certificates
            .iter()
            .map(|pair| (pair.cert.clone(), pair.key.clone()))
            .collect(),
        client_ca: config.tls.client_ca.clone(),
    }
}

fn app_protocol(name: ListenerName) -> AppProtocol {
    match name {
        ListenerName::Smtp | ListenerName::Submission | ListenerName::Submissions => {
            AppProtocol::Smtp
        }
        ListenerName::Imap | ListenerName::Imaps => AppProtocol::Imap,
        ListenerName::Pop3 | ListenerName::Pop3s => AppProtocol::Pop3,
    }
}

/// Verification for port 25 and signing for submission.
struct Mailauth {
    verifier: Option<Arc<InboundVerifier>>,
    signer: Arc<DkimSigner>,
    /// Set when port 25 verifies, which is also when DMARC evaluations are recorded.
    resolver: Option<Resolver>,
    dmarc_recorder: DmarcRecorder,
}

/// The resolver from `[dns]`, the verifier `[mailauth]` asks for, and the DKIM keys of
/// `DATA/dkim` (made by `sealpost domain add`).
fn mailauth(config: &Config, store: &Arc<dyn Store>) -> anyhow::Result<Mailauth> {
    let (verifier, resolver) = if config.mailauth.verify {
        let settings = config.resolver_settings()?;
        let resolver = Resolver::new(&settings).context(
            "cannot set up the DNS resolver: check /etc/resolv.conf or set [dns] nameservers = [\"127.0.0.1:53\"]",
        )?;
        info!(
            nameservers = ?settings.nameservers,
            enforce = config.mailauth.enforce,
            "port 25 verifies SPF, DKIM and DMARC"
        );
        (
            Some(Arc::new(
                InboundVerifier::new(resolver.clone(), config.hostname.clone())
                    .enforce(config.mailauth.enforce),
            )),
            Some(resolver),
        )
    } else {
        info!("[mailauth] verify = false: port 25 stores mail unverified");
        (None, None)
    };
    let signer = DkimSigner::load(&config.data_dir).with_context(|| {
        format!(
            "cannot load the DKIM keys in {}: repair or remove the damaged key, or make new keys with `sealpost domain rotate-keys`",
            config.data_dir.join("dkim").display()
        )
    })?;
    Ok(Mailauth {
        verifier,
        signer: Arc::new(signer),
        resolver,
        dmarc_recorder: DmarcRecorder::start(store.clone()),
    })
}

/// Queues the DMARC aggregate reports (RFC 9990) of the days that have ended, checking
/// every hour from start-up; a day once reported is never reported again, so the period
/// only bounds how late a report leaves. A failure never touches mail: the next hour
/// tries again.
async fn send_dmarc_reports(
    store: Arc<dyn Store>,
    hostname: String,
    signer: Arc<DkimSigner>,
    resolver: Resolver,
) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match crate::dmarc::send_due_reports(store.as_ref(), &hostname, &signer, Some(&resolver))
            .await
        {
            Ok(sent) if !sent.is_empty() => {
                info!(reports = sent.len(), "queued DMARC aggregate reports")
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "DMARC aggregate reports not queued; next try in an hour"),
        }
    }
}

fn service(
    name: ListenerName,
    config: &Config,
    store: &Arc<dyn Store>,
    login: &Arc<Login>,
    acceptor: &TlsAcceptor,
    imap_sessions: &Arc<SessionRegistry>,
    mailauth: &Mailauth,
) -> Service {
    let smtp = |kind| {
        Service::Smtp(SmtpService {
            kind,
            hostname: config.hostname.clone(),
            store: store.clone(),
            login: login.clone(),
            tls: acceptor.clone(),
            limits: config.smtp_limits(),
            verifier: mailauth.verifier.clone(),
            signer: Some(mailauth.signer.clone()),
            dmarc_recorder: Some(mailauth.dmarc_recorder.clone()),
        })
    };
    match name {
        ListenerName::Smtp => smtp(ListenerKind::Mx),
        ListenerName::Submission => smtp(ListenerKind::Submission),
        ListenerName::Submissions => smtp(ListenerKind::Submissions),
        ListenerName::Imap | ListenerName::Imaps => Service::Imap(
            ImapService::new(
                config.hostname.clone(),
                store.clone(),
                login.clone(),
                acceptor.clone(),
            )
            .with_session_registry(imap_sessions.clone()),
        ),
        ListenerName::Pop3 | ListenerName::Pop3s => Service::Pop3(Pop3Service::new(
            config.hostname.clone(),
            store.clone(),
            login.clone(),
            acceptor.clone(),
        )),
    }
}

fn tls_mode(name: ListenerName) -> &'static str {
    match name {
        ListenerName::Smtp => "SMTP (MX), STARTTLS offered",
        ListenerName::Submission => "submission, STARTTLS required before AUTH",
        ListenerName::Submissions => "submission, implicit TLS",
        ListenerName::Imap => "IMAP, STARTTLS required before LOGIN",
        ListenerName::Imaps => "IMAP, implicit TLS",
        ListenerName::Pop3 => "POP3, STLS required before USER/PASS",
        ListenerName::Pop3s => "POP3, implicit TLS",
    }
}

async fn bind(name: ListenerName, address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        let key = name.key();
        let port = address.port();
        let advice = match e.kind() {
            io::ErrorKind::PermissionDenied => format!(
                "run as root (or grant CAP_NET_BIND_SERVICE) or set [listeners] {key} = \"{}:{}\"",
                address.ip(),
                if port < 1024 { port + 10_000 } else { port }
            ),
            io::ErrorKind::AddrInUse => format!(
                "another program (another mail server?) already listens there: stop it, or set [listeners] {key} to another address, or \"\" to disable it"
            ),
            io::ErrorKind::AddrNotAvailable => format!(
                "{} is not an address of this machine: set [listeners] {key} = \"0.0.0.0:{port}\"",
                address.ip()
            ),
            _ => format!("check [listeners] {key}"),
        };
        anyhow::anyhow!("cannot bind {address} ({key}): {e} — {advice}")
    })
}

struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
