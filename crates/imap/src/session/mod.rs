//! The IMAP session state machine (RFC 9051 §3): parsed commands in, responses out. It
//! talks to the store but never to the network; the driver does that, and acts on the
//! [`Outcome`] of each command (STARTTLS, IDLE, a SASL exchange, logout).
//!
//! The states are types: a command family's handler takes the state it needs
//! (`&Authenticated`, `&mut SelectedMailbox`), so a command cannot run in a state
//! where it makes no sense.

mod append;
mod auth;
mod capability;
mod copy;
mod fetch;
mod list;
mod mailbox;
mod output;
mod search;
mod select;
mod store;

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use sealpost_store::{Account, Login, SessionLockGuard, Store, StoreError};
use sealpost_tls::TlsInfo;

use crate::command::{Command, CommandBody};
use crate::limits::ImapLimits;
use crate::registry::{SessionRegistry, SessionSlot};
use crate::response::{Completion, untagged};
use crate::selected::{Enabled, SelectedMailbox};

pub use self::output::Output;

/// What a session needs of the service it runs in.
#[derive(Clone)]
pub struct Env {
    pub store: Arc<dyn Store>,
    pub login: Arc<Login>,
    pub limits: ImapLimits,
    pub registry: Arc<SessionRegistry>,
}

/// An authenticated user, holding one of the account's session slots: in this process,
/// and in the store (which counts the sessions of every node sharing it).
pub struct Authenticated {
    pub account: Account,
    _slot: SessionSlot,
    _shared: SessionLockGuard,
}

pub enum State {
    NotAuthenticated,
    Authenticated(Authenticated),
    Selected(Authenticated, SelectedMailbox),
    Logout,
}

/// What the driver must do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Read the next command.
    Next,
    /// Upgrade the stream (the OK has been written), then call
    /// [`Session::tls_established`].
    StartTls,
    /// Send `+ idling`, then report changes until `DONE` (see [`Session::idle_done`]).
    Idle { tag: String },
    /// Send `+ ` (with the challenge, always empty for our mechanisms) and give the
    /// client's next line to [`Session::sasl_response`].
    SaslContinue,
    /// Write what is buffered and close the connection.
    Logout,
}

/// An AUTHENTICATE waiting for the client's response line.
struct PendingSasl {
    tag: String,
    mechanism: auth::Mechanism,
}

pub struct Session {
    env: Env,
    peer: SocketAddr,
    tls: Option<TlsInfo>,
    /// STARTTLS can still be offered (plaintext on port 143).
    starttls_available: bool,
    state: State,
    enabled: Enabled,
    pending_sasl: Option<PendingSasl>,
}

impl Session {
    pub fn new(env: Env, peer: SocketAddr, tls: Option<TlsInfo>, starttls_available: bool) -> Self {
        Self {
            env,
            peer,
            tls,
            starttls_available,
            state: State::NotAuthenticated,
            enabled: Enabled::default(),
            pending_sasl: None,
        }
    }

    /// `* OK [CAPABILITY ...] sealpost ready`; never PREAUTH.
    pub fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] sealpost ready\r\n",
            self.capabilities()
        )
        .into_bytes()
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated(_) | State::Selected(..))
    }

    /// The account's address once logged in, for the session's log line.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Authenticated(auth) | State::Selected(auth, _) => Some(&auth.account.address),
            State::NotAuthenticated | State::Logout => None,
        }
    }

    /// After the STARTTLS handshake: nothing learned before it is kept (RFC 9051
    /// §6.2.1); the client must ask for CAPABILITY again.
    pub fn tls_established(&mut self, tls: Option<TlsInfo>) {
        self.tls = tls;
        self.starttls_available = false;
        self.state = State::NotAuthenticated;
        self.enabled = Enabled::default();
        self.pending_sasl = None;
    }

    /// Runs one command; responses (the tagged one included) go to `out`.
    pub async fn handle(&mut self, command: Command, out: &mut Output<'_>) -> io::Result<Outcome> {
        let Command { tag, body } = command;
        let expunge_allowed = allows_expunge_responses(&body);
        let mut outcome = Outcome::Next;
        let completion = match body {
            CommandBody::Capability => {
                untagged(&mut out.buf, &format!("CAPABILITY {}", self.capabilities()));
                Completion::ok("CAPABILITY completed")
            }
            CommandBody::Noop => Completion::ok("NOOP completed"),
            CommandBody::Check => Completion::ok("CHECK completed"),
            CommandBody::Logout => {
                untagged(&mut out.buf, "BYE logging out");
                self.state = State::Logout;
                outcome = Outcome::Logout;
                Completion::ok("LOGOUT completed")
            }
            CommandBody::Id(_) => {
                untagged(&mut out.buf, "ID (\"name\" \"sealpost\")");
                Completion::ok("ID completed")
            }
            CommandBody::StartTls => {
                if self.starttls_available {
                    outcome = Outcome::StartTls;
                    Completion::ok("Begin TLS negotiation now")
                } else if self.tls.is_some() {
                    Completion::bad("TLS is already active")
                } else {
                    Completion::bad("STARTTLS is not available")
                }
            }
            CommandBody::Login { user, password } => self.login(&user, &password).await,
            CommandBody::Authenticate { mechanism, initial } => {
                match self.authenticate(&tag, &mechanism, initial).await {
                    Some(completion) => completion,
                    None => return Ok(Outcome::SaslContinue),
                }
            }
            CommandBody::Enable(capabilities) => self.enable(&capabilities, out),
            CommandBody::Idle => {
                if !self.is_authenticated() {
                    Completion::bad("IDLE needs authentication")
                } else {
                    self.report_changes(out, true).await;
                    return Ok(Outcome::Idle { tag });
                }
            }
            body => self.authenticated_command(body, &tag, out).await?,
        };
        self.report_changes(out, expunge_allowed).await;
        completion.write(&mut out.buf, &tag);
        Ok(outcome)
    }

    /// Commands that need a logged-in user.
    async fn authenticated_command(
        &mut self,
        body: CommandBody,
        tag: &str,
        out: &mut Output<'_>,
    ) -> io::Result<Completion> {
        let enabled = self.enabled;
        let store = Arc::clone(&self.env.store);
        let completion = match (&mut self.state, body) {
            (State::NotAuthenticated | State::Logout, body) => {
                Completion::bad(format!("{} needs authentication", body.name()))
            }
            (State::Authenticated(_) | State::Selected(..), CommandBody::Namespace) => {
                untagged(&mut out.buf, "NAMESPACE ((\"\" \"/\")) NIL NIL");
                Completion::ok("NAMESPACE completed")
            }
            (State::Authenticated(auth) | State::Selected(auth, _), CommandBody::Create(name)) => {
                mailbox::create(&*store, auth, &name, enabled).await
            }
            (State::Authenticated(auth) | State::Selected(auth, _), CommandBody::Delete(name)) => {
                mailbox::delete(&*store, auth, &name, enabled).await
            }
            (
                State::Authenticated(auth) | State::Selected(auth, _),
                CommandBody::Rename { from, to },
            ) => mailbox::rename(&*store, auth, &from, &to, enabled).await,
            (
                State::Authenticated(auth) | State::Selected(auth, _),
                CommandBody::Subscribe(name),
            ) => mailbox::subscribe(&*store, auth, &name, true, enabled).await,
            (
                State::Authenticated(auth) | State::Selected(auth, _),
                CommandBody::Unsubscribe(name),
            ) => mailbox::subscribe(&*store, auth, &name, false, enabled).await,
            (State::Authenticated(auth) | State::Selected(auth, _), CommandBody::List(list)) => {
                list::list(&*store, auth, &list, enabled, &mut out.buf).await
            }
            (
                State::Authenticated(auth) | State::Selected(auth, _),
                CommandBody::Lsub { reference, pattern },
            ) => list::lsub(&*store, auth, &reference, &pattern, enabled, &mut out.buf).await,
            (
                State::Authenticated(auth) | State::Selected(auth, _),
                CommandBody::Status { mailbox, items },
            ) => mailbox::status(&*store, auth, &mailbox, &items, enabled, &mut out.buf).await,
            (State::Selected(auth, selected), CommandBody::Append(append)) => {
                let limit = self.env.limits.max_literal;
                append::append(&*store, auth, Some(selected), append, limit, enabled).await
            }
            (State::Authenticated(auth), CommandBody::Append(append)) => {
                let limit = self.env.limits.max_literal;
                append::append(&*store, auth, None, append, limit, enabled).await
            }
            (
                State::Authenticated(_) | State::Selected(..),
                CommandBody::Select {
                    mailbox,
                    read_only,
                    params,
                },
            ) => {
                if params.condstore || params.qresync.is_some() {
                    if params.qresync.is_some() && !self.enabled.qresync {
                        return Ok(Completion::bad("QRESYNC must be ENABLEd first"));
                    }
                    self.enabled.condstore = true;
                }
                let state = std::mem::replace(&mut self.state, State::Logout);
                let (auth, closed) = match state {
                    State::Authenticated(auth) => (auth, false),
                    State::Selected(auth, _) => (auth, true),
                    State::NotAuthenticated | State::Logout => unreachable_state(),
                };
                if closed && (self.enabled.rev2 || self.enabled.qresync) {
                    // RFC 9051 §6.3.2, RFC 7162 §3.2.11
                    untagged(&mut out.buf, "OK [CLOSED] previous mailbox closed");
                }
                let (completion, selected) = select::select(
                    &*store,
                    &auth,
                    &mailbox,
                    read_only,
                    params.qresync.as_ref(),
                    self.enabled,
                    &mut out.buf,
                )
                .await;
                self.state = match selected {
                    Some(selected) => State::Selected(auth, selected),
                    None => State::Authenticated(auth),
                };
                completion
            }
            (State::Selected(..), body @ (CommandBody::Close | CommandBody::Unselect)) => {
                let State::Selected(auth, selected) =
                    std::mem::replace(&mut self.state, State::Logout)
                else {
                    unreachable_state()
                };
                self.state = State::Authenticated(auth);
                if body == CommandBody::Close {
                    select::close(&*store, selected).await
                } else {
                    Completion::ok("UNSELECT completed")
                }
            }
            (State::Selected(_, selected), CommandBody::Expunge { uids }) => {
                select::expunge(&*store, selected, uids.as_ref(), enabled, &mut out.buf).await
            }
            (State::Selected(_, selected), CommandBody::Fetch(fetch)) => {
                fetch::fetch(&store, selected, &fetch, &mut self.enabled, out).await?
            }
            (State::Selected(_, selected), CommandBody::Store(command)) => {
                store::store(&*store, selected, &command, &mut self.enabled, &mut out.buf).await
            }
            (State::Selected(_, selected), CommandBody::Search(search)) => {
                search::search(
                    &store,
                    selected,
                    &search,
                    tag,
                    &mut self.enabled,
                    &mut out.buf,
                )
                .await
            }
            (State::Selected(auth, selected), CommandBody::Copy { uid, set, mailbox }) => {
                copy::copy(&*store, auth, selected, uid, &set, &mailbox, enabled).await
            }
            (State::Selected(auth, selected), CommandBody::Move { uid, set, mailbox }) => {
                copy::move_messages(
                    &*store,
                    auth,
                    selected,
                    uid,
                    &set,
                    &mailbox,
                    enabled,
                    &mut out.buf,
                )
                .await
            }
            (State::Authenticated(_), body) => {
                Completion::bad(format!("{} needs a selected mailbox", body.name()))
            }
            (State::Selected(..), body) => {
                Completion::bad(format!("{} is not valid here", body.name()))
            }
        };
        Ok(completion)
    }

    /// ENABLE (RFC 5161): only in the authenticated states.
    fn enable(&mut self, capabilities: &[String], out: &mut Output<'_>) -> Completion {
        if !self.is_authenticated() {
            return Completion::bad("ENABLE needs authentication");
        }
        let mut enabled = Vec::new();
        for capability in capabilities {
            let newly = match capability.as_str() {
                "IMAP4REV2" => !std::mem::replace(&mut self.enabled.rev2, true),
                "CONDSTORE" => !std::mem::replace(&mut self.enabled.condstore, true),
                "QRESYNC" => {
                    // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
                    self.enabled.condstore = true;
                    !std::mem::replace(&mut self.enabled.qresync, true)
                }
                _ => false,
            };
            if newly {
                enabled.push(match capability.as_str() {
                    "IMAP4REV2" => "IMAP4rev2",
                    other => other,
                });
            }
        }
        let mut line = String::from("ENABLED");
        for name in enabled {
            line.push(' ');
            line.push_str(name);
        }
        untagged(&mut out.buf, &line);
        Completion::ok("ENABLE completed")
    }

    /// Reports the selected mailbox's changes, if a mailbox is selected. A store error
    /// leaves them for the next chance.
    async fn report_changes(&mut self, out: &mut Output<'_>, expunge_allowed: bool) {
        let enabled = self.enabled;
        let State::Selected(_, selected) = &mut self.state else {
            return;
        };
        if let Err(error) = selected
            .report_changes(&*self.env.store, &mut out.buf, expunge_allowed, enabled)
            .await
        {
            tracing::warn!(peer = %self.peer, %error, "could not read mailbox changes");
        }
    }

    /// Whether the session is selected (IDLE then waits on the change feed).
    pub fn selected_mut(&mut self) -> Option<&mut SelectedMailbox> {
        match &mut self.state {
            State::Selected(_, selected) => Some(selected),
            _ => None,
        }
    }

    /// During IDLE, after the change feed woke us: tell the client (expunges allowed,
    /// RFC 9051 §6.3.13).
    pub async fn idle_report(&mut self, out: &mut Output<'_>) {
        self.report_changes(out, true).await;
    }

    /// The client ended IDLE with `line`: `DONE` or something it should not have sent.
    pub fn idle_done(&mut self, tag: &str, line: &[u8], out: &mut Output<'_>) {
        let trimmed = line.trim_ascii_end();
        let completion = if trimmed.eq_ignore_ascii_case(b"DONE") {
            Completion::ok("IDLE terminated")
        } else {
            Completion::bad("expected DONE")
        };
        completion.write(&mut out.buf, tag);
    }

    pub fn enabled(&self) -> Enabled {
        self.enabled
    }
}

fn unreachable_state() -> ! {
    unreachable!("the state was matched just before")
}

/// Whether a command may be followed by EXPUNGE responses (RFC 9051 §7.5.1: not during
/// FETCH, STORE or SEARCH by sequence number, whose numbers would shift under them).
fn allows_expunge_responses(body: &CommandBody) -> bool {
    match body {
        CommandBody::Fetch(fetch) => fetch.uid,
        CommandBody::Store(store) => store.uid,
        CommandBody::Search(search) => search.uid,
        _ => true,
    }
}

/// Store errors as NO responses with the RFC 5530 code that tells the client why.
pub(crate) fn store_failure(error: &StoreError) -> Completion {
    match error {
        StoreError::NotFound(what) => {
            Completion::no(format!("{what} does not exist")).with_code("NONEXISTENT")
        }
        StoreError::AlreadyExists(what) => {
            Completion::no(format!("{what} already exists")).with_code("ALREADYEXISTS")
        }
        StoreError::Invalid { what, value } => {
            Completion::no(format!("invalid {what}: {value}")).with_code("CANNOT")
        }
        StoreError::Database(_) | StoreError::Closed => {
            tracing::error!(%error, "store failure during an IMAP command");
            Completion::no("the server could not do that now, try again").with_code("UNAVAILABLE")
        }
    }
}
