//! Parsed DNS records kept for as long as the answers they came from, so a sender's
//! second message costs no parsing and no walk through the resolver's cache.
//!
//! The resolver (crates/dns) caches answers, but using a cached answer still costs a
//! query name to build, a cache probe, a copy of the records (and, for a negative answer,
//! of its SOA with every TTL recounted), and then our parse of the text: a DKIM key's
//! base64, a DMARC or SPF record's grammar. Mail from one sender asks the same few names
//! for every message: the HELO name's and MAIL FROM domain's SPF, the signer's key, the
//! `_dmarc` tree walk. Here each such name is looked up and parsed once per TTL.
//!
//! Two tables, both bounded:
//!
//! - mail-auth's [`Txt`] values by query name, handed to mail-auth as its
//!   [`ResolverCache`] (DKIM keys and DMARC records; mail-auth fills in what it finds)
//!   and filled by us with the names that have none, which mail-auth does not remember.
//! - SPF records as check_host() sees them (`spf.rs`), by domain.
//!
//! An entry lives until the answer it came from expires: the records' TTL for an answer,
//! the SOA's negative TTL for NXDOMAIN and NODATA. Temporary failures are never kept.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::{ToFqdn, UnwrapTxtRecord};
use mail_auth::hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::hickory_resolver::proto::rr::{Name, RData, RecordType};
use mail_auth::{DnsError, Error, ResolverCache, Txt};
use sealpost_dns::{LookupError, Resolver};

/// Entries per table. A full table first drops what has expired; if that is not enough
/// it starts over (the answers are still in the resolver's cache), which bounds both the
/// memory and the work per insert whatever names the senders make us look up.
const CAPACITY: usize = 4096;

/// A map whose entries expire, with at most [`CAPACITY`] of them.
pub(crate) struct Expiring<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> Expiring<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((value, until)) if Instant::now() < *until => Some(value.clone()),
            _ => None,
        }
    }

    pub(crate) fn insert(&self, key: K, value: V, until: Instant) {
        let now = Instant::now();
        if until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (value, until));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// mail-auth's parsed TXT records (and the names without any), by lower-case FQDN.
pub(crate) struct TxtCache(Expiring<Box<str>, Txt>);

impl ResolverCache<Box<str>, Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(name)
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.0.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(name).map(|(value, _)| value)
    }

    fn insert(&self, name: Box<str>, value: Txt, valid_until: Instant) {
        self.0.insert(name, value, valid_until);
    }
}

impl TxtCache {
    pub(crate) fn new() -> Self {
        Self(Expiring::new())
    }

    /// The record of type `T` at `name` as mail-auth would find it (the first TXT record
    /// that parses as one), from the cache or else from DNS, and remembered either way:
    /// a name without one is remembered too, which mail-auth alone would not do.
    pub(crate) async fn record<T>(
        &self,
        resolver: &Resolver,
        name: &str,
    ) -> mail_auth::Result<Arc<T>>
    where
        T: TxtRecordParser + Into<Txt> + UnwrapTxtRecord,
    {
        let fqdn = name.to_fqdn();
        if let Some(found) = self.0.get(fqdn.as_ref()) {
            return T::unwrap_txt(found);
        }
        let (answer, until) = match txt_answer(resolver, &fqdn).await {
            Ok(answer) => answer,
            Err(error) => return Err(Error::Dns(DnsError::Resolver(error.to_string()))),
        };
        let found: Txt = match answer {
            Ok(records) => {
                // As mail-auth's own lookup: the first record that parses, else the last
                // record's error.
                let mut parsed = Err(Error::Dns(DnsError::InvalidRecordType));
                for record in &records {
                    parsed = T::parse(record);
                    if parsed.is_ok() {
                        break;
                    }
                }
                parsed.into()
            }
            Err(code) => Txt::Error(Error::Dns(DnsError::RecordNotFound(code))),
        };
        if let Some(until) = until {
            self.0
                .insert(fqdn.into_owned().into_boxed_str(), found.clone(), until);
        }
        T::unwrap_txt(found)
    }
}

/// The TXT records at `fqdn` (each one's character-strings joined), or the response code
/// of an answer that says there are none (NXDOMAIN, or NOERROR for NODATA), with how
/// long that answer may be used: `None` when it must not be kept. `Err` is a failure to
/// get an answer (a temporary error, or not a domain name).
pub(crate) async fn txt_answer(
    resolver: &Resolver,
    fqdn: &str,
) -> Result<(Result<Vec<Vec<u8>>, ResponseCode>, Option<Instant>), LookupError> {
    // Errors name the domain as crates/dns does, without the root's dot.
    let name = fqdn.strip_suffix('.').unwrap_or(fqdn);
    let Ok(query) = Name::from_utf8(fqdn) else {
        return Err(LookupError::InvalidName(name.to_string()));
    };
    match resolver.hickory().lookup(query, RecordType::TXT).await {
        Ok(lookup) => {
            let records: Vec<Vec<u8>> = lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(txt.txt_data.concat()),
                    _ => None,
                })
                .collect();
            // An answer holding only other types (a CNAME to a name without TXT) is
            // NODATA, as crates/dns says.
            let answer = if records.is_empty() {
                Err(ResponseCode::NoError)
            } else {
                Ok(records)
            };
            Ok((answer, Some(lookup.valid_until())))
        }
        Err(NetError::Dns(HickoryDnsError::NoRecordsFound(none)))
            if matches!(
                none.response_code,
                ResponseCode::NXDomain | ResponseCode::NoError
            ) =>
        {
            // The remaining negative TTL; without an SOA there is none to go by.
            let until = none
                .negative_ttl
                .map(|ttl| Instant::now() + Duration::from_secs(u64::from(ttl)));
            Ok((Err(none.response_code), until))
        }
        Err(NetError::Dns(HickoryDnsError::NoRecordsFound(none))) => Err(LookupError::Temporary {
            name: name.to_string(),
            reason: none.response_code.to_string(),
        }),
        Err(error) => Err(LookupError::Temporary {
            name: name.to_string(),
            reason: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::testing::dns;
    use mail_auth::dmarc::Dmarc;

    /// p=reject at the apex for an hour; a record that lives one second below it.
    const ZONE: &str = "_dmarc 3600 TXT \"v=DMARC1; p=reject\"\n\
                        _dmarc.brief 1 TXT \"v=DMARC1; p=none\"\n";

    #[tokio::test]
    async fn a_record_is_parsed_once_for_its_ttl() {
        let (_dns, resolver) = dns(&[("cache.test", ZONE)], &[]).await;
        let cache = TxtCache::new();
        let first = cache
            .record::<Dmarc>(&resolver, "_dmarc.cache.test")
            .await
            .unwrap();
        let again = cache
            .record::<Dmarc>(&resolver, "_DMARC.Cache.Test.")
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again), "parsed again");

        let brief = cache
            .record::<Dmarc>(&resolver, "_dmarc.brief.cache.test")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let refreshed = cache
            .record::<Dmarc>(&resolver, "_dmarc.brief.cache.test")
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&brief, &refreshed), "kept beyond its TTL");
    }

    #[tokio::test]
    async fn a_name_without_a_record_is_remembered_too() {
        let (_dns, resolver) = dns(&[("cache.test", ZONE)], &[]).await;
        let cache = TxtCache::new();
        for _ in 0..2 {
            let missing = cache
                .record::<Dmarc>(&resolver, "_dmarc.nothing.cache.test")
                .await;
            assert!(
                matches!(
                    missing,
                    Err(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)))
                ),
                "{:?}",
                missing.map(|_| ())
            );
        }
        assert_eq!(cache.0.len(), 1);
    }

    #[tokio::test]
    async fn an_unanswered_query_is_not_remembered() {
        let (_dns, resolver) = dns(&[("cache.test", ZONE)], &["_dmarc.cache.test"]).await;
        let cache = TxtCache::new();
        let silent = cache.record::<Dmarc>(&resolver, "_dmarc.cache.test").await;
        assert!(
            matches!(silent, Err(Error::Dns(DnsError::Resolver(_)))),
            "{:?}",
            silent.map(|_| ())
        );
        assert_eq!(cache.0.len(), 0);
    }

    #[test]
    fn entries_expire() {
        let map: Expiring<Box<str>, u32> = Expiring::new();
        let now = Instant::now();
        map.insert("a".into(), 1, now + Duration::from_secs(60));
        map.insert("b".into(), 2, now);
        assert_eq!(map.get("a"), Some(1));
        assert_eq!(map.get("b"), None, "an answer already expired is not kept");
    }

    #[test]
    fn a_full_map_makes_room_and_stays_bounded() {
        let map: Expiring<Box<str>, u32> = Expiring::new();
        let until = Instant::now() + Duration::from_secs(60);
        for i in 0..(CAPACITY as u32 * 3) {
            map.insert(format!("n{i}").into(), i, until);
            assert!(map.len() <= CAPACITY);
        }
        let last = CAPACITY as u32 * 3 - 1;
        assert_eq!(map.get(format!("n{last}").as_str()), Some(last));
    }
}
