//! Where and how to connect: the server's address, the TLS client configuration shared by
//! every measurement, and the loopback source addresses connections are spread over.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ConnectionCommon, NamedGroup, RootCertStore};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The key exchange the client offers. Only one group is offered, so both servers do the
/// same work: Dovecot's OpenSSL 3.0 has no X25519MLKEM768, and a client offering both
/// would make sealpost run the (costlier) hybrid exchange while Dovecot runs X25519.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kx {
    X25519,
    X25519mlkem768,
    Secp256r1,
}

impl Kx {
    fn group(self) -> NamedGroup {
        match self {
            Kx::X25519 => NamedGroup::X25519,
            Kx::X25519mlkem768 => NamedGroup::X25519MLKEM768,
            Kx::Secp256r1 => NamedGroup::secp256r1,
        }
    }
}

/// sealpost's crypto policy (the same suites in the same order, so a server that honours
/// the client's order picks AES-128-GCM as sealpost does by its own preference), narrowed
/// to one key-exchange group.
pub fn provider(kx: Kx) -> Arc<CryptoProvider> {
    let mut provider = Arc::unwrap_or_clone(sealpost_tls::crypto_provider());
    provider
        .kx_groups
        .retain(|group| group.name() == kx.group());
    Arc::new(provider)
}

/// TLS 1.3 and 1.2, verifying against `ca` only, with resumption off so that every
/// connection pays for a full handshake, as a client connecting for the first time does.
pub fn client_config(ca: &Path, kx: Kx) -> anyhow::Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("cannot read --ca {}", ca.display()))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("--ca {} is not valid PEM", ca.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("--ca {} holds an unusable certificate", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("--ca {} holds no certificate", ca.display());
    }
    let mut config = ClientConfig::builder_with_provider(provider(kx))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(config)
}

#[derive(Args, Clone)]
pub struct TargetArgs {
    /// The server's implicit-TLS IMAP port, e.g. 127.0.0.1:10993.
    #[arg(long, value_name = "HOST:PORT")]
    pub target: String,
    /// PEM file of the CA the server certificate must chain to.
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// Name sent in SNI and checked against the server certificate.
    #[arg(long, default_value = "localhost")]
    pub servername: String,
    /// The one key-exchange group offered.
    #[arg(long, value_enum, default_value = "x25519")]
    pub kx: Kx,
    /// Loopback source addresses connections take in turn, as FIRST-LAST (last octet) or a
    /// comma list. Many sources keep per-IP limits and TIME_WAIT port reuse out of the
    /// measurement; not 127.0.0.1, which Dovecot treats as a trusted local client.
    #[arg(long, default_value = "127.0.0.2-127.0.0.201")]
    pub sources: String,
}

/// A server to connect to, ready to open any number of TLS connections.
pub struct Target {
    address: SocketAddr,
    servername: ServerName<'static>,
    connector: TlsConnector,
    sources: Vec<Ipv4Addr>,
    next_source: AtomicUsize,
}

impl Target {
    pub async fn new(args: &TargetArgs) -> anyhow::Result<Target> {
        let address = tokio::net::lookup_host(&args.target)
            .await
            .with_context(|| format!("cannot resolve --target {}", args.target))?
            .next()
            .with_context(|| format!("--target {} has no address", args.target))?;
        let servername = ServerName::try_from(args.servername.clone())
            .with_context(|| format!("--servername {} is not a DNS name or IP", args.servername))?;
        let connector = TlsConnector::from(Arc::new(client_config(&args.ca, args.kx)?));
        Ok(Target {
            address,
            servername,
            connector,
            sources: parse_sources(&args.sources)?,
            next_source: AtomicUsize::new(0),
        })
    }

    /// TCP connect (with TCP_NODELAY, as a mail client sets it) from the next source
    /// address, then the full TLS handshake.
    pub async fn connect(&self) -> anyhow::Result<TlsStream<TcpStream>> {
        let index = self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources.len();
        let socket = TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::new(IpAddr::V4(self.sources[index]), 0))
            .with_context(|| format!("cannot bind source address {}", self.sources[index]))?;
        let tcp = socket
            .connect(self.address)
            .await
            .with_context(|| format!("cannot connect to {}", self.address))?;
        tcp.set_nodelay(true)?;
        self.connector
            .connect(self.servername.clone(), tcp)
            .await
            .context("TLS handshake failed")
    }
}

/// What the handshake settled on, e.g. `TLSv1_3/TLS13_AES_128_GCM_SHA256/X25519`, so a
/// table can show that both servers were measured doing the same work.
pub fn negotiated(stream: &TlsStream<TcpStream>) -> String {
    describe(stream.get_ref().1)
}

pub fn describe<D>(connection: &ConnectionCommon<D>) -> String {
    let version = connection
        .protocol_version()
        .map_or("?".to_string(), |v| format!("{v:?}"));
    let suite = connection
        .negotiated_cipher_suite()
        .map_or("?".to_string(), |s| format!("{:?}", s.suite()));
    let group = connection
        .negotiated_key_exchange_group()
        .map_or("?".to_string(), |g| format!("{:?}", g.name()));
    format!("{version}/{suite}/{group}")
}

fn parse_sources(spec: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    let bad = || format!("--sources {spec}: expected 127.0.0.2-127.0.0.201 or a comma list");
    let sources: Vec<Ipv4Addr> = match spec.split_once('-') {
        Some((first, last)) => {
            let first: Ipv4Addr = first.parse().with_context(bad)?;
            let last: Ipv4Addr = last.parse().with_context(bad)?;
            let [a, b, c, from] = first.octets();
            if last.octets()[..3] != [a, b, c] || last.octets()[3] < from {
                bail!(bad());
            }
            (from..=last.octets()[3])
                .map(|d| Ipv4Addr::new(a, b, c, d))
                .collect()
        }
        None => spec
            .split(',')
            .map(|s| s.trim().parse().with_context(bad))
            .collect::<anyhow::Result<_>>()?,
    };
    if sources.is_empty() {
        bail!(bad());
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_range_covers_both_ends() {
        let sources = parse_sources("127.0.0.2-127.0.0.4").unwrap();
        assert_eq!(
            sources,
            [
                Ipv4Addr::new(127, 0, 0, 2),
                Ipv4Addr::new(127, 0, 0, 3),
                Ipv4Addr::new(127, 0, 0, 4)
            ]
        );
    }

    #[test]
    fn sources_range_must_stay_in_one_subnet_and_ascend() {
        assert!(parse_sources("127.0.0.9-127.0.0.2").is_err());
        assert!(parse_sources("127.0.0.2-127.0.1.2").is_err());
    }

    #[test]
    fn provider_offers_exactly_the_chosen_group_with_sealposts_suites() {
        let provider = provider(Kx::X25519);
        let groups: Vec<_> = provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, [NamedGroup::X25519]);
        assert_eq!(
            provider.cipher_suites.len(),
            sealpost_tls::crypto_provider().cipher_suites.len()
        );
    }
}
