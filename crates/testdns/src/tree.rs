//! The served zones as one tree. Without DNSSEC each zone simply answers for its names.
//! With DNSSEC the zones are linked as on the Internet: every zone is delegated from the
//! closest served zone above it (the root at least), which also holds its DS record, and
//! DS queries are answered by that parent (RFC 4035 §3.1.4.1), not by the child zone a
//! plain catalog would pick for the name.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::proto::rr::{LowerName, Name, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{Catalog, ZoneHandler};

use crate::denial::ProvenDenials;
use crate::dnssec::{ZoneKey, break_signatures};
use crate::zone::{Zone, ZoneError};

pub(crate) struct ZoneTree {
    catalog: Catalog,
    /// DNSSEC only: for each zone apex below the root, a catalog of just its parent zone,
    /// which answers DS queries for that apex.
    parents: HashMap<LowerName, Catalog>,
}

/// The tree and, with DNSSEC, the root key as a trust anchor (zone-file text).
pub(crate) struct Built {
    pub(crate) tree: ZoneTree,
    pub(crate) trust_anchor: Option<String>,
}

impl ZoneTree {
    /// `zones` must include the root zone. With `dnssec`, the root is signed (its key is the
    /// trust anchor) along with every zone marked signed, and the records at or below each
    /// of the `bogus` names get signatures that do not verify.
    pub(crate) fn build(
        mut zones: Vec<Zone>,
        dnssec: bool,
        bogus: &[Name],
    ) -> Result<Built, ZoneError> {
        if !dnssec {
            let mut catalog = Catalog::new();
            for zone in zones {
                let origin = LowerName::from(zone.origin().clone());
                catalog.upsert(origin, vec![Arc::new(zone.into_handler(None)?)]);
            }
            return Ok(Built {
                tree: Self {
                    catalog,
                    parents: HashMap::new(),
                },
                trust_anchor: None,
            });
        }

        let keys = zones
            .iter()
            .map(|zone| {
                let signed = zone.is_signed() || zone.origin().is_root();
                signed.then(|| ZoneKey::generate(zone.origin())).transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trust_anchor = zones
            .iter()
            .zip(&keys)
            .find(|(zone, _)| zone.origin().is_root())
            .and_then(|(_, key)| key.as_ref())
            .map(ZoneKey::trust_anchor);

        let parent_of = parents(&zones);
        for (child, parent) in parent_of.iter().enumerate() {
            let Some(parent) = *parent else { continue };
            let ds = keys[child].as_ref().map(ZoneKey::ds).transpose()?;
            let (child_zone, parent_zone) = pick_two(&mut zones, child, parent);
            parent_zone.delegate(child_zone, ds);
        }

        let mut handlers = zones
            .into_iter()
            .zip(keys)
            .map(|(zone, key)| {
                let origin = LowerName::from(zone.origin().clone());
                Ok((origin, zone.into_handler(key)?))
            })
            .collect::<Result<Vec<(LowerName, InMemoryZoneHandler)>, ZoneError>>()?;
        for name in bogus {
            let name = LowerName::from(name.clone());
            let broken: usize = handlers
                .iter_mut()
                .map(|(_, handler)| break_signatures(handler, &name))
                .sum();
            if broken == 0 {
                return Err(ZoneError::NothingToBreak(name.to_string()));
            }
        }

        let handlers: Vec<(LowerName, Arc<dyn ZoneHandler>)> = handlers
            .into_iter()
            .map(|(origin, handler)| {
                let handler: Arc<dyn ZoneHandler> = Arc::new(ProvenDenials::new(handler));
                (origin, handler)
            })
            .collect();
        let mut catalog = Catalog::new();
        let mut parent_catalogs = HashMap::new();
        for (child, parent) in parent_of.iter().enumerate() {
            let (origin, handler) = &handlers[child];
            catalog.upsert(origin.clone(), vec![handler.clone()]);
            if let Some(parent) = *parent {
                let (parent_origin, parent_handler) = &handlers[parent];
                let mut only_parent = Catalog::new();
                only_parent.upsert(parent_origin.clone(), vec![parent_handler.clone()]);
                parent_catalogs.insert(origin.clone(), only_parent);
            }
        }
        Ok(Built {
            tree: Self {
                catalog,
                parents: parent_catalogs,
            },
            trust_anchor,
        })
    }

    /// The catalog that answers `request`: the parent's for a DS query at a zone apex.
    fn catalog_for(&self, request: &Request) -> &Catalog {
        let ds_apex = request.queries.queries().first().and_then(|query| {
            (query.query_type() == RecordType::DS)
                .then(|| self.parents.get(query.name()))
                .flatten()
        });
        ds_apex.unwrap_or(&self.catalog)
    }
}

#[async_trait::async_trait]
impl RequestHandler for ZoneTree {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.catalog_for(request)
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// For each zone, the index of the closest other zone above it (None for the root, or for
/// a zone nothing is above).
fn parents(zones: &[Zone]) -> Vec<Option<usize>> {
    zones
        .iter()
        .map(|child| {
            zones
                .iter()
                .enumerate()
                .filter(|(_, parent)| {
                    parent.origin() != child.origin() && parent.origin().zone_of(child.origin())
                })
                .max_by_key(|(_, parent)| parent.origin().num_labels())
                .map(|(index, _)| index)
        })
        .collect()
}

/// Borrows two different zones at once, the first shared and the second mutable.
fn pick_two(zones: &mut [Zone], shared: usize, mutable: usize) -> (&Zone, &mut Zone) {
    if shared < mutable {
        let (low, high) = zones.split_at_mut(mutable);
        (&low[shared], &mut high[0])
    } else {
        let (low, high) = zones.split_at_mut(shared);
        (&high[0], &mut low[mutable])
    }
}
