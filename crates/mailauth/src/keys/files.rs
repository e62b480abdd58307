//! Private key files: PKCS#8 in PEM, created with mode 0600 in a 0700 directory, so the
//! key is never readable by others, not even for the moment between create and chmod.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

use super::manifest::is_selector;
use super::{DkimKeyFile, KeyAlgorithm, KeyError, generate, selector};

/// Keys a domain may gain on one day before we suspect something is looping.
const MAX_KEYS_PER_DAY: u32 = 100;

pub(super) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn create_dir(dir: &Path) -> Result<(), KeyError> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error(dir)(e)),
    }
}

/// Makes a rename or a new file in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Generates a key and writes it under the first free selector of `day`.
pub(super) fn create_key(
    dir: &Path,
    algorithm: KeyAlgorithm,
    day: time::Date,
) -> Result<String, KeyError> {
    let der = generate::private_key(algorithm)?;
    let pem = pem_encode(&der);
    for attempt in 0..MAX_KEYS_PER_DAY {
        let selector = selector(algorithm, day, attempt);
        let path = key_path(dir, &selector);
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&path)(e)),
        };
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_error(&path))?;
        sync_dir(dir)?;
        return Ok(selector);
    }
    Err(KeyError::Malformed {
        path: dir.to_path_buf(),
        reason: format!("{MAX_KEYS_PER_DAY} keys made today already; not making another"),
    })
}

pub(super) fn read_key(
    dir: &Path,
    algorithm: KeyAlgorithm,
    selector: String,
) -> Result<DkimKeyFile, KeyError> {
    let path = key_path(dir, &selector);
    let pem = std::fs::read(&path).map_err(io_error(&path))?;
    let mode = std::fs::metadata(&path)
        .map_err(io_error(&path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "DKIM private key is readable by others (mode {:o}): chmod 600 it",
            mode & 0o777
        );
    }
    let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| KeyError::Malformed {
        path: path.clone(),
        reason: format!("not a PKCS#8 PEM private key: {e}"),
    })?;
    let key = DkimKeyFile {
        selector,
        algorithm,
        path,
        pkcs8: der.secret_pkcs8_der().to_vec(),
    };
    key.public_key()?;
    Ok(key)
}

fn key_path(dir: &Path, selector: &str) -> PathBuf {
    debug_assert!(is_selector(selector));
    dir.join(format!("{selector}.pem"))
}

/// PEM as RFC 7468 §10 writes a PKCS#8 key: 64 base64 characters a line.
fn pem_encode(der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}
