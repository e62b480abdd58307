//! The connection every protocol session talks over: plaintext first or TLS from the
//! first byte, upgradable once (see `starttls.rs`, and `client.rs` for our own outgoing
//! connections), with a small read buffer of our own so the upgrade can see, and refuse,
//! bytes that arrived ahead of the handshake.

use std::io;
use std::net::SocketAddr;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::report::TlsInfo;

/// Bytes asked of the socket per read. Small on purpose: an idle session's buffer is
/// released (see [`MailStream::release_buffer`]), and mail lines are short.
const READ_CHUNK: usize = 4096;

pub(crate) enum Transport {
    Plain(TcpStream),
    /// We are the server (a listener's session).
    Tls(Box<TlsStream<TcpStream>>),
    /// We are the client (outgoing delivery).
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

pub struct MailStream {
    pub(crate) transport: Transport,
    buf: Vec<u8>,
    start: usize,
    pub(crate) peer: SocketAddr,
    pub(crate) tls: Option<TlsInfo>,
}

/// What [`MailStream::read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, with its line ending still attached.
    Complete(Vec<u8>),
    /// The line was longer than allowed; everything up to and including its LF was
    /// discarded, so the session can answer and carry on.
    TooLong,
    /// The peer closed the connection (or TLS ended with close_notify).
    Eof,
}

impl MailStream {
    pub fn plain(tcp: TcpStream, peer: SocketAddr) -> Self {
        Self::new(Transport::Plain(tcp), peer, None)
    }

    pub(crate) fn new(transport: Transport, peer: SocketAddr, tls: Option<TlsInfo>) -> Self {
        Self {
            transport,
            buf: Vec::new(),
            start: 0,
            peer,
            tls,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The handshake report, once TLS is up.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The certificate chain the other side presented in the handshake, leaf first:
    /// the server's on an outgoing connection, a client certificate on a listener's.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match &self.transport {
            Transport::Plain(_) => None,
            Transport::Tls(tls) => tls.get_ref().1.peer_certificates(),
            Transport::TlsClient(tls) => tls.get_ref().1.peer_certificates(),
        }
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.buf.len() - self.start);
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Frees the read buffer when nothing is pending, so an idle session costs little.
    pub fn release_buffer(&mut self) {
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Reads more bytes from the peer into the buffer; returns how many (0 at EOF).
    /// Cancel-safe: a read abandoned by `select!` or a timeout loses no bytes.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        match &mut self.transport {
            Transport::Plain(tcp) => tcp.read_buf(&mut self.buf).await,
            Transport::Tls(tls) => tls.read_buf(&mut self.buf).await,
            Transport::TlsClient(tls) => tls.read_buf(&mut self.buf).await,
        }
    }

    /// Reads one line of at most `max` octets (line ending included).
    pub async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut scanned = 0;
        loop {
            let pending = self.buffered();
            if let Some(pos) = pending[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos + 1;
                if end > max {
                    self.consume(end);
                    return Ok(Line::TooLong);
                }
                let line = pending[..end].to_vec();
                self.consume(end);
                return Ok(Line::Complete(line));
            }
            scanned = pending.len();
            if scanned > max {
                return self.skip_rest_of_line().await;
            }
            if self.fill().await? == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// Discards input through the next LF, holding at most one read's worth in memory.
    async fn skip_rest_of_line(&mut self) -> io::Result<Line> {
        loop {
            let pending = self.buffered();
            if let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                self.consume(pos + 1);
                return Ok(Line::TooLong);
            }
            let n = pending.len();
            self.consume(n);
            if self.fill().await? == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// Writes `bytes` in one go and flushes, so a reply leaves as one segment.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.transport {
            Transport::Plain(tcp) => tcp.write_all(bytes).await,
            Transport::Tls(tls) => {
                tls.write_all(bytes).await?;
                tls.flush().await
            }
            Transport::TlsClient(tls) => {
                tls.write_all(bytes).await?;
                tls.flush().await
            }
        }
    }

    /// Ends the connection; under TLS this sends close_notify first.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.transport {
            Transport::Plain(tcp) => tcp.shutdown().await,
            Transport::Tls(tls) => tls.shutdown().await,
            Transport::TlsClient(tls) => tls.shutdown().await,
        }
    }
}
