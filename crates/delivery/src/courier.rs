//! One outbound connection at work: it asks the policy engine for the destination's
//! route, tries the hosts in order until one gives a session with the TLS the policy
//! demands, then carries parcel after parcel from the destination's queue over that one
//! session, reporting every recipient's outcome to its entry.
//!
//! TLS, per host (the engine decides `tls_required`; the handshake's verifier enforces
//! the certificate): STARTTLS whenever offered. A host that must have TLS but offers no
//! STARTTLS or fails the handshake is skipped with a reason that says so; otherwise a
//! failed handshake is retried in plaintext on a new connection (opportunistic TLS, as
//! Postfix's `may`). A message with REQUIRETLS also needs the REQUIRETLS extension after
//! STARTTLS (RFC 8689 §4.2.1); when no host has it, the message fails with 5.7.30.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sealpost_smtp::client::{
    ClientEnvelope, ClientError, ClientSession, ClientSettings, Transaction,
};
use sealpost_store::Store;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::DeliverySettings;
use crate::attempt::EntryAttempt;
use crate::delivery_log::{DeliveryLine, NO_ROUTE_POLICY};
use crate::destination::{DestinationKey, DestinationQueue, DomainLimits, Parcel};
use crate::outcome::{Peer, RecipientOutcome, transaction_outcomes};
use crate::policy::{
    HostPlan, PolicyEngine, Route, RouteError, RouteRequest, SessionTls, Verification,
};

/// How long a connection that has run out of parcels waits for more before QUIT
/// (Postfix's connection cache keeps idle sessions 2 s).
const LINGER: Duration = Duration::from_secs(3);

/// Recipients per transaction: every server must take 100 (RFC 5321 §4.5.3.1.8).
const RECIPIENTS_PER_TRANSACTION: usize = 100;

/// Addresses tried for one session before the destination counts as unreachable, so a
/// domain with many dead MX addresses cannot hold a connection for hours.
const MAX_ADDRESSES: usize = 10;

/// What every connection shares.
pub(crate) struct Courier {
    pub store: Arc<dyn Store>,
    pub engine: PolicyEngine,
    pub settings: Arc<DeliverySettings>,
    pub client: ClientSettings,
    /// `max_connections`.
    pub connections: Arc<Semaphore>,
    /// `per_destination`.
    pub domains: DomainLimits,
    /// Entries whose every domain has reported, to be written to the store.
    pub done: mpsc::UnboundedSender<Arc<EntryAttempt>>,
    /// Turns true at shutdown: no new parcel is started.
    pub stopping: watch::Receiver<bool>,
}

/// A session ready for transactions, with what it took to get it.
struct OpenSession {
    session: ClientSession,
    host: HostPlan,
    ip: IpAddr,
    tls: SessionTls,
    /// Parcels carried so far: a reused session that fails before any reply gets the
    /// parcel retried on a fresh one.
    carried: usize,
}

/// Why one address gave no usable session.
struct HostFailure {
    host: HostPlan,
    ip: Option<IpAddr>,
    tls: SessionTls,
    reason: String,
    reply: Option<String>,
    /// It had TLS but not the REQUIRETLS extension the message needs.
    requiretls_missing: bool,
}

/// What a parcel left the session as.
enum AfterParcel {
    Usable,
    /// The connection is gone (the client drops it after any I/O, timeout or protocol
    /// error, and the server said 421).
    Broken,
    /// A reused session broke before the server answered anything: this parcel gets a
    /// fresh session instead of a deferral (an idle connection the server closed).
    Retry(Parcel),
}

impl Courier {
    /// Serves one destination's queue until it is empty (or the worker stops). The
    /// queue counted this connection when it asked for it; every way out leaves it.
    pub async fn run(self: Arc<Self>, queue: Arc<DestinationQueue>) {
        let _domain_slot = self.domains.acquire(&queue.key.domain).await;
        let Ok(_connection_slot) = self.connections.clone().acquire_owned().await else {
            queue.leave();
            return;
        };
        if self.is_stopping() {
            queue.leave();
            return;
        }
        let Some(mut parcel) = queue.next_or_leave() else {
            return;
        };
        let request = route_request(&queue.key);
        loop {
            let route = match self.engine.route(&request).await {
                Ok(route) => route,
                Err(error) => {
                    let mut parcels = vec![parcel];
                    parcels.extend(queue.take_all());
                    queue.leave();
                    for parcel in parcels {
                        self.settle_unrouted(parcel, &queue.key, &error);
                    }
                    return;
                }
            };
            let mut open = match self.establish(&route, queue.key.require_tls).await {
                Ok(open) => open,
                Err(failures) => {
                    let mut parcels = vec![parcel];
                    parcels.extend(queue.leave_unreachable());
                    for parcel in parcels {
                        self.settle_unreachable(parcel, &route, &failures);
                    }
                    return;
                }
            };
            // Parcels over this session until it breaks or nothing more comes.
            parcel = loop {
                match self.carry(&mut open, &route, parcel).await {
                    AfterParcel::Retry(again) => break again,
                    AfterParcel::Broken => {
                        if self.is_stopping() {
                            queue.leave();
                            return;
                        }
                        match queue.next_or_leave() {
                            Some(next) => break next,
                            None => return,
                        }
                    }
                    AfterParcel::Usable => {
                        let mut stop = self.stopping.clone();
                        let next = queue.next_or_leave_after(LINGER, &mut stop).await;
                        match next {
                            Some(next) => parcel = next,
                            None => {
                                open.session.quit().await;
                                return;
                            }
                        }
                    }
                }
            };
        }
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// The first session the route's hosts give, in order; every address's failure
    /// when none does.
    async fn establish(
        &self,
        route: &Route,
        require_tls: bool,
    ) -> Result<OpenSession, Vec<HostFailure>> {
        let mut failures = Vec::new();
        for host in &route.hosts {
            if host.addresses.is_empty() {
                failures.push(HostFailure {
                    host: host.clone(),
                    ip: None,
                    tls: SessionTls::Unreachable,
                    reason: format!("{} has no address", host.name),
                    reply: None,
                    requiretls_missing: false,
                });
            }
            for &ip in &host.addresses {
                if failures.len() >= MAX_ADDRESSES {
                    return Err(failures);
                }
                match self.open_session(route, host, ip, require_tls).await {
                    Ok(open) => return Ok(open),
                    Err(failure) => failures.push(failure),
                }
            }
        }
        Err(failures)
    }

    /// Connects to one address and brings the session to the TLS its host needs;
    /// tells the engine what TLS looked like.
    async fn open_session(
        &self,
        route: &Route,
        host: &HostPlan,
        ip: IpAddr,
        require_tls: bool,
    ) -> Result<OpenSession, HostFailure> {
        let address = SocketAddr::new(ip, self.settings.port);
        let tls_required = host.tls_required || require_tls;
        let failure = |tls: SessionTls, reason: String, reply: Option<String>| HostFailure {
            host: host.clone(),
            ip: Some(ip),
            tls,
            reason,
            reply,
            requiretls_missing: false,
        };
        let open = |session: ClientSession, tls: SessionTls| OpenSession {
            session,
            host: host.clone(),
            ip,
            tls,
            carried: 0,
        };

        let mut session = match ClientSession::connect(address, &self.client).await {
            Ok(session) => session,
            Err(error) => {
                self.engine
                    .learn(route, host, ip, &SessionTls::Unreachable)
                    .await;
                return Err(failure(
                    SessionTls::Unreachable,
                    format!("{} [{ip}]: {error}", host.name),
                    rejection(&error),
                ));
            }
        };
        if !session.capabilities().starttls {
            let tls = SessionTls::NoStarttls;
            self.engine.learn(route, host, ip, &tls).await;
            if tls_required {
                session.quit().await;
                return Err(failure(
                    tls,
                    format!(
                        "TLS required by {} but {} [{ip}] offered no STARTTLS",
                        host.policy.as_str(),
                        host.name
                    ),
                    None,
                ));
            }
            return Ok(open(session, tls));
        }

        let connector = host.verification.connector();
        match session
            .starttls(connector.config.clone(), connector.server_name.clone())
            .await
        {
            Ok(details) => {
                let verification =
                    connector
                        .verdict
                        .get()
                        .cloned()
                        .unwrap_or_else(|| Verification::Failed {
                            result_type: "validation-failure",
                            detail: "the certificate was never judged".into(),
                        });
                let tls = SessionTls::Tls {
                    version: details.version,
                    cipher: details.cipher,
                    verification,
                };
                self.engine.learn(route, host, ip, &tls).await;
                if require_tls && !session.capabilities().requiretls {
                    session.quit().await;
                    return Err(HostFailure {
                        requiretls_missing: true,
                        ..failure(
                            tls,
                            format!(
                                "REQUIRETLS: {} [{ip}] does not offer the REQUIRETLS extension",
                                host.name
                            ),
                            None,
                        )
                    });
                }
                Ok(open(session, tls))
            }
            Err(error) => {
                let tls = SessionTls::HandshakeFailed {
                    detail: error.to_string(),
                    verification: connector.verdict.get().cloned(),
                };
                self.engine.learn(route, host, ip, &tls).await;
                if tls_required {
                    return Err(failure(
                        tls,
                        format!(
                            "TLS required by {} but STARTTLS with {} [{ip}] failed: {error}",
                            host.policy.as_str(),
                            host.name
                        ),
                        rejection(&error),
                    ));
                }
                // Opportunistic TLS: the same server again, in plaintext.
                match ClientSession::connect(address, &self.client).await {
                    Ok(session) => Ok(open(session, tls)),
                    Err(again) => Err(failure(
                        tls,
                        format!(
                            "{} [{ip}]: STARTTLS failed ({error}), then in plaintext: {again}",
                            host.name
                        ),
                        rejection(&again),
                    )),
                }
            }
        }
    }

    /// Sends one parcel over the session and reports its recipients' outcomes.
    async fn carry(&self, open: &mut OpenSession, route: &Route, parcel: Parcel) -> AfterParcel {
        let entry = &parcel.attempt.entry;
        let message = match self.store.queue_message(entry.id).await {
            Ok(Some(message)) => message,
            // Dropped by the admin meanwhile: nothing to send, nothing to report.
            Ok(None) => {
                self.report(parcel, Vec::new(), None);
                return AfterParcel::Usable;
            }
            Err(error) => {
                let outcome =
                    RecipientOutcome::deferred(format!("cannot read the queued message: {error}"));
                let outcomes = every(&parcel.recipients, &outcome);
                self.log_session(open, route, entry.id, &outcomes);
                self.report(parcel, outcomes, None);
                return AfterParcel::Usable;
            }
        };
        let peer = Peer {
            mx: &open.host.name,
            ip: open.ip,
        };
        let mut outcomes = Vec::with_capacity(parcel.recipients.len());
        let mut after = AfterParcel::Usable;
        for chunk in parcel.recipients.chunks(RECIPIENTS_PER_TRANSACTION) {
            if !matches!(after, AfterParcel::Usable) {
                let lost = RecipientOutcome::deferred(format!(
                    "{} [{}]: the connection was lost before this transaction",
                    open.host.name, open.ip
                ));
                outcomes.extend(every(chunk, &lost));
                continue;
            }
            let envelope = ClientEnvelope {
                sender: entry.sender.clone(),
                recipients: chunk.to_vec(),
                require_tls: entry.require_tls,
            };
            match open.session.send(&envelope, &message).await {
                Ok(transaction) => {
                    if closes_session(&transaction) {
                        after = AfterParcel::Broken;
                    }
                    let decided = transaction_outcomes(&transaction, chunk.len(), peer);
                    outcomes.extend(chunk.iter().cloned().zip(decided));
                }
                Err(error) => {
                    // A reused session the server had closed fails before the message
                    // goes out; one that failed after it may have delivered it, and
                    // that waits for the backoff like any other deferral.
                    if open.carried > 0
                        && outcomes.is_empty()
                        && !error.is_permanent()
                        && !open.session.message_may_have_arrived()
                    {
                        return AfterParcel::Retry(parcel);
                    }
                    if !matches!(error, ClientError::Unsupported(_)) {
                        after = AfterParcel::Broken;
                    }
                    outcomes.extend(every(chunk, &RecipientOutcome::from_error(&error, peer)));
                }
            }
        }
        open.carried += 1;
        self.log_session(open, route, entry.id, &outcomes);
        let policy = policy_note(&open.host, &open.tls);
        self.report(parcel, outcomes, Some(policy));
        after
    }

    /// Gives a parcel's outcomes to its entry; the entry goes to be written once its
    /// last domain has reported.
    fn report(
        &self,
        parcel: Parcel,
        outcomes: Vec<(String, crate::outcome::RecipientOutcome)>,
        policy: Option<String>,
    ) {
        if parcel.attempt.report(outcomes, policy) {
            // The worker is gone only at the very end of shutdown; the lease covers it.
            let _ = self.done.send(parcel.attempt);
        }
    }

    fn log_session(
        &self,
        open: &OpenSession,
        route: &Route,
        id: i64,
        outcomes: &[(String, RecipientOutcome)],
    ) {
        let tls = match &open.tls {
            SessionTls::Tls {
                version, cipher, ..
            } => Some((version.as_str(), cipher.as_str())),
            _ => None,
        };
        let policy = PolicyEngine::explain(route, &open.host, &open.tls);
        DeliveryLine {
            id,
            domain: &route.domain,
            mx: Some(&open.host.name),
            ip: Some(open.ip),
            tls,
            policy: &policy,
            outcomes,
        }
        .log();
    }

    /// The domain has no route now: every recipient shares the reason.
    fn settle_unrouted(&self, parcel: Parcel, key: &DestinationKey, error: &RouteError) {
        let outcome = match error {
            RouteError::NullMx(_) => {
                RecipientOutcome::failed((5, 1, 10), format!("{error} (RFC 7505)"))
            }
            RouteError::NoSuchDomain(_) => RecipientOutcome::failed((5, 1, 2), error.to_string()),
            RouteError::RequireTlsUnmet(_) => {
                RecipientOutcome::failed((5, 7, 30), error.to_string())
            }
            RouteError::Temporary(_) => RecipientOutcome::deferred(error.to_string()),
        };
        let outcomes = every(&parcel.recipients, &outcome);
        DeliveryLine {
            id: parcel.attempt.entry.id,
            domain: &key.domain,
            mx: None,
            ip: None,
            tls: None,
            policy: NO_ROUTE_POLICY,
            outcomes: &outcomes,
        }
        .log();
        self.report(parcel, outcomes, None);
    }

    /// No host gave a usable session: deferred with every host's reason, or failed
    /// 5.7.30 when each one lacked REQUIRETLS (RFC 8689 §4.2.1).
    fn settle_unreachable(&self, parcel: Parcel, route: &Route, failures: &[HostFailure]) {
        let reasons: Vec<&str> = failures.iter().map(|f| f.reason.as_str()).collect();
        let reason = if reasons.is_empty() {
            format!("no host of {} to try", route.domain)
        } else {
            reasons.join("; ")
        };
        let requiretls_unmet =
            !failures.is_empty() && failures.iter().all(|f| f.requiretls_missing);
        let last = failures.last();
        let mut outcome = if requiretls_unmet {
            RecipientOutcome::failed((5, 7, 30), reason)
        } else {
            RecipientOutcome::deferred(reason)
        };
        outcome.reply = last.and_then(|f| f.reply.clone());
        outcome.remote_mta = last.map(|f| f.host.name.clone());
        let outcomes = every(&parcel.recipients, &outcome);
        let policy = match last {
            Some(failure) => PolicyEngine::explain(route, &failure.host, &failure.tls),
            None => NO_ROUTE_POLICY.to_string(),
        };
        let tls = last.and_then(|f| match &f.tls {
            SessionTls::Tls {
                version, cipher, ..
            } => Some((version.as_str(), cipher.as_str())),
            _ => None,
        });
        DeliveryLine {
            id: parcel.attempt.entry.id,
            domain: &route.domain,
            mx: last.map(|f| f.host.name.as_str()),
            ip: last.and_then(|f| f.ip),
            tls,
            policy: &policy,
            outcomes: &outcomes,
        }
        .log();
        let policy = last.map(|f| policy_note(&f.host, &f.tls));
        self.report(parcel, outcomes, policy);
    }
}

fn route_request(key: &DestinationKey) -> RouteRequest {
    RouteRequest {
        domain: key.domain.clone(),
        require_tls: key.require_tls,
        tls_required_no: key.tls_required_no,
    }
}

fn every(recipients: &[String], outcome: &RecipientOutcome) -> Vec<(String, RecipientOutcome)> {
    recipients
        .iter()
        .map(|address| (address.clone(), outcome.clone()))
        .collect()
}

/// The server's reply when it refused the session outright (greeting, EHLO, STARTTLS).
fn rejection(error: &ClientError) -> Option<String> {
    match error {
        ClientError::Rejected { reply, .. } => Some(reply.to_string()),
        _ => None,
    }
}

/// A 421 anywhere means the server is closing the connection (RFC 5321 §3.8).
fn closes_session(transaction: &Transaction) -> bool {
    std::iter::once(&transaction.mail)
        .chain(&transaction.recipients)
        .chain(&transaction.data)
        .any(|reply| reply.code == 421)
}

/// The policy and what came of it, as `sealpost queue list` shows it:
/// `mta-sts-enforce: verified (pkix)`.
fn policy_note(host: &HostPlan, tls: &SessionTls) -> String {
    let how = match tls {
        SessionTls::Tls {
            verification: Verification::Verified { how },
            ..
        } => format!("verified ({how})"),
        SessionTls::Tls {
            verification: Verification::Failed { result_type, .. },
            ..
        } => format!("TLS, not verified ({result_type})"),
        SessionTls::NoStarttls => "plaintext (no STARTTLS)".to_string(),
        SessionTls::HandshakeFailed { .. } => "TLS handshake failed".to_string(),
        SessionTls::Unreachable => "not connected".to_string(),
    };
    format!("{}: {how}", host.policy.as_str())
}
