//! `sealpost store migrate --to postgres://…`: copies the embedded store in data_dir into
//! a PostgreSQL database, with a progress bar, and verifies the copy (row counts, and
//! checksums over every message's and queued entry's bytes). Run it again after an
//! interruption and it goes on where it stopped. Stop `sealpost serve` first: mail it
//! accepts while the copy runs stays behind.

use std::io::{IsTerminal, Write};

use clap::Subcommand;
use sealpost_store::{ImportProgress, StoreError, import_embedded};

use crate::config::Config;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy the embedded store into a PostgreSQL database (resumable, verified at the end).
    Migrate {
        /// The database to fill, e.g. postgres://sealpost:PASSWORD@db.example:5432/mail?sslmode=require
        /// (it must be empty, or hold an unfinished copy of this same store).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub async fn run(command: StoreCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        StoreCommand::Migrate { to } => migrate(config, &to).await,
    }
}

async fn migrate(config: &Config, url: &str) -> anyhow::Result<()> {
    eprintln!(
        "copying the embedded store in {} into PostgreSQL",
        config.data_dir.display()
    );
    let mut bar = ProgressBar::new(std::io::stderr().is_terminal());
    let copied = import_embedded(&config.data_dir, url, &mut |progress| bar.show(progress)).await;
    bar.finish();
    let report = match copied {
        Ok(report) => report,
        // Refused before anything was copied: nothing to resume.
        Err(e @ (StoreError::Invalid { .. } | StoreError::NotFound(_))) => return Err(e.into()),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context("the migration stopped; run the same command again to resume it"));
        }
    };
    if report.resumed {
        println!("resumed an earlier copy and completed it");
    }
    for (table, rows) in &report.tables {
        println!("{table:<18} {rows:>10} rows  verified");
    }
    println!("messages checksum  {}", report.messages_checksum);
    println!("queue checksum     {}", report.queue_checksum);
    println!("done: set [store] url to this database in every node's config and start sealpost");
    Ok(())
}

/// One line per table: redrawn in place on a terminal, printed when the table is done
/// otherwise (logs stay readable).
struct ProgressBar {
    terminal: bool,
    current: Option<&'static str>,
}

const BAR_WIDTH: u64 = 30;

impl ProgressBar {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            current: None,
        }
    }

    fn show(&mut self, progress: &ImportProgress) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            if self.current.is_some_and(|table| table != progress.table) {
                let _ = writeln!(err);
            }
            let filled = (progress.copied * BAR_WIDTH)
                .checked_div(progress.total)
                .unwrap_or(BAR_WIDTH)
                .min(BAR_WIDTH);
            let percent = (progress.copied * 100)
                .checked_div(progress.total)
                .unwrap_or(100);
            let _ = write!(
                err,
                "\r{:<18} [{}{}] {percent:>3}% {}/{}",
                progress.table,
                "#".repeat(filled as usize),
                "-".repeat((BAR_WIDTH - filled) as usize),
                progress.copied,
                progress.total
            );
            let _ = err.flush();
        } else if progress.copied == progress.total && progress.copied > 0 {
            let _ = writeln!(
                err,
                "{:<18} {}/{} copied",
                progress.table, progress.copied, progress.total
            );
        }
        self.current = Some(progress.table);
    }

    fn finish(&self) {
        if self.terminal && self.current.is_some() {
            eprintln!();
        }
    }
}
