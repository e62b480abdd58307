//! DKIM signing of outbound mail (RFC 6376 §5): one RSA-SHA256 and one Ed25519-SHA256
//! signature per message (RFC 8463 §3; receivers such as Gmail do not yet count an
//! Ed25519 signature alone), relaxed/relaxed.

mod headers;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use mail_auth::common::crypto::{Algorithm, DkimKey, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner as SignatureBuilder};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::keys::{DomainKeys, KeyAlgorithm, KeyDirectory, KeyError};

pub use self::headers::{OVERSIGNED_HEADERS, SIGNED_HEADERS, headers_to_sign};

/// Signs mail with the active keys under `DATA/dkim`. Keys added or rotated while the
/// server runs are picked up on the next message: each `sign` looks at the domain's
/// manifest (one `stat`) and reloads the domain when the manifest was replaced.
pub struct DkimSigner {
    keys: KeyDirectory,
    domains: RwLock<HashMap<String, Arc<LoadedDomain>>>,
}

/// A domain's keys as of one version of its manifest.
struct LoadedDomain {
    manifest: Option<ManifestStamp>,
    keys: Vec<LoadedKey>,
}

struct LoadedKey {
    selector: String,
    key: DkimKey,
}

/// Identifies one version of a manifest. It is only ever replaced by a rename, so a new
/// version is a new inode even within the file system's timestamp granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ManifestStamp {
    inode: u64,
    modified_ns: i128,
}

impl DkimSigner {
    /// Loads the active keys of every domain under `data_dir/dkim`. An unreadable or
    /// damaged key is an error here, at start-up, rather than unsigned mail later.
    pub fn load(data_dir: &Path) -> Result<DkimSigner, KeyError> {
        let signer = DkimSigner {
            keys: KeyDirectory::new(data_dir),
            domains: RwLock::new(HashMap::new()),
        };
        signer.reload()?;
        Ok(signer)
    }

    /// Re-reads every domain's keys (for SIGHUP). Domains whose keys cannot be read keep
    /// the keys loaded before, and the first such error is returned.
    pub fn reload(&self) -> Result<(), KeyError> {
        let mut first_error = None;
        for domain in self.keys.domains()? {
            if let Err(e) = self.load_domain(&domain) {
                tracing::error!(%domain, "cannot load DKIM keys: {e}");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The domains with keys loaded.
    pub fn domains(&self) -> Vec<String> {
        let mut domains: Vec<String> = self
            .read_domains()
            .iter()
            .filter(|(_, loaded)| !loaded.keys.is_empty())
            .map(|(domain, _)| domain.clone())
            .collect();
        domains.sort();
        domains
    }

    /// The `DKIM-Signature` header fields for `message` signed as `domain`, RSA first,
    /// each ending in CRLF, to be put in front of the message. `None` when the domain has
    /// no keys or signing failed (logged); the caller sends the message unsigned then.
    pub fn sign(&self, domain: &str, message: &[u8]) -> Option<Vec<u8>> {
        let domain = crate::keys::normalise_domain(domain).ok()?;
        let loaded = self.current(&domain)?;
        let headers = headers_to_sign(message);
        let mut out = Vec::with_capacity(1024);
        for key in &loaded.keys {
            let signature = SignatureBuilder::from_key(BorrowedKey(&key.key))
                .domain(domain.as_str())
                .selector(key.selector.as_str())
                .headers(headers.iter().copied())
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed)
                .sign(message);
            match signature {
                Ok(signature) => out.extend_from_slice(signature.to_header().as_bytes()),
                Err(e) => {
                    tracing::error!(%domain, selector = %key.selector, "DKIM signing failed: {e}");
                    return None;
                }
            }
        }
        Some(out)
    }

    /// The (normalised) domain's keys, reloaded first if its manifest changed since they
    /// were loaded; `None` if it has none.
    fn current(&self, domain: &str) -> Option<Arc<LoadedDomain>> {
        let stamp = self.keys.manifest_path(domain).ok().and_then(|p| stamp(&p));
        let loaded = match self.read_domains().get(domain) {
            Some(loaded) if loaded.manifest == stamp => Some(Arc::clone(loaded)),
            _ => None,
        };
        let loaded = match loaded {
            Some(loaded) => loaded,
            None => {
                stamp?;
                self.reload_domain(domain)?
            }
        };
        (!loaded.keys.is_empty()).then_some(loaded)
    }

    /// Loads the domain again; on failure keeps (and returns) what was loaded before.
    fn reload_domain(&self, domain: &str) -> Option<Arc<LoadedDomain>> {
        match self.load_domain(domain) {
            Ok(loaded) => Some(loaded),
            Err(e) => {
                tracing::error!(%domain, "cannot load DKIM keys: {e}");
                self.read_domains().get(domain).cloned()
            }
        }
    }

    fn load_domain(&self, domain: &str) -> Result<Arc<LoadedDomain>, KeyError> {
        let manifest_path = self.keys.manifest_path(domain)?;
        // Stamp before reading: a change in between then shows as a stale stamp and is
        // read again next time, never the other way round.
        let manifest = stamp(&manifest_path);
        let keys = match self.keys.load(domain)? {
            Some(DomainKeys { keys, .. }) => keys
                .iter()
                .map(|file| {
                    Ok(LoadedKey {
                        selector: file.selector.clone(),
                        key: signing_key(file.algorithm, file.pkcs8_der()).map_err(|e| {
                            KeyError::Malformed {
                                path: file.path.clone(),
                                reason: e.to_string(),
                            }
                        })?,
                    })
                })
                .collect::<Result<Vec<_>, KeyError>>()?,
            None => Vec::new(),
        };
        let loaded = Arc::new(LoadedDomain { manifest, keys });
        self.domains
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_string(), Arc::clone(&loaded));
        Ok(loaded)
    }

    /// A panic elsewhere cannot leave the map half-updated (inserts are single calls), so
    /// a poisoned lock is still safe to use.
    fn read_domains(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<LoadedDomain>>> {
        self.domains.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn stamp(path: &Path) -> Option<ManifestStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(ManifestStamp {
        inode: metadata.ino(),
        modified_ns: i128::from(metadata.mtime()) * 1_000_000_000
            + i128::from(metadata.mtime_nsec()),
    })
}

fn signing_key(algorithm: KeyAlgorithm, pkcs8: &[u8]) -> mail_auth::Result<DkimKey> {
    Ok(match algorithm {
        KeyAlgorithm::Rsa => DkimKey::Rsa(RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
            PrivatePkcs8KeyDer::from(pkcs8),
        ))?),
        KeyAlgorithm::Ed25519 => DkimKey::Ed25519(Ed25519Key::from_pkcs8_der(pkcs8)?),
    })
}

/// Lends a loaded key to mail-auth's signature builder, which wants to own its key.
struct BorrowedKey<'a>(&'a DkimKey);

impl SigningKey for BorrowedKey<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
mod tests;
