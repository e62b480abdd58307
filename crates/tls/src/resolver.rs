//! The one certificate resolver every listener shares: several certificate/key pairs,
//! chosen per handshake by SNI and by the key types the client can verify, swapped as a
//! whole on reload so new handshakes see new certificates while live connections keep the
//! ones they started with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::extensions::GeneralName;

use crate::error::TlsError;

/// One certificate chain with its key and the DNS names it may be chosen for.
#[derive(Debug)]
pub(crate) struct CertEntry {
    pub(crate) key: Arc<CertifiedKey>,
    /// DNS SANs, lower-cased, possibly `*.`-wildcards.
    pub(crate) names: Vec<String>,
    pub(crate) cert_path: PathBuf,
    /// End of validity, seconds since the Unix epoch.
    pub(crate) not_after: i64,
}

/// All certificates loaded together; the first is the default.
#[derive(Debug)]
pub(crate) struct CertSet {
    entries: Vec<CertEntry>,
}

impl CertSet {
    /// Loads each `(cert, key)` pair in order; the first becomes the default. Any broken
    /// file fails the whole set, so a reload never half-applies.
    pub(crate) fn load(
        pairs: &[(PathBuf, PathBuf)],
        provider: &CryptoProvider,
    ) -> Result<Self, TlsError> {
        if pairs.is_empty() {
            return Err(TlsError::Config("no certificate configured".into()));
        }
        let entries = pairs
            .iter()
            .map(|(cert, key)| load_entry(cert, key, provider))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { entries })
    }

    pub(crate) fn entries(&self) -> &[CertEntry] {
        &self.entries
    }

    /// Whether some certificate names `host`, as a verifying client would check it.
    pub(crate) fn names_host(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.entries
            .iter()
            .flat_map(|e| &e.names)
            .any(|name| *name == host || wildcard_matches(name, &host))
    }

    /// Picks the certificate for one ClientHello.
    ///
    /// With SNI, certificates naming the host exactly win over wildcard ones; among those
    /// the key type decides (see [`key_preference`]). Without SNI, or when no certificate
    /// names the host, the default identity is used: the first certificate and any other
    /// with exactly its names (an RSA twin of an ECDSA default, say), again by key type.
    /// If the client can verify none of the candidates, any certificate it can verify is
    /// better than a handshake that is sure to fail; failing that, the default is sent and
    /// rustls reports the mismatch.
    fn choose(&self, sni: Option<&str>, schemes: &[SignatureScheme]) -> &CertEntry {
        let default = &self.entries[0];
        let by_name = sni.map(normalize_host).and_then(|host| {
            let exact: Vec<&CertEntry> = self
                .entries
                .iter()
                .filter(|e| e.names.contains(&host))
                .collect();
            if !exact.is_empty() {
                return Some(exact);
            }
            let wild: Vec<&CertEntry> = self
                .entries
                .iter()
                .filter(|e| e.names.iter().any(|n| wildcard_matches(n, &host)))
                .collect();
            (!wild.is_empty()).then_some(wild)
        });
        let candidates = by_name.unwrap_or_else(|| {
            self.entries
                .iter()
                .filter(|e| e.names == default.names)
                .collect()
        });
        best_for_client(&candidates, schemes)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|e| e.key.key.choose_scheme(schemes).is_some())
            })
            .unwrap_or(default)
    }
}

/// Among `candidates` the client can verify, the one with the best key type; ties go to
/// the earlier (configured first) certificate.
fn best_for_client<'a>(
    candidates: &[&'a CertEntry],
    schemes: &[SignatureScheme],
) -> Option<&'a CertEntry> {
    candidates
        .iter()
        .filter(|e| e.key.key.choose_scheme(schemes).is_some())
        .min_by_key(|e| key_preference(e.key.key.algorithm()))
        .copied()
}

/// ECDSA first: smaller handshakes and cheaper signatures than RSA, and every current
/// client supports it; RSA stays available for clients that offer nothing else.
fn key_preference(algorithm: SignatureAlgorithm) -> u8 {
    match algorithm {
        SignatureAlgorithm::ECDSA => 0,
        SignatureAlgorithm::ED25519 => 1,
        SignatureAlgorithm::RSA => 2,
        _ => 3,
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// RFC 6125 §6.4.3, restricted as browsers do: `*` only as the whole left-most label,
/// matching exactly one label.
fn wildcard_matches(pattern: &str, host: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    match host.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == suffix,
        None => false,
    }
}

/// Reads a PEM certificate chain and its private key, and checks that they belong
/// together, so a mismatched pair is refused at load instead of failing every handshake.
fn load_entry(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertEntry, TlsError> {
    let chain = read_certificates(cert_path)?;
    let key_pem = read_file(key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadPem {
        path: key_path.to_owned(),
        reason: format!("no usable private key: {e}"),
    })?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadPem {
                path: key_path.to_owned(),
                reason: format!("unsupported private key: {e}"),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| TlsError::KeyMismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let (names, not_after) = describe_leaf(&certified.cert[0], cert_path)?;
    Ok(CertEntry {
        key: Arc::new(certified),
        names,
        cert_path: cert_path.to_owned(),
        not_after,
    })
}

/// All CERTIFICATE blocks of a PEM file, leaf first; at least one.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_owned(),
            reason: format!("unreadable certificate: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::BadPem {
            path: path.to_owned(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(chain)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The leaf's DNS SANs (lower-cased) and its notAfter. Only SANs count: RFC 6125 §6.4.4
/// and every current client ignore the subject CN when SANs are present, and certificates
/// without SANs are not accepted by browsers or rustls at all.
fn describe_leaf(der: &CertificateDer<'_>, path: &Path) -> Result<(Vec<String>, i64), TlsError> {
    let bad = |reason: String| TlsError::BadPem {
        path: path.to_owned(),
        reason,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| bad(format!("unparseable certificate: {e}")))?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| bad(format!("bad subjectAltName: {e}")))?;
    let names = sans
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(normalize_host(dns)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((names, cert.validity().not_after.timestamp()))
}

/// The resolver handed to every `ServerConfig`. Holding the set behind a lock of an `Arc`
/// makes a reload one pointer swap: handshakes in progress keep the `Arc` they cloned.
pub(crate) struct CertResolver {
    current: RwLock<Arc<CertSet>>,
}

impl CertResolver {
    pub(crate) fn new(set: CertSet) -> Self {
        Self {
            current: RwLock::new(Arc::new(set)),
        }
    }

    pub(crate) fn current(&self) -> Arc<CertSet> {
        // Nothing panics while the lock is held, but a poisoned lock still holds a
        // complete set, so use it rather than take the server down.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn replace(&self, set: CertSet) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current();
        let entry = set.choose(hello.server_name(), hello.signature_schemes());
        Some(entry.key.clone())
    }
}

/// Whether a certificate's validity has ended at `now`.
pub(crate) fn expired(entry: &CertEntry, now: UnixTime) -> bool {
    i64::try_from(now.as_secs()).is_ok_and(|now| entry.not_after < now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_exactly_one_left_label() {
        assert!(wildcard_matches("*.example.test", "mail.example.test"));
        assert!(!wildcard_matches("*.example.test", "example.test"));
        assert!(!wildcard_matches("*.example.test", "a.b.example.test"));
        assert!(!wildcard_matches("*.example.test", ".example.test"));
        assert!(!wildcard_matches("mail.example.test", "mail.example.test"));
    }

    #[test]
    fn host_names_compare_case_insensitively_without_trailing_dot() {
        assert_eq!(normalize_host("Mail.Example.TEST."), "mail.example.test");
    }

    #[test]
    fn names_host_accepts_exact_and_wildcard_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let names = vec!["Mail.Example.test".to_string(), "*.wild.test".to_string()];
        let cert = rcgen::CertificateParams::new(names)
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let pair = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&pair.0, cert.pem()).expect("write");
        std::fs::write(&pair.1, key.serialize_pem()).expect("write");
        let set = CertSet::load(&[pair], &crate::provider::crypto_provider()).expect("load");
        assert!(set.names_host("mail.example.TEST."));
        assert!(set.names_host("imap.wild.test"));
        assert!(!set.names_host("wild.test"));
        assert!(!set.names_host("example.test"));
    }
}
