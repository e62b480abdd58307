//! Judging the certificate chain a server showed: path to a trust anchor (webpki, against
//! the system roots plus `--ca`), host name, validity, key, signature algorithm, chain
//! order and completeness.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use serde::Serialize;
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::CheckError;

/// Trust anchors: the system's roots plus any `--ca` files.
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    pub system_roots: usize,
    pub extra_roots: usize,
}

impl TrustStore {
    /// The system roots (as rustls-native-certs finds them) plus every certificate in
    /// the PEM files given.
    pub fn load(extra: &[impl AsRef<Path>]) -> Result<TrustStore, CheckError> {
        let system = rustls_native_certs::load_native_certs().certs;
        let mut extra_certs = Vec::new();
        for path in extra {
            let path = path.as_ref();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| CheckError::CaFile {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(CheckError::CaFile {
                    path: path.to_path_buf(),
                    reason: "no CERTIFICATE blocks in it".into(),
                });
            }
            extra_certs.extend(certs);
        }
        Ok(TrustStore::from_certificates(&system, &extra_certs))
    }

    /// Anchors from DER certificates; ones webpki cannot use are skipped.
    pub fn from_certificates(
        system: &[CertificateDer<'_>],
        extra: &[CertificateDer<'_>],
    ) -> TrustStore {
        let convert = |certs: &[CertificateDer<'_>]| -> Vec<TrustAnchor<'static>> {
            certs
                .iter()
                .filter_map(|c| {
                    webpki::anchor_from_trusted_cert(c)
                        .ok()
                        .map(|a| a.to_owned())
                })
                .collect()
        };
        let mut anchors = convert(system);
        let system_roots = anchors.len();
        let extra_anchors = convert(extra);
        let extra_roots = extra_anchors.len();
        anchors.extend(extra_anchors);
        TrustStore {
            anchors,
            system_roots,
            extra_roots,
        }
    }
}

impl TrustStore {
    /// The same anchors for a verifying rustls client (the MTA-STS policy fetch).
    pub(crate) fn root_store(&self) -> rustls::RootCertStore {
        rustls::RootCertStore {
            roots: self.anchors.clone(),
        }
    }
}

/// One certificate of the chain as sent.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// SHA-256 and SHA-512 of the DER, and of the SubjectPublicKeyInfo, lower-case hex
    /// (what TLSA records name, RFC 6698 §2.1.2).
    pub sha256: String,
    pub sha512: String,
    pub spki_sha256: String,
    pub spki_sha512: String,
}

/// What was found about the chain.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    /// As sent, leaf first.
    pub chain: Vec<CertificateSummary>,
    /// A path from the leaf to a trust anchor exists now.
    pub trusted: bool,
    /// Why not, when not.
    pub trust_error: Option<String>,
    /// The leaf is valid for the host name (or IP address) that was checked.
    pub name_matches: bool,
    pub checked_name: String,
    /// Whole days until the leaf expires (negative: expired that long ago).
    pub days_to_expiry: i64,
    pub expired: bool,
    pub not_yet_valid: bool,
    /// "RSA", "EC P-256", "Ed25519" ...
    pub key_type: String,
    pub key_bits: u32,
    /// Of the leaf, e.g. "ecdsa-with-SHA256".
    pub signature_algorithm: String,
    /// A SHA-1 or MD5 signature on the leaf or an intermediate.
    pub weak_signature: bool,
    /// Each certificate is followed by its issuer (RFC 5246 §7.4.2).
    pub chain_in_order: bool,
    /// The chain sent reaches a trust anchor, or a root the checker lacks; false when an
    /// intermediate is missing.
    pub chain_complete: bool,
    /// A self-signed certificate was sent (needless: clients must already have it).
    pub sends_root: bool,
    /// An OCSP response was stapled (RFC 6066 §8).
    pub ocsp_stapled: bool,
}

/// Analyses `chain` (leaf first) as presented for `host`.
pub fn analyse(
    chain: &[CertificateDer<'_>],
    host: &str,
    ocsp_stapled: bool,
    trust: &TrustStore,
    now: UnixTime,
) -> Result<CertificateReport, String> {
    let leaf_der = chain.first().ok_or("the server sent no certificate")?;
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .map(|c| {
            X509Certificate::from_der(c)
                .map(|(_, cert)| cert)
                .map_err(|e| format!("unparseable certificate: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let leaf = &parsed[0];
    let self_issued = |c: &X509Certificate<'_>| c.subject().as_raw() == c.issuer().as_raw();

    let ee = EndEntityCert::try_from(leaf_der).map_err(|e| format!("the leaf: {e:?}"))?;
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    let now_secs = now.as_secs() as i64;
    let verify_at = |time: UnixTime| {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &trust.anchors,
            &chain[1..],
            time,
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ())
    };
    let mut result = verify_at(now);
    let expired = now_secs > not_after;
    let not_yet_valid = now_secs < not_before;
    if matches!(
        result,
        Err(webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. })
    ) {
        // Tell "expired" apart from "also untrusted": check the path at a time when every
        // certificate sent was valid.
        let from = parsed
            .iter()
            .map(|c| c.validity().not_before.timestamp())
            .max();
        let until = parsed
            .iter()
            .map(|c| c.validity().not_after.timestamp())
            .min();
        let inside = match (from, until) {
            (Some(from), Some(until)) if from <= until => from + (until - from) / 2,
            _ => not_before + (not_after - not_before) / 2,
        };
        let inside =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(inside.max(0) as u64));
        if let Err(other) = verify_at(inside) {
            result = Err(other);
        }
    }
    let last = parsed.last().unwrap_or(leaf);
    let missing_issuer = matches!(result, Err(webpki::Error::UnknownIssuer)) && !self_issued(last);
    let trust_error = result.as_ref().err().map(|e| match e {
        webpki::Error::UnknownIssuer if missing_issuer => format!(
            "incomplete chain: the issuer of \"{}\" (\"{}\") was not sent and is not a trust \
             anchor (an intermediate is missing, or a private CA to pass with --ca)",
            last.subject(),
            last.issuer()
        ),
        webpki::Error::UnknownIssuer => format!(
            "self-signed or unknown root: \"{}\" is not a trust anchor",
            last.subject()
        ),
        webpki::Error::CertExpired { .. } if expired => "the certificate has expired".into(),
        webpki::Error::CertExpired { .. } => "a certificate in the chain has expired".into(),
        webpki::Error::CertNotValidYet { .. } if not_yet_valid => {
            "the certificate is not valid yet".into()
        }
        webpki::Error::CertNotValidYet { .. } => {
            "a certificate in the chain is not valid yet".into()
        }
        webpki::Error::CaUsedAsEndEntity => {
            "a CA certificate (self-signed?) is used as the server certificate".into()
        }
        other => format!("{other:?}"),
    });
    let trusted = result.is_ok() && !expired && !not_yet_valid;

    let name_matches = ServerName::try_from(host)
        .ok()
        .is_some_and(|name| ee.verify_is_valid_for_subject_name(&name).is_ok());

    let (key_type, key_bits) = key_description(leaf);
    let signature_algorithm = signature_name(leaf);
    let weak_signature = parsed.iter().filter(|c| !self_issued(c)).any(|c| {
        let name = signature_name(c).to_ascii_lowercase();
        name.contains("sha1") || name.contains("sha-1") || name.contains("md5")
    });
    let chain_in_order = parsed
        .windows(2)
        .all(|pair| pair[0].issuer().as_raw() == pair[1].subject().as_raw());

    Ok(CertificateReport {
        chain: chain
            .iter()
            .zip(&parsed)
            .map(|(der, cert)| CertificateSummary {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                not_before: rfc3339(cert.validity().not_before.timestamp()),
                not_after: rfc3339(cert.validity().not_after.timestamp()),
                sha256: digest(&aws_lc_rs::digest::SHA256, der),
                sha512: digest(&aws_lc_rs::digest::SHA512, der),
                spki_sha256: digest(&aws_lc_rs::digest::SHA256, cert.public_key().raw),
                spki_sha512: digest(&aws_lc_rs::digest::SHA512, cert.public_key().raw),
            })
            .collect(),
        trusted,
        trust_error,
        name_matches,
        checked_name: host.to_string(),
        days_to_expiry: (not_after - now_secs).div_euclid(86_400),
        expired,
        not_yet_valid,
        key_type,
        key_bits,
        signature_algorithm,
        weak_signature,
        chain_in_order,
        chain_complete: !missing_issuer,
        sends_root: parsed.len() > 1 && parsed[1..].iter().any(self_issued),
        ocsp_stapled,
    })
}

fn key_description(cert: &X509Certificate<'_>) -> (String, u32) {
    let spki = cert.public_key();
    match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.3.101.112" => return ("Ed25519".into(), 256),
        "1.3.101.113" => return ("Ed448".into(), 456),
        _ => {}
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => ("RSA".into(), rsa.key_size() as u32),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => ("EC P-256".into(), 256),
                Some("1.3.132.0.34") => ("EC P-384".into(), 384),
                Some("1.3.132.0.35") => ("EC P-521".into(), 521),
                Some(other) => (format!("EC {other}"), 0),
                None => ("EC".into(), 0),
            }
        }
        Ok(PublicKey::DSA(_)) => ("DSA".into(), 0),
        _ => (spki.algorithm.algorithm.to_id_string(), 0),
    }
}

fn signature_name(cert: &X509Certificate<'_>) -> String {
    let oid = &cert.signature_algorithm.algorithm;
    x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
        .map(str::to_string)
        .unwrap_or_else(|_| oid.to_id_string())
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn digest(algorithm: &'static aws_lc_rs::digest::Algorithm, bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(algorithm, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    };
    use time::{Duration, OffsetDateTime};

    use super::*;

    struct Pki {
        root: CertificateDer<'static>,
        intermediate: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
    }

    fn ca_params(name: &str) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = OffsetDateTime::now_utc() - Duration::days(10);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(365);
        params
    }

    fn pki(leaf_name: &str, leaf_from: OffsetDateTime, leaf_until: OffsetDateTime) -> Pki {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let root_params = ca_params("test root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let int_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let int_params = ca_params("test intermediate");
        let intermediate = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let int_issuer = Issuer::new(int_params, int_key);
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut leaf_params = CertificateParams::new(vec![leaf_name.to_string()]).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, leaf_name);
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.not_before = leaf_from;
        leaf_params.not_after = leaf_until;
        let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).unwrap();
        Pki {
            root: root.der().clone(),
            intermediate: intermediate.der().clone(),
            leaf: leaf.der().clone(),
        }
    }

    fn valid_pki() -> Pki {
        let now = OffsetDateTime::now_utc();
        pki(
            "mx.example.org",
            now - Duration::days(1),
            now + Duration::days(90),
        )
    }

    fn check(p: &Pki, chain: &[&CertificateDer<'static>], host: &str) -> CertificateReport {
        let trust = TrustStore::from_certificates(&[], std::slice::from_ref(&p.root));
        let chain: Vec<CertificateDer<'static>> = chain.iter().map(|c| (*c).clone()).collect();
        analyse(&chain, host, false, &trust, UnixTime::now()).unwrap()
    }

    #[test]
    fn a_complete_chain_to_a_given_root_is_trusted() {
        let p = valid_pki();
        let r = check(&p, &[&p.leaf, &p.intermediate], "mx.example.org");
        assert!(r.trusted, "{:?}", r.trust_error);
        assert!(r.name_matches && r.chain_in_order && r.chain_complete && !r.sends_root);
        assert!(
            (88..=90).contains(&r.days_to_expiry),
            "{}",
            r.days_to_expiry
        );
        assert_eq!((r.key_type.as_str(), r.key_bits), ("EC P-256", 256));
        assert_eq!(r.signature_algorithm, "ecdsa-with-SHA256");
        assert_eq!(r.chain.len(), 2);
        assert_eq!(r.chain[0].sha256.len(), 64);
    }

    #[test]
    fn a_missing_intermediate_is_an_incomplete_chain() {
        let p = valid_pki();
        let r = check(&p, &[&p.leaf], "mx.example.org");
        assert!(!r.trusted && !r.chain_complete);
        assert!(r.trust_error.unwrap().contains("incomplete chain"));
    }

    #[test]
    fn the_wrong_name_is_reported_apart_from_trust() {
        let p = valid_pki();
        let r = check(&p, &[&p.leaf, &p.intermediate], "other.example.org");
        assert!(r.trusted && !r.name_matches);
    }

    #[test]
    fn an_expired_leaf_with_a_good_chain_is_only_expired() {
        let now = OffsetDateTime::now_utc();
        let p = pki(
            "mx.example.org",
            now - Duration::days(30),
            now - Duration::days(2),
        );
        let r = check(&p, &[&p.leaf, &p.intermediate], "mx.example.org");
        assert!(r.expired && !r.trusted && r.chain_complete);
        assert_eq!(
            r.trust_error.as_deref(),
            Some("the certificate has expired")
        );
        assert!(r.days_to_expiry < 0);
    }

    #[test]
    fn out_of_order_chains_and_sent_roots_are_noticed() {
        let p = valid_pki();
        let r = check(&p, &[&p.leaf, &p.root, &p.intermediate], "mx.example.org");
        assert!(!r.chain_in_order && r.sends_root);
    }

    #[test]
    fn an_unknown_root_is_not_an_incomplete_chain() {
        let p = valid_pki();
        let trust = TrustStore::from_certificates(&[], &[]);
        let chain = [p.leaf.clone(), p.intermediate.clone(), p.root.clone()];
        let r = analyse(&chain, "mx.example.org", false, &trust, UnixTime::now()).unwrap();
        assert!(!r.trusted && r.chain_complete);
        assert!(r.trust_error.unwrap().contains("unknown root"));
    }
}
