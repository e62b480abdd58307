//! `sealpost check`: the inspector of any mail server's TLS and DNS posture
//! (crates/check), with a progress line on a terminal and an exit status for monitoring.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sealpost_check::{Grade, Options, Progress, ProgressStatus, Target, TrustStore};

use crate::config::Config;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// smtp://host[:port] (also submission, submissions, imap, imaps, pop3, pop3s), or a
    /// domain: every MX on port 25 plus its DNS policies.
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
    /// More trust anchors (PEM), besides the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// DKIM selectors to look up for domain targets. Domains are looked up through the
    /// config's [dns] nameservers (the system's when empty).
    #[arg(long = "dkim-selector", value_name = "SELECTOR")]
    dkim_selectors: Vec<String>,
    /// Print the report as JSON (schema: crates/check/README.md).
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when any endpoint or domain is graded below this (A+, A, A-, B,
    /// ... F).
    #[arg(long, value_name = "GRADE")]
    min_grade: Option<Grade>,
    /// Seconds each probe may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
}

pub async fn run(args: CheckArgs, config: &Config) -> anyhow::Result<()> {
    let targets = args
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        bail!(
            "--timeout {} is not a number of seconds from 0 to 3600",
            args.timeout
        );
    }
    let trust = TrustStore::load(&args.ca)?;
    if trust.system_roots == 0 && trust.extra_roots == 0 {
        eprintln!("sealpost check: no system trust anchors found; only --ca files are trusted");
    }
    let nameservers = config
        .dns
        .nameservers
        .iter()
        .map(|n| {
            n.parse()
                .with_context(|| format!("[dns] nameservers: {n:?} is not an address:port"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = Options {
        timeout: Duration::from_secs_f64(args.timeout),
        trust,
        nameservers,
        dkim_selectors: args.dkim_selectors,
    };
    let progress: Arc<dyn Progress> = if std::io::stderr().is_terminal() {
        Arc::new(ProgressLine::default())
    } else {
        Arc::new(sealpost_check::NoProgress)
    };
    let report = sealpost_check::check(&targets, &options, progress).await?;
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report).context("writing the JSON report")?;
        writeln!(stdout)?;
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        write!(
            stdout,
            "{}",
            sealpost_check::render::render(&report, colour)
        )?;
    }
    stdout.flush()?;
    if let Some(min) = args.min_grade {
        let below: Vec<String> = report
            .grades()
            .filter(|(_, grade)| *grade < min)
            .map(|(name, grade)| format!("{name} is {grade}"))
            .collect();
        if !below.is_empty() {
            bail!("below --min-grade {min}: {}", below.join(", "));
        }
    }
    Ok(())
}

/// One line on stderr, rewritten at most every 100 ms.
#[derive(Default)]
struct ProgressLine {
    last: Mutex<Option<Instant>>,
}

impl Progress for ProgressLine {
    fn update(&self, status: &ProgressStatus) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        *last = Some(Instant::now());
        let line: String = format!(
            "checking: {} probes done, {} running — {}",
            status.probes_done, status.probes_running, status.current
        )
        .chars()
        .take(120)
        .collect();
        eprint!("\r\x1b[K{line}");
        let _ = std::io::stderr().flush();
    }
}
