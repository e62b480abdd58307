//! Complete NSEC proofs of nonexistence for signed zones.
//!
//! An NXDOMAIN answer must prove two things (RFC 4035 §3.1.3.2): no record at the query
//! name, and no wildcard at its closest encloser (the longest ancestor that exists). The
//! in-memory zone of hickory-server 0.26 proves the wildcard at the query name's parent
//! instead, which is the same only when the parent exists: for `_25._tcp.host.example`
//! below a missing `host.example`, BIND's validator calls its denial bogus. This wrapper
//! answers as the in-memory zone does and puts the right NSEC records in denials.

use std::collections::BTreeMap;
use std::sync::Arc;

use hickory_server::dnssec::NxProofKind;
use hickory_server::proto::dnssec::rdata::DNSSECRData;
use hickory_server::proto::rr::{
    LowerName, RData, RecordSet, RecordType, RrKey, TSigResponseContext,
};
use hickory_server::server::{Request, RequestInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AuthLookup, AxfrPolicy, LookupControlFlow, LookupError, LookupOptions, LookupRecords,
    Nsec3QueryInfo, ZoneHandler, ZoneTransfer, ZoneType,
};

pub(crate) struct ProvenDenials {
    zone: InMemoryZoneHandler,
}

impl ProvenDenials {
    pub(crate) fn new(zone: InMemoryZoneHandler) -> Self {
        Self { zone }
    }
}

#[async_trait::async_trait]
impl ZoneHandler for ProvenDenials {
    fn zone_type(&self) -> ZoneType {
        self.zone.zone_type()
    }

    fn axfr_policy(&self) -> AxfrPolicy {
        self.zone.axfr_policy()
    }

    fn origin(&self) -> &LowerName {
        self.zone.origin()
    }

    async fn lookup(
        &self,
        name: &LowerName,
        rtype: RecordType,
        request_info: Option<&RequestInfo<'_>>,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.zone
            .lookup(name, rtype, request_info, lookup_options)
            .await
    }

    async fn search(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        self.zone.search(request, lookup_options).await
    }

    /// For NODATA, the NSEC at the name. For NXDOMAIN, the NSEC covering the name and the
    /// one covering `*.<closest encloser>`. For a wildcard answer, the NSEC covering the
    /// name (the wildcard's own NSEC is left out: it exists).
    async fn nsec_records(
        &self,
        name: &LowerName,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        let records = self.zone.records().await;
        let nsecs: Vec<&Arc<RecordSet>> = records
            .values()
            .filter(|rrset| rrset.record_type() == RecordType::NSEC)
            .collect();
        if let Some(at_name) = nsecs
            .iter()
            .find(|nsec| LowerName::from(nsec.name()) == *name)
        {
            let records = LookupRecords::new(lookup_options, Arc::clone(at_name));
            return LookupControlFlow::Continue(Ok(records.into()));
        }
        let encloser = closest_encloser(&records, name, self.origin());
        let wildcard = encloser
            .prepend_label("*")
            .map(LowerName::from)
            .map_err(LookupError::from);
        let wildcard = match wildcard {
            Ok(wildcard) => wildcard,
            Err(error) => return LookupControlFlow::Continue(Err(error)),
        };
        let mut proofs: Vec<Arc<RecordSet>> = Vec::new();
        for target in [name, &wildcard] {
            let Some(cover) = covering(&nsecs, target) else {
                continue;
            };
            if !proofs.iter().any(|proof| proof.name() == cover.name()) {
                proofs.push(Arc::clone(cover));
            }
        }
        LookupControlFlow::Continue(Ok(LookupRecords::many(lookup_options, proofs).into()))
    }

    async fn nsec3_records(
        &self,
        info: Nsec3QueryInfo<'_>,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.zone.nsec3_records(info, lookup_options).await
    }

    async fn zone_transfer(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
        now: u64,
    ) -> Option<(
        Result<ZoneTransfer, LookupError>,
        Option<TSigResponseContext>,
    )> {
        self.zone.zone_transfer(request, lookup_options, now).await
    }

    fn nx_proof_kind(&self) -> Option<&NxProofKind> {
        self.zone.nx_proof_kind()
    }
}

/// The longest ancestor of `name` (up to the apex) that exists: it owns records, or names
/// with records lie below it (an empty non-terminal).
fn closest_encloser(
    records: &BTreeMap<RrKey, Arc<RecordSet>>,
    name: &LowerName,
    origin: &LowerName,
) -> LowerName {
    let mut candidate = name.base_name();
    while candidate != *origin && !candidate.is_root() {
        if records.keys().any(|key| candidate.zone_of(&key.name)) {
            return candidate;
        }
        candidate = candidate.base_name();
    }
    origin.clone()
}

/// The NSEC whose owner sorts before `name` and whose next name after it (the last NSEC
/// wraps around to the apex), in canonical order (RFC 4034 §6.1). `nsecs` is in that order.
fn covering<'a>(nsecs: &[&'a Arc<RecordSet>], name: &LowerName) -> Option<&'a Arc<RecordSet>> {
    nsecs.iter().rev().copied().find(|rrset| {
        let owner = LowerName::from(rrset.name());
        if owner >= *name {
            return false;
        }
        rrset
            .records_without_rrsigs()
            .any(|record| match &record.data {
                RData::DNSSEC(DNSSECRData::NSEC(nsec)) => {
                    let next = LowerName::from(nsec.next_domain_name());
                    *name < next || next <= owner
                }
                _ => false,
            })
    })
}
