//! LOGIN and AUTHENTICATE (PLAIN with SASL-IR, RFC 4959; EXTERNAL with a verified client
//! certificate, RFC 4422 Appendix A). Neither is allowed before TLS.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealpost_store::{Account, AccountId, LoginError, SessionLock, SessionLockGuard, StoreError};

use super::{Authenticated, PendingSasl, Session, State};
use crate::response::Completion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mechanism {
    Plain,
    External,
}

impl Session {
    pub(super) async fn login(&mut self, user: &[u8], password: &[u8]) -> Completion {
        if let Some(refusal) = self.refuse_authentication("LOGIN") {
            return refusal;
        }
        let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password))
        else {
            return failed();
        };
        let result = self
            .env
            .login
            .password(self.peer.ip(), user, password)
            .await;
        self.logged_in(result.map(Some)).await
    }

    /// Starts AUTHENTICATE; `None` means the client must now send its response line.
    pub(super) async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: &str,
        initial: Option<Vec<u8>>,
    ) -> Option<Completion> {
        if let Some(refusal) = self.refuse_authentication("AUTHENTICATE") {
            return Some(refusal);
        }
        let mechanism = match mechanism {
            "PLAIN" => Mechanism::Plain,
            "EXTERNAL" if !self.certificate_identities().is_empty() => Mechanism::External,
            "EXTERNAL" => {
                return Some(
                    Completion::no("EXTERNAL needs a verified client certificate")
                        .with_code("AUTHENTICATIONFAILED"),
                );
            }
            _ => {
                return Some(
                    Completion::no("unsupported authentication mechanism").with_code("CANNOT"),
                );
            }
        };
        match initial {
            Some(response) => Some(self.finish_sasl(mechanism, &response).await),
            None => {
                self.pending_sasl = Some(PendingSasl {
                    tag: tag.to_string(),
                    mechanism,
                });
                None
            }
        }
    }

    /// The client's line after our `+ `; returns the tag to complete and the reply.
    pub async fn sasl_response(&mut self, line: &[u8]) -> (String, Completion) {
        let Some(pending) = self.pending_sasl.take() else {
            return (
                "*".to_string(),
                Completion::bad("no authentication in progress"),
            );
        };
        let line = line.trim_ascii_end();
        let completion = if line == b"*" {
            Completion::bad("authentication cancelled")
        } else {
            // An empty line is an empty response (RFC 9051 §6.2.2).
            let response: &[u8] = if line.is_empty() { b"=" } else { line };
            self.finish_sasl(pending.mechanism, response).await
        };
        (pending.tag, completion)
    }

    async fn finish_sasl(&mut self, mechanism: Mechanism, response: &[u8]) -> Completion {
        let decoded = if response == b"=" {
            Vec::new()
        } else {
            match STANDARD.decode(response) {
                Ok(decoded) => decoded,
                Err(_) => return Completion::bad("invalid base64 in the SASL response"),
            }
        };
        match mechanism {
            Mechanism::Plain => {
                // authzid NUL authcid NUL passwd (RFC 4616 §2)
                let mut fields = decoded.split(|&b| b == 0);
                let (Some(authzid), Some(user), Some(password), None) =
                    (fields.next(), fields.next(), fields.next(), fields.next())
                else {
                    return Completion::bad("malformed PLAIN response");
                };
                let (Ok(authzid), Ok(user), Ok(password)) = (
                    std::str::from_utf8(authzid),
                    std::str::from_utf8(user),
                    std::str::from_utf8(password),
                ) else {
                    return failed();
                };
                if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(user) {
                    return Completion::no("cannot act as another user")
                        .with_code("AUTHORIZATIONFAILED");
                }
                let result = self
                    .env
                    .login
                    .password(self.peer.ip(), user, password)
                    .await;
                self.logged_in(result.map(Some)).await
            }
            Mechanism::External => {
                let Ok(authzid) = String::from_utf8(decoded) else {
                    return failed();
                };
                let identities = self.certificate_identities();
                let candidates: Vec<String> = if authzid.is_empty() {
                    identities
                } else if identities.iter().any(|i| i.eq_ignore_ascii_case(&authzid)) {
                    vec![authzid]
                } else {
                    return Completion::no("the certificate does not vouch for that user")
                        .with_code("AUTHORIZATIONFAILED");
                };
                let result = self.env.login.certificate(&candidates).await;
                self.logged_in(result).await
            }
        }
    }

    fn certificate_identities(&self) -> Vec<String> {
        self.tls
            .as_ref()
            .map(|tls| tls.verified_identities().to_vec())
            .unwrap_or_default()
    }

    /// Why authentication is not possible now, if it is not.
    fn refuse_authentication(&self, command: &str) -> Option<Completion> {
        if self.is_authenticated() {
            return Some(Completion::bad("already authenticated"));
        }
        if self.tls.is_none() {
            return Some(
                Completion::no(format!("{command} is disabled before STARTTLS"))
                    .with_code("PRIVACYREQUIRED"),
            );
        }
        None
    }

    /// One of the account's `max` slots in the store, so the limit also counts sessions
    /// on other nodes sharing it; `None` when all are taken.
    async fn shared_slot(
        &self,
        account: AccountId,
        max: usize,
    ) -> Result<Option<SessionLockGuard>, StoreError> {
        for slot in 0..u32::try_from(max).unwrap_or(u32::MAX) {
            let lock = SessionLock::ImapSession { account, slot };
            if let Some(guard) = self.env.store.try_session_lock(lock).await? {
                return Ok(Some(guard));
            }
        }
        Ok(None)
    }

    async fn logged_in(&mut self, result: Result<Option<Account>, LoginError>) -> Completion {
        let account = match result {
            Ok(Some(account)) => account,
            Ok(None) | Err(LoginError::BadCredentials) => return failed(),
            Err(LoginError::Throttled { retry_after }) => {
                return Completion::no(format!(
                    "too many failed logins; retry in {}s",
                    retry_after.as_secs()
                ))
                .with_code("UNAVAILABLE");
            }
            Err(LoginError::Store(error)) => return super::store_failure(&error),
        };
        let max = self.env.limits.max_sessions_per_account;
        let too_many = || {
            Completion::no(format!(
                "too many sessions for this account (at most {max})"
            ))
            .with_code("LIMIT")
        };
        let Some(slot) = self.env.registry.acquire(account.id, max) else {
            return too_many();
        };
        let shared = match self.shared_slot(account.id, max).await {
            Ok(Some(shared)) => shared,
            Ok(None) => return too_many(),
            Err(error) => return super::store_failure(&error),
        };
        self.state = State::Authenticated(Authenticated {
            account,
            _slot: slot,
            _shared: shared,
        });
        Completion::ok("logged in").with_code(format!("CAPABILITY {}", self.capabilities()))
    }
}

fn failed() -> Completion {
    Completion::no("invalid credentials").with_code("AUTHENTICATIONFAILED")
}
