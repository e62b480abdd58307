//! The POP3 session without I/O: command lines in, [`Step`]s out. The states of RFC 1939
//! §3 are types: only [`Authorization`] knows USER, PASS, AUTH and STLS, only
//! [`Transaction`] holds a maildrop, and UPDATE is a single step taken at QUIT.
//!
//! Whatever needs the store or the network (checking credentials, fetching a message,
//! deleting, the TLS handshake) is handed to the driver as a step; the driver reports the
//! outcome back through [`Session::login_finished`], [`Session::fetched`] or
//! [`Session::updated`].

use std::time::Duration;

use sealpost_store::{MailboxId, StoreError};

use crate::capabilities::{Security, capa_response, mechanism_list};
use crate::command::{AuthStart, Command, CommandError, MAX_COMMAND_LINE, MessageNumber, Secret};
use crate::maildrop::{Maildrop, MaildropMessage, NoSuchMessage};
use crate::multiline::{push_dot_stuffed, top};
use crate::reply;
use crate::sasl::{self, MAX_RESPONSE_LINE, Mechanism};

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this, then read the next command.
    Reply(Vec<u8>),
    /// Send this, then close the connection.
    Close(Vec<u8>),
    /// Send this go-ahead, then run the TLS handshake and start a new session over TLS
    /// (RFC 2595 §4: nothing learned before TLS carries over).
    StartTls(Vec<u8>),
    /// Check the credentials, lock and open the maildrop, then call
    /// [`Session::login_finished`].
    Login(Credentials),
    /// Read the message, then call [`Session::fetched`].
    Fetch(Fetch),
    /// Delete these messages (UPDATE state, RFC 1939 §6), then call [`Session::updated`].
    Update(Deletions),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Password {
        user: String,
        password: Secret,
    },
    /// SASL EXTERNAL: the identities of the verified client certificate, narrowed to
    /// `authzid` when the client named one.
    Certificate {
        identities: Vec<String>,
        authzid: Option<String>,
    },
}

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginOutcome {
    Opened {
        address: String,
        maildrop: Maildrop,
    },
    BadCredentials,
    Throttled {
        retry_after: Duration,
    },
    /// Another session holds the maildrop.
    InUse,
    /// The store failed; nothing is known about the credentials.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub mailbox: MailboxId,
    pub uid: u32,
    /// `None` for RETR, the body line count for TOP.
    pub top_lines: Option<usize>,
    size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletions {
    pub mailbox: MailboxId,
    /// Exactly the messages marked with DELE and not reset, in UID order.
    pub uids: Vec<u32>,
}

/// What the session's end-of-session log line reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The account, once logged in.
    pub user: Option<String>,
    /// Messages sent in full with RETR.
    pub retrieved: u32,
    /// Messages removed at UPDATE.
    pub deleted: usize,
}

/// AUTHORIZATION state (RFC 1939 §4).
#[derive(Debug, Default)]
struct Authorization {
    /// The name from USER, waiting for PASS.
    user: Option<String>,
    /// A SASL exchange waiting for the client's response to our `+ ` challenge.
    awaiting_response: Option<Mechanism>,
}

/// TRANSACTION state (RFC 1939 §5).
#[derive(Debug)]
struct Transaction {
    maildrop: Maildrop,
}

#[derive(Debug)]
enum State {
    Authorization(Authorization),
    Transaction(Transaction),
    /// Waiting for the store to apply the deletions.
    Update,
    Closed,
}

pub struct Session {
    hostname: String,
    security: Security,
    max_errors: u32,
    errors: u32,
    state: State,
    summary: Summary,
}

impl Session {
    pub fn new(hostname: &str, security: Security, max_errors: u32) -> Self {
        Self {
            hostname: hostname.to_string(),
            security,
            max_errors,
            errors: 0,
            state: State::Authorization(Authorization::default()),
            summary: Summary::default(),
        }
    }

    pub fn greeting(&self) -> &'static [u8] {
        reply::GREETING
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The longest line to read next, line ending included: a command (RFC 2449 §4), or a
    /// SASL response, which may be longer.
    pub fn max_line(&self) -> usize {
        match &self.state {
            State::Authorization(Authorization {
                awaiting_response: Some(_),
                ..
            }) => MAX_RESPONSE_LINE,
            _ => MAX_COMMAND_LINE,
        }
    }

    /// One line from the client, line ending included or not.
    pub fn line(&mut self, line: &[u8]) -> Step {
        let line = crate::command::strip_line_ending(line);
        match &mut self.state {
            State::Authorization(auth) => {
                if let Some(mechanism) = auth.awaiting_response.take() {
                    return self.sasl_response(mechanism, line);
                }
                match Command::parse(line) {
                    Ok(command) => self.authorization(command),
                    Err(e) => self.command_error(e),
                }
            }
            State::Transaction(_) => match Command::parse(line) {
                Ok(command) => self.transaction(command),
                Err(e) => self.command_error(e),
            },
            State::Update | State::Closed => Step::Close(reply::err("session is ending")),
        }
    }

    /// The client sent a line longer than [`Session::max_line`]; it has been discarded.
    pub fn line_too_long(&mut self) -> Step {
        if let State::Authorization(auth) = &mut self.state
            && auth.awaiting_response.take().is_some()
        {
            return self.error(reply::err("SASL response too long"));
        }
        self.error(reply::line_too_long())
    }

    fn authorization(&mut self, command: Command) -> Step {
        let State::Authorization(auth) = &mut self.state else {
            return Step::Close(reply::err("session is ending"));
        };
        match command {
            Command::Capa => Step::Reply(capa_response(&self.security)),
            Command::Quit => {
                self.state = State::Closed;
                Step::Close(reply::signing_off(&self.hostname))
            }
            Command::Stls if self.security.is_tls() => self.error(reply::already_tls()),
            Command::Stls => Step::StartTls(reply::begin_tls()),
            Command::User(_) | Command::Pass(_) | Command::Auth(_) if !self.security.is_tls() => {
                self.error(reply::tls_required())
            }
            Command::User(name) => {
                auth.user = Some(name);
                Step::Reply(reply::send_pass())
            }
            Command::Pass(password) => match auth.user.take() {
                Some(user) => Step::Login(Credentials::Password { user, password }),
                None => self.error(reply::user_first()),
            },
            Command::Auth(None) => Step::Reply(mechanism_list(&self.security)),
            Command::Auth(Some(start)) => self.auth(start),
            Command::Stat
            | Command::List(_)
            | Command::Retr(_)
            | Command::Dele(_)
            | Command::Noop
            | Command::Rset
            | Command::Top(..)
            | Command::Uidl(_) => self.error(reply::not_in_authorization()),
        }
    }

    /// AUTH mechanism [initial-response] (RFC 5034 §4).
    fn auth(&mut self, start: AuthStart) -> Step {
        let Some(mechanism) = Mechanism::from_name(&start.mechanism)
            .filter(|m| self.security.mechanisms().contains(&m.name()))
        else {
            if start.mechanism == "EXTERNAL" && self.security.is_tls() {
                return self.error(reply::no_client_certificate());
            }
            return self.error(reply::unsupported_mechanism());
        };
        match start.initial_response {
            Some(response) => self.sasl_response(mechanism, response.as_bytes()),
            None => {
                if let State::Authorization(auth) = &mut self.state {
                    auth.awaiting_response = Some(mechanism);
                }
                Step::Reply(reply::EMPTY_CHALLENGE.to_vec())
            }
        }
    }

    fn sasl_response(&mut self, mechanism: Mechanism, line: &[u8]) -> Step {
        // RFC 5034 §4: "*" cancels the exchange.
        if line == b"*" {
            return self.error(reply::auth_cancelled());
        }
        let decoded = std::str::from_utf8(line)
            .map_err(|_| sasl::SaslError::Base64)
            .and_then(sasl::decode_response);
        let credentials = decoded.and_then(|response| match mechanism {
            Mechanism::Plain => sasl::plain_credentials(&response)
                .map(|(user, password)| Credentials::Password { user, password }),
            Mechanism::External => {
                sasl::external_authzid(&response).map(|authzid| Credentials::Certificate {
                    identities: match &self.security {
                        Security::Tls { client_identities } => client_identities.clone(),
                        Security::Plaintext => Vec::new(),
                    },
                    authzid,
                })
            }
        });
        match credentials {
            Ok(credentials) => Step::Login(credentials),
            Err(e) => self.error(reply::err(&format!("[AUTH] {e}"))),
        }
    }

    /// The driver's answer to [`Step::Login`].
    pub fn login_finished(&mut self, outcome: LoginOutcome) -> Step {
        match outcome {
            LoginOutcome::Opened { address, maildrop } => {
                let (count, octets) = maildrop.stat();
                let reply = reply::maildrop_opened(&address, count, octets);
                self.summary.user = Some(address);
                self.state = State::Transaction(Transaction { maildrop });
                Step::Reply(reply)
            }
            LoginOutcome::BadCredentials => self.error(reply::invalid_credentials()),
            LoginOutcome::Throttled { retry_after } => self.error(reply::throttled(retry_after)),
            LoginOutcome::InUse => self.error(reply::in_use()),
            LoginOutcome::Unavailable => Step::Reply(reply::temporary_failure()),
        }
    }

    fn transaction(&mut self, command: Command) -> Step {
        let State::Transaction(transaction) = &mut self.state else {
            return Step::Close(reply::err("session is ending"));
        };
        let maildrop = &mut transaction.maildrop;
        match command {
            Command::Capa => Step::Reply(capa_response(&self.security)),
            Command::Noop => Step::Reply(reply::ok("")),
            Command::Stat => {
                let (count, octets) = maildrop.stat();
                Step::Reply(reply::ok(&format!("{count} {octets}")))
            }
            Command::List(Some(number)) => match maildrop.get(number) {
                Ok(message) => Step::Reply(reply::ok(&format!("{} {}", number.0, message.size))),
                Err(_) => Step::Reply(reply::no_such_message()),
            },
            Command::List(None) => {
                let (count, octets) = maildrop.stat();
                let mut out = reply::ok(&format!("{count} messages ({octets} octets)"));
                for (number, message) in maildrop.visible() {
                    out.extend_from_slice(format!("{number} {}\r\n", message.size).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                Step::Reply(out)
            }
            Command::Uidl(Some(number)) => match maildrop.get(number) {
                Ok(message) => Step::Reply(reply::ok(&format!(
                    "{} {}",
                    number.0,
                    maildrop.unique_id(message)
                ))),
                Err(_) => Step::Reply(reply::no_such_message()),
            },
            Command::Uidl(None) => {
                let mut out = reply::ok("unique-id listing follows");
                for (number, message) in maildrop.visible() {
                    out.extend_from_slice(
                        format!("{number} {}\r\n", maildrop.unique_id(message)).as_bytes(),
                    );
                }
                out.extend_from_slice(b".\r\n");
                Step::Reply(out)
            }
            Command::Retr(number) => fetch(maildrop, number, None),
            Command::Top(number, lines) => fetch(maildrop, number, Some(lines)),
            Command::Dele(number) => match maildrop.delete(number) {
                Ok(()) => Step::Reply(reply::ok(&format!("message {} deleted", number.0))),
                Err(NoSuchMessage::Deleted) => Step::Reply(reply::already_deleted(number.0)),
                Err(NoSuchMessage::OutOfRange) => Step::Reply(reply::no_such_message()),
            },
            Command::Rset => {
                maildrop.undelete_all();
                let (count, octets) = maildrop.stat();
                Step::Reply(reply::ok(&format!(
                    "maildrop has {count} messages ({octets} octets)"
                )))
            }
            Command::Quit => {
                let deletions = Deletions {
                    mailbox: maildrop.mailbox(),
                    uids: maildrop.deleted_uids(),
                };
                if deletions.uids.is_empty() {
                    self.state = State::Closed;
                    Step::Close(reply::signing_off_after_update(&self.hostname, 0))
                } else {
                    self.state = State::Update;
                    Step::Update(deletions)
                }
            }
            Command::User(_) | Command::Pass(_) | Command::Auth(_) | Command::Stls => {
                self.error(reply::not_in_transaction())
            }
        }
    }

    /// The driver's answer to [`Step::Fetch`]: the stored message, `None` if it has
    /// been expunged since login.
    pub fn fetched(&mut self, fetch: Fetch, message: Result<Option<Vec<u8>>, StoreError>) -> Step {
        let message = match message {
            Ok(Some(message)) => message,
            Ok(None) => return Step::Reply(reply::message_gone()),
            Err(_) => return Step::Reply(reply::temporary_failure()),
        };
        // One buffer for the whole response, so it leaves in a few large writes rather
        // than one per line.
        let mut out;
        match fetch.top_lines {
            None => {
                out = Vec::with_capacity(message.len() + message.len() / 64 + 32);
                out.extend_from_slice(&reply::ok(&format!("{} octets", fetch.size)));
                push_dot_stuffed(&mut out, &message);
                self.summary.retrieved += 1;
            }
            Some(lines) => {
                let part = top(&message, lines);
                out = Vec::with_capacity(part.len() + part.len() / 64 + 32);
                out.extend_from_slice(&reply::ok("top of message follows"));
                push_dot_stuffed(&mut out, part);
            }
        }
        Step::Reply(out)
    }

    /// The driver's answer to [`Step::Update`]: the UIDs the store removed.
    pub fn updated(&mut self, removed: Result<Vec<u32>, StoreError>) -> Step {
        self.state = State::Closed;
        match removed {
            Ok(uids) => {
                self.summary.deleted = uids.len();
                Step::Close(reply::signing_off_after_update(&self.hostname, uids.len()))
            }
            Err(_) => Step::Close(reply::update_failed()),
        }
    }

    fn command_error(&mut self, error: CommandError) -> Step {
        match error {
            CommandError::Unknown => self.error(reply::unknown_command()),
            CommandError::Syntax(why) => self.error(reply::err(why)),
        }
    }

    /// A reply to something the client got wrong; too many of them end the session, so
    /// a confused or hostile client cannot hold the connection forever.
    fn error(&mut self, reply: Vec<u8>) -> Step {
        self.errors += 1;
        if self.errors >= self.max_errors {
            self.state = State::Closed;
            return Step::Close(reply::too_many_errors());
        }
        Step::Reply(reply)
    }
}

fn fetch(maildrop: &Maildrop, number: MessageNumber, top_lines: Option<usize>) -> Step {
    match maildrop.get(number) {
        Ok(MaildropMessage { uid, size }) => Step::Fetch(Fetch {
            mailbox: maildrop.mailbox(),
            uid,
            top_lines,
            size,
        }),
        Err(_) => Step::Reply(reply::no_such_message()),
    }
}

#[cfg(test)]
mod tests;
