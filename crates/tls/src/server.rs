//! `TlsServer`: everything TLS the listeners share — the crypto policy, one certificate
//! resolver, one session-ticket key, the client-certificate check — and the per-listener
//! `TlsAcceptor`s built from it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::ProducesTickets;
use rustls_pki_types::UnixTime;
use tracing::{info, warn};

use crate::acceptor::TlsAcceptor;
use crate::client_cert::ClientCertCheck;
use crate::error::TlsError;
use crate::provider::{PROTOCOL_VERSIONS, crypto_provider};
use crate::resolver::{CertResolver, CertSet, expired};
use crate::selfsigned::{self, SelfSignedFiles};

/// What `[tls]` (and `hostname`, `data_dir`) in the config say about TLS.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Names the generated certificate when none is configured.
    pub hostname: String,
    /// Where the generated CA and certificate live (`DATA/tls/`).
    pub data_dir: PathBuf,
    /// PEM chain, leaf first; absent means self-signed.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// More certificate/key pairs, chosen by SNI or by key type.
    pub extra: Vec<(PathBuf, PathBuf)>,
    /// CA certificates (PEM) client certificates are verified against; absent means
    /// client certificates are not requested.
    pub client_ca: Option<PathBuf>,
}

/// The application protocol a listener speaks, announced with ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppProtocol {
    Smtp,
    Imap,
    Pop3,
}

impl AppProtocol {
    /// The ALPN protocol ID this listener answers to (RFC 7301).
    pub fn alpn_id(self) -> &'static [u8] {
        match self {
            AppProtocol::Smtp => b"smtp",
            AppProtocol::Imap => b"imap",
            AppProtocol::Pop3 => b"pop3",
        }
    }
}

/// Each watched file with how it looked when last loaded (`None`: missing).
type Stamps = Vec<(PathBuf, Option<FileStamp>)>;

/// Identifies one version of a file cheaply, to notice replacement without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

pub struct TlsServer {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    /// One key for all listeners with tickets on, so a ticket from 993 resumes on 465.
    /// Sharing is safe because every listener has the same resolver and client-cert
    /// policy (rustls `ServerConfig` docs, "Sharing resumption storage").
    ticketer: Arc<dyn ProducesTickets>,
    client_certs: Option<Arc<ClientCertCheck>>,
    /// Built and checked once at load; `acceptor` only varies ALPN and tickets.
    base: ServerConfig,
    self_signed: Option<SelfSignedFiles>,
    /// The files whose change triggers a reload, with how they looked at the last load.
    stamps: Mutex<Stamps>,
}

impl TlsServer {
    /// Loads certificates (generating self-signed ones when none are configured) and the
    /// client CA. A configured certificate that can't be used is an error: falling back
    /// to a self-signed one would silently break every client that verifies.
    pub fn load(settings: TlsSettings) -> Result<Arc<TlsServer>, TlsError> {
        let provider = crypto_provider();
        let self_signed = match (&settings.cert, &settings.key) {
            (None, None) => Some(SelfSignedFiles::in_data_dir(&settings.data_dir)),
            (Some(_), Some(_)) => None,
            (Some(cert), None) => {
                return Err(TlsError::Config(format!(
                    "[tls] cert = {} is set but key is not; set both",
                    cert.display()
                )));
            }
            (None, Some(key)) => {
                return Err(TlsError::Config(format!(
                    "[tls] key = {} is set but cert is not; set both",
                    key.display()
                )));
            }
        };
        let (set, stamps) = load_certificates(&settings, self_signed.as_ref(), &provider)?;
        let resolver = Arc::new(CertResolver::new(set));
        let client_certs = settings
            .client_ca
            .as_deref()
            .map(|path| ClientCertCheck::from_ca_file(path, provider.clone()).map(Arc::new))
            .transpose()?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &client_certs {
            Some(check) => builder.with_client_cert_verifier(check.handshake_verifier()),
            None => builder.with_no_client_auth(),
        };
        let mut base = builder.with_cert_resolver(resolver.clone());
        base.ignore_client_order = true;
        // No 0-RTT: early data can be replayed (RFC 8446 §8), and a mail command must
        // never run twice.
        base.max_early_data_size = 0;
        base.send_half_rtt_data = false;
        let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
            .map_err(|e| TlsError::Config(format!("session ticket key: {e}")))?;
        let server = TlsServer {
            settings,
            provider,
            resolver,
            ticketer,
            client_certs,
            base,
            self_signed,
            stamps: Mutex::new(stamps),
        };
        server.log_certificates("loaded");
        Ok(Arc::new(server))
    }

    /// The TLS front door of one listener. ALPN is set to the listener's protocol alone,
    /// so a client that offers ALPN without it is refused with no_application_protocol
    /// (RFC 7301 §3.2). That is the ALPACA defence: a TLS session meant for one protocol
    /// must not be usable against another server sharing the certificate. A client
    /// offering no ALPN is served, as most mail clients offer none.
    ///
    /// `session_tickets` off is for port 25: some MTAs (Microsoft Exchange among them)
    /// abort TLS 1.3 when sent a NewSessionTicket.
    pub fn acceptor(
        &self,
        listener: &str,
        protocol: AppProtocol,
        session_tickets: bool,
    ) -> TlsAcceptor {
        let mut config = self.base.clone();
        config.alpn_protocols = vec![protocol.alpn_id().to_vec()];
        if session_tickets {
            config.ticketer = self.ticketer.clone();
        } else {
            config.send_tls13_tickets = 0;
        }
        TlsAcceptor::new(Arc::new(config), self.client_certs.clone(), listener)
    }

    /// The generated CA clients must trust; `None` when certificates are configured.
    pub fn ca_certificate_path(&self) -> Option<&Path> {
        self.self_signed.as_ref().map(|files| files.ca.as_path())
    }

    /// Re-reads every certificate and key. New handshakes on every listener use the new
    /// set; connections already up keep theirs. On any error nothing changes and the
    /// error says which file is at fault.
    pub fn reload(&self) -> Result<(), TlsError> {
        let result = load_certificates(&self.settings, self.self_signed.as_ref(), &self.provider);
        let (set, stamps) = match result {
            Ok(loaded) => loaded,
            Err(e) => {
                // Remember the broken version, so the watcher doesn't retry it every poll.
                *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) =
                    stamp_all(&self.watched_files());
                return Err(e);
            }
        };
        self.resolver.replace(set);
        *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) = stamps;
        Ok(())
    }

    /// Whether any watched certificate or key file looks different from the last load.
    pub(crate) fn files_changed(&self) -> bool {
        let stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        stamps.iter().any(|(path, seen)| stamp(path) != *seen)
    }

    pub(crate) fn log_certificates(&self, what: &str) {
        let set = self.resolver.current();
        let now = UnixTime::now();
        for (i, entry) in set.entries().iter().enumerate() {
            let names = entry.names.join(",");
            info!(
                cert = %entry.cert_path.display(),
                names = %names,
                default = i == 0,
                "TLS certificate {what}"
            );
            if expired(entry, now) {
                warn!(cert = %entry.cert_path.display(), "TLS certificate has expired");
            }
        }
        if !set.names_host(&self.settings.hostname) {
            warn!(
                hostname = %self.settings.hostname,
                "no TLS certificate names this host; clients that verify the name will refuse it"
            );
        }
    }

    fn watched_files(&self) -> Vec<PathBuf> {
        watched_files(&self.settings, self.self_signed.as_ref())
    }
}

/// Loads the certificate set, generating self-signed files first if that is the mode.
/// The files are stamped *before* they are read, so a write that races the read shows up
/// as a change at the next poll rather than being missed.
fn load_certificates(
    settings: &TlsSettings,
    self_signed: Option<&SelfSignedFiles>,
    provider: &Arc<CryptoProvider>,
) -> Result<(CertSet, Stamps), TlsError> {
    if let Some(files) = self_signed {
        selfsigned::ensure(files, &settings.hostname, provider)?;
    }
    let pairs = cert_key_pairs(settings, self_signed);
    let stamps = stamp_all(&watched_files(settings, self_signed));
    let set = CertSet::load(&pairs, provider)?;
    Ok((set, stamps))
}

fn cert_key_pairs(
    settings: &TlsSettings,
    self_signed: Option<&SelfSignedFiles>,
) -> Vec<(PathBuf, PathBuf)> {
    let default = match (self_signed, &settings.cert, &settings.key) {
        (Some(files), _, _) => Some((files.cert.clone(), files.key.clone())),
        (None, Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        _ => None,
    };
    default
        .into_iter()
        .chain(settings.extra.iter().cloned())
        .collect()
}

fn watched_files(settings: &TlsSettings, self_signed: Option<&SelfSignedFiles>) -> Vec<PathBuf> {
    cert_key_pairs(settings, self_signed)
        .into_iter()
        .flat_map(|(cert, key)| [cert, key])
        .collect()
}

fn stamp_all(paths: &[PathBuf]) -> Stamps {
    paths.iter().map(|p| (p.clone(), stamp(p))).collect()
}

/// Follows symlinks, so certbot's `live/` links pointing at a new `archive/` file count
/// as a change.
fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}
