//! DKIM keys on disk. Each local domain has a directory `DATA/dkim/<domain>/` holding one
//! PKCS#8 PEM file per key, `<selector>.pem` (mode 0600 from the moment it is created),
//! and a manifest, `selectors`, naming the active selector of each algorithm.
//!
//! Selectors are dated (`s20261128r` for RSA, `s20261128e` for Ed25519), so rotating is
//! creating a key under a new selector and pointing the manifest at it; the old file stays
//! so its DNS record can remain published until mail signed with it has been delivered.

mod files;
mod generate;
mod manifest;

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

pub use self::manifest::MANIFEST_NAME;

/// The directory below the data directory that holds every domain's keys.
pub const KEYS_DIR: &str = "dkim";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0:?} is not a domain name (letters, digits and hyphens in dot-separated labels)")]
    InvalidDomain(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot generate a {0} key")]
    Generate(KeyAlgorithm),
}

/// The two algorithms every domain signs with: RSA for receivers that know nothing
/// else, Ed25519 (RFC 8463) for those that do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    Rsa,
    Ed25519,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::Rsa, KeyAlgorithm::Ed25519];

    /// The `k=` tag of the DNS record (RFC 6376 §3.6.1, RFC 8463 §4).
    pub fn key_type(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa => "rsa",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// The `a=` tag of the signatures made with it, which is also its manifest name.
    pub fn signature_algorithm(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa => "rsa-sha256",
            KeyAlgorithm::Ed25519 => "ed25519-sha256",
        }
    }

    /// The letter that ends its selectors, so the two keys of one day differ.
    fn selector_suffix(self) -> char {
        match self {
            KeyAlgorithm::Rsa => 'r',
            KeyAlgorithm::Ed25519 => 'e',
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Rsa => "RSA-2048",
            KeyAlgorithm::Ed25519 => "Ed25519",
        })
    }
}

/// One private key with the selector it is published under.
pub struct DkimKeyFile {
    pub selector: String,
    pub algorithm: KeyAlgorithm,
    pub path: PathBuf,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for DkimKeyFile {
    /// Leaves the private key out, so it never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimKeyFile")
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DkimKeyFile {
    /// The PKCS#8 DER of the private key.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as the `p=` tag wants it: for RSA the DER SubjectPublicKeyInfo
    /// (RFC 6376 §3.6.1), for Ed25519 the bare 32-byte key (RFC 8463 §4.2).
    pub fn public_key(&self) -> Result<Vec<u8>, KeyError> {
        generate::public_key(self.algorithm, &self.pkcs8).ok_or_else(|| KeyError::Malformed {
            path: self.path.clone(),
            reason: format!("not a {} private key", self.algorithm),
        })
    }

    /// The TXT record value to publish at `<selector>._domainkey.<domain>`.
    pub fn dns_record(&self) -> Result<String, KeyError> {
        Ok(format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.key_type(),
            BASE64.encode(self.public_key()?)
        ))
    }
}

/// The active keys of one domain, RSA first.
#[derive(Debug)]
pub struct DomainKeys {
    pub domain: String,
    pub keys: Vec<DkimKeyFile>,
}

/// `DATA/dkim`: where every domain's keys live.
#[derive(Debug, Clone)]
pub struct KeyDirectory {
    root: PathBuf,
}

impl KeyDirectory {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join(KEYS_DIR),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DATA/dkim/<domain>`, after checking `domain` is a plain domain name (so a sender's
    /// domain can never name a path outside the directory).
    pub fn domain_dir(&self, domain: &str) -> Result<PathBuf, KeyError> {
        Ok(self.root.join(normalise_domain(domain)?))
    }

    /// The manifest of `domain`, whose change (it is always replaced by a rename) tells a
    /// running signer to reload that domain.
    pub fn manifest_path(&self, domain: &str) -> Result<PathBuf, KeyError> {
        Ok(self.domain_dir(domain)?.join(MANIFEST_NAME))
    }

    /// The domain's active keys; `None` when it has none yet.
    pub fn load(&self, domain: &str) -> Result<Option<DomainKeys>, KeyError> {
        let domain = normalise_domain(domain)?;
        let dir = self.root.join(&domain);
        let Some(manifest) = manifest::read(&dir.join(MANIFEST_NAME))? else {
            return Ok(None);
        };
        let keys = manifest
            .into_iter()
            .map(|(algorithm, selector)| files::read_key(&dir, algorithm, selector))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(DomainKeys { domain, keys }))
    }

    /// Makes sure `domain` has an active key of each algorithm, generating what is
    /// missing with selectors of `today`. Existing keys are kept. Returns the keys and
    /// the algorithms that were generated now.
    pub fn ensure(
        &self,
        domain: &str,
        today: time::Date,
    ) -> Result<(DomainKeys, Vec<KeyAlgorithm>), KeyError> {
        let domain = normalise_domain(domain)?;
        let dir = self.root.join(&domain);
        let mut active = manifest::read(&dir.join(MANIFEST_NAME))?.unwrap_or_default();
        let missing: Vec<KeyAlgorithm> = KeyAlgorithm::ALL
            .into_iter()
            .filter(|algorithm| !active.iter().any(|(a, _)| a == algorithm))
            .collect();
        if !missing.is_empty() {
            files::create_dir(&self.root)?;
            files::create_dir(&dir)?;
            for &algorithm in &missing {
                active.push((algorithm, files::create_key(&dir, algorithm, today)?));
            }
            active.sort_by_key(|(algorithm, _)| *algorithm as u8);
            manifest::write(&dir, &domain, &active)?;
        }
        let keys = self.load(&domain)?.ok_or_else(|| KeyError::Malformed {
            path: dir.join(MANIFEST_NAME),
            reason: "the manifest vanished while it was being written".into(),
        })?;
        Ok((keys, missing))
    }

    /// Generates a new key of each algorithm under selectors of `today` and makes them the
    /// active ones. The previous key files stay, for their DNS records to be retired later.
    pub fn rotate(&self, domain: &str, today: time::Date) -> Result<DomainKeys, KeyError> {
        let domain = normalise_domain(domain)?;
        let dir = self.root.join(&domain);
        files::create_dir(&self.root)?;
        files::create_dir(&dir)?;
        let mut active = Vec::new();
        for algorithm in KeyAlgorithm::ALL {
            active.push((algorithm, files::create_key(&dir, algorithm, today)?));
        }
        manifest::write(&dir, &domain, &active)?;
        self.load(&domain)?.ok_or_else(|| KeyError::Malformed {
            path: dir.join(MANIFEST_NAME),
            reason: "the manifest vanished while it was being written".into(),
        })
    }

    /// Every domain that has a manifest, sorted.
    pub fn domains(&self) -> Result<Vec<String>, KeyError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(KeyError::Io {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut domains = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| KeyError::Io {
                path: self.root.clone(),
                source,
            })?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if normalise_domain(&name).is_ok_and(|n| n == name)
                && entry.path().join(MANIFEST_NAME).is_file()
            {
                domains.push(name);
            }
        }
        domains.sort();
        Ok(domains)
    }
}

/// Lower-cases `domain`, drops one trailing dot, and checks it is an ASCII domain name
/// (internationalised names must be given in their `xn--` form).
pub fn normalise_domain(domain: &str) -> Result<String, KeyError> {
    let lower = domain.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if lower.is_empty() || lower.len() > 253 || !lower.split('.').all(label_ok) {
        return Err(KeyError::InvalidDomain(domain.to_string()));
    }
    Ok(lower)
}

/// The selector for a key of `algorithm` made on `day`, `attempt` 0 being the first of
/// that day: `s20261128r`, then `s20261128r2`, `s20261128r3`, …
fn selector(algorithm: KeyAlgorithm, day: time::Date, attempt: u32) -> String {
    let base = format!(
        "s{:04}{:02}{:02}{}",
        day.year(),
        u8::from(day.month()),
        day.day(),
        algorithm.selector_suffix()
    );
    match attempt {
        0 => base,
        n => format!("{base}{}", n + 1),
    }
}

#[cfg(test)]
mod tests;
