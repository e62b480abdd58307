//! POP3 server sessions (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034) on
//! ports 110 (STLS) and 995 (implicit TLS).
//!
//! [`Session`] is the protocol without I/O; [`Pop3Service::serve`] drives it over a
//! [`MailStream`], doing the store look-ups, the TLS upgrade and the timing it asks for.

mod capabilities;
mod command;
mod driver;
mod maildrop;
mod maildrop_lock;
mod multiline;
mod reply;
mod sasl;
mod session;

use std::sync::Arc;
use std::time::Duration;

use sealpost_store::{Login, Store};
use sealpost_tls::{MailStream, TlsAcceptor};
use tokio::sync::watch;

pub use capabilities::Security;
pub use command::{AuthStart, Command, CommandError, MAX_COMMAND_LINE, MessageNumber, Secret};
pub use maildrop::{Maildrop, MaildropMessage, NoSuchMessage};
pub use maildrop_lock::{MaildropLock, MaildropLocks};
pub use session::{Credentials, Deletions, Fetch, LoginOutcome, Session, Step, Summary};

#[derive(Debug, Clone)]
pub struct Pop3Limits {
    /// A session waiting this long for a command is closed, without UPDATE. RFC 1939 §3
    /// asks for at least 10 minutes.
    pub idle_timeout: Duration,
    /// Protocol errors (unknown commands, failed logins, ...) before the session is closed.
    pub max_errors: u32,
}

impl Default for Pop3Limits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10 * 60),
            max_errors: 10,
        }
    }
}

pub struct Pop3Service {
    pub hostname: String,
    pub store: Arc<dyn Store>,
    pub login: Arc<Login>,
    /// Used for STLS on port 110.
    pub tls: TlsAcceptor,
    pub limits: Pop3Limits,
    /// Which maildrops have a session; the services of ports 110 and 995 must share one.
    pub maildrop_locks: MaildropLocks,
}

impl Pop3Service {
    /// A service with default limits and the process-wide maildrop locks, so the
    /// services built for 110 and 995 exclude each other's sessions.
    pub fn new(
        hostname: String,
        store: Arc<dyn Store>,
        login: Arc<Login>,
        tls: TlsAcceptor,
    ) -> Self {
        Self {
            hostname,
            store,
            login,
            tls,
            limits: Pop3Limits::default(),
            maildrop_locks: MaildropLocks::process_wide(),
        }
    }

    /// Runs one session to its end; `stream` is already TLS on port 995. When `shutdown`
    /// turns true, a session waiting for a command says so and closes, without UPDATE.
    pub async fn serve(&self, stream: MailStream, shutdown: watch::Receiver<bool>) {
        driver::run(self, stream, shutdown).await;
    }
}
