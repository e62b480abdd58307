//! From `[store] url` to connections: the URL's TLS settings, the rustls client that
//! verifies the database server, and the pool.
//!
//! `sslmode` is libpq's: `disable`, `prefer` (the default: TLS when the server offers
//! it), `require`, and `verify-ca`/`verify-full` (as `require`). Whenever TLS is used the
//! server's certificate is verified, against `sslrootcert=FILE` (PEM) or else the
//! system's roots: a database link that anyone on the path could read is not worth the
//! handshake. TLS is rustls with aws-lc-rs, the one crypto provider of the workspace.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Result, StoreError};

/// Connections one node keeps to the database. Each request holds one only for its own
/// statements, so a few serve many sessions.
const POOL_SIZE: usize = 16;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for a free connection before it fails.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// Everything needed to open connections to the database.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: MakeRustlsConnect,
}

impl Target {
    /// Parses a `postgres://` URL (or libpq `key=value` string).
    pub(super) fn parse(url: &str) -> Result<Self> {
        let (url, root_file) = take_sealpost_parameters(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| invalid_url(&e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("sealpost");
        }
        // Durability is the commit: a 250 or APPEND OK must not outrun the WAL flush,
        // whatever the server's default.
        let options = match config.get_options() {
            Some(options) => format!("{options} -c synchronous_commit=on"),
            None => "-c synchronous_commit=on".to_string(),
        };
        config.options(options);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(60));
        let tls = MakeRustlsConnect::new(client_config(root_file.as_deref())?);
        Ok(Self { config, tls })
    }

    /// Where the database is, for messages; never the password.
    pub(super) fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .zip(
                self.config
                    .get_ports()
                    .iter()
                    .chain(std::iter::repeat(&5432)),
            )
            .map(|(host, port)| match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}", path.display()),
            })
            .collect();
        format!(
            "{}/{}",
            hosts.join(","),
            self.config.get_dbname().unwrap_or("")
        )
    }

    pub(super) fn pool(&self) -> Result<Pool> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Database(format!("cannot set up the connection pool: {e}")))
    }

    pub(super) fn uses_tls(&self) -> bool {
        self.config.get_ssl_mode() != SslMode::Disable
    }
}

fn invalid_url(error: &tokio_postgres::Error) -> StoreError {
    StoreError::Invalid {
        what: "[store] url",
        value: format!(
            "{} (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=require)",
            super::sql::describe(error)
        ),
    }
}

/// Takes out what tokio-postgres does not parse itself: `sslrootcert`, and the
/// `verify-ca`/`verify-full` modes (which are what every TLS mode does here). Only the
/// URL form carries them; a `key=value` string goes through unchanged.
fn take_sealpost_parameters(url: &str) -> Result<(String, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut root_file = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (key, value) {
            ("sslrootcert", file) => root_file = Some(percent_decode(file)?),
            ("sslmode", "verify-ca" | "verify-full") => kept.push("sslmode=require".to_string()),
            _ => kept.push(pair.to_string()),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, root_file))
}

fn percent_decode(text: &str) -> Result<String> {
    let invalid = || StoreError::Invalid {
        what: "[store] url sslrootcert",
        value: text.to_string(),
    };
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail.get(..2).ok_or_else(invalid)?;
            let hex = std::str::from_utf8(hex).map_err(|_| invalid())?;
            bytes.push(u8::from_str_radix(hex, 16).map_err(|_| invalid())?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// A rustls client trusting `root_file` if given, else the system's roots.
fn client_config(root_file: Option<&str>) -> Result<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match root_file {
        Some(file) => {
            let certificates = CertificateDer::pem_file_iter(file)
                .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
                .map_err(|e| StoreError::Invalid {
                    what: "[store] url sslrootcert",
                    value: format!("{file}: {e}"),
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(StoreError::Invalid {
                    what: "[store] url sslrootcert",
                    value: format!("{file}: no certificate in it"),
                });
            }
        }
        None => {
            let (added, _) =
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                tracing::warn!(
                    "no system root certificates: TLS to the database will fail unless \
                     the URL names sslrootcert=FILE or sslmode=disable"
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Database(format!("TLS to the database: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_and_verify_modes_become_require() {
        let (url, root) = take_sealpost_parameters(
            "postgres://u:p@127.0.0.1:5432/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem&application_name=a",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://u:p@127.0.0.1:5432/db?sslmode=require&application_name=a"
        );
        assert_eq!(root.as_deref(), Some("/tmp/ca x.pem"));
        let (url, root) = take_sealpost_parameters("host=/run/postgresql dbname=x").unwrap();
        assert_eq!(url, "host=/run/postgresql dbname=x");
        assert_eq!(root, None);
    }

    #[test]
    fn the_description_leaves_out_the_password() {
        let target =
            Target::parse("postgres://sealpost:secret@127.0.0.1:5433/mail?sslmode=disable")
                .unwrap();
        assert_eq!(target.describe(), "127.0.0.1:5433/mail");
        assert!(!target.uses_tls());
    }

    #[test]
    fn a_malformed_url_is_invalid_and_says_what_is_expected() {
        let Err(StoreError::Invalid { what, value }) = Target::parse("postgres://x?sslmode=maybe")
        else {
            panic!("accepted");
        };
        assert_eq!(what, "[store] url");
        assert!(value.contains("postgres://USER"), "{value}");
    }
}
