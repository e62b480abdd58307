//! The mail-protocol conversation a probe needs, in SMTP, IMAP and POP3: the greeting,
//! capabilities, STARTTLS/STLS, a login attempt, and QUIT/LOGOUT. Framing (lines and
//! replies) is kept apart from meaning (what a reply says about the server).

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ProbeError;
use crate::target::Protocol;

/// Longer lines than this are not a mail server talking (RFC 5321 §4.5.3.1.5 allows 512
/// for SMTP replies; IMAP capability lines are longer but nowhere near this).
const MAX_LINE: usize = 16 * 1024;

/// The client name and the credentials used in probes: obviously not real, so a server
/// that logs them shows where they came from.
const EHLO: &[u8] = b"EHLO sealpost-check.invalid\r\n";
const PROBE_USER: &str = "sealpost-check";
const PROBE_PASSWORD: &str = "not-a-password";

/// A byte stream read line by line, with what was read past the last line kept.
pub(crate) struct Conversation<S> {
    stream: S,
    buf: Vec<u8>,
    protocol: Protocol,
}

/// One reply: its lines without CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub lines: Vec<String>,
}

impl Reply {
    /// The SMTP reply code, if this is an SMTP reply.
    pub fn code(&self) -> Option<u16> {
        self.lines.last()?.get(..3)?.parse().ok()
    }

    pub fn last(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }

    /// One line for reports.
    pub fn summary(&self) -> String {
        self.last().chars().take(200).collect()
    }
}

/// What the server says it can do before (or after) TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    pub starttls: bool,
    /// SASL mechanisms (SMTP AUTH, IMAP AUTH=, POP3 SASL).
    pub auth_mechanisms: Vec<String>,
    /// IMAP LOGIN or POP3 USER are usable (IMAP: no LOGINDISABLED; POP3: USER listed).
    pub password_login: bool,
}

impl Capabilities {
    /// True when the server invites a password (or any SASL exchange) on this connection.
    pub fn offers_authentication(&self) -> bool {
        self.password_login || !self.auth_mechanisms.is_empty()
    }
}

/// What happened when a login was tried before TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoginAttempt {
    /// The server would not take credentials without TLS.
    Refused(String),
    /// The server checked the (fake) credentials: a real password would have crossed the
    /// network in the clear.
    Evaluated(String),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conversation<S> {
    pub fn new(stream: S, protocol: Protocol) -> Self {
        Conversation {
            stream,
            buf: Vec::new(),
            protocol,
        }
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }

    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.stream, self.buf)
    }

    /// Bytes the server sent past the last complete reply read so far.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ProbeError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// The next line without its line ending; `None` at a clean end of stream.
    pub async fn line(&mut self) -> Result<Option<String>, ProbeError> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.buf.len() > MAX_LINE {
                return Err(ProbeError::Protocol(format!(
                    "a line longer than {MAX_LINE} bytes"
                )));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn required_line(&mut self) -> Result<String, ProbeError> {
        self.line().await?.ok_or_else(|| {
            ProbeError::Protocol("the server closed the connection mid-reply".into())
        })
    }

    /// An SMTP reply: `250-...` lines up to the `250 ...` one (RFC 5321 §4.2.1).
    pub async fn smtp_reply(&mut self) -> Result<Reply, ProbeError> {
        let mut lines = Vec::new();
        loop {
            let line = self.required_line().await?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                return Err(ProbeError::Protocol(format!("not an SMTP reply: {line:?}")));
            }
            lines.push(line);
            if !more {
                return Ok(Reply { lines });
            }
        }
    }

    /// IMAP untagged lines up to the tagged completion for `tag` (RFC 9051 §2.2.2).
    pub async fn imap_tagged(&mut self, tag: &str) -> Result<Reply, ProbeError> {
        let prefix = format!("{tag} ");
        let mut lines = Vec::new();
        loop {
            let line = self.required_line().await?;
            let done = line.starts_with(&prefix);
            lines.push(line);
            if done {
                return Ok(Reply { lines });
            }
        }
    }

    /// A POP3 status line; with `multiline` and `+OK`, the lines up to "." too
    /// (RFC 1939 §3).
    pub async fn pop3_reply(&mut self, multiline: bool) -> Result<Reply, ProbeError> {
        let first = self.required_line().await?;
        let ok = first.starts_with("+OK");
        let mut lines = vec![first];
        if multiline && ok {
            loop {
                let line = self.required_line().await?;
                if line == "." {
                    break;
                }
                lines.push(line);
            }
        }
        Ok(Reply { lines })
    }

    /// The greeting; a server that refuses service (SMTP 554, IMAP BYE, POP3 -ERR) is an
    /// error naming its words.
    pub async fn greeting(&mut self) -> Result<Reply, ProbeError> {
        let reply = match self.protocol {
            Protocol::Smtp => self.smtp_reply().await?,
            Protocol::Imap | Protocol::Pop3 => Reply {
                lines: vec![self.required_line().await?],
            },
        };
        let ok = match self.protocol {
            Protocol::Smtp => reply.code() == Some(220),
            Protocol::Imap => {
                reply.last().starts_with("* OK") || reply.last().starts_with("* PREAUTH")
            }
            Protocol::Pop3 => reply.last().starts_with("+OK"),
        };
        if !ok {
            return Err(ProbeError::Protocol(format!(
                "the server refused service: {}",
                reply.summary()
            )));
        }
        Ok(reply)
    }

    /// EHLO, CAPABILITY or CAPA.
    pub async fn capabilities(&mut self) -> Result<Capabilities, ProbeError> {
        match self.protocol {
            Protocol::Smtp => {
                self.send(EHLO).await?;
                let reply = self.smtp_reply().await?;
                if reply.code() != Some(250) {
                    return Err(ProbeError::Protocol(format!(
                        "EHLO refused: {}",
                        reply.summary()
                    )));
                }
                Ok(smtp_capabilities(&reply))
            }
            Protocol::Imap => {
                self.send(b"c1 CAPABILITY\r\n").await?;
                Ok(imap_capabilities(&self.imap_tagged("c1").await?))
            }
            Protocol::Pop3 => {
                self.send(b"CAPA\r\n").await?;
                Ok(pop3_capabilities(&self.pop3_reply(true).await?))
            }
        }
    }

    /// The command that starts TLS on a plaintext port; `Ok(Err(reply))` when refused.
    pub async fn starttls(&mut self) -> Result<Result<(), Reply>, ProbeError> {
        self.send(starttls_command(self.protocol)).await?;
        let reply = self.starttls_reply().await?;
        if starttls_accepted(self.protocol, &reply) {
            Ok(Ok(()))
        } else {
            Ok(Err(reply))
        }
    }

    /// The reply to STARTTLS/STLS (after the command was sent some other way).
    pub async fn starttls_reply(&mut self) -> Result<Reply, ProbeError> {
        match self.protocol {
            Protocol::Smtp => self.smtp_reply().await,
            Protocol::Imap => self.imap_tagged("s1").await,
            Protocol::Pop3 => self.pop3_reply(false).await,
        }
    }

    /// Tries to log in with fake credentials before TLS, to see whether the server would
    /// take a password in the clear. Only ever called on a plaintext connection.
    pub async fn try_plaintext_login(
        &mut self,
        capabilities: &Capabilities,
    ) -> Result<LoginAttempt, ProbeError> {
        match self.protocol {
            Protocol::Smtp => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("\0{PROBE_USER}\0{PROBE_PASSWORD}"));
                self.send(format!("AUTH PLAIN {token}\r\n").as_bytes())
                    .await?;
                let reply = self.smtp_reply().await?;
                if reply.code() == Some(334) {
                    // A challenge: cancel the exchange (RFC 4954 §4).
                    self.send(b"*\r\n").await?;
                    self.smtp_reply().await?;
                }
                Ok(classify_smtp_login(&reply))
            }
            Protocol::Imap => {
                self.send(format!("l1 LOGIN {PROBE_USER} {PROBE_PASSWORD}\r\n").as_bytes())
                    .await?;
                let reply = self.imap_tagged("l1").await?;
                Ok(classify_imap_login(&reply, capabilities))
            }
            Protocol::Pop3 => {
                self.send(format!("USER {PROBE_USER}\r\n").as_bytes())
                    .await?;
                let user = self.pop3_reply(false).await?;
                if !user.last().starts_with("+OK") {
                    return Ok(LoginAttempt::Refused(user.summary()));
                }
                self.send(format!("PASS {PROBE_PASSWORD}\r\n").as_bytes())
                    .await?;
                let pass = self.pop3_reply(false).await?;
                Ok(classify_pop3_pass(&pass))
            }
        }
    }

    /// Ends the session politely; errors are of no interest any more.
    pub async fn quit(&mut self) {
        let _ = self.send(quit_command(self.protocol)).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), self.line()).await;
    }

    /// Waits up to `wait` for more bytes and buffers them; a quiet or closed stream is
    /// not an error here.
    pub async fn read_more(&mut self, wait: Duration) -> Result<(), ProbeError> {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(wait, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {}
        }
        Ok(())
    }

    /// Everything the server sends until it closes the stream or `wait` passes.
    pub async fn read_to_end(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return std::mem::take(&mut self.buf),
            }
        }
    }
}

pub(crate) fn starttls_command(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::Smtp => b"STARTTLS\r\n",
        Protocol::Imap => b"s1 STARTTLS\r\n",
        Protocol::Pop3 => b"STLS\r\n",
    }
}

pub(crate) fn starttls_accepted(protocol: Protocol, reply: &Reply) -> bool {
    match protocol {
        Protocol::Smtp => reply.code() == Some(220),
        Protocol::Imap => reply.last().starts_with("s1 OK"),
        Protocol::Pop3 => reply.last().starts_with("+OK"),
    }
}

/// A harmless command the CVE-2011-0411 probe smuggles in after STARTTLS.
pub(crate) fn injected_command(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::Smtp | Protocol::Pop3 => b"NOOP\r\n",
        Protocol::Imap => b"i1 NOOP\r\n",
    }
}

pub(crate) fn quit_command(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::Smtp | Protocol::Pop3 => b"QUIT\r\n",
        Protocol::Imap => b"q1 LOGOUT\r\n",
    }
}

/// Whether the bytes a server sent inside TLS after the probe's own QUIT/LOGOUT include
/// an answer to the injected command (see `injected_command`). The probe sends nothing
/// but QUIT/LOGOUT inside TLS, so any other reply is to the smuggled plaintext.
pub(crate) fn answers_injected_command(protocol: Protocol, inside_tls: &[u8]) -> bool {
    let text = String::from_utf8_lossy(inside_tls);
    let lines = text.lines().map(str::trim_end);
    match protocol {
        // SMTP: a final reply line other than QUIT's 221 ("250 ok" to NOOP, or even
        // "503 send EHLO first": the smuggled command was read as TLS-protected input).
        Protocol::Smtp => lines
            .filter(|l| l.len() >= 3 && l.as_bytes().get(3) != Some(&b'-'))
            .any(|l| !l.starts_with("221")),
        // IMAP: a tagged reply to the smuggled tag.
        Protocol::Imap => lines.into_iter().any(|l| l.starts_with("i1 ")),
        // POP3: replies are untagged; QUIT gets exactly one status line.
        Protocol::Pop3 => {
            lines
                .filter(|l| l.starts_with("+OK") || l.starts_with("-ERR"))
                .count()
                > 1
        }
    }
}

fn smtp_capabilities(reply: &Reply) -> Capabilities {
    let mut caps = Capabilities::default();
    // The first line is the greeting part of EHLO's reply; keywords follow (RFC 5321 §4.1.1.1).
    for line in reply.lines.iter().skip(1) {
        let keyword_line = line.get(4..).unwrap_or("");
        let mut words = keyword_line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("STARTTLS") => caps.starttls = true,
            Some("AUTH") => caps
                .auth_mechanisms
                .extend(words.map(str::to_ascii_uppercase)),
            _ => {}
        }
    }
    caps
}

fn imap_capabilities(reply: &Reply) -> Capabilities {
    let mut caps = Capabilities {
        password_login: true,
        ..Capabilities::default()
    };
    let mut seen = false;
    for line in &reply.lines {
        // Untagged CAPABILITY, or a [CAPABILITY ...] response code on the tagged OK.
        let words: Vec<&str> = line.split_whitespace().collect();
        let start = words
            .iter()
            .position(|w| w.trim_start_matches('[').eq_ignore_ascii_case("CAPABILITY"));
        let Some(start) = start else { continue };
        seen = true;
        for word in &words[start + 1..] {
            let word = word.trim_end_matches(']').to_ascii_uppercase();
            if word == "STARTTLS" {
                caps.starttls = true;
            } else if word == "LOGINDISABLED" {
                caps.password_login = false;
            } else if let Some(mech) = word.strip_prefix("AUTH=") {
                caps.auth_mechanisms.push(mech.to_string());
            }
        }
    }
    if !seen {
        caps.password_login = false;
    }
    caps
}

fn pop3_capabilities(reply: &Reply) -> Capabilities {
    let mut caps = Capabilities::default();
    if !reply.lines.first().is_some_and(|l| l.starts_with("+OK")) {
        return caps;
    }
    for line in reply.lines.iter().skip(1) {
        let mut words = line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("STLS") => caps.starttls = true,
            Some("USER") => caps.password_login = true,
            Some("SASL") => caps
                .auth_mechanisms
                .extend(words.map(str::to_ascii_uppercase)),
            _ => {}
        }
    }
    caps
}

/// 535 (bad credentials), 235 (accepted!), 334 (a challenge) and 454 (temporary failure
/// while checking) mean the credentials were processed; 530/538 (encryption required) and
/// 50x (AUTH unknown, not enabled) mean they were not (RFC 4954 §6, RFC 3207 §4).
fn classify_smtp_login(reply: &Reply) -> LoginAttempt {
    match reply.code() {
        Some(235 | 334 | 454 | 535) => LoginAttempt::Evaluated(reply.summary()),
        _ => LoginAttempt::Refused(reply.summary()),
    }
}

/// `NO [PRIVACYREQUIRED]`, `BAD`, or a `NO` from a server that said LOGINDISABLED mean
/// refused (RFC 9051 §6.2.3, §7.1); any other completion means the password was checked.
fn classify_imap_login(reply: &Reply, capabilities: &Capabilities) -> LoginAttempt {
    let tagged = reply.last().to_ascii_uppercase();
    let refused = tagged.starts_with("L1 BAD")
        || tagged.contains("[PRIVACYREQUIRED]")
        || (tagged.starts_with("L1 NO") && !capabilities.password_login);
    if refused {
        LoginAttempt::Refused(reply.summary())
    } else {
        LoginAttempt::Evaluated(reply.summary())
    }
}

/// After USER was accepted, PASS failing because of the missing TLS is still a refusal.
fn classify_pop3_pass(reply: &Reply) -> LoginAttempt {
    let text = reply.last().to_ascii_lowercase();
    let wants_tls = [
        "tls",
        "ssl",
        "secure",
        "encrypt",
        "plaintext authentication disallowed",
    ]
    .iter()
    .any(|w| text.contains(w));
    if text.starts_with("-err") && wants_tls {
        LoginAttempt::Refused(reply.summary())
    } else {
        LoginAttempt::Evaluated(reply.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(lines: &[&str]) -> Reply {
        Reply {
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    async fn converse(
        protocol: Protocol,
        server: &'static [u8],
    ) -> Conversation<tokio::io::DuplexStream> {
        let (client, mut server_end) = tokio::io::duplex(64 * 1024);
        server_end.write_all(server).await.unwrap();
        drop(server_end);
        Conversation::new(client, protocol)
    }

    #[tokio::test]
    async fn smtp_multiline_reply_keeps_what_follows() {
        let mut c = converse(
            Protocol::Smtp,
            b"250-mx.example.org\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n220 extra",
        )
        .await;
        let r = c.smtp_reply().await.unwrap();
        assert_eq!(r.lines.len(), 3);
        assert_eq!(r.code(), Some(250));
        let caps = smtp_capabilities(&r);
        assert!(caps.starttls);
        assert_eq!(caps.auth_mechanisms, ["PLAIN", "LOGIN"]);
        assert_eq!(c.buffered(), b"220 extra");
    }

    #[tokio::test]
    async fn a_closed_stream_mid_reply_is_an_error() {
        let mut c = converse(Protocol::Smtp, b"250-partial\r\n").await;
        assert!(c.smtp_reply().await.is_err());
    }

    #[tokio::test]
    async fn pop3_capa_is_read_to_the_dot() {
        let mut c = converse(
            Protocol::Pop3,
            b"+OK\r\nUSER\r\nSTLS\r\nSASL PLAIN\r\n.\r\n",
        )
        .await;
        let caps = pop3_capabilities(&c.pop3_reply(true).await.unwrap());
        assert!(caps.starttls && caps.password_login);
        assert_eq!(caps.auth_mechanisms, ["PLAIN"]);
    }

    #[test]
    fn imap_capabilities_see_logindisabled_and_auth() {
        let caps = imap_capabilities(&reply(&[
            "* CAPABILITY IMAP4rev2 STARTTLS LOGINDISABLED",
            "c1 OK done",
        ]));
        assert!(caps.starttls);
        assert!(!caps.offers_authentication());
        let caps = imap_capabilities(&reply(&["c1 OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ok"]));
        assert!(!caps.starttls);
        assert!(caps.password_login);
        assert_eq!(caps.auth_mechanisms, ["PLAIN"]);
    }

    #[test]
    fn smtp_login_replies_are_classified() {
        for (line, evaluated) in [
            ("535 5.7.8 Authentication credentials invalid", true),
            ("334 ", true),
            ("538 5.7.11 Encryption required", false),
            ("530 5.7.0 Must issue a STARTTLS command first", false),
            ("503 5.5.1 Error: authentication not enabled", false),
        ] {
            let got = classify_smtp_login(&reply(&[line]));
            assert_eq!(
                matches!(got, LoginAttempt::Evaluated(_)),
                evaluated,
                "{line}"
            );
        }
    }

    #[test]
    fn imap_and_pop3_login_replies_are_classified() {
        let open = Capabilities {
            password_login: true,
            ..Capabilities::default()
        };
        let closed = Capabilities::default();
        let no = reply(&["l1 NO [AUTHENTICATIONFAILED] bad"]);
        assert!(matches!(
            classify_imap_login(&no, &open),
            LoginAttempt::Evaluated(_)
        ));
        assert!(matches!(
            classify_imap_login(&no, &closed),
            LoginAttempt::Refused(_)
        ));
        let privacy = reply(&["l1 NO [PRIVACYREQUIRED] use TLS"]);
        assert!(matches!(
            classify_imap_login(&privacy, &open),
            LoginAttempt::Refused(_)
        ));
        assert!(matches!(
            classify_pop3_pass(&reply(&["-ERR [AUTH] Plaintext authentication disallowed"])),
            LoginAttempt::Refused(_)
        ));
        assert!(matches!(
            classify_pop3_pass(&reply(&["-ERR [AUTH] Authentication failed."])),
            LoginAttempt::Evaluated(_)
        ));
    }

    #[test]
    fn injected_answers_are_recognised() {
        assert!(answers_injected_command(
            Protocol::Smtp,
            b"250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n"
        ));
        assert!(!answers_injected_command(
            Protocol::Smtp,
            b"221 2.0.0 Bye\r\n"
        ));
        assert!(answers_injected_command(
            Protocol::Smtp,
            b"503 5.5.1 EHLO first\r\n221 Bye\r\n"
        ));
        assert!(answers_injected_command(
            Protocol::Imap,
            b"i1 OK NOOP\r\n* BYE\r\nq1 OK\r\n"
        ));
        assert!(!answers_injected_command(
            Protocol::Imap,
            b"* BYE\r\nq1 OK done\r\n"
        ));
        assert!(answers_injected_command(
            Protocol::Pop3,
            b"+OK\r\n+OK bye\r\n"
        ));
        assert!(!answers_injected_command(Protocol::Pop3, b"+OK bye\r\n"));
    }
}
