//! `sealpost-testdns`: serves zone files on loopback for tests written in any language.
//!
//! ```sh
//! sealpost-testdns --listen 127.0.0.1:0 --dir tests/zones --silent slow.test extra.zone
//! sealpost-testdns --dir zones --sign dnssec.test --bogus _25._tcp.mx.dnssec.test \
//!     --trust-anchor-out anchor.key
//! ```
//!
//! The first line on standard output is the address it listens on (UDP and TCP), so a
//! test that asked for port 0 learns the port; the trust anchor file, when asked for, is
//! written before that line. Then it serves until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use sealpost_testdns::{TestDns, Zone};

#[derive(Parser)]
#[command(about = "Serve DNS zone files on loopback, for tests")]
struct Args {
    /// Address for UDP and TCP; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A directory whose `*.zone` files are served (origin: the file name without `.zone`).
    #[arg(long)]
    dir: Vec<PathBuf>,
    /// Never answer queries for this name or names below it (the resolver times out).
    #[arg(long)]
    silent: Vec<String>,
    /// Serve this zone signed (DNSSEC, ECDSA P-256 key made at start, DS in the zone above).
    #[arg(long, value_name = "ORIGIN")]
    sign: Vec<String>,
    /// Signed records at or below this name get signatures that do not verify, so a
    /// validating resolver finds them bogus (a zone's apex: the whole zone).
    #[arg(long, value_name = "NAME")]
    bogus: Vec<String>,
    /// Write the trust anchor (the signed root zone's DNSKEY, zone-file syntax) here.
    /// Turns DNSSEC on even if no zone is signed, so unsigned zones are provably insecure.
    #[arg(long, value_name = "PATH")]
    trust_anchor_out: Option<PathBuf>,
    /// Zone files to serve (origin: the file name without `.zone`, or `$ORIGIN`).
    zones: Vec<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(error) = run(Args::parse()).await {
        eprintln!("sealpost-testdns: {error}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut files = args.zones;
    for dir in &args.dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|error| format!("cannot read directory {}: {error}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "zone") {
                files.push(path);
            }
        }
    }
    let mut builder = TestDns::builder();
    let mut unsigned: Vec<&String> = args.sign.iter().collect();
    for file in &files {
        let zone = Zone::from_file(file)?;
        let before = unsigned.len();
        unsigned.retain(|origin| !same_name(origin, &zone.origin().to_string()));
        builder = builder.zone(if unsigned.len() < before {
            zone.signed()
        } else {
            zone
        });
    }
    if let Some(origin) = unsigned.first() {
        return Err(format!("--sign {origin}: no zone file with that origin").into());
    }
    for name in &args.silent {
        builder = builder.silent(name)?;
    }
    for name in &args.bogus {
        builder = builder.bogus(name)?;
    }
    if args.trust_anchor_out.is_some() {
        builder = builder.dnssec();
    }
    let server = builder
        .bind(args.listen)
        .await
        .map_err(|error| format!("cannot serve on {}: {error}", args.listen))?;
    if let (Some(path), Some(anchor)) = (&args.trust_anchor_out, server.trust_anchor()) {
        std::fs::write(path, anchor)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", server.addr())?;
    stdout.flush()?;
    std::future::pending::<()>().await;
    Ok(())
}

/// Domain names compare without case and without regard to the trailing dot.
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}
