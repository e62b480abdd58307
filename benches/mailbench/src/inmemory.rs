//! The TLS ceiling of this machine: a rustls server and client handshaking through
//! memory on one thread, no sockets, no IMAP. The server is configured as sealpost's
//! implicit-TLS listeners are (its crypto provider, TLS 1.3 and 1.2, server cipher
//! order, session tickets, ALPN), the client as the socket measurements' client. The time
//! spent inside the server's calls alone is what one core could sustain as a server;
//! a real server's CPU per handshake over sockets is compared against it. Rates are per
//! CPU-second of the looping thread, so time the thread spends preempted by other work
//! on the machine does not count.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, ConnectionCommon, ServerConfig, ServerConnection};

use crate::proctree;
use crate::target::{Kx, client_config, describe};

#[derive(Args)]
pub struct InmemoryArgs {
    /// The server certificate chain (PEM), as sealpost uses it.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// The server's private key (PEM).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The CA the client verifies the certificate against.
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    #[arg(long, default_value = "localhost")]
    servername: String,
    /// The one key-exchange group the client offers.
    #[arg(long, value_enum, default_value = "x25519")]
    kx: Kx,
    /// Seconds to loop.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

pub fn run(args: &InmemoryArgs) -> anyhow::Result<()> {
    let server_config = Arc::new(server_config(args)?);
    let client_config = Arc::new(client_config(&args.ca, args.kx)?);
    let servername = ServerName::try_from(args.servername.clone())
        .with_context(|| format!("--servername {} is not a DNS name or IP", args.servername))?;

    let mut handshakes = 0u64;
    let mut server_time = Duration::ZERO;
    let mut negotiated = String::new();
    let duration = Duration::from_secs_f64(args.duration);
    let cpu_before = proctree::thread_cpu();
    let started = Instant::now();
    while started.elapsed() < duration {
        let mut client = ClientConnection::new(client_config.clone(), servername.clone())?;
        let timer = Instant::now();
        let mut server = ServerConnection::new(server_config.clone())?;
        server_time += timer.elapsed();
        let mut wire = Vec::with_capacity(8192);
        loop {
            let to_server = flush(&mut client, &mut wire)?;
            let timer = Instant::now();
            deliver(&mut server, &wire)?;
            let to_client = flush(&mut server, &mut wire)?;
            server_time += timer.elapsed();
            deliver(&mut client, &wire)?;
            if to_server == 0 && to_client == 0 {
                break;
            }
        }
        if client.is_handshaking() || server.is_handshaking() {
            bail!("the in-memory handshake stalled");
        }
        if handshakes == 0 {
            negotiated = describe(&server);
        }
        handshakes += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    // On a busy machine the thread is sometimes preempted, and a preemption inside a
    // timed call would count as server time. The thread's CPU time is immune to that:
    // split it between server and client in the proportion of their timed shares.
    let cpu = proctree::thread_cpu()
        .saturating_sub(cpu_before)
        .as_secs_f64();
    let server_share = server_time.as_secs_f64() / seconds;
    let server_us = cpu * server_share * 1e6 / handshakes as f64;
    println!(
        "handshakes={handshakes} seconds={seconds:.2} cpu_seconds={cpu:.2} \
         loop_rate={:.0} server_us={server_us:.1} server_rate_per_core={:.0} client_us={:.1} \
         tls={negotiated}",
        handshakes as f64 / cpu,
        1e6 / server_us,
        cpu * (1.0 - server_share) * 1e6 / handshakes as f64,
    );
    Ok(())
}

/// What sealpost's `TlsServer` builds for an implicit-TLS IMAP listener, with one
/// certificate instead of the resolver.
fn server_config(args: &InmemoryArgs) -> anyhow::Result<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&args.cert)
        .with_context(|| format!("cannot read --cert {}", args.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("--cert {} is not valid PEM", args.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&args.key)
        .with_context(|| format!("cannot read --key {}", args.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(sealpost_tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not match")?;
    config.ignore_client_order = true;
    config.max_early_data_size = 0;
    config.send_half_rtt_data = false;
    config.alpn_protocols = vec![b"imap".to_vec()];
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    Ok(config)
}

/// Everything `from` wants to send, into `wire` (cleared first); returns its length.
fn flush<D>(from: &mut ConnectionCommon<D>, wire: &mut Vec<u8>) -> anyhow::Result<usize> {
    wire.clear();
    while from.wants_write() {
        from.write_tls(wire)?;
    }
    Ok(wire.len())
}

/// Feeds `wire` to `to` and lets it process every record.
fn deliver<D>(to: &mut ConnectionCommon<D>, wire: &[u8]) -> anyhow::Result<()> {
    let mut rest = wire;
    while !rest.is_empty() {
        to.read_tls(&mut rest)?;
        to.process_new_packets()?;
    }
    Ok(())
}
