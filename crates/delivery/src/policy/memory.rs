//! Downgrade memory (as chasquid's `domaininfo`): once a domain's MX has shown TLS with a
//! certificate that verified by PKIX, later deliveries to the domain require that, so an
//! attacker who strips STARTTLS or swaps the certificate gets a deferral, not the mail.
//!
//! Kept in the store's delivery memos (kind [`TLS_SEEN_MEMO`], value: when it was first
//! seen, seconds since the epoch), so `sealpost tls-memory list|reset` can show and
//! forget it. Only PKIX-verified TLS sets it (the engine decides); nothing here ever clears it.

use std::sync::Arc;

use sealpost_store::Store;

/// The delivery memo kind of the downgrade memory.
pub const TLS_SEEN_MEMO: &str = "tls-seen";

pub(crate) struct DowngradeMemory {
    store: Arc<dyn Store>,
}

impl DowngradeMemory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The domain has shown verified TLS before. A store error counts as not
    /// remembered (logged): the memory hardens delivery, it must not stop it.
    pub async fn remembers(&self, domain: &str) -> bool {
        match self.store.delivery_memo(TLS_SEEN_MEMO, domain).await {
            Ok(memo) => memo.is_some(),
            Err(error) => {
                tracing::warn!(target: "delivery", %domain, "cannot read the TLS downgrade memory: {error}");
                false
            }
        }
    }

    /// Remembers that `domain` showed verified TLS at `now`, unless it already is.
    pub async fn remember(&self, domain: &str, now: i64) {
        if self.remembers(domain).await {
            return;
        }
        if let Err(error) = self
            .store
            .set_delivery_memo(TLS_SEEN_MEMO, domain, Some(now.to_string()))
            .await
        {
            tracing::warn!(target: "delivery", %domain, "cannot write the TLS downgrade memory: {error}");
        } else {
            tracing::info!(target: "delivery", %domain, "verified TLS seen: later deliveries require it");
        }
    }
}
