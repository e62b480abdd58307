//! A real DNS server on loopback for the verifier's tests, and a resolver pointed at it.

use std::time::Duration;

use sealpost_dns::{Resolver, ResolverSettings};
use sealpost_testdns::{TestDns, Zone};

/// Serves each `(origin, master-file text)`; names in `silent` are never answered.
pub(crate) async fn dns(zones: &[(&str, &str)], silent: &[&str]) -> (TestDns, Resolver) {
    let mut builder = TestDns::builder();
    for (origin, text) in zones {
        builder = builder.zone(Zone::parse(origin, text).unwrap());
    }
    for name in silent {
        builder = builder.silent(name).unwrap();
    }
    let server = builder.start().await.unwrap();
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![server.addr()],
        timeout: Duration::from_millis(300),
        attempts: 2,
        trust_anchor: None,
    })
    .unwrap();
    (server, resolver)
}

/// A fresh signing key and the `_domainkey` TXT text that publishes it.
pub(crate) enum TestKey {
    Rsa(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl TestKey {
    pub(crate) fn rsa() -> Self {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der: Pkcs8V1Der<'static> = pair.as_der().unwrap();
        TestKey::Rsa(der.as_ref().to_vec())
    }

    pub(crate) fn ed25519() -> Self {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
        let der: Pkcs8V1Der<'static> = pair.as_der().unwrap();
        TestKey::Ed25519(der.as_ref().to_vec())
    }

    /// The record, split into 200-octet character-strings for the zone file.
    pub(crate) fn record(&self) -> String {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        use aws_lc_rs::signature::KeyPair;
        use base64::Engine as _;
        let (kind, public) = match self {
            TestKey::Rsa(pkcs8) => {
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).unwrap();
                let der: PublicKeyX509Der<'static> = pair.public_key().as_der().unwrap();
                ("rsa", der.as_ref().to_vec())
            }
            TestKey::Ed25519(pkcs8) => {
                let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8).unwrap();
                ("ed25519", pair.public_key().as_ref().to_vec())
            }
        };
        let text = format!(
            "v=DKIM1; k={kind}; p={}",
            base64::engine::general_purpose::STANDARD.encode(public)
        );
        let chunks: Vec<String> = text
            .as_bytes()
            .chunks(200)
            .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
            .collect();
        chunks.join(" ")
    }

    /// `message` with a DKIM-Signature (relaxed/relaxed over From, To, Subject) in front.
    pub(crate) fn sign(&self, domain: &str, selector: &str, message: &[u8]) -> Vec<u8> {
        use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
        use mail_auth::common::headers::HeaderWriter;
        use mail_auth::dkim::{Canonicalization, DkimSigner};
        use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let headers = ["From", "To", "Subject"];
        let signature = match self {
            TestKey::Rsa(pkcs8) => {
                let key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                    PrivatePkcs8KeyDer::from(pkcs8.as_slice()),
                ))
                .unwrap();
                DkimSigner::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(headers)
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed)
                    .sign(message)
                    .unwrap()
            }
            TestKey::Ed25519(pkcs8) => {
                DkimSigner::from_key(Ed25519Key::from_pkcs8_der(pkcs8).unwrap())
                    .domain(domain)
                    .selector(selector)
                    .headers(headers)
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed)
                    .sign(message)
                    .unwrap()
            }
        };
        let mut signed = signature.to_header().into_bytes();
        signed.extend_from_slice(message);
        signed
    }
}
