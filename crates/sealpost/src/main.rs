//! sealpost: a mail server built around encrypted transport.

mod account;
mod bench;
mod check;
mod config;
mod dmarc;
mod dns_records;
mod domain;
mod listener;
mod mail;
mod queue;
mod serve;
mod store_migrate;
mod tls_memory;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "sealpost",
    version,
    about = "A mail server built around encrypted transport"
)]
struct Cli {
    /// The config file; without one every key takes its default.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server on every configured listener.
    Serve,
    /// Manage mail accounts.
    Account {
        #[command(subcommand)]
        command: account::AccountCommand,
    },
    /// Read the mail stored for an account.
    Mail {
        #[command(subcommand)]
        command: mail::MailCommand,
    },
    /// Load a server and measure it (see scripts/bench-smtp).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Manage local domains and their DKIM keys.
    Domain {
        #[command(subcommand)]
        command: domain::DomainCommand,
    },
    /// Print every DNS record a local domain should publish, in zone-file syntax.
    Dns { domain: String },
    /// DMARC aggregate reports: import and summarise those received, send ours.
    Dmarc {
        #[command(subcommand)]
        command: dmarc::DmarcCommand,
    },
    /// Inspect a mail server's (or a domain's) TLS and DNS posture and grade it.
    Check(check::CheckArgs),
    /// Inspect the outbound queue, retry or drop an entry.
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// The domains that showed verified TLS and now require it (downgrade memory).
    TlsMemory {
        #[command(subcommand)]
        command: tls_memory::TlsMemoryCommand,
    },
    /// Move the store: copy the embedded store into PostgreSQL.
    Store {
        #[command(subcommand)]
        command: store_migrate::StoreCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = Config::load(cli.config.as_deref()).and_then(|config| run(cli.command, config));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealpost: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Serve => serve::serve(config).await,
            Command::Account { command } => account::run(command, &config).await,
            Command::Mail { command } => mail::run(command, &config).await,
            Command::Bench { command } => bench::run(command).await,
            Command::Domain { command } => domain::run(command, &config).await,
            Command::Dns { domain } => dns_records::print(&domain, &config),
            Command::Dmarc { command } => dmarc::run(command, &config).await,
            Command::Check(args) => check::run(args, &config).await,
            Command::Queue { command } => queue::run(command, &config).await,
            Command::TlsMemory { command } => tls_memory::run(command, &config).await,
            Command::Store { command } => store_migrate::run(command, &config).await,
        }
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALPOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
