//! The manifest `DATA/dkim/<domain>/selectors`: one line per active key,
//! `<algorithm> <selector>`, e.g. `rsa-sha256 s20261128r`. Written to a temporary file and
//! renamed into place, so a reader sees the old or the new manifest, never half of one.

use std::io::Write;
use std::path::Path;

use super::files::{io_error, sync_dir};
use super::{KeyAlgorithm, KeyError};

pub const MANIFEST_NAME: &str = "selectors";

/// The active (algorithm, selector) pairs; `None` if there is no manifest.
pub(super) fn read(path: &Path) -> Result<Option<Vec<(KeyAlgorithm, String)>>, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    let malformed = |reason: String| KeyError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let mut active = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, selector) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| malformed(format!("expected `algorithm selector`, got {line:?}")))?;
        let algorithm = KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.signature_algorithm() == name)
            .ok_or_else(|| malformed(format!("unknown algorithm {name:?}")))?;
        let selector = selector.trim();
        if !is_selector(selector) {
            return Err(malformed(format!("{selector:?} is not a selector")));
        }
        if active.iter().any(|(a, _)| *a == algorithm) {
            return Err(malformed(format!("two active {algorithm} keys")));
        }
        active.push((algorithm, selector.to_string()));
    }
    Ok(Some(active))
}

pub(super) fn write(
    dir: &Path,
    domain: &str,
    active: &[(KeyAlgorithm, String)],
) -> Result<(), KeyError> {
    let mut text =
        format!("# The active DKIM keys of {domain}, written by sealpost: algorithm selector.\n");
    for (algorithm, selector) in active {
        text.push_str(&format!("{} {selector}\n", algorithm.signature_algorithm()));
    }
    let path = dir.join(MANIFEST_NAME);
    let temporary = dir.join(format!(".{MANIFEST_NAME}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(io_error(&path))?;
    sync_dir(dir)
}

/// A selector is a dot-separated sequence of labels (RFC 6376 §3.1); ours are one label,
/// and a file name, so nothing else is accepted.
pub(super) fn is_selector(selector: &str) -> bool {
    !selector.is_empty()
        && selector.len() <= 63
        && selector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
