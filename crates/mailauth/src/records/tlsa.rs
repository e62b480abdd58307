//! TLSA `3 1 1` (RFC 7671 §5.1, RFC 7672 §3.1): DANE-EE, the SubjectPublicKeyInfo,
//! SHA-256. It names the key, not the certificate, so renewing a certificate with the
//! same key keeps the record valid.

use aws_lc_rs::digest::{SHA256, digest};

use super::hex;

#[derive(Debug, thiserror::Error)]
#[error("not an X.509 certificate: {0}")]
pub struct TlsaError(String);

/// The association data (lower-case hex) of a `3 1 1` record for the DER certificate.
pub fn tlsa_3_1_1(certificate_der: &[u8]) -> Result<String, TlsaError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| TlsaError(e.to_string()))?;
    let spki = certificate.tbs_certificate.subject_pki.raw;
    Ok(hex(digest(&SHA256, spki).as_ref()))
}
