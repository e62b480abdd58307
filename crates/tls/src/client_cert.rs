//! Client certificates (`[tls] client_ca`): requested, never required. A certificate
//! that does not chain to the configured CA still completes the handshake but is
//! reported as unverified and gives no rights.
//!
//! rustls either accepts a client certificate or aborts the handshake, so the handshake
//! runs with [`RequestClientCert`], which accepts any chain but still makes the client
//! prove it holds the key, and [`ClientCertCheck::examine`] then gives the real verdict
//! with the same webpki verifier rustls would have used.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::extensions::GeneralName;

use crate::error::TlsError;
use crate::report::ClientCert;
use crate::resolver::read_certificates;

/// Longest subject kept for the log line; the subject is chosen by the client.
const MAX_SUBJECT: usize = 256;

/// The verdict on presented client certificates, against the CAs in `[tls] client_ca`.
#[derive(Debug)]
pub struct ClientCertCheck {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientCertCheck {
    /// Loads the CA certificates clients' certificates must chain to.
    pub(crate) fn from_ca_file(
        path: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for ca in read_certificates(path)? {
            roots.add(ca).map_err(|e| TlsError::BadPem {
                path: path.to_owned(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(format!("client_ca {}: {e}", path.display())))?;
        Ok(Self { verifier })
    }

    /// The verifier the handshake runs with (see [`RequestClientCert`]).
    pub(crate) fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(RequestClientCert {
            inner: self.verifier.clone(),
        })
    }

    /// Verifies a presented chain (leaf first) against the client CAs, now. Identities are
    /// only filled in for a verified certificate, so nothing unverified can be mistaken
    /// for an identity.
    pub fn examine(&self, chain: &[CertificateDer<'static>]) -> ClientCert {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return ClientCert::default();
        };
        let verified = self
            .verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .is_ok();
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
            return ClientCert {
                subject: "(unparseable certificate)".into(),
                verified: false,
                identities: Vec::new(),
            };
        };
        let identities = if verified {
            identities(&cert)
        } else {
            Vec::new()
        };
        ClientCert {
            subject: printable(&cert.subject().to_string()),
            verified,
            identities,
        }
    }
}

/// rfc822Name SANs (RFC 5280 §4.2.1.6 puts e-mail addresses there), else a subject CN
/// that looks like an address, for older certificates. Lower-cased: the local part is
/// case-sensitive in theory but not at any real mail provider, and accounts are compared
/// lower-cased.
fn identities(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let mut emails: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::RFC822Name(email) => Some(email.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if emails.is_empty()
        && let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        && cn.contains('@')
    {
        emails.push(cn.to_ascii_lowercase());
    }
    emails
}

/// Escapes control characters and quotes so a hostile subject can't forge log lines.
fn printable(subject: &str) -> String {
    let mut out = String::new();
    for c in subject.chars() {
        if out.len() >= MAX_SUBJECT {
            out.push('…');
            break;
        }
        if c.is_control() || c == '"' || c == '\\' {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The handshake side of `client_ca`: asks for a certificate (hinting the configured CAs),
/// does not require one, and accepts any chain so an unverified one still connects. The
/// signature checks are the real ones: a client must prove it owns the key of whatever
/// certificate it sends (RFC 8446 §4.4.3, RFC 5246 §7.4.8), or the handshake fails.
#[derive(Debug)]
struct RequestClientCert {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_line_breaks_and_quotes() {
        assert_eq!(printable("CN=a\"\nINFO forged"), "CN=a\\\"\\nINFO forged");
    }

    #[test]
    fn printable_bounds_length() {
        let long = "x".repeat(10_000);
        assert!(printable(&long).len() <= MAX_SUBJECT + '…'.len_utf8());
    }

    #[test]
    fn examine_without_chain_reports_nothing_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).expect("ca");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).expect("write");
        let check =
            ClientCertCheck::from_ca_file(&path, crate::provider::crypto_provider()).expect("ca");
        let report = check.examine(&[]);
        assert!(!report.verified);
        assert!(report.identities.is_empty());
    }
}
