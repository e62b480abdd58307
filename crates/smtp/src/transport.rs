//! The connection the driver talks over. A trait, so the one driver loop runs over the
//! real `MailStream` and, in tests, over an in-memory pipe whose "TLS upgrade" is a
//! stand-in (no TLS acceptor can be built outside the tls crate).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use sealpost_tls::{MailStream, TlsAcceptor, TlsError, TlsInfo};

pub(crate) trait Connection: Send + Sized {
    type Acceptor: Sync;

    fn peer(&self) -> SocketAddr;
    /// The handshake report, once TLS is up.
    fn tls(&self) -> Option<&TlsInfo>;
    /// Octets received but not yet consumed.
    fn buffered(&self) -> &[u8];
    fn consume(&mut self, n: usize);
    /// Reads more from the peer into the buffer; 0 means the peer is gone.
    fn fill(&mut self) -> impl Future<Output = io::Result<usize>> + Send;
    /// Writes all of `bytes` as one piece.
    fn write_all(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// The STARTTLS upgrade; plaintext buffered ahead of it is discarded.
    fn start_tls(
        self,
        acceptor: &Self::Acceptor,
    ) -> impl Future<Output = Result<Self, TlsError>> + Send;
}

impl Connection for MailStream {
    type Acceptor = TlsAcceptor;

    fn peer(&self) -> SocketAddr {
        MailStream::peer(self)
    }

    fn tls(&self) -> Option<&TlsInfo> {
        MailStream::tls(self)
    }

    fn buffered(&self) -> &[u8] {
        MailStream::buffered(self)
    }

    fn consume(&mut self, n: usize) {
        MailStream::consume(self, n);
    }

    fn fill(&mut self) -> impl Future<Output = io::Result<usize>> + Send {
        MailStream::fill(self)
    }

    fn write_all(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
        MailStream::write_all(self, bytes)
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        MailStream::shutdown(self)
    }

    fn start_tls(
        self,
        acceptor: &TlsAcceptor,
    ) -> impl Future<Output = Result<Self, TlsError>> + Send {
        sealpost_tls::starttls(self, acceptor)
    }
}
