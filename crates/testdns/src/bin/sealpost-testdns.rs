//! `sealpost-testdns`: serves zone files on loopback for tests written in any language.
//!
//! ```sh
//! sealpost-testdns --listen 127.0.0.1:0 --dir tests/zones --silent slow.test extra.zone
//! ```
//!
//! The first line on standard output is the address it listens on (UDP and TCP), so a
//! test that asked for port 0 learns the port; then it serves until killed.

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
    for file in &files {
        builder = builder.zone(Zone::from_file(file)?);
    }
    for name in &args.silent {
        builder = builder.silent(name)?;
    }
    let server = builder
        .bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", server.addr())?;
    stdout.flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
