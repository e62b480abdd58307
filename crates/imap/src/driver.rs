//! The async loop around a [`Session`]: reads commands through the [`Framer`], writes
//! each command's responses in as few writes as possible, and does what the session
//! cannot do itself: the STARTTLS upgrade, the IDLE wait, SASL continuation lines,
//! the autologout timer (RFC 9051 §5.4) and the BYE on shutdown.

use std::io;
use std::time::Duration;

use sealpost_tls::{Line, MailStream, starttls};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tracing::info;

use crate::ImapService;
use crate::framer::{FrameError, FrameEvent, Framer, Rejection};
use crate::parser::parse_command_with;
use crate::response::{Completion, untagged};
use crate::session::{Outcome, Output, Session};

/// Why a session ended, for its log line.
#[derive(Debug, Clone, Copy)]
enum End {
    Logout,
    ClientClosed,
    Autologout,
    Shutdown,
    NetworkError,
    TlsFailed,
}

/// What waiting for the client produced.
enum Input {
    Command(Vec<u8>),
    Rejected(Rejection),
    Closed,
}

pub(crate) async fn run(
    service: &ImapService,
    stream: MailStream,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer();
    let starttls_available = !stream.is_tls();
    let mut session = Session::new(
        service.env(),
        peer,
        stream.tls().cloned(),
        starttls_available,
    );
    let mut tls_summary = tls_summary(&stream);
    let mut user: Option<String> = None;
    let end = serve(
        service,
        stream,
        &mut session,
        &mut shutdown,
        &mut tls_summary,
        &mut user,
    )
    .await;
    info!(
        %peer,
        tls = %tls_summary,
        user = user.as_deref().unwrap_or("-"),
        end = ?end,
        "IMAP session ended"
    );
}

fn tls_summary(stream: &MailStream) -> String {
    match stream.tls() {
        Some(tls) => tls.to_string(),
        None => "plaintext".to_string(),
    }
}

async fn serve(
    service: &ImapService,
    mut stream: MailStream,
    session: &mut Session,
    shutdown: &mut watch::Receiver<bool>,
    tls_summary: &mut String,
    user: &mut Option<String>,
) -> End {
    let limits = service.limits.clone();
    let mut framer = Framer::new(limits.framer());
    if stream.write_all(&session.greeting()).await.is_err() {
        return End::NetworkError;
    }
    loop {
        let timeout = if session.is_authenticated() {
            limits.autologout
        } else {
            limits.login_timeout
        };
        // Between commands the session holds no read buffer (an idle client costs little).
        stream.release_buffer();
        let input = tokio::select! {
            input = read_command(&mut stream, &mut framer, limits.max_line) => input,
            () = sleep_until(Instant::now() + timeout) => {
                bye(&mut stream, "autologout; idle for too long").await;
                return End::Autologout;
            }
            () = shutdown_requested(shutdown) => {
                bye(&mut stream, "server shutting down").await;
                return End::Shutdown;
            }
        };
        let bytes = match input {
            Ok(Input::Command(bytes)) => bytes,
            Ok(Input::Rejected(rejection)) => {
                let mut reply = Vec::new();
                rejection_reply(&rejection, limits.max_literal, &mut reply);
                if stream.write_all(&reply).await.is_err() {
                    return End::NetworkError;
                }
                continue;
            }
            Ok(Input::Closed) => return End::ClientClosed,
            Err(_) => return End::NetworkError,
        };
        let command = match parse_command_with(&bytes, &limits.parser) {
            Ok(command) => command,
            Err(error) => {
                let mut reply = Vec::new();
                match &error.tag {
                    Some(tag) => Completion::bad(error.kind.to_string()).write(&mut reply, tag),
                    None => untagged(&mut reply, &format!("BAD {}", error.kind)),
                }
                if stream.write_all(&reply).await.is_err() {
                    return End::NetworkError;
                }
                continue;
            }
        };
        drop(bytes);
        let outcome = {
            let mut out = Output::new(Some(&mut stream));
            // Boxed: a command's future is large, and the task keeps the size of its
            // largest state for as long as it lives, idle or not.
            let outcome = Box::pin(session.handle(command, &mut out)).await;
            if out.flush().await.is_err() {
                return End::NetworkError;
            }
            match outcome {
                Ok(outcome) => outcome,
                Err(_) => return End::NetworkError,
            }
        };
        if let Some(name) = session.user() {
            *user = Some(name.to_string());
        }
        match outcome {
            Outcome::Next => {}
            Outcome::Logout => {
                let _ = stream.shutdown().await;
                return End::Logout;
            }
            Outcome::StartTls => {
                // Nothing from before TLS is kept: not the session state, not the
                // partial command, not bytes pipelined after STARTTLS (CVE-2011-0411,
                // which `starttls` discards).
                stream = match Box::pin(starttls(stream, &service.tls)).await {
                    Ok(tls) => tls,
                    Err(_) => return End::TlsFailed,
                };
                *tls_summary = self::tls_summary(&stream);
                session.tls_established(stream.tls().cloned());
                framer = Framer::new(limits.framer());
            }
            Outcome::SaslContinue => {
                if stream.write_all(b"+ \r\n").await.is_err() {
                    return End::NetworkError;
                }
                let read = stream.read_line(limits.max_line);
                let line = match tokio::time::timeout(limits.login_timeout, read).await {
                    Ok(Ok(Line::Complete(line))) => line,
                    Ok(Ok(Line::TooLong)) => b"*".to_vec(),
                    Ok(Ok(Line::Eof)) => return End::ClientClosed,
                    Ok(Err(_)) => return End::NetworkError,
                    Err(_) => {
                        bye(&mut stream, "autologout; idle for too long").await;
                        return End::Autologout;
                    }
                };
                let (tag, completion) = Box::pin(session.sasl_response(&line)).await;
                let mut reply = Vec::new();
                completion.write(&mut reply, &tag);
                if stream.write_all(&reply).await.is_err() {
                    return End::NetworkError;
                }
                if let Some(name) = session.user() {
                    *user = Some(name.to_string());
                }
            }
            Outcome::Idle { tag } => {
                if let Some(end) = idle(&mut stream, session, shutdown, &tag, &limits).await {
                    return end;
                }
            }
        }
    }
}

/// Lines and literals until one command is complete (or refused).
async fn read_command(
    stream: &mut MailStream,
    framer: &mut Framer,
    max_line: usize,
) -> io::Result<Input> {
    loop {
        let line = match stream.read_line(max_line).await? {
            Line::Complete(line) => line,
            Line::TooLong => return Ok(Input::Rejected(framer.line_too_long())),
            Line::Eof => return Ok(Input::Closed),
        };
        match framer.push_line(&line) {
            FrameEvent::Command(bytes) => return Ok(Input::Command(bytes)),
            FrameEvent::Reject(rejection) => return Ok(Input::Rejected(rejection)),
            FrameEvent::Literal {
                size,
                synchronizing,
            } => {
                if synchronizing {
                    stream.write_all(b"+ Ready for literal data\r\n").await?;
                }
                if !copy_literal(stream, framer, size).await? {
                    return Ok(Input::Closed);
                }
            }
            FrameEvent::Discard { size } => {
                if !discard(stream, size).await? {
                    return Ok(Input::Closed);
                }
            }
        }
    }
}

/// Moves `size` literal octets from the stream into the framer; false at EOF.
async fn copy_literal(
    stream: &mut MailStream,
    framer: &mut Framer,
    size: usize,
) -> io::Result<bool> {
    let mut left = size;
    while left > 0 {
        if stream.buffered().is_empty() && stream.fill().await? == 0 {
            return Ok(false);
        }
        let n = stream.buffered().len().min(left);
        framer.push_literal(&stream.buffered()[..n]);
        stream.consume(n);
        left -= n;
    }
    Ok(true)
}

/// Reads and drops `size` octets, holding no more than one read's worth.
async fn discard(stream: &mut MailStream, size: u64) -> io::Result<bool> {
    let mut left = size;
    while left > 0 {
        if stream.buffered().is_empty() && stream.fill().await? == 0 {
            return Ok(false);
        }
        let n = (stream.buffered().len() as u64).min(left);
        stream.consume(n as usize);
        left -= n;
    }
    Ok(true)
}

fn rejection_reply(rejection: &Rejection, max_literal: u64, out: &mut Vec<u8>) {
    let text = match rejection.reason {
        FrameError::LineTooLong => "line too long".to_string(),
        FrameError::LiteralTooLarge => format!("literal too large (APPENDLIMIT={max_literal})"),
        FrameError::CommandTooLarge => "command too large".to_string(),
    };
    let completion = if rejection.synchronizing {
        Completion::no(text)
    } else {
        Completion::bad(text)
    }
    .with_code("TOOBIG");
    match &rejection.tag {
        Some(tag) => completion.write(out, tag),
        None => untagged(out, &format!("BAD [TOOBIG] {}", completion.text)),
    }
}

async fn bye(stream: &mut MailStream, text: &str) {
    let _ = stream
        .write_all(format!("* BYE {text}\r\n").as_bytes())
        .await;
    let _ = stream.shutdown().await;
}

/// Resolves once `shutdown` is true; never, if its sender is gone without saying so.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What woke an idling session.
enum IdleEvent {
    Read(io::Result<usize>),
    Change,
    Timeout,
    Shutdown,
}

/// RFC 2177 / RFC 9051 §6.3.13: report changes as the feed announces them until the
/// client sends DONE. Returns how the session ended, if it did.
async fn idle(
    stream: &mut MailStream,
    session: &mut Session,
    shutdown: &mut watch::Receiver<bool>,
    tag: &str,
    limits: &crate::ImapLimits,
) -> Option<End> {
    if stream.write_all(b"+ idling\r\n").await.is_err() {
        return Some(End::NetworkError);
    }
    let deadline = Instant::now() + limits.autologout;
    // The client's DONE line as it arrives. It is kept here rather than in the
    // stream's buffer so that the stream's buffer is empty whenever a read is raced
    // against the change feed (see below).
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buffered = stream.buffered();
        if let Some(end) = buffered.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buffered[..=end]);
            stream.consume(end + 1);
            let mut out = Output::new(Some(&mut *stream));
            session.idle_done(tag, &line, &mut out);
            return match out.flush().await {
                Ok(()) => None,
                Err(_) => Some(End::NetworkError),
            };
        }
        line.extend_from_slice(buffered);
        let n = buffered.len();
        stream.consume(n);
        if line.len() > limits.max_line {
            bye(stream, "line too long").await;
            return Some(End::ClientClosed);
        }
        stream.release_buffer();
        let event = tokio::select! {
            biased;
            read = stream.fill() => IdleEvent::Read(read),
            () = wait_for_change(session) => IdleEvent::Change,
            () = sleep_until(deadline) => IdleEvent::Timeout,
            () = shutdown_requested(shutdown) => IdleEvent::Shutdown,
        };
        if !matches!(event, IdleEvent::Read(_)) {
            // The read above was dropped before it received anything. `fill` may have
            // sized its buffer before awaiting the socket; whatever the buffer shows
            // now was never received, since it was empty when the read began.
            let junk = stream.buffered().len();
            stream.consume(junk);
            stream.release_buffer();
        }
        match event {
            IdleEvent::Read(Ok(0)) => return Some(End::ClientClosed),
            IdleEvent::Read(Ok(_)) => {}
            IdleEvent::Read(Err(_)) => return Some(End::NetworkError),
            IdleEvent::Change => {
                // Let a burst of changes (a MOVE of many messages) settle into one report.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let mut out = Output::new(Some(&mut *stream));
                session.idle_report(&mut out).await;
                if out.flush().await.is_err() {
                    return Some(End::NetworkError);
                }
            }
            IdleEvent::Timeout => {
                bye(stream, "autologout; idle for too long").await;
                return Some(End::Autologout);
            }
            IdleEvent::Shutdown => {
                bye(stream, "server shutting down").await;
                return Some(End::Shutdown);
            }
        }
    }
}

async fn wait_for_change(session: &mut Session) {
    match session.selected_mut() {
        Some(selected) => selected.wait_for_change().await,
        None => std::future::pending().await,
    }
}
