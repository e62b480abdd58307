//! DNSSEC for test zones (RFC 4033–4035): a key per signed zone, made when the server
//! starts and never written anywhere, and the trust anchor a validating resolver needs.
//!
//! The chain is the real one in miniature: the root zone `.` is signed and its DNSKEY is
//! the trust anchor; each signed zone's DS record sits in the zone above it; an unsigned
//! zone is delegated without DS, which the parent's NSEC record proves. A validator
//! therefore sees signed zones as secure and unsigned ones as provably insecure, just as
//! on the Internet, and no resolver needs a special case for tests.
//!
//! A test that needs a *bogus* answer names it: every signature on the records at or
//! below that name is made invalid after signing (one bit of each signature flipped).

use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::dnssec::crypto::EcdsaSigningKey;
use hickory_server::proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_server::proto::dnssec::{Algorithm, DigestType, DnssecSigner, SigningKey};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;

use crate::zone::ZoneError;

/// How long signatures stay valid; a test server lives minutes.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// TTL of the DNSKEY line in the trust anchor file.
const ANCHOR_TTL: u32 = 300;

/// ECDSA P-256 with SHA-256 (RFC 6605), algorithm 13: small keys, quick to make.
const ALGORITHM: Algorithm = Algorithm::ECDSAP256SHA256;

/// One zone's signing key (a combined key- and zone-signing key, flags 257).
pub(crate) struct ZoneKey {
    origin: Name,
    dnskey: DNSKEY,
    key: EcdsaSigningKey,
}

impl ZoneKey {
    pub(crate) fn generate(origin: &Name) -> Result<Self, ZoneError> {
        let error = |error: String| ZoneError::Signing {
            origin: origin.to_string(),
            error,
        };
        let pkcs8 = EcdsaSigningKey::generate_pkcs8(ALGORITHM).map_err(|e| error(e.to_string()))?;
        let key =
            EcdsaSigningKey::from_pkcs8(&pkcs8, ALGORITHM).map_err(|e| error(e.to_string()))?;
        let public = key.to_public_key().map_err(|e| error(e.to_string()))?;
        Ok(Self {
            origin: origin.clone(),
            dnskey: DNSKEY::from_key(&public),
            key,
        })
    }

    /// The DS record the parent zone publishes for this key (SHA-256 digest, RFC 4509).
    pub(crate) fn ds(&self) -> Result<DS, ZoneError> {
        let error = |error: String| ZoneError::Signing {
            origin: self.origin.to_string(),
            error,
        };
        let digest = self
            .dnskey
            .to_digest(&self.origin, DigestType::SHA256)
            .map_err(|e| error(e.to_string()))?;
        let key_tag = self
            .dnskey
            .calculate_key_tag()
            .map_err(|e| error(e.to_string()))?;
        Ok(DS::new(
            key_tag,
            ALGORITHM,
            DigestType::SHA256,
            digest.as_ref().to_vec(),
        ))
    }

    /// The key as a trust anchor: one DNSKEY record in zone-file syntax, the format both
    /// hickory's `TrustAnchors` and dnspython read.
    pub(crate) fn trust_anchor(&self) -> String {
        format!("{} {ANCHOR_TTL} IN DNSKEY {}\n", self.origin, self.dnskey)
    }

    pub(crate) fn into_signer(self) -> DnssecSigner {
        DnssecSigner::new(
            self.dnskey,
            Box::new(self.key),
            self.origin,
            SIGNATURE_LIFETIME,
        )
    }
}

/// Flips a bit in every signature over records at or below `name` in a signed zone, so a
/// validator finds them bogus. Returns how many signatures were broken.
pub(crate) fn break_signatures(handler: &mut InMemoryZoneHandler, name: &LowerName) -> usize {
    let mut broken = 0;
    for (key, rrset) in handler.records_get_mut().iter_mut() {
        if !name.zone_of(&key.name) || rrset.rrsigs().is_empty() {
            continue;
        }
        let rrset = Arc::make_mut(rrset);
        let rrsigs = rrset.rrsigs().iter().map(corrupt).collect::<Vec<_>>();
        broken += rrsigs.len();
        rrset.set_rrsigs(rrsigs);
    }
    broken
}

fn corrupt(record: &Record) -> Record {
    let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &record.data else {
        return record.clone();
    };
    let mut signature = rrsig.sig().to_vec();
    if let Some(last) = signature.last_mut() {
        *last ^= 1;
    }
    let rrsig = RRSIG::from_sig(rrsig.input().clone(), signature);
    Record::from_rdata(
        record.name.clone(),
        record.ttl,
        RData::DNSSEC(DNSSECRData::RRSIG(rrsig)),
    )
}
