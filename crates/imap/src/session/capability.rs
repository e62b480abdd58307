//! The capability list, which depends on where the session is: before TLS on port 143
//! it offers STARTTLS and refuses logins (LOGINDISABLED, RFC 9051 §6.2.3); after TLS it
//! offers the SASL mechanisms; after login it lists what the mailbox commands support.

use super::Session;

/// Extensions advertised in every state.
const EXTENSIONS: &str = "SASL-IR LITERAL+ ENABLE ID IDLE NAMESPACE UNSELECT UIDPLUS MOVE \
     SPECIAL-USE CONDSTORE QRESYNC ESEARCH LIST-EXTENDED LIST-STATUS STATUS=SIZE";

impl Session {
    pub fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 IMAP4rev2");
        if self.starttls_available {
            caps.push_str(" STARTTLS LOGINDISABLED");
        } else if !self.is_authenticated() {
            caps.push_str(" AUTH=PLAIN");
            if self
                .tls
                .as_ref()
                .is_some_and(|tls| !tls.verified_identities().is_empty())
            {
                caps.push_str(" AUTH=EXTERNAL");
            }
        }
        caps.push(' ');
        caps.push_str(EXTENSIONS);
        caps.push_str(&format!(" APPENDLIMIT={}", self.env.limits.max_literal));
        caps
    }
}
