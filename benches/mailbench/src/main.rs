//! `sealpost-mailbench`: the load generator behind scripts/bench-imap. It measures an IMAP
//! server (sealpost or Dovecot, the same client for both) and prints one `key=value` line
//! per measurement, so the script can alternate servers and tabulate medians.
//!
//! It lives outside the `sealpost` binary on purpose: it is a measuring instrument, not
//! something a mail server should ship, and it must not be built into the server it
//! measures.

mod corpus;
mod fetch;
mod handshakes;
mod idle;
mod imap_client;
mod inmemory;
mod load;
mod proctree;
mod target;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sealpost-mailbench", about, version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the benchmark messages (same bytes for every server) into a directory.
    Corpus(corpus::CorpusArgs),
    /// APPEND every message of a corpus directory to INBOX over IMAPS.
    Append(load::AppendArgs),
    /// Full TLS handshakes per second: connect, handshake, greeting, LOGOUT, close.
    Handshakes(handshakes::HandshakeArgs),
    /// Server memory per idle session: N sessions logged in, INBOX selected, in IDLE.
    Idle(idle::IdleArgs),
    /// `UID FETCH 1:* BODY.PEEK[]` of the whole INBOX on one session, timed.
    Fetch(fetch::FetchArgs),
    /// rustls server and client handshaking in memory on one core, with sealpost's
    /// crypto policy: the ceiling a TLS server on this machine can reach.
    Inmemory(inmemory::InmemoryArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Corpus(args) => corpus::run(&args),
        Command::Inmemory(args) => inmemory::run(&args),
        Command::Append(args) => block_on(load::run(args)),
        Command::Handshakes(args) => block_on(handshakes::run(args)),
        Command::Idle(args) => block_on(idle::run(args)),
        Command::Fetch(args) => block_on(fetch::run(args)),
    }
}

/// The socket measurements run on tokio's default multi-thread runtime, one worker per
/// core: the client shares the cores with the server, so it must be able to use them all
/// when the server leaves them idle.
fn block_on(future: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}
