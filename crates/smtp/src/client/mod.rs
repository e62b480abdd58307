//! The SMTP client sealpost delivers with (RFC 5321, with PIPELINING, SIZE, 8BITMIME,
//! SMTPUTF8, CHUNKING, STARTTLS and REQUIRETLS).
//!
//! The remote server is attack surface as much as any client of ours: replies are
//! parsed within fixed bounds (`reply.rs`), every wait has a deadline, plaintext sent
//! ahead of the TLS handshake is discarded, and addresses that could break a command
//! line are never written. What to send is decided without I/O (`envelope.rs`,
//! `data.rs`); `session.rs` does the talking.

mod capabilities;
mod data;
mod envelope;
mod error;
mod reply;
mod session;

pub use capabilities::Capabilities;
pub use envelope::{ClientEnvelope, Transaction};
pub use error::{ClientError, Stage};
pub use reply::{MAX_REPLY_LINE, MAX_REPLY_LINES, Reply};
pub use session::{ClientSession, ClientSettings, TlsDetails};

#[cfg(test)]
mod tests;
