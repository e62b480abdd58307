//! Every fixed reply the server sends, so the wording lives in one place. Response codes
//! in brackets are RFC 2449 §8 (`[IN-USE]`) and RFC 3206 (`[AUTH]`, `[SYS/TEMP]`).

use std::time::Duration;

pub fn ok(text: &str) -> Vec<u8> {
    if text.is_empty() {
        return b"+OK\r\n".to_vec();
    }
    format!("+OK {text}\r\n").into_bytes()
}

pub fn err(text: &str) -> Vec<u8> {
    format!("-ERR {text}\r\n").into_bytes()
}

/// No APOP timestamp: APOP needs the password stored in the clear (RFC 1939 §7).
pub const GREETING: &[u8] = b"+OK sealpost POP3 ready\r\n";

pub fn signing_off(hostname: &str) -> Vec<u8> {
    ok(&format!("{hostname} POP3 server signing off"))
}

pub fn signing_off_after_update(hostname: &str, deleted: usize) -> Vec<u8> {
    ok(&format!(
        "{hostname} POP3 server signing off ({deleted} messages deleted)"
    ))
}

/// RFC 1939 §6: the deletions did not all happen.
pub fn update_failed() -> Vec<u8> {
    err("[SYS/TEMP] some deleted messages not removed; they will reappear")
}

pub fn shutting_down() -> Vec<u8> {
    err("server shutting down")
}

pub fn idle_timeout() -> Vec<u8> {
    err("idle too long, closing connection")
}

pub fn too_many_errors() -> Vec<u8> {
    err("too many errors, closing connection")
}

pub fn line_too_long() -> Vec<u8> {
    err("line too long (RFC 2449: at most 255 octets)")
}

pub fn unknown_command() -> Vec<u8> {
    err("unknown command")
}

pub fn not_in_authorization() -> Vec<u8> {
    err("not valid before login")
}

pub fn not_in_transaction() -> Vec<u8> {
    err("already logged in")
}

/// RFC 2595 §4: the server may refuse USER/PASS/AUTH until TLS is up.
pub fn tls_required() -> Vec<u8> {
    err("[AUTH] login is only offered over TLS; use STLS first")
}

pub fn already_tls() -> Vec<u8> {
    err("TLS already active")
}

pub fn begin_tls() -> Vec<u8> {
    ok("begin TLS negotiation")
}

pub fn send_pass() -> Vec<u8> {
    ok("send PASS")
}

pub fn user_first() -> Vec<u8> {
    err("USER first")
}

/// The same for an unknown user and a wrong password, so neither is revealed.
pub fn invalid_credentials() -> Vec<u8> {
    err("[AUTH] invalid credentials")
}

pub fn throttled(retry_after: Duration) -> Vec<u8> {
    err(&format!(
        "[SYS/TEMP] too many failed logins from your address; retry in {}s",
        retry_after.as_secs().max(1)
    ))
}

pub fn in_use() -> Vec<u8> {
    err("[IN-USE] maildrop already in use by another POP3 session")
}

pub fn temporary_failure() -> Vec<u8> {
    err("[SYS/TEMP] temporary server failure, try again later")
}

pub fn unsupported_mechanism() -> Vec<u8> {
    err("unsupported authentication mechanism")
}

pub fn no_client_certificate() -> Vec<u8> {
    err("[AUTH] no verified client certificate")
}

/// A SASL server challenge with no data (RFC 5034 §4).
pub const EMPTY_CHALLENGE: &[u8] = b"+ \r\n";

pub fn auth_cancelled() -> Vec<u8> {
    err("authentication cancelled")
}

pub fn maildrop_opened(address: &str, count: usize, octets: u64) -> Vec<u8> {
    ok(&format!("{address} has {count} messages ({octets} octets)"))
}

pub fn no_such_message() -> Vec<u8> {
    err("no such message")
}

pub fn already_deleted(number: usize) -> Vec<u8> {
    err(&format!("message {number} already deleted"))
}

pub fn message_gone() -> Vec<u8> {
    err("message was removed by another session")
}
