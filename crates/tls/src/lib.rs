//! TLS for every sealpost listener: rustls with aws-lc-rs, TLS 1.3 and 1.2 only, ECDHE
//! and AEAD only; the certificate store; the one STARTTLS upgrade (server and client side);
//! the handshake report.

mod acceptor;
mod client;
mod client_cert;
mod error;
mod provider;
mod report;
mod resolver;
mod selfsigned;
mod server;
mod starttls;
mod stream;
mod watch;

pub use acceptor::TlsAcceptor;
pub use client::starttls_client;
pub use error::TlsError;
pub use provider::crypto_provider;
pub use report::{ClientCert, TlsInfo};
pub use server::{AppProtocol, TlsServer, TlsSettings};
pub use starttls::starttls;
pub use stream::{Line, MailStream};
