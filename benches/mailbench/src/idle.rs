//! Server memory per idle session. N sessions each log in, SELECT INBOX and enter IDLE,
//! as a mail client waiting for new mail does; the server's memory (RSS and PSS summed
//! over its process tree) is read before the first and after the last has settled. The
//! growth divided by N is the cost of one idle session. Kernel socket structures are not
//! in any process's memory; the machine-wide slab growth is reported beside it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;

use crate::imap_client::ImapClient;
use crate::proctree::{self, Memory};
use crate::target::{Target, TargetArgs};

#[derive(Args)]
pub struct IdleArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Idle sessions to hold.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// The account to log in as; repeat it to spread the sessions over several accounts
    /// in turn (a server may cap sessions per account).
    #[arg(long = "user", required = true)]
    users: Vec<String>,
    #[arg(long, env = "MAILBENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// The server process whose tree's memory is measured.
    #[arg(long = "server-pid", value_name = "PID")]
    server_pid: u32,
    /// Sessions being set up at once (each LOGIN costs a password hash).
    #[arg(long, default_value_t = 16)]
    setup_concurrency: usize,
    /// Seconds to wait before each memory reading, so the server's work (and Dovecot's
    /// process starts) has settled.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
}

type Session = ImapClient<TlsStream<TcpStream>>;

pub async fn run(args: IdleArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.setup_concurrency == 0 {
        bail!("--count and --setup-concurrency must be at least 1");
    }
    let target = Arc::new(Target::new(&args.target).await?);
    let settle = Duration::from_secs_f64(args.settle);

    // One session per account first, closed again, so the baseline includes what the
    // server sets up once per account or lazily on first use (a login's password hash
    // and its cache entry, mailbox indexes, allocator arenas) and the growth is what each
    // further session costs.
    for user in &args.users {
        let warmup = open_idle_session(&target, user, &args.password)
            .await
            .with_context(|| format!("warm-up session of {user}"))?;
        close_idle_session(warmup).await?;
    }
    tokio::time::sleep(settle).await;
    let before = proctree::memory(args.server_pid)?;
    let slab_before = proctree::kernel_slab_kib();

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.setup_concurrency));
    let tasks: Vec<_> = (0..args.count)
        .map(|index| {
            let (target, gate) = (target.clone(), gate.clone());
            let user = args.users[index % args.users.len()].clone();
            let password = args.password.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                open_idle_session(&target, &user, &password).await
            })
        })
        .collect();
    let mut sessions = Vec::with_capacity(args.count);
    let mut errors = Vec::new();
    for task in tasks {
        match task.await? {
            Ok(session) => sessions.push(session),
            Err(error) => errors.push(format!("{error:#}")),
        }
    }
    let setup = started.elapsed();
    if !errors.is_empty() {
        for error in errors.iter().take(5) {
            eprintln!("sealpost-mailbench: {error}");
        }
        bail!(
            "{} of {} sessions could not be set up (first errors above)",
            errors.len(),
            args.count
        );
    }
    tokio::time::sleep(settle).await;
    let after = proctree::memory(args.server_pid)?;
    let slab_after = proctree::kernel_slab_kib();

    // Every session must still be alive and in IDLE: DONE must complete the IDLE command.
    let mut alive = 0;
    let closing: Vec<_> = sessions
        .into_iter()
        .map(|session| tokio::spawn(close_idle_session(session)))
        .collect();
    for task in closing {
        if task.await?.is_ok() {
            alive += 1;
        }
    }
    tokio::time::sleep(settle).await;
    let released = proctree::memory(args.server_pid)?;

    let n = args.count as f64;
    let per = |after: u64, before: u64| (after as f64 - before as f64) / n;
    println!(
        "sessions={} alive_at_end={alive} setup_seconds={:.1} \
         accounts={} rss_per_session_kib={:.1} pss_per_session_kib={:.1} pss_anon_per_session_kib={:.1} \
         rss_before_kib={} rss_after_kib={} pss_before_kib={} pss_after_kib={} pss_anon_before_kib={} \
         processes_before={} processes_after={} pss_after_close_kib={} \
         kernel_slab_per_session_kib={:.1}",
        args.count,
        setup.as_secs_f64(),
        args.users.len(),
        per(after.rss_kib, before.rss_kib),
        per(after.pss_kib, before.pss_kib),
        per(after.pss_anon_kib, before.pss_anon_kib),
        before.rss_kib,
        after.rss_kib,
        before.pss_kib,
        after.pss_kib,
        before.pss_anon_kib,
        before.processes,
        after.processes,
        released.pss_kib,
        per(slab_after, slab_before),
    );
    report_shape(&before, &after);
    if alive < args.count {
        bail!(
            "{} sessions were no longer in IDLE at the end",
            args.count - alive
        );
    }
    Ok(())
}

/// Connect, LOGIN, SELECT INBOX, IDLE; returns once the server has said `+ idling`.
async fn open_idle_session(
    target: &Target,
    user: &str,
    password: &str,
) -> anyhow::Result<(Session, String)> {
    let stream = target.connect().await?;
    // A small buffer: the client holds thousands of these on the same machine.
    let mut imap = ImapClient::new(stream, 1024, Duration::from_secs(120));
    imap.greeting().await?;
    imap.login(user, password).await.context("LOGIN")?;
    imap.command("SELECT INBOX").await.context("SELECT INBOX")?;
    let tag = imap.send_command("IDLE").await?;
    imap.read_continuation().await.context("IDLE")?;
    Ok((imap, tag))
}

async fn close_idle_session(session: (Session, String)) -> anyhow::Result<()> {
    let (mut imap, tag) = session;
    imap.write(b"DONE\r\n").await?;
    imap.read_reply(&tag).await?;
    imap.command("LOGOUT").await?;
    Ok(())
}

/// Where the growth is, for a process tree: one line to standard error.
fn report_shape(before: &Memory, after: &Memory) {
    eprintln!(
        "sealpost-mailbench: server tree {} -> {} processes, PSS {:.1} -> {:.1} MiB",
        before.processes,
        after.processes,
        before.pss_kib as f64 / 1024.0,
        after.pss_kib as f64 / 1024.0
    );
}
