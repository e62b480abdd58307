//! Key generation and public keys, with aws-lc-rs (the one crypto provider).

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

use super::{KeyAlgorithm, KeyError};

/// A new private key as PKCS#8 DER: RSA-2048 (RFC 8301 §3.2 asks for at least 1024 bits
/// and receivers expect 2048) or Ed25519.
pub(super) fn private_key(algorithm: KeyAlgorithm) -> Result<Vec<u8>, KeyError> {
    let failed = |_| KeyError::Generate(algorithm);
    match algorithm {
        KeyAlgorithm::Rsa => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let der: Pkcs8V1Der<'static> = pair.as_der().map_err(failed)?;
            Ok(der.as_ref().to_vec())
        }
        KeyAlgorithm::Ed25519 => {
            let pair = Ed25519KeyPair::generate().map_err(failed)?;
            let der: Pkcs8V1Der<'static> = pair.as_der().map_err(failed)?;
            Ok(der.as_ref().to_vec())
        }
    }
}

/// The public half in the form the DKIM record's `p=` takes; `None` if `pkcs8` is not a
/// key of `algorithm`.
pub(super) fn public_key(algorithm: KeyAlgorithm, pkcs8: &[u8]) -> Option<Vec<u8>> {
    match algorithm {
        KeyAlgorithm::Rsa => {
            let pair = RsaKeyPair::from_pkcs8(pkcs8).ok()?;
            let der: PublicKeyX509Der<'static> = pair.public_key().as_der().ok()?;
            Some(der.as_ref().to_vec())
        }
        KeyAlgorithm::Ed25519 => {
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8).ok()?;
            Some(pair.public_key().as_ref().to_vec())
        }
    }
}
