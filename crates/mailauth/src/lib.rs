//! Mail authentication: SPF, DKIM, DMARC and ARC verification on inbound mail, DKIM
//! signing on outbound mail, and the DNS records a domain must publish.

pub mod inbound;
pub mod keys;
pub mod records;
pub mod reports;
pub mod sign;

pub use inbound::{DmarcOutcome, InboundVerdict, InboundVerifier, PolicyAction};
pub use keys::{DkimKeyFile, DomainKeys, KeyAlgorithm, KeyDirectory, KeyError};
pub use sign::DkimSigner;
