//! Certificate renewal without a restart: reload on SIGHUP, and when a certificate or key
//! file changes (polled, because renewal tools replace files in every possible way and
//! a stat every few seconds costs nothing).

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::server::TlsServer;

/// How often certificate and key files are checked for changes.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

impl TlsServer {
    /// Spawns a task (on the current tokio runtime) that reloads on SIGHUP and when a
    /// certificate or key file's size, mtime or inode changes, and logs the outcome. A
    /// failed reload keeps the certificates in use. The task ends when the server is
    /// dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (a wiring mistake, not something input can cause).
    pub fn watch(self: &Arc<Self>) {
        // Registered here, not in the task, so a SIGHUP right after `watch` returns is
        // already ours rather than the default action (terminate).
        let hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP; certificates reload on file change only");
                None
            }
        };
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut hangup = hangup;
            let mut poll = tokio::time::interval(POLL_INTERVAL);
            poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                let cause = tokio::select! {
                    _ = poll.tick() => None,
                    () = next_hangup(&mut hangup) => Some("SIGHUP"),
                };
                let Some(server) = weak.upgrade() else {
                    return;
                };
                // Stats and small file reads, but off the async workers all the same.
                let outcome = tokio::task::spawn_blocking(move || {
                    let cause = match cause {
                        Some(cause) => cause,
                        None if server.files_changed() => "file change",
                        None => return None,
                    };
                    Some((cause, server.reload().map(|()| server)))
                })
                .await;
                match outcome {
                    Ok(None) => {}
                    Ok(Some((cause, Ok(server)))) => {
                        info!(cause, "TLS certificates reloaded");
                        server.log_certificates("in use");
                    }
                    Ok(Some((cause, Err(e)))) => {
                        warn!(cause, error = %e, "TLS reload failed; keeping the certificates in use");
                    }
                    Err(e) => warn!(error = %e, "TLS reload task failed"),
                }
            }
        });
    }
}

/// The next SIGHUP; never, if SIGHUP could not be registered or its stream ended.
async fn next_hangup(hangup: &mut Option<Signal>) {
    if let Some(signal) = hangup
        && signal.recv().await.is_some()
    {
        return;
    }
    *hangup = None;
    pending().await
}
