//! Outbound delivery (DESIGN.md: `delivery/`): the queue worker that takes due entries
//! from the store, resolves where each recipient domain's mail goes, decides the TLS that
//! connection must have (one policy engine: DANE, MTA-STS, REQUIRETLS, downgrade memory,
//! per-domain overrides, else opportunistic STARTTLS), hands the message over with the
//! SMTP client, retries what failed temporarily, and reports what failed for good (DSN)
//! and how TLS went (TLS-RPT).
//!
//! The worker's parts: `worker.rs` claims and schedules, `destination.rs` groups
//! recipients by domain and bounds connections, `courier.rs` is one connection,
//! `outcome.rs` reads replies, `attempt.rs` writes an entry's attempt back (with
//! `retry.rs` and `dsn.rs`), `delivery_log.rs` is the one log line per attempt.

mod attempt;
mod courier;
mod delivery_log;
mod destination;
mod dsn;
mod header_section;
mod outcome;
pub mod policy;
mod retry;
mod settings;
pub mod tlsrpt;
mod worker;

pub use settings::{DeliverySettings, DomainOverride};
pub use worker::QueueWorker;
