//! What a handshake negotiated, kept on the stream and logged once per session, so every
//! TLS decision is visible (STYLE.md: log every security decision on one line).

use std::fmt;

/// The negotiated parameters of one TLS session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// e.g. `TLSv1.3`
    pub version: String,
    /// IANA name, e.g. `TLS13_AES_128_GCM_SHA256`
    pub cipher: String,
    /// Key-exchange group, e.g. `X25519MLKEM768`
    pub group: String,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub client_cert: Option<ClientCert>,
}

/// A certificate the client presented, and whether it chains to `[tls] client_ca`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    pub subject: String,
    pub verified: bool,
    /// rfc822Name SANs (lower-cased), else the subject CN if it is an address; always
    /// empty when not `verified`.
    pub identities: Vec<String>,
}

impl TlsInfo {
    /// The identities a verified client certificate vouches for; none when unverified.
    pub fn verified_identities(&self) -> &[String] {
        match &self.client_cert {
            Some(cert) if cert.verified => &cert.identities,
            _ => &[],
        }
    }

    /// The RFC 8314 §4.3 form used in Received headers, e.g. `TLSv1.3 TLS_AES_256_GCM_SHA384`.
    pub fn received_clause(&self) -> String {
        let cipher = self
            .cipher
            .strip_prefix("TLS13_")
            .map_or_else(|| self.cipher.clone(), |rest| format!("TLS_{rest}"));
        format!("{} {}", self.version, cipher)
    }
}

impl fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cipher={} group={} sni={} alpn={}",
            self.version,
            self.cipher,
            self.group,
            self.sni.as_deref().unwrap_or("-"),
            self.alpn.as_deref().unwrap_or("-"),
        )?;
        match &self.client_cert {
            Some(cert) => write!(
                f,
                " client_cert=\"{}\" client_cert_verified={}",
                cert.subject, cert.verified
            ),
            None => write!(f, " client_cert=none"),
        }
    }
}
