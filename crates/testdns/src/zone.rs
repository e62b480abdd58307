//! Zones in RFC 1035 master-file format. Test zones may leave out the SOA and NS records
//! and the `$TTL`: they are filled in, so a test states only the records it is about.
//! A zone can be marked signed; the keys and signatures are made when the server starts
//! (see `dnssec.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use hickory_server::dnssec::NxProofKind;
use hickory_server::proto::dnssec::rdata::{DNSSECRData, DS};
use hickory_server::proto::rr::rdata::{NS, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, ZoneType};

use crate::dnssec::ZoneKey;

/// TTL of records that name none, and of the synthesised SOA's negative answers.
const DEFAULT_TTL: u32 = 300;

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("cannot read zone file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("invalid zone {origin}: {error}")]
    Parse { origin: String, error: String },
    #[error("invalid domain name {name}: {error}")]
    Name { name: String, error: String },
    #[error("cannot sign zone {origin}: {error}")]
    Signing { origin: String, error: String },
    #[error("{0} is to be bogus, but no signed records are at or below it")]
    NothingToBreak(String),
}

/// One zone: its origin, its records, and whether it is served signed.
pub struct Zone {
    origin: Name,
    records: BTreeMap<RrKey, RecordSet>,
    signed: bool,
}

impl Zone {
    /// Parses master-file text; `origin` is the zone's apex unless the text sets
    /// `$ORIGIN` itself.
    pub fn parse(origin: &str, text: &str) -> Result<Self, ZoneError> {
        let mut name = Name::from_ascii(origin).map_err(|error| ZoneError::Name {
            name: origin.to_string(),
            error: error.to_string(),
        })?;
        name.set_fqdn(true);
        let text = if text.contains("$TTL") {
            text.to_string()
        } else {
            format!("$TTL {DEFAULT_TTL}\n{text}")
        };
        let (origin, records) = Parser::new(text, None, Some(name))
            .parse()
            .map_err(|error| ZoneError::Parse {
                origin: origin.to_string(),
                error: error.to_string(),
            })?;
        let mut zone = Self {
            origin,
            records,
            signed: false,
        };
        zone.fill_in_apex();
        Ok(zone)
    }

    /// Reads a zone file. Its origin is the file name without a `.zone` suffix
    /// (`example.test.zone` serves `example.test.`) unless the file sets `$ORIGIN`.
    pub fn from_file(path: &Path) -> Result<Self, ZoneError> {
        let text = std::fs::read_to_string(path).map_err(|error| ZoneError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let origin = file_name.strip_suffix(".zone").unwrap_or(&file_name);
        Self::parse(origin, &text)
    }

    /// Serves the zone with DNSSEC (RFC 4035): signed with an ECDSA P-256 key made when the
    /// server starts, NSEC records for denials, and a DS record in the zone above it.
    pub fn signed(mut self) -> Self {
        self.signed = true;
        self
    }

    pub fn is_signed(&self) -> bool {
        self.signed
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Makes this zone delegate `child` to itself: the child's apex NS records, and its DS
    /// record when it is signed, so a validator can walk from this zone down to the child
    /// (or prove, by the NSEC that shows NS without DS, that the child is unsigned).
    pub(crate) fn delegate(&mut self, child: &Zone, ds: Option<DS>) {
        let child_apex = LowerName::from(child.origin.clone());
        let ns_key = RrKey::new(child_apex.clone(), RecordType::NS);
        if let Some(ns) = child.records.get(&ns_key) {
            self.records.entry(ns_key).or_insert_with(|| ns.clone());
        }
        if let Some(ds) = ds {
            let record = Record::from_rdata(
                child.origin.clone(),
                DEFAULT_TTL,
                RData::DNSSEC(DNSSECRData::DS(ds)),
            );
            self.records.insert(
                RrKey::new(child_apex, RecordType::DS),
                RecordSet::from(record),
            );
        }
    }

    /// The zone handler that answers for this zone, signed with `key` when there is one.
    pub(crate) fn into_handler(
        self,
        key: Option<ZoneKey>,
    ) -> Result<InMemoryZoneHandler, ZoneError> {
        let origin = self.origin.clone();
        let signing_error = |error: String| ZoneError::Signing {
            origin: origin.to_string(),
            error,
        };
        // The apex SOA is always present (see `fill_in_apex`), the only way this can fail.
        let mut handler = InMemoryZoneHandler::new(
            self.origin.clone(),
            self.records,
            ZoneType::Primary,
            AxfrPolicy::Deny,
            key.as_ref().map(|_| NxProofKind::Nsec),
        )
        .unwrap_or_else(|error| unreachable!("zone {} without SOA: {error}", self.origin));
        if let Some(key) = key {
            handler
                .add_zone_signing_key_mut(key.into_signer())
                .map_err(|error| signing_error(error.to_string()))?;
            handler
                .secure_zone_mut()
                .map_err(|error| signing_error(error.to_string()))?;
        }
        Ok(handler)
    }

    /// Adds an SOA and an NS record at the apex when the text has none.
    fn fill_in_apex(&mut self) {
        let apex = LowerName::from(self.origin.clone());
        let ns_name = Name::from_ascii("ns").and_then(|ns| ns.append_domain(&self.origin));
        let Ok(ns_name) = ns_name else {
            return;
        };
        let soa_key = RrKey::new(apex.clone(), RecordType::SOA);
        if !self.records.contains_key(&soa_key) {
            let hostmaster = Name::from_ascii("hostmaster")
                .and_then(|h| h.append_domain(&self.origin))
                .unwrap_or_else(|_| self.origin.clone());
            let soa = SOA::new(ns_name.clone(), hostmaster, 1, 3600, 600, 86400, 60);
            let record = Record::from_rdata(self.origin.clone(), DEFAULT_TTL, RData::SOA(soa));
            self.records.insert(soa_key, RecordSet::from(record));
        }
        let ns_key = RrKey::new(apex, RecordType::NS);
        if !self.records.contains_key(&ns_key) {
            let record =
                Record::from_rdata(self.origin.clone(), DEFAULT_TTL, RData::NS(NS(ns_name)));
            self.records.insert(ns_key, RecordSet::from(record));
        }
    }
}
