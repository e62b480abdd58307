//! The thin async loop around a [`Session`]: reads lines and message octets, carries out
//! the session's actions against the store, the login checker and the TLS acceptor, and
//! writes replies.
//!
//! Replies are collected and written when the driver would otherwise wait for the
//! client, so a pipelined batch of commands (RFC 2920) is answered in one write and no
//! reply is ever split across writes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sealpost_mailauth::{DkimSigner, InboundVerifier};
use sealpost_store::{Delivery, Login, LoginError, Store};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::timeout;
use tracing::{info, warn};

use crate::auth::Credentials;
use crate::bdat::ChunkReceiver;
use crate::data::DataReceiver;
use crate::dmarc_recorder::DmarcRecorder;
use crate::envelope::look_up;
use crate::reply::Reply;
use crate::session::{Action, AuthOutcome, Session, SessionConfig};
use crate::transport::Connection;

/// Pending replies beyond this size are written even while more commands are buffered,
/// so a client that pipelines without reading cannot make us hold unbounded output.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// What the session needs from the rest of the server.
pub(crate) struct Env<'a> {
    pub store: &'a Arc<dyn Store>,
    pub login: &'a Login,
    /// Port 25: authenticates messages before they are stored.
    pub verifier: Option<&'a InboundVerifier>,
    /// Submission: signs messages as their sender's domain.
    pub signer: Option<&'a DkimSigner>,
    /// Port 25: keeps DMARC evaluations for the aggregate reports.
    pub dmarc_recorder: Option<&'a DmarcRecorder>,
}

/// Why a session ended (for its log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// QUIT, or too many errors.
    Closed,
    PeerClosed,
    Timeout,
    Shutdown,
    TlsFailed,
    IoError,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            End::Closed => "closed",
            End::PeerClosed => "peer closed",
            End::Timeout => "timeout",
            End::Shutdown => "shutdown",
            End::TlsFailed => "TLS handshake failed",
            End::IoError => "I/O error",
        })
    }
}

/// Runs one session to its end and logs its one summary line.
pub(crate) async fn run<C: Connection>(
    config: SessionConfig,
    env: Env<'_>,
    conn: C,
    acceptor: Option<&C::Acceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = conn.peer();
    let mut session = Session::new(config, peer.ip(), conn.tls().cloned());
    let end = serve(&mut session, &env, conn, acceptor, &mut shutdown).await;
    let tls = session
        .tls()
        .map_or_else(|| "plaintext".to_string(), ToString::to_string);
    info!(
        %peer,
        listener = ?session.kind(),
        %tls,
        user = session.user().unwrap_or("-"),
        messages = session.messages_accepted(),
        %end,
        "smtp session ended"
    );
}

/// What one read of a command line gave.
enum Input {
    Line(Vec<u8>),
    TooLong,
    Eof,
}

async fn serve<C: Connection>(
    session: &mut Session,
    env: &Env<'_>,
    mut conn: C,
    acceptor: Option<&C::Acceptor>,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let idle = session.idle_timeout();
    let mut out = Vec::new();
    session.greeting().write_to(&mut out);
    let end = 'session: loop {
        // A transaction in flight finishes first; BDAT chunks are such a transaction.
        let interruptible = !session.is_receiving_chunks();
        if interruptible && *shutdown.borrow() {
            Reply::shutting_down().write_to(&mut out);
            break End::Shutdown;
        }
        // Replies are written only when the client must wait for them: when no further
        // complete command is buffered (RFC 2920 §3.2). Writing happens outside the
        // select below, so a shutdown can never cut a reply in half.
        if !conn.buffered().contains(&b'\n')
            && let Err(end) = flush_within(&mut conn, &mut out, idle).await
        {
            return end;
        }
        let limit = session.line_limit();
        let input = tokio::select! {
            read = timeout(idle, read_line(&mut conn, limit)) => read,
            () = shutdown_requested(shutdown), if interruptible => {
                Reply::shutting_down().write_to(&mut out);
                break End::Shutdown;
            }
        };
        let mut action = match input {
            Ok(Ok(Input::Line(line))) => session.on_line(&line),
            Ok(Ok(Input::TooLong)) => session.on_line_too_long(),
            Ok(Ok(Input::Eof)) => break End::PeerClosed,
            Ok(Err(_)) => break End::IoError,
            Err(_) => {
                Reply::timeout().write_to(&mut out);
                break End::Timeout;
            }
        };
        loop {
            action = match action {
                Action::Reply(reply) => {
                    reply.write_to(&mut out);
                    break;
                }
                Action::Close(replies) => {
                    for reply in replies {
                        reply.write_to(&mut out);
                    }
                    break 'session End::Closed;
                }
                Action::StartTls(reply) => {
                    reply.write_to(&mut out);
                    if let Err(end) = flush_within(&mut conn, &mut out, idle).await {
                        return end;
                    }
                    let Some(acceptor) = acceptor else {
                        return End::TlsFailed;
                    };
                    // On failure the connection is gone: never fall back to plaintext.
                    let Ok(upgraded) = conn.start_tls(acceptor).await else {
                        return End::TlsFailed;
                    };
                    conn = upgraded;
                    let Some(tls) = conn.tls().cloned() else {
                        return End::TlsFailed;
                    };
                    session.tls_started(tls);
                    break;
                }
                Action::LookupRecipient(query) => {
                    let lookup = look_up(env.store.as_ref(), &query).await;
                    session.recipient_found(query, lookup)
                }
                Action::Authenticate(credentials) => {
                    let outcome = authenticate(env.login, session, &credentials).await;
                    session.authenticated(credentials, outcome)
                }
                Action::ReceiveData(reply, mut receiver) => {
                    reply.write_to(&mut out);
                    if let Err(end) = receive_data(&mut conn, &mut out, &mut receiver, idle).await {
                        break 'session end;
                    }
                    session.data_received(receiver, OffsetDateTime::now_utc())
                }
                Action::ReceiveChunk(mut receiver) => {
                    if let Err(end) = receive_chunk(&mut conn, &mut out, &mut receiver, idle).await
                    {
                        break 'session end;
                    }
                    session.chunk_received(receiver, OffsetDateTime::now_utc())
                }
                Action::Verify(received) => {
                    let (verdict, cleaned) = match env.verifier {
                        Some(verifier) => {
                            let (peer, helo) = session.client();
                            let verdict = verifier
                                .verify(peer, helo, received.mail_from(), &received.content)
                                .await;
                            let cleaned = match verifier.remove_forged_results(&received.content) {
                                Cow::Owned(cleaned) => Some(cleaned),
                                Cow::Borrowed(_) => None,
                            };
                            (Some(verdict), cleaned)
                        }
                        None => (None, None),
                    };
                    session.verified(*received, verdict, cleaned)
                }
                Action::Deliver(mut outgoing) => {
                    if let (Some(signer), Some((domain, offset))) =
                        (env.signer, outgoing.sign.take())
                    {
                        sign(signer, &domain, offset, &mut outgoing.delivery);
                    }
                    // The 250 waits for this: deliver returns once the message is fsync'd.
                    let stored = match env.store.deliver(outgoing.delivery).await {
                        Ok(_) => true,
                        Err(error) => {
                            warn!(id = %outgoing.id, %error, "storing a message failed");
                            false
                        }
                    };
                    if stored
                        && let (Some(recorder), Some(record)) = (env.dmarc_recorder, outgoing.dmarc)
                    {
                        recorder.record(*record);
                    }
                    session.delivered(&outgoing.id, stored)
                }
            };
        }
        if out.len() >= OUTPUT_HIGH_WATER
            && let Err(end) = flush_within(&mut conn, &mut out, idle).await
        {
            return end;
        }
    };
    if flush_within(&mut conn, &mut out, idle).await.is_ok() {
        let _ = timeout(idle, conn.shutdown()).await;
    }
    end
}

/// Puts the DKIM-Signature fields at `offset` (after our trace header), signing what
/// follows. A domain without keys, or a signing failure (logged by the signer), leaves
/// the message unsigned: it is still sent.
fn sign(signer: &DkimSigner, domain: &str, offset: usize, delivery: &mut Delivery) {
    let raw = delivery.raw.as_slice();
    let Some(signed_part) = raw.get(offset..) else {
        return;
    };
    if let Some(signature) = signer.sign(domain, signed_part) {
        let mut signed = Vec::with_capacity(raw.len() + signature.len());
        signed.extend_from_slice(&raw[..offset]);
        signed.extend_from_slice(&signature);
        signed.extend_from_slice(signed_part);
        delivery.raw = Arc::new(signed);
    }
}

/// Writes the pending replies in one piece. A client that does not read them within the
/// idle timeout is dropped.
async fn flush_within<C: Connection>(
    conn: &mut C,
    out: &mut Vec<u8>,
    idle: Duration,
) -> Result<(), End> {
    if out.is_empty() {
        return Ok(());
    }
    match timeout(idle, conn.write_all(out)).await {
        Ok(Ok(())) => {
            out.clear();
            Ok(())
        }
        Ok(Err(_)) => Err(End::IoError),
        Err(_) => Err(End::Timeout),
    }
}

/// Reads one line of at most `max` octets, line ending included. A longer line is
/// discarded through its LF, holding no more than one read of it in memory.
async fn read_line<C: Connection>(conn: &mut C, max: usize) -> std::io::Result<Input> {
    let mut scanned = 0;
    let mut discarding = false;
    loop {
        let pending = conn.buffered();
        if let Some(pos) = pending[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + pos + 1;
            let input = if discarding || end > max {
                Input::TooLong
            } else {
                Input::Line(pending[..end].to_vec())
            };
            conn.consume(end);
            return Ok(input);
        }
        if discarding || pending.len() > max {
            discarding = true;
            let n = pending.len();
            conn.consume(n);
            scanned = 0;
        } else {
            scanned = pending.len();
        }
        if conn.fill().await? == 0 {
            return Ok(Input::Eof);
        }
    }
}

/// Reads more message octets, answering 421 if none come within the idle timeout. EOF
/// or an error (after TLS: also close_notify) ends the session with nothing stored.
async fn fill_within<C: Connection>(
    conn: &mut C,
    out: &mut Vec<u8>,
    idle: Duration,
) -> Result<(), End> {
    flush_within(conn, out, idle).await?;
    match timeout(idle, conn.fill()).await {
        Ok(Ok(0)) => Err(End::PeerClosed),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(End::IoError),
        Err(_) => {
            Reply::timeout().write_to(out);
            Err(End::Timeout)
        }
    }
}

async fn receive_data<C: Connection>(
    conn: &mut C,
    out: &mut Vec<u8>,
    receiver: &mut DataReceiver,
    idle: Duration,
) -> Result<(), End> {
    loop {
        let (consumed, complete) = receiver.feed(conn.buffered());
        conn.consume(consumed);
        if complete {
            return Ok(());
        }
        fill_within(conn, out, idle).await?;
    }
}

async fn receive_chunk<C: Connection>(
    conn: &mut C,
    out: &mut Vec<u8>,
    receiver: &mut ChunkReceiver,
    idle: Duration,
) -> Result<(), End> {
    loop {
        let consumed = receiver.feed(conn.buffered());
        conn.consume(consumed);
        if receiver.is_complete() {
            return Ok(());
        }
        fill_within(conn, out, idle).await?;
    }
}

/// Resolves when shutdown is requested; never, if the sender is gone.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|&stop| stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn authenticate(login: &Login, session: &Session, credentials: &Credentials) -> AuthOutcome {
    let result = match credentials {
        Credentials::Password { username, password } => login
            .password(session.peer(), username, password)
            .await
            .map(Some),
        Credentials::Certificate { .. } => {
            login.certificate(session.certificate_identities()).await
        }
    };
    match result {
        Ok(Some(account)) => AuthOutcome::Accepted(account),
        Ok(None) | Err(LoginError::BadCredentials) => AuthOutcome::Rejected,
        Err(LoginError::Throttled { retry_after }) => {
            info!(peer = %session.peer(), retry_after = retry_after.as_secs(), "login throttled");
            AuthOutcome::Throttled
        }
        Err(LoginError::Store(error)) => {
            warn!(%error, "login check failed");
            AuthOutcome::Unavailable
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod mailauth_tests;
