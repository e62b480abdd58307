//! A small, real DNS server for tests (DESIGN.md: DNS in tests is a real server on
//! loopback, never a mock of the resolver).
//!
//! It answers authoritatively from zone files in RFC 1035 master format, over UDP and TCP
//! on one loopback port, and NXDOMAIN for names outside them. Names can also be made
//! *silent*: queries for them (and for anything below them) are read and never answered,
//! which is how a test makes a resolver time out. A closed port would not do: UDP to it
//! draws an ICMP "port unreachable" and the resolver fails at once instead of waiting.
//!
//! With DNSSEC (a zone marked [`Zone::signed`], or [`TestDnsBuilder::dnssec`]) the root
//! zone is signed too and its key is the trust anchor ([`TestDns::trust_anchor`]): signed
//! zones validate as secure, unsigned ones as insecure, and names given to
//! [`TestDnsBuilder::bogus`] as bogus. See `dnssec.rs` for the chain.

mod denial;
mod dnssec;
mod silent;
mod tree;
mod zone;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::Name;
use tokio::net::{TcpListener, UdpSocket};

pub use zone::{Zone, ZoneError};

use crate::silent::SilentNames;
use crate::tree::ZoneTree;

/// How long a TCP connection may stay without a query before the server closes it.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Builds a [`TestDns`]: the zones to serve, the names never to answer, and DNSSEC.
#[derive(Default)]
pub struct TestDnsBuilder {
    zones: Vec<Zone>,
    silent: Vec<Name>,
    dnssec: bool,
    bogus: Vec<Name>,
}

impl TestDnsBuilder {
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zones.push(zone);
        self
    }

    /// Queries for `name` and every name below it go unanswered.
    pub fn silent(mut self, name: &str) -> Result<Self, ZoneError> {
        self.silent.push(parse_name(name)?);
        Ok(self)
    }

    /// Serves DNSSEC even if no zone is signed: the root is signed and its key becomes the
    /// trust anchor, so a validating resolver can prove unsigned zones insecure. (Signing a
    /// zone turns this on by itself.)
    pub fn dnssec(mut self) -> Self {
        self.dnssec = true;
        self
    }

    /// The signed records at or below `name` are served with signatures that do not
    /// verify: a validating resolver finds them bogus. A zone's apex makes the whole zone
    /// bogus: a signed zone's DS record in the parent breaks, and for an unsigned zone the
    /// parent's NSEC proving it unsigned does. Starting fails if nothing signed is there.
    pub fn bogus(mut self, name: &str) -> Result<Self, ZoneError> {
        self.bogus.push(parse_name(name)?);
        self.dnssec = true;
        Ok(self)
    }

    /// Listens on `addr` over UDP and TCP. Port 0 picks a free port that both share.
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<TestDns> {
        let (udp, tcp) = bind_pair(addr).await?;
        let addr = udp.local_addr()?;
        let mut zones = self.zones;
        // Names outside every zone get NXDOMAIN from an empty root zone, as the real tree
        // answers for the reserved test TLDs (a resolver walking up to `_dmarc.test.`
        // must learn that nothing is there, not be refused).
        if !zones.iter().any(|zone| zone.origin().is_root()) {
            zones.push(Zone::parse(".", "").map_err(std::io::Error::other)?);
        }
        let dnssec = self.dnssec || zones.iter().any(Zone::is_signed);
        let built = ZoneTree::build(zones, dnssec, &self.bogus).map_err(std::io::Error::other)?;
        let handler = SilentNames::new(built.tree, self.silent);
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64 * 1024);
        Ok(TestDns {
            addr,
            trust_anchor: built.trust_anchor,
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
    trust_anchor: Option<String>,
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

    /// With DNSSEC, the root zone's DNSKEY record in zone-file syntax
    /// (`. 300 IN DNSKEY 257 3 13 <base64>`): the trust anchor a validating resolver needs.
    pub fn trust_anchor(&self) -> Option<&str> {
        self.trust_anchor.as_deref()
    }
}

fn parse_name(name: &str) -> Result<Name, ZoneError> {
    let mut parsed = Name::from_ascii(name).map_err(|error| ZoneError::Name {
        name: name.to_string(),
        error: error.to_string(),
    })?;
    parsed.set_fqdn(true);
    Ok(parsed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bogus_names_must_hold_signed_records() {
        let unsigned = TestDns::builder()
            .zone(Zone::parse("example.test", "@ A 192.0.2.1\n").unwrap())
            .bogus("mx.example.test")
            .unwrap()
            .start()
            .await;
        let error = unsigned.err().expect("nothing signed to break").to_string();
        assert!(error.contains("mx.example.test."), "{error}");
    }

    #[tokio::test]
    async fn trust_anchor_is_the_signed_roots_dnskey() {
        let plain = TestDns::builder().start().await.unwrap();
        assert_eq!(plain.trust_anchor(), None);
        let signed = TestDns::builder().dnssec().start().await.unwrap();
        let anchor = signed.trust_anchor().unwrap();
        assert!(anchor.starts_with(". 300 IN DNSKEY 257 3 13 "), "{anchor}");
        assert!(anchor.ends_with('\n'));
    }
}
