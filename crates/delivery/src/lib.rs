//! Outbound delivery (DESIGN.md: `delivery/`): the queue worker that takes due entries
//! from the store, resolves where each recipient domain's mail goes, decides the TLS that
//! connection must have (one policy engine: DANE, MTA-STS, REQUIRETLS, downgrade memory,
//! per-domain overrides, else opportunistic STARTTLS), hands the message over with the
//! SMTP client, retries what failed temporarily, and reports what failed for good (DSN)
//! and how TLS went (TLS-RPT).

pub mod policy;
mod settings;
pub mod tlsrpt;

pub use settings::{DeliverySettings, DomainOverride};
