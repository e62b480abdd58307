//! What one IMAP session may ask of the server. Every bound here is also what the
//! parser and framer enforce, so a hostile client costs at most this much.

use std::time::Duration;

use crate::framer::FramerLimits;
use crate::parser::ParserLimits;

#[derive(Debug, Clone)]
pub struct ImapLimits {
    /// One command line (literals not included).
    pub max_line: usize,
    /// One literal, and so one APPENDed message; advertised as APPENDLIMIT (RFC 7889).
    pub max_literal: u64,
    pub parser: ParserLimits,
    /// Sessions one account may have open at once, across all connections.
    pub max_sessions_per_account: usize,
    /// An authenticated session silent this long is logged out; RFC 9051 §5.4 asks for
    /// at least 30 minutes, and it applies in IDLE too (clients re-issue IDLE every 29).
    pub autologout: Duration,
    /// The same before authentication, where there is no reason to wait as long.
    pub login_timeout: Duration,
}

impl Default for ImapLimits {
    fn default() -> Self {
        Self {
            max_line: 64 * 1024,
            max_literal: 64 * 1024 * 1024,
            parser: ParserLimits::default(),
            max_sessions_per_account: 50,
            autologout: Duration::from_secs(30 * 60),
            login_timeout: Duration::from_secs(3 * 60),
        }
    }
}

impl ImapLimits {
    pub(crate) fn framer(&self) -> FramerLimits {
        FramerLimits {
            max_literal: self.max_literal,
            // One literal at the limit plus the lines around it.
            max_command: self.max_literal + 4 * self.max_line as u64,
        }
    }
}
