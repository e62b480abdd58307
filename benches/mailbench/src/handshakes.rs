//! Full TLS handshakes per second on an implicit-TLS port. Each connection does what a
//! client checking the server does: connect, handshake (no resumption), read the
//! greeting, `LOGOUT`, wait for the server to close. `--connections` workers loop like
//! that; after a warm-up the completions in a fixed window are counted, and the server's
//! CPU over the same window (its whole process tree) is divided by them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use hdrhistogram::Histogram;

use crate::imap_client::ImapClient;
use crate::proctree;
use crate::target::{Target, TargetArgs, negotiated};

#[derive(Args)]
pub struct HandshakeArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds run before measuring (Dovecot starts login processes, caches fill).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Server process whose tree's CPU time is reported per handshake.
    #[arg(long = "server-pid", value_name = "PID")]
    server_pid: Option<u32>,
}

/// What the workers share.
struct Run {
    target: Target,
    /// Completed connections, errors.
    done: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    stop: AtomicBool,
    /// Latency of each complete connection (connect to close), in microseconds, while
    /// measuring.
    measuring: AtomicBool,
    latencies: Mutex<Histogram<u64>>,
    negotiated: OnceLock<String>,
}

pub async fn run(args: HandshakeArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.duration <= 0.0 {
        bail!("--connections and --duration must be positive");
    }
    let run = Arc::new(Run {
        target: Target::new(&args.target).await?,
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        measuring: AtomicBool::new(false),
        latencies: Mutex::new(Histogram::new(3)?),
        negotiated: OnceLock::new(),
    });
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let run = run.clone();
            tokio::spawn(async move { worker(&run).await })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let server_before = args.server_pid.map(proctree::cpu).transpose()?;
    let client_before = proctree::own_cpu();
    let machine_before = proctree::machine_busy();
    let done_before = run.done.load(Ordering::Relaxed);
    let errors_before = run.errors.load(Ordering::Relaxed);
    run.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let done = run.done.load(Ordering::Relaxed) - done_before;
    let errors = run.errors.load(Ordering::Relaxed) - errors_before;
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu = proctree::own_cpu() - client_before;
    let machine = proctree::machine_busy().saturating_sub(machine_before);
    let server_cpu = match (args.server_pid, server_before) {
        (Some(pid), Some(before)) => Some(proctree::cpu(pid)?.since(&before)),
        _ => None,
    };
    run.measuring.store(false, Ordering::Relaxed);
    run.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await?;
    }

    let latencies = run.latencies.lock().unwrap_or_else(PoisonError::into_inner);
    let per_handshake_us = |cpu: Duration| cpu.as_secs_f64() * 1e6 / done.max(1) as f64;
    let mut line = format!(
        "handshakes={done} errors={errors} seconds={elapsed:.2} rate={:.0} \
         p50_ms={:.2} p99_ms={:.2} client_cpu_us={:.0}",
        done as f64 / elapsed,
        latencies.value_at_quantile(0.5) as f64 / 1000.0,
        latencies.value_at_quantile(0.99) as f64 / 1000.0,
        per_handshake_us(client_cpu),
    );
    if let Some(cpu) = server_cpu {
        let others = machine.saturating_sub(cpu.total() + client_cpu);
        line.push_str(&format!(
            " server_cpu_us={:.0} server_user_us={:.0} server_sys_us={:.0} server_cores={:.2} \
             other_cores={:.2}",
            per_handshake_us(cpu.total()),
            per_handshake_us(cpu.user),
            per_handshake_us(cpu.system),
            cpu.total().as_secs_f64() / elapsed,
            others.as_secs_f64() / elapsed,
        ));
    }
    let negotiated = run.negotiated.get().map_or("none", String::as_str);
    line.push_str(&format!(" tls={negotiated}"));
    println!("{line}");
    for error in run
        .first_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        eprintln!("sealpost-mailbench: {error}");
    }
    if done == 0 || errors * 100 > done {
        bail!("{errors} of {} connections failed", done + errors);
    }
    Ok(())
}

async fn worker(run: &Run) {
    while !run.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match connection(run).await {
            Ok(()) => {
                if run.measuring.load(Ordering::Relaxed) {
                    let micros = started.elapsed().as_micros() as u64;
                    let _ = run
                        .latencies
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(micros.max(1));
                }
                run.done.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                run.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = run
                    .first_errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if first.len() < 5 {
                    first.push(format!("{error:#}"));
                }
            }
        }
    }
}

async fn connection(run: &Run) -> anyhow::Result<()> {
    let stream = run.target.connect().await?;
    if run.negotiated.get().is_none() {
        let _ = run.negotiated.set(negotiated(&stream));
    }
    let mut imap = ImapClient::new(stream, 4096, Duration::from_secs(10));
    imap.greeting().await?;
    imap.command("LOGOUT").await?;
    imap.read_to_end().await
}
