//! A small, real DNS server for tests (DESIGN.md: DNS in tests is a real server on
//! loopback, never a mock of the resolver).
//!
//! It answers authoritatively from zone files in RFC 1035 master format, over UDP and TCP
//! on one loopback port, and NXDOMAIN for names outside them. Names can also be made *silent*: queries for them (and for
//! anything below them) are read and never answered, which is how a test makes a
//! resolver time out. A closed port would not do: UDP to it draws an ICMP "port
//! unreachable" and the resolver fails at once instead of waiting.

mod silent;
mod zone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::{LowerName, Name};
use hickory_server::zone_handler::Catalog;
use tokio::net::{TcpListener, UdpSocket};

pub use zone::{Zone, ZoneError};

use crate::silent::SilentNames;

/// How long a TCP connection may stay without a query before the server closes it.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Builds a [`TestDns`]: the zones to serve and the names never to answer.
#[derive(Default)]
pub struct TestDnsBuilder {
    zones: Vec<Zone>,
    silent: Vec<Name>,
}

impl TestDnsBuilder {
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zones.push(zone);
        self
    }

    /// Queries for `name` and every name below it go unanswered.
    pub fn silent(mut self, name: &str) -> Result<Self, ZoneError> {
        let name = Name::from_ascii(name).map_err(|error| ZoneError::Name {
            name: name.to_string(),
            error: error.to_string(),
        })?;
        self.silent.push(name);
        Ok(self)
    }

    /// Listens on `addr` over UDP and TCP. Port 0 picks a free port that both share.
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<TestDns> {
        let (udp, tcp) = bind_pair(addr).await?;
        let addr = udp.local_addr()?;
        let mut catalog = Catalog::new();
        // Names outside every zone get NXDOMAIN from an empty root zone, as the real tree
        // answers for the reserved test TLDs (a resolver walking up to `_dmarc.test.`
        // must learn that nothing is there, not be refused).
        let has_root = self.zones.iter().any(|zone| zone.origin().is_root());
        let root = (!has_root).then(|| Zone::parse(".", "")).transpose();
        let root = root.map_err(|error| std::io::Error::other(error.to_string()))?;
        for zone in self.zones.into_iter().chain(root) {
            let origin = LowerName::from(zone.origin().clone());
            catalog.upsert(origin, vec![Arc::new(zone.into_handler())]);
        }
        let handler = SilentNames::new(catalog, self.silent);
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64 * 1024);
        Ok(TestDns {
            addr,
            _server: server,
        })
    }

    /// Listens on 127.0.0.1 on a free port.
    pub async fn start(self) -> std::io::Result<TestDns> {
        self.bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }
}

/// A running server; it stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    _server: Server<SilentNames>,
}

impl TestDns {
    pub fn builder() -> TestDnsBuilder {
        TestDnsBuilder::default()
    }

    /// Where it listens, for UDP and TCP alike.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds UDP and TCP to the same port. With port 0 the kernel picks the UDP port, which
/// may already be taken for TCP; then another is tried.
async fn bind_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) if addr.port() == 0 => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no free port for UDP and TCP")))
}
