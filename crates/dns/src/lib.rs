//! One resolver for everyone (DESIGN.md): configurable nameservers, so tests point it at
//! a DNS server on loopback, and short timeouts, so a dead nameserver costs a message a
//! temporary error rather than a stalled session.
//!
//! Answers are sorted into what mail authentication has to tell apart: records, a name
//! that does not exist (NXDOMAIN), a name without records of the type (NODATA), and a
//! failure to get any answer (timeout, SERVFAIL, network), which is temporary.
//!
//! MX, address and TLSA lookups for DANE also come validated, with their DNSSEC status
//! (`validated.rs`).

mod resolver;
mod validated;

pub use hickory_resolver::TokioResolver;
pub use resolver::{LookupError, Mx, Resolver, ResolverSettings};
pub use validated::{Dnssec, Tlsa, Validated};
