//! Getting a probe to the point where TLS starts: one TCP connection per probe, the
//! STARTTLS dialogue on plaintext ports, and the limits every probe runs under
//! (a per-endpoint connection cap, a timeout, progress accounting).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::ProbeError;
use crate::dialogue::Conversation;
use crate::target::Endpoint;

/// Connections one endpoint gets at once. Enough to finish a host in well under a second
/// on loopback, few enough not to trip a server's per-client connection limit (Postfix's
/// anvil allows 50 by default; sealpost 100).
pub(crate) const CONNECTIONS_PER_ENDPOINT: usize = 8;

/// How long the main probe waits for plaintext after a STARTTLS reply before starting
/// the handshake. A server injecting a response sends it with (or right after) the reply.
const RESPONSE_INJECTION_WAIT: Duration = Duration::from_millis(150);

/// Where probe counts are reported while they run.
pub trait Progress: Send + Sync {
    /// Called whenever a probe starts or finishes.
    fn update(&self, status: &ProgressStatus);
}

/// A snapshot for a progress line.
#[derive(Debug, Clone)]
pub struct ProgressStatus {
    pub probes_done: usize,
    pub probes_running: usize,
    /// The probe that just started or finished, e.g. `smtp://mx:25 TLSv1.0`.
    pub current: String,
}

/// Progress that goes nowhere (library use, tests).
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _status: &ProgressStatus) {}
}

/// Counts probes across every endpoint of a run.
pub(crate) struct Tracker {
    done: AtomicUsize,
    running: AtomicUsize,
    sink: Arc<dyn Progress>,
}

impl Tracker {
    pub fn new(sink: Arc<dyn Progress>) -> Arc<Tracker> {
        Arc::new(Tracker {
            done: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            sink,
        })
    }

    fn report(&self, current: String) {
        self.sink.update(&ProgressStatus {
            probes_done: self.done.load(Ordering::Relaxed),
            probes_running: self.running.load(Ordering::Relaxed),
            current,
        });
    }
}

/// The way to one endpoint, shared by all its probes.
pub(crate) struct Link {
    pub endpoint: Endpoint,
    pub address: SocketAddr,
    pub timeout: Duration,
    limiter: Semaphore,
    tracker: Arc<Tracker>,
}

impl Link {
    pub fn new(
        endpoint: Endpoint,
        address: SocketAddr,
        timeout: Duration,
        tracker: Arc<Tracker>,
    ) -> Link {
        Link {
            endpoint,
            address,
            timeout,
            limiter: Semaphore::new(CONNECTIONS_PER_ENDPOINT),
            tracker,
        }
    }

    /// Runs one probe under the connection cap and the timeout, counted for progress.
    pub async fn run<T>(
        &self,
        label: &str,
        probe: impl Future<Output = Result<T, ProbeError>>,
    ) -> Result<T, ProbeError> {
        let _permit = self.limiter.acquire().await;
        let name = format!("{} {label}", self.endpoint);
        self.tracker.running.fetch_add(1, Ordering::Relaxed);
        self.tracker.report(name.clone());
        let result = tokio::time::timeout(self.timeout, probe)
            .await
            .unwrap_or(Err(ProbeError::Timeout(self.timeout)));
        self.tracker.running.fetch_sub(1, Ordering::Relaxed);
        self.tracker.done.fetch_add(1, Ordering::Relaxed);
        self.tracker.report(name);
        result
    }

    pub async fn tcp(&self) -> Result<TcpStream, ProbeError> {
        let stream = TcpStream::connect(self.address)
            .await
            .map_err(ProbeError::Connect)?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// A connection on which the next byte sent is the ClientHello: on implicit-TLS ports
    /// right away, on the others after greeting, EHLO (SMTP) and STARTTLS. Also returns
    /// any bytes the server sent after its STARTTLS reply and before the handshake: they
    /// are not TLS, so they are discarded here and reported by the caller. With `watch`,
    /// waits a moment for such bytes when none came with the reply.
    pub async fn ready_for_tls(&self, watch: bool) -> Result<(TcpStream, Vec<u8>), ProbeError> {
        let stream = self.tcp().await?;
        if self.endpoint.service.implicit_tls() {
            return Ok((stream, Vec::new()));
        }
        let mut conversation = Conversation::new(stream, self.endpoint.service.protocol());
        conversation.greeting().await?;
        if self.endpoint.service.protocol() == crate::target::Protocol::Smtp {
            // RFC 3207 §4: STARTTLS comes after EHLO; Postfix refuses it before.
            let capabilities = conversation.capabilities().await?;
            if !capabilities.starttls {
                return Err(ProbeError::NoStartTls);
            }
        }
        if let Err(reply) = conversation.starttls().await? {
            return Err(ProbeError::StartTlsRefused(reply.summary()));
        }
        if watch && conversation.buffered().is_empty() {
            conversation.read_more(RESPONSE_INJECTION_WAIT).await?;
        }
        Ok(conversation.into_parts())
    }
}

/// The first address of `endpoint` that accepts a connection, so later probes do not each
/// wait on an address that does not answer (`localhost` is often `::1` first). `known`
/// addresses (from the checker's own resolver, for MX hosts) are used instead of the
/// system's lookup. On plaintext ports the server speaks first, so a server that
/// accepts but never greets is found here once, instead of by every probe's timeout.
pub(crate) async fn resolve(
    endpoint: &Endpoint,
    known: Option<&[std::net::IpAddr]>,
    timeout: Duration,
) -> Result<SocketAddr, ProbeError> {
    let addresses: Vec<SocketAddr> = match known {
        Some(ips) => ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, endpoint.port))
            .collect(),
        None => tokio::time::timeout(
            timeout,
            tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
        .map_err(|e| ProbeError::Resolve(e.to_string()))?
        .collect(),
    };
    let mut last_error = None;
    for address in addresses {
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) if endpoint.service.implicit_tls() => {
                drop(stream);
                return Ok(address);
            }
            Ok(Ok(mut stream)) => {
                let mut first = [0u8; 1];
                return match tokio::time::timeout(timeout, stream.read(&mut first)).await {
                    Ok(Ok(1..)) => Ok(address),
                    Ok(Ok(_)) => Err(ProbeError::Protocol(
                        "the server closed the connection without a greeting".into(),
                    )),
                    Ok(Err(e)) => Err(ProbeError::Io(e)),
                    Err(_) => Err(ProbeError::Protocol(format!(
                        "no greeting within {timeout:?}"
                    ))),
                };
            }
            Ok(Err(e)) => last_error = Some(ProbeError::Connect(e)),
            Err(_) => last_error = Some(ProbeError::Timeout(timeout)),
        }
    }
    Err(last_error.unwrap_or_else(|| ProbeError::Resolve("no addresses".into())))
}
