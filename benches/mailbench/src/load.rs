//! Loading a mailbox over IMAP: APPEND each corpus message to INBOX, byte for byte.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::corpus;
use crate::imap_client::ImapClient;
use crate::target::{Target, TargetArgs};

#[derive(Args)]
pub struct AppendArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The account to load; repeat it to load several accounts at once, one session each.
    #[arg(long = "user", required = true)]
    users: Vec<String>,
    #[arg(long, env = "MAILBENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// A directory written by `corpus`.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

pub async fn run(args: AppendArgs) -> anyhow::Result<()> {
    let files = Arc::new(corpus::files(&args.dir)?);
    let target = Arc::new(Target::new(&args.target).await?);
    let started = Instant::now();
    let tasks: Vec<_> = args
        .users
        .iter()
        .map(|user| {
            let (target, files) = (target.clone(), files.clone());
            let (user, password) = (user.clone(), args.password.clone());
            tokio::spawn(async move {
                fill_inbox(&target, &user, &password, &files)
                    .await
                    .with_context(|| format!("loading {user}"))
            })
        })
        .collect();
    let mut summary = Vec::new();
    for task in tasks {
        summary.push(task.await??);
    }
    println!(
        "appended={} accounts={} seconds={:.2} {}",
        files.len() * args.users.len(),
        args.users.len(),
        started.elapsed().as_secs_f64(),
        summary[0]
    );
    Ok(())
}

/// APPENDs every file to the user's INBOX on one session; returns what the session saw.
async fn fill_inbox(
    target: &Target,
    user: &str,
    password: &str,
    files: &[PathBuf],
) -> anyhow::Result<String> {
    let stream = target.connect().await?;
    let mut imap = ImapClient::new(stream, 16 * 1024, Duration::from_secs(60));
    imap.greeting().await?;
    imap.login(user, password).await?;
    let capabilities = imap.command("CAPABILITY").await?;
    let literal_plus = capabilities.untagged.iter().any(|line| {
        line.split(' ')
            .any(|word| word.eq_ignore_ascii_case("LITERAL+"))
    });
    for path in files {
        let message = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        imap.append("INBOX", &message, literal_plus)
            .await
            .with_context(|| format!("APPEND of {}", path.display()))?;
    }
    let select = imap.command("EXAMINE INBOX").await?;
    imap.command("LOGOUT").await?;
    let exists = select
        .untagged
        .iter()
        .find_map(|line| {
            line.strip_suffix(" EXISTS")?
                .strip_prefix("* ")?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    if exists != files.len() as u64 {
        bail!(
            "INBOX of {user} holds {exists} messages after appending {}",
            files.len()
        );
    }
    Ok(format!("inbox_exists={exists} literal_plus={literal_plus}"))
}
