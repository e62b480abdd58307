//! Certificates for the policy tests, made with rcgen: a test CA and leaves it signs,
//! with names and validity as each test needs, and a TLS server config to present them.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

pub(crate) struct TestCa {
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate with its key.
pub(crate) struct TestLeaf {
    pub der: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl TestLeaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = OffsetDateTime::now_utc() - Duration::days(10);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(365);
    params
}

fn leaf_params(names: &[&str], valid_days: i64) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("names");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    if valid_days >= 0 {
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(valid_days);
    } else {
        // Expired `-valid_days` days ago.
        params.not_before = now + Duration::days(valid_days - 30);
        params.not_after = now + Duration::days(valid_days);
    }
    params
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let params = ca_params(name);
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`, valid for `valid_days` more days (negative:
    /// expired that many days ago).
    pub fn leaf(&self, names: &[&str], valid_days: i64) -> TestLeaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = leaf_params(names, valid_days)
            .signed_by(&key, &self.issuer)
            .expect("leaf cert");
        TestLeaf {
            der: cert.der().clone(),
            key: key_der(&key),
        }
    }
}

/// A self-signed server certificate, as DANE-EE deployments often use.
pub(crate) fn self_signed(names: &[&str], valid_days: i64) -> TestLeaf {
    let key = KeyPair::generate().expect("key");
    let cert = leaf_params(names, valid_days)
        .self_signed(&key)
        .expect("self-signed cert");
    TestLeaf {
        der: cert.der().clone(),
        key: key_der(&key),
    }
}

pub(crate) fn spki_sha256(certificate: &CertificateDer<'_>) -> [u8; 32] {
    let parsed = webpki::EndEntityCert::try_from(certificate).expect("parses");
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        parsed.subject_public_key_info().as_ref(),
    );
    digest.as_ref().try_into().expect("32 bytes")
}

/// A rustls server presenting `chain`.
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let config = rustls::ServerConfig::builder_with_provider(sealpost_tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server cert");
    Arc::new(config)
}
