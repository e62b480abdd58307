//! How one host's certificate is judged, as a rustls `ServerCertVerifier`.
//!
//! A [`HostCheck`] is a list of checks that must all pass (PKIX to the roots or to a
//! pinned CA, a pinned SPKI, DANE); the verdict is recorded on every handshake, for the
//! log, downgrade memory and TLS-RPT, and it fails the handshake only when the policy
//! enforces it. Every connection gets its own verifier, holding that connection's
//! verdict, over a client config that offers TLS 1.2 and 1.3 only and never resumes.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::digest;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::dane::DaneCheck;
use super::{HostVerifier, TlsConnector, Verification};

/// One requirement on a certificate chain.
pub(crate) enum Check {
    /// A path to these roots (the configured roots, or a pinned CA), valid for the name
    /// sent as SNI. `label` names it in the verdict: `pkix`, `pinned ca`.
    Pkix {
        verifier: Option<Arc<WebPkiServerVerifier>>,
        label: &'static str,
    },
    /// The leaf's SubjectPublicKeyInfo has this SHA-256 digest; no CA is asked.
    PinnedSpki([u8; 32]),
    Dane(DaneCheck),
    /// Fails whatever the certificate: the host itself is outside the policy (an MX an
    /// MTA-STS policy in testing mode does not name), reported as `validation-failure`.
    Refused(String),
}

impl Check {
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<String, Verification> {
        match self {
            Check::Pkix { verifier, label } => {
                let Some(verifier) = verifier else {
                    return Err(Verification::Failed {
                        result_type: "certificate-not-trusted",
                        detail: format!("{label}: no trusted root certificates are configured"),
                    });
                };
                verifier
                    .verify_server_cert(end_entity, intermediates, server_name, &[], now)
                    .map(|_| label.to_string())
                    .map_err(|error| failure_from_rustls(&error, label))
            }
            Check::PinnedSpki(pin) => {
                let spki = webpki::EndEntityCert::try_from(end_entity)
                    .map(|cert| cert.subject_public_key_info())
                    .map_err(|error| Verification::Failed {
                        result_type: "validation-failure",
                        detail: format!("pinned spki: the certificate does not parse: {error}"),
                    })?;
                if digest::digest(&digest::SHA256, spki.as_ref()).as_ref() == pin {
                    Ok("pinned spki".into())
                } else {
                    Err(Verification::Failed {
                        result_type: "certificate-not-trusted",
                        detail: "pinned spki: the certificate's public key is not the pinned one"
                            .into(),
                    })
                }
            }
            Check::Dane(dane) => dane.verify(end_entity, intermediates, now),
            Check::Refused(reason) => Err(Verification::Failed {
                result_type: "validation-failure",
                detail: reason.clone(),
            }),
        }
    }

    fn describe(&self) -> String {
        match self {
            Check::Pkix { label, .. } => label.to_string(),
            Check::PinnedSpki(_) => "pinned spki".into(),
            Check::Dane(dane) => format!("dane ({} tlsa records)", dane.records.len()),
            Check::Refused(_) => "not in policy".into(),
        }
    }
}

/// What a host's certificate must satisfy.
pub(crate) struct HostCheck {
    pub checks: Vec<Check>,
    /// Fail the handshake when the checks fail.
    pub enforce: bool,
    /// The verdict when there is nothing to check (RFC 7672 §2.2: TLS is mandatory but
    /// no TLSA record is usable, so there is nothing a certificate could be verified
    /// against).
    pub unauthenticated: Option<Verification>,
    pub server_name: ServerName<'static>,
}

impl HostCheck {
    fn judge(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Verification {
        if let Some(verdict) = &self.unauthenticated {
            return verdict.clone();
        }
        let mut how = Vec::with_capacity(self.checks.len());
        for check in &self.checks {
            match check.verify(end_entity, intermediates, &self.server_name, now) {
                Ok(passed) => how.push(passed),
                Err(failed) => return failed,
            }
        }
        if how.is_empty() {
            return Verification::Failed {
                result_type: "validation-failure",
                detail: "nothing to verify the certificate against".into(),
            };
        }
        Verification::Verified {
            how: how.join(" + "),
        }
    }
}

/// The [`HostVerifier`] of a planned host: a fresh recording verifier and client config
/// per connection.
pub(crate) struct PlannedVerifier {
    check: Arc<HostCheck>,
    provider: Arc<CryptoProvider>,
}

impl PlannedVerifier {
    pub fn new(check: HostCheck, provider: Arc<CryptoProvider>) -> Self {
        Self {
            check: Arc::new(check),
            provider,
        }
    }

    /// Judges a chain outside a handshake (tests, and explaining a host's rules).
    #[cfg(test)]
    pub fn judge(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Verification {
        match chain.split_first() {
            Some((end_entity, intermediates)) => self.check.judge(end_entity, intermediates, now),
            None => Verification::Failed {
                result_type: "validation-failure",
                detail: "no certificate".into(),
            },
        }
    }
}

impl HostVerifier for PlannedVerifier {
    fn connector(&self) -> TlsConnector {
        let verdict = Arc::new(OnceLock::new());
        let recording = RecordingVerifier {
            check: Arc::clone(&self.check),
            verdict: Arc::clone(&verdict),
            provider: Arc::clone(&self.provider),
        };
        // TLS 1.2 and 1.3 only, no client certificate, no resumption (see the module doc
        // of `policy`).
        let mut config = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("sealpost's crypto provider supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(recording))
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        TlsConnector {
            config: Arc::new(config),
            server_name: self.check.server_name.clone(),
            verdict,
        }
    }

    fn describe(&self) -> String {
        if self.check.unauthenticated.is_some() {
            return "unauthenticated (no usable tlsa record)".into();
        }
        let checks: Vec<String> = self.check.checks.iter().map(Check::describe).collect();
        let checks = checks.join(" + ");
        if self.check.enforce {
            checks
        } else {
            format!("{checks}, not required")
        }
    }
}

/// Records its verdict in the connection's cell; refuses the certificate only when the
/// check is enforced.
struct RecordingVerifier {
    check: Arc<HostCheck>,
    verdict: Arc<OnceLock<Verification>>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for RecordingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingVerifier")
            .field("enforce", &self.check.enforce)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.check.judge(end_entity, intermediates, now);
        // One handshake per connection, so one verdict; a second call cannot happen.
        let _ = self.verdict.set(verdict.clone());
        match verdict {
            Verification::Failed { detail, .. } if self.check.enforce => {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(PolicyRefused(detail))),
                )))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The policy's reason for refusing a certificate, carried in the handshake error.
#[derive(Debug)]
struct PolicyRefused(String);

impl std::fmt::Display for PolicyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyRefused {}

/// A rustls verification error as an RFC 8460 §4.3 result type with its detail.
pub(crate) fn failure_from_rustls(error: &rustls::Error, label: &str) -> Verification {
    let result_type = match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => "certificate-expired",
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate-host-mismatch"
            }
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
            | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. }
            | CertificateError::Revoked => "certificate-not-trusted",
            _ => "validation-failure",
        },
        _ => "validation-failure",
    };
    Verification::Failed {
        result_type,
        detail: format!("{label}: {error}"),
    }
}

#[cfg(test)]
mod tests;
