//! What CAPA announces (RFC 2449 §5, §6), which depends only on the connection's
//! security: on port 110 before STLS nothing that carries a password is offered (RFC
//! 2595 §4), so a client cannot be talked into sending one in the clear.

/// Where the session's bytes travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Port 110 before STLS: only STLS leads on.
    Plaintext,
    /// Implicit TLS (995) or after STLS.
    Tls {
        /// Identities of a verified client certificate; empty when none was presented
        /// or it did not verify. Non-empty enables SASL EXTERNAL.
        client_identities: Vec<String>,
    },
}

impl Security {
    pub fn is_tls(&self) -> bool {
        matches!(self, Security::Tls { .. })
    }

    /// The SASL mechanisms on offer, in the order CAPA lists them.
    pub fn mechanisms(&self) -> &'static [&'static str] {
        match self {
            Security::Plaintext => &[],
            Security::Tls { client_identities } if client_identities.is_empty() => &["PLAIN"],
            Security::Tls { .. } => &["PLAIN", "EXTERNAL"],
        }
    }
}

/// The whole CAPA response. Capabilities do not change at login: RFC 2449 §5 requires
/// those of the AUTHORIZATION state to be announced in TRANSACTION too.
pub fn capa_response(security: &Security) -> Vec<u8> {
    let mut lines = vec![
        "+OK capability list follows".to_string(),
        "TOP".into(),
        "UIDL".into(),
        "RESP-CODES".into(),
        "AUTH-RESP-CODE".into(),
        "PIPELINING".into(),
    ];
    match security {
        Security::Plaintext => lines.push("STLS".into()),
        Security::Tls { .. } => {
            lines.push("USER".into());
            lines.push(format!("SASL {}", security.mechanisms().join(" ")));
        }
    }
    lines.push("IMPLEMENTATION sealpost".into());
    lines.push(".".into());
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out.into_bytes()
}

/// The reply to a bare AUTH: the mechanisms, one per line (as many clients expect,
/// though RFC 5034 only defines CAPA's SASL line).
pub fn mechanism_list(security: &Security) -> Vec<u8> {
    let mut out = b"+OK\r\n".to_vec();
    for mechanism in security.mechanisms() {
        out.extend_from_slice(mechanism.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(security: &Security) -> Vec<String> {
        String::from_utf8(capa_response(security))
            .unwrap()
            .split("\r\n")
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn capa_before_stls_hides_user_and_plain() {
        let capa = lines(&Security::Plaintext);
        assert!(capa.contains(&"STLS".to_string()));
        assert!(!capa.iter().any(|l| l == "USER" || l.starts_with("SASL")));
        assert_eq!(capa.last().map(String::as_str), Some(""));
        assert_eq!(capa[capa.len() - 2], ".");
    }

    #[test]
    fn capa_under_tls_shows_user_and_plain_but_not_stls() {
        let capa = lines(&Security::Tls {
            client_identities: Vec::new(),
        });
        assert!(capa.contains(&"USER".to_string()));
        assert!(capa.contains(&"SASL PLAIN".to_string()));
        assert!(!capa.contains(&"STLS".to_string()));
    }

    #[test]
    fn capa_shows_external_only_with_a_verified_client_certificate() {
        let capa = lines(&Security::Tls {
            client_identities: vec!["alice@example.test".into()],
        });
        assert!(capa.contains(&"SASL PLAIN EXTERNAL".to_string()));
    }
}
