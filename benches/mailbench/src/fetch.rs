//! Bulk download: one session fetches every message of INBOX with
//! `UID FETCH 1:* BODY.PEEK[]` (PEEK, so no run changes \Seen and each run does the same
//! work), as a client synchronising a mailbox for the first time does. One untimed run
//! warms caches, then each timed run prints a line.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::imap_client::ImapClient;
use crate::proctree;
use crate::target::{Target, TargetArgs};

#[derive(Args)]
pub struct FetchArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long)]
    user: String,
    #[arg(long, env = "MAILBENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// Timed runs, each printing one line.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Messages INBOX must hold; a different count is an error.
    #[arg(long)]
    expect: Option<u64>,
    /// Server process whose tree's CPU time is reported per run.
    #[arg(long = "server-pid", value_name = "PID")]
    server_pid: Option<u32>,
}

pub async fn run(args: FetchArgs) -> anyhow::Result<()> {
    let target = Target::new(&args.target).await?;
    let stream = target.connect().await?;
    let mut imap = ImapClient::new(stream, 256 * 1024, Duration::from_secs(120));
    imap.greeting().await?;
    imap.login(&args.user, &args.password)
        .await
        .context("LOGIN")?;
    imap.command("SELECT INBOX").await.context("SELECT INBOX")?;

    let warmup = imap.command("UID FETCH 1:* BODY.PEEK[]").await?;
    if let Some(expected) = args.expect
        && warmup.literals != expected
    {
        bail!(
            "UID FETCH 1:* returned {} message bodies, expected {expected}",
            warmup.literals
        );
    }
    for _ in 0..args.runs {
        let server_before = args.server_pid.map(proctree::cpu_precise).transpose()?;
        let client_before = proctree::own_cpu();
        let machine_before = proctree::machine_busy();
        let started = Instant::now();
        let reply = imap.command("UID FETCH 1:* BODY.PEEK[]").await?;
        let seconds = started.elapsed().as_secs_f64();
        let client_cpu = proctree::own_cpu() - client_before;
        let machine = proctree::machine_busy().saturating_sub(machine_before);
        if reply.literals != warmup.literals || reply.literal_bytes != warmup.literal_bytes {
            bail!(
                "runs differ: {} bodies / {} bytes, first {} / {}",
                reply.literals,
                reply.literal_bytes,
                warmup.literals,
                warmup.literal_bytes
            );
        }
        let mut line = format!(
            "messages={} bytes={} seconds={seconds:.4} msg_per_s={:.0} mb_per_s={:.1} \
             client_cpu_ms={:.0}",
            reply.literals,
            reply.literal_bytes,
            reply.literals as f64 / seconds,
            reply.literal_bytes as f64 / seconds / 1e6,
            client_cpu.as_secs_f64() * 1e3,
        );
        if let (Some(pid), Some(before)) = (args.server_pid, server_before) {
            let server_cpu = proctree::cpu_precise(pid)?.saturating_sub(before);
            let others = machine.saturating_sub(server_cpu + client_cpu);
            line.push_str(&format!(
                " server_cpu_ms={:.0} server_cpu_us_per_msg={:.1} other_cores={:.2}",
                server_cpu.as_secs_f64() * 1e3,
                server_cpu.as_secs_f64() * 1e6 / reply.literals.max(1) as f64,
                others.as_secs_f64() / seconds,
            ));
        }
        println!("{line}");
    }
    imap.command("LOGOUT").await?;
    Ok(())
}
