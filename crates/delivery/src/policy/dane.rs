//! DANE for SMTP (RFC 7672): which TLSA records a sender may use, and whether a
//! certificate chain matches them.
//!
//! Only DANE-TA(2) and DANE-EE(3) are usable (§3.1.3: PKIX-TA(0) and PKIX-EE(1) are
//! not, an MX has no agreed set of public CAs), with selector Cert(0)/SPKI(1) and
//! matching Full(0)/SHA2-256(1)/SHA2-512(2) (RFC 6698 §2.1). DANE-EE pins the leaf
//! alone: neither its names nor its dates are checked (§3.1.1). DANE-TA names a
//! certificate of the presented chain as the only trust anchor; the leaf must chain up
//! to it and carry the MX name or the destination domain (§3.2.2, §3.2.3).

use std::sync::Arc;

use aws_lc_rs::digest;
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sealpost_dns::Tlsa;

use super::Verification;
use super::verifier::failure_from_rustls;

const DANE_TA: u8 = 2;
const DANE_EE: u8 = 3;

/// A TLSA record a sender may use (RFC 7672 §3.1): a DANE usage, a known selector and
/// matching type, and data the length its matching type needs.
pub(crate) fn usable(record: &Tlsa) -> bool {
    let usage = matches!(record.usage, DANE_TA | DANE_EE);
    let selector = matches!(record.selector, 0 | 1);
    let data = match record.matching {
        0 => !record.data.is_empty(),
        1 => record.data.len() == 32,
        2 => record.data.len() == 64,
        _ => false,
    };
    usage && selector && data
}

/// `3 1 1 ab12…`, as in a zone file and in TLS-RPT's policy strings.
pub(crate) fn presentation(record: &Tlsa) -> String {
    let hex: String = record.data.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{} {} {} {hex}",
        record.usage, record.selector, record.matching
    )
}

/// Judges a presented chain against the usable TLSA records of one MX host.
pub(crate) struct DaneCheck {
    pub records: Vec<Tlsa>,
    /// The MX name, then the destination domain: the names a DANE-TA leaf may carry.
    pub names: Vec<ServerName<'static>>,
    pub provider: Arc<CryptoProvider>,
}

impl DaneCheck {
    /// `Ok(how)` when some record matches, e.g. `dane-ee 3 1 1`.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<String, Verification> {
        for record in self.records.iter().filter(|r| r.usage == DANE_EE) {
            if matches_certificate(record, end_entity) {
                return Ok(format!("dane-ee {}", header(record)));
            }
        }
        // A DANE-TA path that was found but failed for another reason (expired leaf, a
        // name not on it) says more than "no record matched".
        let mut path_failure = None;
        for record in self.records.iter().filter(|r| r.usage == DANE_TA) {
            for anchor in intermediates
                .iter()
                .filter(|c| matches_certificate(record, c))
            {
                match self.verify_below_anchor(anchor, end_entity, intermediates, now) {
                    Ok(()) => return Ok(format!("dane-ta {}", header(record))),
                    Err(failure) => path_failure = Some(failure),
                }
            }
        }
        Err(path_failure.unwrap_or_else(|| Verification::Failed {
            result_type: "tlsa-invalid",
            detail: format!(
                "no TLSA record matches the certificate chain ({} usable records)",
                self.records.len()
            ),
        }))
    }

    /// The leaf chains to `anchor` (and to nothing else) and is valid for one of the
    /// reference names.
    fn verify_below_anchor(
        &self,
        anchor: &CertificateDer<'_>,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Verification> {
        let mut roots = RootCertStore::empty();
        roots
            .add(anchor.clone().into_owned())
            .map_err(|error| Verification::Failed {
                result_type: "tlsa-invalid",
                detail: format!("the DANE-TA certificate cannot be a trust anchor: {error}"),
            })?;
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&self.provider),
        )
        .build()
        .map_err(|error| Verification::Failed {
            result_type: "tlsa-invalid",
            detail: format!("the DANE-TA certificate cannot be a trust anchor: {error}"),
        })?;
        let mut first_failure = None;
        for name in &self.names {
            match verifier.verify_server_cert(end_entity, intermediates, name, &[], now) {
                Ok(_) => return Ok(()),
                Err(error) => {
                    first_failure.get_or_insert_with(|| failure_from_rustls(&error, "dane-ta"));
                }
            }
        }
        Err(first_failure.unwrap_or_else(|| Verification::Failed {
            result_type: "tlsa-invalid",
            detail: "no reference name to check the DANE-TA leaf against".into(),
        }))
    }
}

fn header(record: &Tlsa) -> String {
    format!("{} {} {}", record.usage, record.selector, record.matching)
}

/// The record's selector picks the whole certificate or its SubjectPublicKeyInfo, its
/// matching type says how to compare.
pub(crate) fn matches_certificate(record: &Tlsa, certificate: &CertificateDer<'_>) -> bool {
    let spki;
    let selected: &[u8] = match record.selector {
        0 => certificate.as_ref(),
        1 => match webpki::EndEntityCert::try_from(certificate) {
            Ok(parsed) => {
                spki = parsed.subject_public_key_info();
                spki.as_ref()
            }
            Err(_) => return false,
        },
        _ => return false,
    };
    match record.matching {
        0 => selected == record.data.as_slice(),
        1 => digest::digest(&digest::SHA256, selected).as_ref() == record.data.as_slice(),
        2 => digest::digest(&digest::SHA512, selected).as_ref() == record.data.as_slice(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
