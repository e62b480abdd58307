//! `sealpost bench smtp`: a submission load generator, so sealpost can be measured side by
//! side with another server (scripts/bench-smtp runs it against sealpost and Postfix).
//!
//! Each connection does what a mail client does: greeting, EHLO, STARTTLS, EHLO, AUTH PLAIN
//! once, then M transactions, then QUIT. With `--mx` it is another mail server on port 25
//! instead: greeting, EHLO, transactions, no TLS and no AUTH, so what is measured is intake
//! (with `--message`, of a given, e.g. DKIM-signed, message). A message's latency runs from
//! sending MAIL FROM to the 250 after the final dot, i.e. until the server says the message
//! is durable. Every unexpected reply is counted and reported; a run with errors exits
//! non-zero.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Submit messages over STARTTLS + AUTH PLAIN (or deliver them to port 25 with --mx) on
    /// concurrent connections; print msg/s and latency percentiles on one line.
    Smtp(SmtpBenchArgs),
}

#[derive(Args)]
pub struct SmtpBenchArgs {
    /// The submission port to load, e.g. 127.0.0.1:10587 (with --mx: the SMTP port).
    #[arg(long, value_name = "HOST:PORT")]
    target: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Messages sent on each connection.
    #[arg(long, default_value_t = 200)]
    messages: u64,
    /// Size of each message in bytes (headers and body, without the final dot).
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Send this file as every message (CRLF lines, e.g. a message signed beforehand)
    /// instead of generated text; --size is then the file's.
    #[arg(long, value_name = "FILE")]
    message: Option<PathBuf>,
    /// Deliver like a mail server to port 25: plaintext, no AUTH (needs --from and --to).
    #[arg(long, conflicts_with_all = ["user", "password", "ca"])]
    mx: bool,
    /// The account to authenticate as (AUTH PLAIN).
    #[arg(long, required_unless_present = "mx")]
    user: Option<String>,
    #[arg(
        long,
        env = "SEALPOST_BENCH_PASSWORD",
        hide_env_values = true,
        required_unless_present = "mx"
    )]
    password: Option<String>,
    /// PEM file of the CA that the server certificate must chain to.
    #[arg(long, value_name = "FILE", required_unless_present = "mx")]
    ca: Option<PathBuf>,
    /// Name sent in SNI and checked against the server certificate.
    #[arg(long, default_value = "localhost")]
    servername: String,
    /// Envelope sender; default: the user.
    #[arg(long, required_if_eq("mx", "true"))]
    from: Option<String>,
    /// Envelope recipient; default: the user.
    #[arg(long, required_if_eq("mx", "true"))]
    to: Option<String>,
    /// Server process whose CPU time (with all its descendants) is reported per message;
    /// repeatable.
    #[arg(long = "server-pid", value_name = "PID")]
    server_pids: Vec<u32>,
    /// Send MAIL, RCPT and DATA one at a time even when the server offers PIPELINING.
    #[arg(long)]
    no_pipelining: bool,
    /// Seconds to wait for any one reply before the connection counts as failed.
    #[arg(long, default_value_t = 30)]
    reply_timeout: u64,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Smtp(args) => smtp(args).await,
    }
}

/// What every connection shares: the run's parameters and the TLS client config.
struct Plan {
    target: String,
    servername: ServerName<'static>,
    /// STARTTLS and AUTH PLAIN (base64 of the credentials); `None` with `--mx`.
    submission: Option<(TlsConnector, String)>,
    from: String,
    to: String,
    messages: u64,
    size: usize,
    /// `--message`, dot-stuffed and with the final dot.
    fixed_message: Option<Vec<u8>>,
    pipelining_allowed: bool,
    reply_timeout: Duration,
}

async fn smtp(args: SmtpBenchArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.messages == 0 {
        bail!("--connections and --messages must be at least 1");
    }
    let servername = ServerName::try_from(args.servername.clone())
        .with_context(|| format!("--servername {} is not a DNS name or IP", args.servername))?;
    let user = args.user.clone().unwrap_or_default();
    let from = args.from.clone().unwrap_or_else(|| user.clone());
    let to = args.to.clone().unwrap_or_else(|| user.clone());
    let submission = match (&args.ca, &args.password, args.mx) {
        (Some(ca), Some(password), false) => Some((
            TlsConnector::from(Arc::new(tls_client_config(ca)?)),
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}")),
        )),
        _ => None,
    };
    let fixed_message = match &args.message {
        Some(path) => {
            Some(fixed_message(&std::fs::read(path).with_context(|| {
                format!("cannot read --message {}", path.display())
            })?))
        }
        None => None,
    };
    let plan = Arc::new(Plan {
        target: args.target.clone(),
        servername,
        submission,
        from,
        to,
        messages: args.messages,
        size: fixed_message
            .as_ref()
            .map_or(args.size, |message| message.len() - 3),
        fixed_message,
        pipelining_allowed: !args.no_pipelining,
        reply_timeout: Duration::from_secs(args.reply_timeout),
    });

    let before = CpuSample::take(&args.server_pids)?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|index| {
            let plan = plan.clone();
            tokio::spawn(async move { run_connection(&plan, index).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.context("a connection task panicked")?);
    }
    let elapsed = started.elapsed();
    let after = CpuSample::take(&args.server_pids)?;
    let cpu = CpuUse {
        client: after.client.saturating_sub(before.client),
        server: match before.server {
            Some(server_before) => Some(
                settled_cpu(&args.server_pids)
                    .await?
                    .saturating_sub(server_before),
            ),
            None => None,
        },
        // Cores kept busy by neither side during the run: the other processes on the
        // machine that the two sides competed with (the server's late work is excluded).
        others: match (before.server, after.server) {
            (Some(server_before), Some(server_after)) => {
                let busy = after.machine_busy.saturating_sub(before.machine_busy);
                let ours = after.client.saturating_sub(before.client)
                    + server_after.saturating_sub(server_before);
                Some(busy.saturating_sub(ours).as_secs_f64() / elapsed.as_secs_f64())
            }
            _ => None,
        },
    };

    let summary = Summary::merge(outcomes)?;
    println!("{}", summary.line(&args, plan.size, elapsed, &cpu));
    for error in summary.errors.iter().take(5) {
        eprintln!("sealpost bench: {error}");
    }
    let wanted = args.connections as u64 * args.messages;
    if summary.accepted < wanted || !summary.errors.is_empty() {
        bail!(
            "{} of {wanted} messages accepted, {} errors (first ones above)",
            summary.accepted,
            summary.errors.len()
        );
    }
    Ok(())
}

/// TLS 1.2 and 1.3 with aws-lc-rs, verifying against `--ca` only. Resumption is off so
/// every connection pays for a full handshake, as a fresh client would.
fn tls_client_config(ca: &std::path::Path) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
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
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// What one connection achieved.
struct Outcome {
    latencies: Histogram<u64>,
    /// Connect to AUTH's 235: TCP, STARTTLS, handshake, password check.
    setup: Option<Duration>,
    accepted: u64,
    errors: Vec<String>,
    /// Negotiated "version/cipher/group", once the handshake is done.
    tls: Option<String>,
    pipelining: Option<bool>,
}

async fn run_connection(plan: &Plan, index: usize) -> Outcome {
    let mut outcome = Outcome {
        latencies: latency_histogram(),
        setup: None,
        accepted: 0,
        errors: Vec::new(),
        tls: None,
        pipelining: None,
    };
    if let Err(e) = drive_connection(plan, index, &mut outcome).await {
        outcome.errors.push(format!("connection {index}: {e:#}"));
    }
    outcome
}

async fn drive_connection(plan: &Plan, index: usize, outcome: &mut Outcome) -> anyhow::Result<()> {
    let started = Instant::now();
    let tcp = TcpStream::connect(&plan.target)
        .await
        .with_context(|| format!("cannot connect to {}", plan.target))?;
    tcp.set_nodelay(true)?;
    let mut plain = SmtpConn::new(tcp, plan.reply_timeout);
    plain.expect(220, "greeting").await?;
    plain.send(b"EHLO bench.example.test\r\n").await?;
    let ehlo = plain.expect(250, "EHLO").await?;
    let Some((tls, auth_plain)) = &plan.submission else {
        outcome.tls = Some("none".to_owned());
        let pipelining = plan.pipelining_allowed && ehlo.has_capability("PIPELINING");
        outcome.pipelining = Some(pipelining);
        outcome.setup = Some(started.elapsed());
        return transactions(plain, plan, index, pipelining, outcome).await;
    };
    if !ehlo.has_capability("STARTTLS") {
        bail!("the server does not offer STARTTLS");
    }
    plain.send(b"STARTTLS\r\n").await?;
    plain.expect(220, "STARTTLS").await?;
    let (tcp, early) = plain.into_parts();
    if early > 0 {
        outcome.errors.push(format!(
            "connection {index}: server sent {early} bytes after its STARTTLS reply (discarded)"
        ));
    }
    let tls = tls
        .connect(plan.servername.clone(), tcp)
        .await
        .context("TLS handshake")?;
    outcome.tls = Some(describe_tls(tls.get_ref().1));

    let mut conn = SmtpConn::new(tls, plan.reply_timeout);
    conn.send(b"EHLO bench.example.test\r\n").await?;
    let ehlo = conn.expect(250, "EHLO after STARTTLS").await?;
    let pipelining = plan.pipelining_allowed && ehlo.has_capability("PIPELINING");
    outcome.pipelining = Some(pipelining);
    conn.send(format!("AUTH PLAIN {auth_plain}\r\n").as_bytes())
        .await?;
    conn.expect(235, "AUTH PLAIN").await?;
    outcome.setup = Some(started.elapsed());
    transactions(conn, plan, index, pipelining, outcome).await
}

/// The connection's M transactions, then QUIT.
async fn transactions<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: SmtpConn<S>,
    plan: &Plan,
    index: usize,
    pipelining: bool,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let mut message = Vec::with_capacity(plan.size + 256);
    for seq in 0..plan.messages {
        build_message(&mut message, plan, index, seq);
        let started = Instant::now();
        match submit(&mut conn, plan, &message, pipelining).await? {
            Ok(()) => {
                outcome
                    .latencies
                    .saturating_record(micros(started.elapsed()));
                outcome.accepted += 1;
            }
            Err(refusal) => {
                outcome
                    .errors
                    .push(format!("connection {index}, message {seq}: {refusal}"));
                conn.send(b"RSET\r\n").await?;
                conn.expect(250, "RSET").await?;
            }
        }
    }

    conn.send(b"QUIT\r\n").await?;
    conn.expect(221, "QUIT").await?;
    // The server may close first after 221; a failed close_notify then changes nothing.
    let _ = conn.stream.shutdown().await;
    Ok(())
}

/// One transaction. The outer error is a broken connection (the run of this connection
/// ends); the inner one a refused message (the connection goes on after RSET).
async fn submit<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut SmtpConn<S>,
    plan: &Plan,
    message: &[u8],
    pipelining: bool,
) -> anyhow::Result<Result<(), String>> {
    let mail = format!("MAIL FROM:<{}>\r\n", plan.from);
    let rcpt = format!("RCPT TO:<{}>\r\n", plan.to);
    let (mail, rcpt, data) = if pipelining {
        // RFC 2920 §3.1: DATA may end a group; the body waits for its 354.
        conn.send(format!("{mail}{rcpt}DATA\r\n").as_bytes())
            .await?;
        (
            conn.reply().await?,
            conn.reply().await?,
            conn.reply().await?,
        )
    } else {
        conn.send(mail.as_bytes()).await?;
        let mail = conn.reply().await?;
        if mail.code != 250 {
            return Ok(Err(format!("MAIL FROM: {mail}")));
        }
        conn.send(rcpt.as_bytes()).await?;
        let rcpt = conn.reply().await?;
        if !matches!(rcpt.code, 250 | 251) {
            return Ok(Err(format!("RCPT TO: {rcpt}")));
        }
        conn.send(b"DATA\r\n").await?;
        (mail, rcpt, conn.reply().await?)
    };
    let envelope_ok = mail.code == 250 && matches!(rcpt.code, 250 | 251);
    if data.code != 354 {
        return Ok(Err(match envelope_ok {
            true => format!("DATA: {data}"),
            false => format!("MAIL FROM: {mail}; RCPT TO: {rcpt}; DATA: {data}"),
        }));
    }
    if !envelope_ok {
        // A server that says 354 after refusing the envelope still needs the dot.
        conn.send(b".\r\n").await?;
        let end = conn.reply().await?;
        return Ok(Err(format!(
            "MAIL FROM: {mail}; RCPT TO: {rcpt}; DATA: 354 anyway; end of data: {end}"
        )));
    }
    conn.send(message).await?;
    let end = conn.reply().await?;
    match end.code {
        250 => Ok(Ok(())),
        _ => Ok(Err(format!("end of data: {end}"))),
    }
}

/// `--message` as DATA: dot-stuffed (RFC 5321 §4.5.2), ending in CRLF, then the dot.
fn fixed_message(file: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + 8);
    for line in file.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A message of exactly `plan.size` bytes (unless the headers alone are longer) in CRLF
/// lines of at most 78 characters, followed by the terminating dot; or `--message`.
fn build_message(out: &mut Vec<u8>, plan: &Plan, connection: usize, seq: u64) {
    const TEXT: &[u8] =
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor";
    out.clear();
    if let Some(fixed) = &plan.fixed_message {
        out.extend_from_slice(fixed);
        return;
    }
    let mut headers = String::with_capacity(256);
    let _ = write!(
        headers,
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: sealpost bench {connection}/{seq}\r\n\
         Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\
         Message-ID: <bench.{pid}.{connection}.{seq}@bench.example.test>\r\n\r\n",
        from = plan.from,
        to = plan.to,
        pid = std::process::id(),
    );
    out.extend_from_slice(headers.as_bytes());
    while out.len() + 2 < plan.size {
        let room = plan.size - out.len() - 2;
        out.extend_from_slice(&TEXT[..room.min(TEXT.len() - 2)]);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

fn micros(time: Duration) -> u64 {
    u64::try_from(time.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn latency_histogram() -> Histogram<u64> {
    // Microseconds from 1 µs to one hour, three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

fn describe_tls(conn: &rustls::ClientConnection) -> String {
    let version = conn
        .protocol_version()
        .map_or_else(|| "?".to_owned(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite()));
    let group = conn
        .negotiated_key_exchange_group()
        .map_or_else(|| "?".to_owned(), |g| format!("{:?}", g.name()));
    format!("{version}/{suite}/{group}")
}

/// An SMTP reply: its code and the text of its lines.
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// An EHLO keyword, e.g. "PIPELINING" in "250-PIPELINING" (RFC 5321 §4.1.1.1).
    fn has_capability(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|line| {
            line.split_ascii_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
        })
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// An SMTP client connection: whole replies in, whole command groups out.
struct SmtpConn<S> {
    stream: S,
    buf: Vec<u8>,
    reply_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpConn<S> {
    fn new(stream: S, reply_timeout: Duration) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(4096),
            reply_timeout,
        }
    }

    /// The stream, and how many unread bytes were dropped: after STARTTLS's 220 there must
    /// be none, and any there are must not be read as if they came over TLS.
    fn into_parts(self) -> (S, usize) {
        (self.stream, self.buf.len())
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await.context("write")?;
        self.stream.flush().await.context("write")?;
        Ok(())
    }

    async fn expect(&mut self, code: u16, what: &str) -> anyhow::Result<Reply> {
        let reply = self.reply().await?;
        if reply.code != code {
            bail!("{what}: expected {code}, got {reply}");
        }
        Ok(reply)
    }

    async fn reply(&mut self) -> anyhow::Result<Reply> {
        let mut lines = Vec::new();
        let mut consumed = 0;
        loop {
            while let Some(end) = self.buf[consumed..].iter().position(|&b| b == b'\n') {
                let line = &self.buf[consumed..consumed + end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let (code, last, text) = parse_reply_line(line)?;
                consumed += end + 1;
                if let Some(first) = lines.first().map(|(c, _): &(u16, String)| *c)
                    && first != code
                {
                    bail!("reply lines with different codes: {first} then {code}");
                }
                lines.push((code, text));
                if last {
                    self.buf.drain(..consumed);
                    return Ok(Reply {
                        code,
                        lines: lines.into_iter().map(|(_, text)| text).collect(),
                    });
                }
            }
            if self.buf.len() > 64 * 1024 {
                bail!("reply longer than 64 KiB");
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(self.reply_timeout, self.stream.read(&mut chunk))
                .await
                .context("no reply in time")?
                .context("read")?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// "250-TEXT" → (250, false, "TEXT"); "250 TEXT" or "250" → (250, true, ...).
fn parse_reply_line(line: &[u8]) -> anyhow::Result<(u16, bool, String)> {
    let text = String::from_utf8_lossy(line);
    let code = text
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an SMTP reply: {text:?}"))?;
    match line.get(3) {
        None => Ok((code, true, String::new())),
        Some(b' ') => Ok((code, true, text[4..].to_owned())),
        Some(b'-') => Ok((code, false, text[4..].to_owned())),
        Some(_) => bail!("not an SMTP reply: {text:?}"),
    }
}

/// Every connection's outcome together.
struct Summary {
    latencies: Histogram<u64>,
    setup: Histogram<u64>,
    accepted: u64,
    errors: Vec<String>,
    tls: String,
    pipelining: String,
}

impl Summary {
    fn merge(outcomes: Vec<Outcome>) -> anyhow::Result<Self> {
        let mut latencies = latency_histogram();
        let mut setup = latency_histogram();
        let mut accepted = 0;
        let mut errors = Vec::new();
        let mut tls = HashSet::new();
        let mut pipelining = HashSet::new();
        for outcome in outcomes {
            latencies.add(&outcome.latencies)?;
            if let Some(time) = outcome.setup {
                setup.saturating_record(micros(time));
            }
            accepted += outcome.accepted;
            errors.extend(outcome.errors);
            tls.extend(outcome.tls);
            pipelining.extend(outcome.pipelining);
        }
        let join = |set: HashSet<String>| {
            let mut all: Vec<_> = set.into_iter().collect();
            all.sort();
            match all.is_empty() {
                true => "none".to_owned(),
                false => all.join(","),
            }
        };
        Ok(Self {
            latencies,
            setup,
            accepted,
            errors,
            tls: join(tls),
            pipelining: join(
                pipelining
                    .into_iter()
                    .map(|p| if p { "yes" } else { "no" }.to_owned())
                    .collect(),
            ),
        })
    }

    /// One line of `key=value` fields, for people and for scripts/bench-smtp alike.
    fn line(&self, args: &SmtpBenchArgs, size: usize, elapsed: Duration, cpu: &CpuUse) -> String {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let per_message = |cpu: Duration| match self.accepted {
            0 => "-".to_owned(),
            n => format!("{:.3}ms", cpu.as_secs_f64() * 1000.0 / n as f64),
        };
        let seconds = elapsed.as_secs_f64();
        format!(
            "target={} connections={} messages={} accepted={} errors={} elapsed={:.2}s \
             msg/s={:.1} p50={:.2}ms p99={:.2}ms max={:.2}ms server_cpu/msg={} \
             client_cpu/msg={} other_cores={} setup_p50={:.1}ms setup_max={:.1}ms size={} \
             pipelining={} tls={}",
            args.target,
            args.connections,
            args.connections as u64 * args.messages,
            self.accepted,
            self.errors.len(),
            seconds,
            self.accepted as f64 / seconds,
            ms(self.latencies.value_at_quantile(0.50)),
            ms(self.latencies.value_at_quantile(0.99)),
            ms(self.latencies.max()),
            cpu.server.map_or_else(|| "-".to_owned(), per_message),
            per_message(cpu.client),
            cpu.others
                .map_or_else(|| "-".to_owned(), |cores| format!("{cores:.2}")),
            ms(self.setup.value_at_quantile(0.50)),
            ms(self.setup.max()),
            size,
            self.pipelining,
            self.tls,
        )
    }
}

/// CPU time (user + system) used so far by the given processes and all their descendants,
/// including descendants that have already exited (they live on in their parent's cutime
/// and cstime once reaped). Postfix is a tree of short-lived processes; sealpost is one.
fn process_tree_cpu(roots: &[u32]) -> anyhow::Result<Duration> {
    let mut processes = HashMap::new();
    let entries = std::fs::read_dir("/proc").context("cannot read /proc")?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between listing and reading; it is then in its parent's cutime.
        if let Some(stat) = read_proc_stat(pid) {
            processes.insert(pid, stat);
        }
    }
    for root in roots {
        if !processes.contains_key(root) {
            bail!("--server-pid {root}: no such process");
        }
    }
    let roots: HashSet<u32> = roots.iter().copied().collect();
    let in_tree = |mut pid: u32| {
        // Bounded walk: a pid reused mid-scan could in theory make a cycle.
        for _ in 0..processes.len() {
            if roots.contains(&pid) {
                return true;
            }
            match processes.get(&pid) {
                Some(stat) if stat.ppid != 0 && stat.ppid != pid => pid = stat.ppid,
                _ => return false,
            }
        }
        false
    };
    let ticks: u64 = processes
        .iter()
        .filter(|(pid, _)| in_tree(**pid))
        .map(|(_, stat)| stat.ticks)
        .sum();
    Ok(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second(),
    ))
}

/// CPU time used so far: by this process, by the server's process trees, by the machine.
struct CpuSample {
    client: Duration,
    server: Option<Duration>,
    machine_busy: Duration,
}

impl CpuSample {
    fn take(server_pids: &[u32]) -> anyhow::Result<Self> {
        Ok(Self {
            client: process_tree_cpu(&[std::process::id()])?,
            server: match server_pids.is_empty() {
                true => None,
                false => Some(process_tree_cpu(server_pids)?),
            },
            machine_busy: machine_busy_cpu()?,
        })
    }
}

/// What a run cost in CPU.
struct CpuUse {
    client: Duration,
    server: Option<Duration>,
    /// Average cores used by other processes while the run went on.
    others: Option<f64>,
}

/// The server's CPU time once it has gone quiet: work it does after its 250 (Postfix
/// delivers from its queue into the mailbox) belongs to the messages too. Waits until two
/// samples 250 ms apart agree, at most 30 s.
async fn settled_cpu(pids: &[u32]) -> anyhow::Result<Duration> {
    let mut last = process_tree_cpu(pids)?;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = process_tree_cpu(pids)?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(last)
}

struct ProcStat {
    ppid: u32,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
}

/// Fields of /proc/PID/stat per proc(5); the command name in parentheses may hold spaces,
/// so fields are counted from the last ')'.
fn read_proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_ascii_whitespace().collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(ProcStat {
        ppid: u32::try_from(field(4)?).ok()?,
        ticks: field(14)? + field(15)? + field(16)? + field(17)?,
    })
}

/// CPU time all cores spent on anything but idle and iowait, from the first line of
/// /proc/stat (proc(5)).
fn machine_busy_cpu() -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let ticks: Vec<u64> = text
        .lines()
        .next()
        .filter(|line| line.starts_with("cpu "))
        .context("/proc/stat does not start with the cpu line")?
        .split_ascii_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
    // already counted in user.
    let busy: u64 = ticks.iter().take(8).sum::<u64>()
        - ticks.get(3).copied().unwrap_or(0)
        - ticks.get(4).copied().unwrap_or(0);
    Ok(Duration::from_secs_f64(
        busy as f64 / clock_ticks_per_second(),
    ))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the C library; it takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(size: usize) -> Plan {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        Plan {
            target: "127.0.0.1:1".to_owned(),
            servername: ServerName::try_from("localhost").expect("valid name"),
            submission: Some((TlsConnector::from(Arc::new(config)), String::new())),
            from: "bench@example.test".to_owned(),
            to: "bench@example.test".to_owned(),
            messages: 1,
            size,
            fixed_message: None,
            pipelining_allowed: true,
            reply_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn message_has_the_requested_size_in_crlf_lines_then_the_dot() {
        let mut message = Vec::new();
        build_message(&mut message, &plan(4096), 3, 7);
        assert_eq!(message.len(), 4096 + 3);
        assert!(message.ends_with(b"\r\n.\r\n"));
        let body = &message[..4096];
        for line in body.split(|&b| b == b'\n') {
            assert!(line.len() <= 79, "line too long: {}", line.len());
            assert!(!line.starts_with(b"."));
        }
        assert_eq!(
            body.windows(2).filter(|w| w == b"\r\n").count(),
            body.iter().filter(|&&b| b == b'\n').count(),
            "every LF is part of a CRLF"
        );
    }

    #[test]
    fn given_message_is_dot_stuffed_and_terminated() {
        assert_eq!(
            fixed_message(b"Subject: x\r\n\r\n.hidden\r\nlast"),
            b"Subject: x\r\n\r\n..hidden\r\nlast\r\n.\r\n"
        );
        let mut plan = plan(10);
        plan.fixed_message = Some(fixed_message(b"Subject: x\r\n\r\nbody\r\n"));
        let mut out = Vec::new();
        build_message(&mut out, &plan, 0, 0);
        assert_eq!(out, b"Subject: x\r\n\r\nbody\r\n.\r\n");
    }

    #[tokio::test]
    async fn multiline_reply_is_read_whole_and_capabilities_found() {
        let (client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(b"250-mail.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n220 next")
            .await
            .expect("write");
        let mut conn = SmtpConn::new(client, Duration::from_secs(1));
        let reply = conn.expect(250, "EHLO").await.expect("reply");
        assert!(reply.has_capability("pipelining"));
        assert!(reply.has_capability("STARTTLS"));
        assert!(!reply.has_capability("mail.example.test"));
        assert_eq!(conn.into_parts().1, "220 next".len());
    }

    #[test]
    fn reply_lines_parse_code_and_continuation() {
        assert_eq!(
            parse_reply_line(b"250-SIZE 100").expect("valid"),
            (250, false, "SIZE 100".to_owned())
        );
        assert_eq!(
            parse_reply_line(b"354").expect("valid"),
            (354, true, String::new())
        );
        assert!(parse_reply_line(b"25x ok").is_err());
        assert!(parse_reply_line(b"250_ok").is_err());
    }

    #[test]
    fn own_process_cpu_is_measurable() {
        let cpu = process_tree_cpu(&[std::process::id()]).expect("own process exists");
        assert!(cpu < Duration::from_secs(3600));
        assert!(process_tree_cpu(&[u32::MAX]).is_err());
    }
}
