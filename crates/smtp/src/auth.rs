//! The SASL exchanges behind AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN
//! (draft-murchison-sasl-login) and EXTERNAL (RFC 4422 Appendix A). This module only turns
//! client responses into credentials; checking them is `Login`'s job, and deciding when
//! AUTH is allowed at all is the session's.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::commands::Mechanism;
use crate::reply::Reply;

/// Longest SASL response line accepted (RFC 4954 §4: 12288 octets).
pub(crate) const MAX_RESPONSE_LINE: usize = 12288;

/// An exchange waiting for the client's next response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exchange {
    Plain,
    LoginUsername,
    LoginPassword { username: String },
    External,
}

/// What the client has proven to hold, for `Login` to check.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    Password {
        username: String,
        password: String,
    },
    /// The TLS client certificate; `authzid` is the identity the client asked to act as.
    Certificate {
        authzid: Option<String>,
    },
}

/// Passwords must never reach a log line, so Debug shows only the user name.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .finish_non_exhaustive(),
            Credentials::Certificate { authzid } => f
                .debug_struct("Certificate")
                .field("authzid", authzid)
                .finish(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send this 334 challenge and wait for the response.
    Challenge(Reply, Exchange),
    Credentials(Credentials),
    Failed(Reply),
}

/// "Username:" and "Password:", the LOGIN mechanism's fixed prompts.
const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// Begins an exchange for `AUTH <mechanism> [initial-response]`.
pub(crate) fn start(mechanism: Mechanism, initial_response: Option<&str>) -> Step {
    match (mechanism, initial_response) {
        (Mechanism::Plain, None) => Step::Challenge(Reply::auth_challenge(""), Exchange::Plain),
        (Mechanism::Login, None) => Step::Challenge(
            Reply::auth_challenge(LOGIN_USERNAME),
            Exchange::LoginUsername,
        ),
        (Mechanism::External, None) => {
            Step::Challenge(Reply::auth_challenge(""), Exchange::External)
        }
        (Mechanism::Plain, Some(response)) => respond_encoded(Exchange::Plain, response),
        (Mechanism::Login, Some(response)) => respond_encoded(Exchange::LoginUsername, response),
        (Mechanism::External, Some(response)) => respond_encoded(Exchange::External, response),
    }
}

/// Continues `exchange` with a response line (line ending included).
pub(crate) fn respond(exchange: Exchange, line: &[u8]) -> Step {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(response) => respond_encoded(exchange, response),
        Err(_) => Step::Failed(Reply::bad_base64()),
    }
}

fn respond_encoded(exchange: Exchange, response: &str) -> Step {
    if response == "*" {
        return Step::Failed(Reply::auth_cancelled());
    }
    let Ok(decoded) = STANDARD.decode(response.trim()) else {
        return Step::Failed(Reply::bad_base64());
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Step::Failed(Reply::malformed_sasl());
    };
    match exchange {
        Exchange::Plain => plain(&decoded),
        Exchange::LoginUsername if decoded.is_empty() => Step::Failed(Reply::malformed_sasl()),
        Exchange::LoginUsername => Step::Challenge(
            Reply::auth_challenge(LOGIN_PASSWORD),
            Exchange::LoginPassword { username: decoded },
        ),
        Exchange::LoginPassword { username } => Step::Credentials(Credentials::Password {
            username,
            password: decoded,
        }),
        Exchange::External => Step::Credentials(Credentials::Certificate {
            authzid: (!decoded.is_empty()).then_some(decoded),
        }),
    }
}

/// `[authzid] NUL authcid NUL passwd` (RFC 4616 §2). We let no one act for someone else,
/// so an authzid must be empty or name the authenticating user.
fn plain(message: &str) -> Step {
    let mut parts = message.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed(Reply::malformed_sasl());
    };
    if authcid.is_empty() || password.is_empty() {
        return Step::Failed(Reply::malformed_sasl());
    }
    if !authzid.is_empty() && authzid.to_lowercase() != authcid.to_lowercase() {
        return Step::Failed(Reply::auth_failed());
    }
    Step::Credentials(Credentials::Password {
        username: authcid.to_string(),
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn password(username: &str, password: &str) -> Step {
        Step::Credentials(Credentials::Password {
            username: username.into(),
            password: password.into(),
        })
    }

    #[test]
    fn plain_with_initial_response() {
        let step = start(Mechanism::Plain, Some(&b64("\0alice@example.test\0secret")));
        assert_eq!(step, password("alice@example.test", "secret"));
    }

    #[test]
    fn plain_without_initial_response_asks_with_an_empty_challenge() {
        let Step::Challenge(reply, exchange) = start(Mechanism::Plain, None) else {
            panic!("no challenge")
        };
        assert_eq!(reply.to_string(), "334 \r\n");
        let line = format!("{}\r\n", b64("alice@example.test\0alice@example.test\0pw"));
        assert_eq!(
            respond(exchange, line.as_bytes()),
            password("alice@example.test", "pw")
        );
    }

    #[test]
    fn plain_authzid_must_be_empty_or_the_user() {
        let step = start(
            Mechanism::Plain,
            Some(&b64("ALICE@example.test\0alice@example.test\0pw")),
        );
        assert_eq!(step, password("alice@example.test", "pw"));
        let step = start(
            Mechanism::Plain,
            Some(&b64("bob@example.test\0alice@example.test\0pw")),
        );
        assert_eq!(step, Step::Failed(Reply::auth_failed()));
    }

    #[test]
    fn plain_with_wrong_shape_is_malformed() {
        for message in ["alice\0pw", "\0\0pw", "\0alice\0", "a\0b\0c\0d"] {
            assert_eq!(
                start(Mechanism::Plain, Some(&b64(message))),
                Step::Failed(Reply::malformed_sasl()),
                "{message:?}"
            );
        }
    }

    #[test]
    fn login_asks_for_username_then_password() {
        let Step::Challenge(reply, exchange) = start(Mechanism::Login, None) else {
            panic!("no challenge")
        };
        assert_eq!(reply.to_string(), "334 VXNlcm5hbWU6\r\n");
        let Step::Challenge(reply, exchange) = respond(
            exchange,
            format!("{}\r\n", b64("alice@example.test")).as_bytes(),
        ) else {
            panic!("no password challenge")
        };
        assert_eq!(reply.to_string(), "334 UGFzc3dvcmQ6\r\n");
        assert_eq!(
            respond(exchange, format!("{}\r\n", b64("pw")).as_bytes()),
            password("alice@example.test", "pw")
        );
    }

    #[test]
    fn login_with_initial_response_goes_straight_to_password() {
        let Step::Challenge(reply, Exchange::LoginPassword { username }) =
            start(Mechanism::Login, Some(&b64("alice@example.test")))
        else {
            panic!("no password challenge")
        };
        assert_eq!(reply.to_string(), "334 UGFzc3dvcmQ6\r\n");
        assert_eq!(username, "alice@example.test");
    }

    #[test]
    fn external_with_and_without_authzid() {
        assert_eq!(
            start(Mechanism::External, Some("")),
            Step::Credentials(Credentials::Certificate { authzid: None })
        );
        assert_eq!(
            respond(Exchange::External, b"\r\n"),
            Step::Credentials(Credentials::Certificate { authzid: None })
        );
        assert_eq!(
            start(Mechanism::External, Some(&b64("alice@example.test"))),
            Step::Credentials(Credentials::Certificate {
                authzid: Some("alice@example.test".into())
            })
        );
    }

    #[test]
    fn star_cancels_with_501() {
        let step = respond(Exchange::LoginUsername, b"*\r\n");
        let Step::Failed(reply) = step else { panic!() };
        assert_eq!(reply.to_string(), "501 5.7.0 authentication cancelled\r\n");
    }

    #[test]
    fn bad_base64_is_501_5_5_2() {
        for response in [&b"!!!\r\n"[..], b"YWJj=\r\n", b"\xff\r\n"] {
            let Step::Failed(reply) = respond(Exchange::Plain, response) else {
                panic!()
            };
            assert!(reply.to_string().starts_with("501 5.5.2 "), "{reply}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let credentials = Credentials::Password {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }
}
