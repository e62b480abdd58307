//! Client certificates (`[tls] client_ca`): requested, never required. A certificate
//! that does not chain to the configured CA still completes the handshake but is
//! reported as unverified and gives no rights.

use rustls_pki_types::CertificateDer;

use crate::report::ClientCert;

pub struct ClientCertCheck {}

impl ClientCertCheck {
    pub fn examine(&self, _chain: &[CertificateDer<'static>]) -> ClientCert {
        ClientCert::default()
    }
}
