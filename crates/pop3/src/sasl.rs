//! The SASL mechanisms POP3 offers (RFC 5034): PLAIN (RFC 4616) under TLS, and EXTERNAL
//! (RFC 4422 Appendix A) with a verified client certificate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::command::Secret;

/// The longest SASL client response line we read. RFC 2449's 255-octet limit is for
/// commands; a base64 PLAIN response with a long password can exceed it (RFC 5034 §4).
pub const MAX_RESPONSE_LINE: usize = 12 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    External,
}

impl Mechanism {
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "EXTERNAL" => Some(Mechanism::External),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::External => "EXTERNAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("invalid base64")]
    Base64,
    #[error("malformed PLAIN response")]
    MalformedPlain,
    #[error("authorization identity must be empty or the authentication identity")]
    ForeignAuthzid,
}

/// A client response as sent: `=` is the empty response in an initial response (RFC
/// 5034 §4), and an empty line is one in a continuation.
pub fn decode_response(response: &str) -> Result<Vec<u8>, SaslError> {
    match response {
        "" | "=" => Ok(Vec::new()),
        encoded => STANDARD.decode(encoded).map_err(|_| SaslError::Base64),
    }
}

/// `authzid NUL authcid NUL passwd` (RFC 4616 §2). Acting as another user is not offered,
/// so a non-empty authzid must name the authenticating user.
pub fn plain_credentials(response: &[u8]) -> Result<(String, Secret), SaslError> {
    let text = std::str::from_utf8(response).map_err(|_| SaslError::MalformedPlain)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::MalformedPlain);
    };
    if authcid.is_empty() || password.is_empty() {
        return Err(SaslError::MalformedPlain);
    }
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid) {
        return Err(SaslError::ForeignAuthzid);
    }
    Ok((authcid.to_string(), Secret::new(password)))
}

/// The EXTERNAL response is the authorization identity, empty for "whoever the
/// certificate names".
pub fn external_authzid(response: &[u8]) -> Result<Option<String>, SaslError> {
    match std::str::from_utf8(response) {
        Ok("") => Ok(None),
        Ok(authzid) => Ok(Some(authzid.to_string())),
        Err(_) => Err(SaslError::MalformedPlain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_splits_authzid_authcid_and_password() {
        let decoded = decode_response(&STANDARD.encode("\0alice@example.test\0pass word")).unwrap();
        assert_eq!(
            plain_credentials(&decoded),
            Ok(("alice@example.test".into(), Secret::new("pass word")))
        );
        assert_eq!(
            plain_credentials(b"Alice@example.test\0alice@example.test\0pw"),
            Ok(("alice@example.test".into(), Secret::new("pw")))
        );
    }

    #[test]
    fn plain_refuses_acting_as_someone_else() {
        assert_eq!(
            plain_credentials(b"bob@example.test\0alice@example.test\0pw"),
            Err(SaslError::ForeignAuthzid)
        );
    }

    #[test]
    fn plain_refuses_malformed_responses() {
        for bad in [
            &b"alice\0pw"[..],
            b"\0\0pw",
            b"\0alice\0",
            b"a\0b\0c\0d",
            b"\0al\xffice\0pw",
        ] {
            assert_eq!(
                plain_credentials(bad),
                Err(SaslError::MalformedPlain),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn equals_sign_is_the_empty_response() {
        assert_eq!(decode_response("="), Ok(Vec::new()));
        assert_eq!(decode_response(""), Ok(Vec::new()));
        assert_eq!(decode_response("not base64!"), Err(SaslError::Base64));
    }
}
