//! The thin async loop around [`Session`]: reads lines, writes replies, and carries out
//! the steps that need the store, the lock registry or TLS.

use std::fmt;
use std::net::SocketAddr;

use sealpost_store::{Account, FlagOperation, FlagUpdate, LoginError, SessionLock, StoreError};
use sealpost_tls::{Line, MailStream, TlsError};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::Pop3Service;
use crate::capabilities::Security;
use crate::maildrop::Maildrop;
use crate::maildrop_lock::MaildropLock;
use crate::reply;
use crate::session::{Credentials, Deletions, LoginOutcome, Session, Step};

/// Why a session ended, for its log line.
enum End {
    /// The session said its last reply (QUIT, too many errors).
    Closed,
    Disconnected,
    IdleTimeout,
    Shutdown,
    Io(std::io::Error),
    Tls(TlsError),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Closed => f.write_str("closed"),
            End::Disconnected => f.write_str("client disconnected"),
            End::IdleTimeout => f.write_str("idle timeout"),
            End::Shutdown => f.write_str("server shutdown"),
            End::Io(e) => write!(f, "I/O error: {e}"),
            End::Tls(e) => write!(f, "STLS failed: {e}"),
        }
    }
}

enum Event {
    Shutdown,
    IdleTimeout,
    Line(std::io::Result<Line>),
}

pub(crate) async fn run(
    service: &Pop3Service,
    mut stream: MailStream,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer();
    let new_session = |stream: &MailStream| {
        Session::new(
            &service.hostname,
            security(stream),
            service.limits.max_errors,
        )
    };
    let mut session = new_session(&stream);
    let mut tls = tls_summary(&stream);
    // Held from login to the end of this function, however it ends.
    let mut lock: Option<MaildropLock> = None;
    let end = 'session: {
        if let Err(e) = stream.write_all(session.greeting()).await {
            break 'session End::Io(e);
        }
        loop {
            stream.release_buffer();
            let event = tokio::select! {
                biased;
                () = shutdown_requested(&mut shutdown) => Event::Shutdown,
                read = tokio::time::timeout(
                    service.limits.idle_timeout,
                    stream.read_line(session.max_line()),
                ) => read.map_or(Event::IdleTimeout, Event::Line),
            };
            let mut step = match event {
                Event::Shutdown => {
                    close(&mut stream, &reply::shutting_down()).await;
                    break 'session End::Shutdown;
                }
                Event::IdleTimeout => {
                    close(&mut stream, &reply::idle_timeout()).await;
                    break 'session End::IdleTimeout;
                }
                Event::Line(Err(e)) => break 'session End::Io(e),
                Event::Line(Ok(Line::Eof)) => break 'session End::Disconnected,
                Event::Line(Ok(Line::TooLong)) => session.line_too_long(),
                Event::Line(Ok(Line::Complete(line))) => session.line(&line),
            };
            loop {
                step = match step {
                    Step::Reply(bytes) => match stream.write_all(&bytes).await {
                        Ok(()) => break,
                        Err(e) => break 'session End::Io(e),
                    },
                    Step::Close(bytes) => {
                        close(&mut stream, &bytes).await;
                        break 'session End::Closed;
                    }
                    Step::StartTls(bytes) => {
                        if let Err(e) = stream.write_all(&bytes).await {
                            break 'session End::Io(e);
                        }
                        stream = match sealpost_tls::starttls(stream, &service.tls).await {
                            Ok(stream) => stream,
                            Err(e) => break 'session End::Tls(e),
                        };
                        tls = tls_summary(&stream);
                        session = new_session(&stream);
                        break;
                    }
                    Step::Login(credentials) => {
                        let outcome = service.log_in(peer, credentials, &mut lock).await;
                        session.login_finished(outcome)
                    }
                    Step::Fetch(fetch) => {
                        let message = service.store.message_raw(fetch.mailbox, fetch.uid).await;
                        if let Err(e) = &message {
                            warn!(%peer, uid = fetch.uid, error = %e, "POP3 cannot read message");
                        }
                        session.fetched(fetch, message)
                    }
                    Step::Update(deletions) => {
                        let removed = service.delete(deletions).await;
                        if let Err(e) = &removed {
                            warn!(%peer, error = %e, "POP3 UPDATE failed");
                        }
                        session.updated(removed)
                    }
                };
            }
        }
    };
    drop(lock);
    let summary = session.summary();
    info!(
        %peer,
        %tls,
        user = summary.user.as_deref().unwrap_or("-"),
        retrieved = summary.retrieved,
        deleted = summary.deleted,
        end = %end,
        "pop3 session ended"
    );
}

/// Sends the last reply and closes; the client may already be gone, which is fine.
async fn close(stream: &mut MailStream, last_reply: &[u8]) {
    let _ = stream.write_all(last_reply).await;
    let _ = stream.shutdown().await;
}

/// Resolves once shutdown is requested; never if the sender is gone without asking.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|&stop| stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn security(stream: &MailStream) -> Security {
    match stream.tls() {
        Some(info) => Security::Tls {
            client_identities: info.verified_identities().to_vec(),
        },
        None => Security::Plaintext,
    }
}

/// The TLS summary for the session's log line.
fn tls_summary(stream: &MailStream) -> String {
    stream
        .tls()
        .map_or_else(|| "plaintext".to_string(), ToString::to_string)
}

impl Pop3Service {
    /// Checks credentials, then locks and snapshots the INBOX. The lock is only kept
    /// when the whole login succeeds.
    async fn log_in(
        &self,
        peer: SocketAddr,
        credentials: Credentials,
        lock: &mut Option<MaildropLock>,
    ) -> LoginOutcome {
        let (attempted, result) = match credentials {
            Credentials::Password { user, password } => {
                let result = self
                    .login
                    .password(peer.ip(), &user, password.expose())
                    .await;
                (user, result)
            }
            Credentials::Certificate {
                identities,
                authzid,
            } => {
                let candidates: Vec<String> = match &authzid {
                    Some(authzid) => identities
                        .into_iter()
                        .filter(|identity| identity.eq_ignore_ascii_case(authzid))
                        .collect(),
                    None => identities,
                };
                let result = match self.login.certificate(&candidates).await {
                    Ok(Some(account)) => Ok(account),
                    Ok(None) => Err(LoginError::BadCredentials),
                    Err(e) => Err(e),
                };
                (authzid.unwrap_or_else(|| candidates.join(",")), result)
            }
        };
        let account = match result {
            Ok(account) => account,
            Err(LoginError::BadCredentials) => {
                info!(%peer, user = ?attempted, "POP3 login failed");
                return LoginOutcome::BadCredentials;
            }
            Err(LoginError::Throttled { retry_after }) => {
                info!(%peer, user = ?attempted, "POP3 login refused: too many failures");
                return LoginOutcome::Throttled { retry_after };
            }
            Err(LoginError::Store(e)) => {
                warn!(%peer, error = %e, "POP3 login: store failed");
                return LoginOutcome::Unavailable;
            }
        };
        let Some(mut guard) = self.maildrop_locks.try_lock(account.id) else {
            info!(%peer, user = %account.address, "POP3 maildrop in use by another session");
            return LoginOutcome::InUse;
        };
        // Sessions on other nodes sharing the store exclude this one too.
        match self
            .store
            .try_session_lock(SessionLock::Pop3Maildrop(account.id))
            .await
        {
            Ok(Some(shared)) => guard.hold_shared(shared),
            Ok(None) => {
                info!(%peer, user = %account.address, "POP3 maildrop in use by a session on another node");
                return LoginOutcome::InUse;
            }
            Err(e) => {
                warn!(%peer, error = %e, "POP3 login: store failed to lock the maildrop");
                return LoginOutcome::Unavailable;
            }
        }
        match self.open_inbox(&account).await {
            Ok(maildrop) => {
                *lock = Some(guard);
                LoginOutcome::Opened {
                    address: account.address,
                    maildrop,
                }
            }
            Err(e) => {
                warn!(%peer, user = %account.address, error = %e, "POP3 cannot open INBOX");
                LoginOutcome::Unavailable
            }
        }
    }

    async fn open_inbox(&self, account: &Account) -> Result<Maildrop, StoreError> {
        let mailbox = self
            .store
            .mailbox(account.id, "INBOX")
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("INBOX of {}", account.address)))?;
        let messages = self.store.messages(mailbox.id).await?;
        Ok(Maildrop::new(&mailbox, &messages))
    }

    /// UPDATE (RFC 1939 §6): flag exactly the DELE'd messages `\Deleted`, then expunge
    /// exactly those, so a `\Deleted` flag another client set is left alone.
    async fn delete(&self, deletions: Deletions) -> Result<Vec<u32>, StoreError> {
        self.store
            .update_flags(
                deletions.mailbox,
                FlagUpdate {
                    uids: deletions.uids.clone(),
                    operation: FlagOperation::Add,
                    flags: vec!["\\Deleted".to_string()],
                    unchanged_since: None,
                },
            )
            .await?;
        self.store
            .expunge(deletions.mailbox, Some(deletions.uids))
            .await
    }
}
