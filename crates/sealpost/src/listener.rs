//! Every listener has the same shape (DESIGN.md): accept, bounded by a connection limit
//! overall and per client address; optional implicit TLS handshake; then the protocol
//! session, over a stream that can be upgraded once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealpost_imap::ImapService;
use sealpost_pop3::Pop3Service;
use sealpost_smtp::SmtpService;
use sealpost_tls::{MailStream, TlsAcceptor};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{debug, warn};

use crate::config::ListenerName;

/// The session a listener hands its connections to.
pub enum Service {
    Smtp(SmtpService),
    Imap(ImapService),
    Pop3(Pop3Service),
}

impl Service {
    async fn serve(&self, stream: MailStream, shutdown: watch::Receiver<bool>) {
        match self {
            Service::Smtp(smtp) => smtp.serve(stream, shutdown).await,
            Service::Imap(imap) => imap.serve(stream, shutdown).await,
            Service::Pop3(pop3) => pop3.serve(stream, shutdown).await,
        }
    }

    /// What a plaintext client is told when it is turned away for load.
    fn busy_reply(&self) -> &'static [u8] {
        match self {
            Service::Smtp(_) => b"421 4.7.0 too many connections, try again later\r\n",
            Service::Imap(_) => b"* BYE [UNAVAILABLE] too many connections, try again later\r\n",
            Service::Pop3(_) => b"-ERR [SYS/TEMP] too many connections, try again later\r\n",
        }
    }
}

/// Connection limits shared by all listeners. The overall semaphore doubles as the
/// shutdown barrier: once every permit is back, no session is left.
pub struct ConnectionLimits {
    pub total: Arc<Semaphore>,
    pub max_total: u32,
    max_per_ip: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        let max_total = max_total.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Arc::new(Self {
            total: Arc::new(Semaphore::new(max_total)),
            max_total: max_total as u32,
            max_per_ip: max_per_ip.max(1),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admission> {
        let permit = self.total.clone().try_acquire_owned().ok()?;
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(Admission {
            _permit: permit,
            limits: self.clone(),
            ip,
        })
    }
}

/// A connection's place under the limits, given back when the session ends.
struct Admission {
    _permit: OwnedSemaphorePermit,
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

pub struct Listener {
    pub name: ListenerName,
    pub socket: TcpListener,
    /// Set for implicit-TLS ports: the handshake comes before the session.
    pub implicit_tls: Option<TlsAcceptor>,
    pub service: Arc<Service>,
}

impl Listener {
    /// Accepts until `shutdown` turns true, then drops the socket so no one else connects.
    pub async fn run(self, limits: Arc<ConnectionLimits>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                accepted = self.socket.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            match accepted {
                Ok((tcp, peer)) => self.admit(tcp, peer, &limits, &shutdown),
                Err(e) => {
                    // Usually EMFILE or a connection reset before accept: back off
                    // briefly rather than spin on a persistent error.
                    warn!(listener = self.name.key(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn admit(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        limits: &Arc<ConnectionLimits>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let admission = limits.admit(peer.ip());
        let service = self.service.clone();
        let implicit_tls = self.implicit_tls.clone();
        let shutdown = shutdown.clone();
        let listener = self.name.key();
        // The session's future is built inside the task, so the task holds it once.
        tokio::spawn(async move {
            let Some(_admission) = admission else {
                debug!(%peer, listener, "connection refused: limit reached");
                if implicit_tls.is_none() {
                    let mut stream = MailStream::plain(tcp, peer);
                    let _ = stream.write_all(service.busy_reply()).await;
                }
                return;
            };
            let mut stream = MailStream::plain(tcp, peer);
            if let Some(acceptor) = implicit_tls {
                stream = match acceptor.accept(stream).await {
                    Ok(stream) => stream,
                    Err(_) => return,
                };
            }
            service.serve(stream, shutdown).await;
        });
    }
}
