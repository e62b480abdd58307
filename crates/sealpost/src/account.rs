//! `sealpost account add|list|passwd|remove`. Passwords come from standard input (or
//! `--password-file`), are hashed with argon2id and never printed or logged.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use sealpost_store::{EmbeddedStore, PostgresStore, Store, password};

use crate::config::Config;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account; its domain becomes local if it was not.
    Add {
        address: String,
        /// Read the password from this file instead of standard input.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// List every account.
    List,
    /// Set a new password.
    Passwd {
        address: String,
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Delete an account with all its mail.
    Remove { address: String },
}

pub async fn run(command: AccountCommand, config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        AccountCommand::Add {
            address,
            password_file,
        } => {
            let domain_was_local = match address.rsplit_once('@') {
                Some((_, domain)) => store.is_local_domain(domain).await?,
                None => false,
            };
            let hash = hash_password(read_password(password_file.as_deref())?).await?;
            let account = store
                .create_account(&address, &hash)
                .await
                .with_context(|| format!("cannot add {address}"))?;
            println!("added {}", account.address);
            if !domain_was_local && let Some((_, domain)) = account.address.rsplit_once('@') {
                println!("{domain} is now a local domain");
            }
        }
        AccountCommand::List => {
            for account in store.accounts().await? {
                println!("{}", account.address);
            }
        }
        AccountCommand::Passwd {
            address,
            password_file,
        } => {
            let hash = hash_password(read_password(password_file.as_deref())?).await?;
            store
                .set_password_hash(&address, &hash)
                .await
                .with_context(|| format!("cannot change the password of {address}"))?;
            println!("password changed for {}", address.to_lowercase());
        }
        AccountCommand::Remove { address } => {
            store
                .remove_account(&address)
                .await
                .with_context(|| format!("cannot remove {address}"))?;
            println!("removed {}", address.to_lowercase());
        }
    }
    Ok(())
}

/// The store `[store] url` names: PostgreSQL for a `postgres://` URL (shared by every
/// node pointed at it), otherwise the embedded store in data_dir.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.store.url.trim();
    if url.is_empty() {
        let store = EmbeddedStore::open(&config.data_dir).with_context(|| {
            format!(
                "cannot open the store in {} (set data_dir in the config file to move it)",
                config.data_dir.display()
            )
        })?;
        return Ok(Arc::new(store));
    }
    // The URL holds the password: errors name the server, never the URL.
    let store = PostgresStore::connect(url).await.context(
        "cannot open the PostgreSQL store named by [store] url (is the server up, and are \
         the user, password and sslmode right?)",
    )?;
    Ok(Arc::new(store))
}

async fn hash_password(password: String) -> anyhow::Result<String> {
    Ok(tokio::task::spawn_blocking(move || password::hash(&password)).await??)
}

/// One line from the file or standard input, without its line ending; on a terminal,
/// a prompt without echo.
fn read_password(file: Option<&Path>) -> anyhow::Result<String> {
    let line = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read password file {}", path.display()))?;
            text.lines().next().unwrap_or_default().to_string()
        }
        None if std::io::stdin().is_terminal() => rpassword::prompt_password("Password: ")
            .context("cannot read the password from the terminal")?,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if line.is_empty() {
        bail!("empty password: give one on standard input or with --password-file");
    }
    Ok(line)
}
