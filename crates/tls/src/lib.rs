//! TLS for every sealpost listener: rustls with aws-lc-rs, TLS 1.3 and 1.2 only, ECDHE
//! and AEAD only; the certificate store; the one STARTTLS upgrade; the handshake report.

mod acceptor;
mod client_cert;
mod error;
mod report;
mod starttls;
mod stream;

pub use acceptor::TlsAcceptor;
pub use error::TlsError;
pub use report::{ClientCert, TlsInfo};
pub use starttls::starttls;
pub use stream::{Line, MailStream};
