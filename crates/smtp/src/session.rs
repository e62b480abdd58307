//! The SMTP server session as a state machine without I/O: it takes command lines and
//! the results of the work it asked for (lookups, logins, received messages, deliveries)
//! and answers with an [`Action`] for the driver to carry out. Every policy decision of
//! the protocol (what is offered, what is refused, and with which reply) is made here.

use std::borrow::Cow;
use std::net::IpAddr;

use sealpost_mailauth::{InboundVerdict, PolicyAction};
use sealpost_store::{Account, Delivery, DmarcEvaluationRecord};
use sealpost_tls::TlsInfo;
use time::OffsetDateTime;
use tracing::info;

use crate::auth::{self, Credentials, Exchange, Step};
use crate::authentication::{Received, evaluation_record};
use crate::bdat::{ChunkReceiver, ChunkSink};
use crate::body::BodyError;
use crate::commands::{self, Command, MailFrom, Mechanism, RcptTo};
use crate::data::DataReceiver;
use crate::envelope::{INBOX, JUNK, RecipientLookup, RecipientQuery, Transaction};
use crate::received::{Protocol, Trace};
use crate::reply::Reply;
use crate::submission_headers::missing_fields;
use crate::{ListenerKind, SmtpLimits};

/// What a session is, fixed for its lifetime.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    pub kind: ListenerKind,
    pub hostname: String,
    pub limits: SmtpLimits,
    /// A TLS acceptor is at hand, so STARTTLS can be offered on a plaintext port.
    pub starttls: bool,
    /// Port 25 with a verifier: messages are authenticated (SPF, DKIM, DMARC) before they
    /// are stored.
    pub verify: bool,
    /// Submission with a DKIM signer: messages are signed as the sender's domain.
    pub sign: bool,
}

/// The next thing the driver does for the session.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send the reply, then read the next line.
    Reply(Reply),
    /// Send the replies, then end the session.
    Close(Vec<Reply>),
    /// Send the reply, upgrade the connection, then call [`Session::tls_started`].
    StartTls(Reply),
    /// Look the recipient up, then call [`Session::recipient_found`].
    LookupRecipient(RecipientQuery),
    /// Check the credentials, then call [`Session::authenticated`].
    Authenticate(Credentials),
    /// Send the 354 reply, run the receiver to the end of data, then call
    /// [`Session::data_received`].
    ReceiveData(Reply, DataReceiver),
    /// Run the receiver over the chunk's octets, then call [`Session::chunk_received`].
    ReceiveChunk(ChunkReceiver),
    /// Authenticate the message, then call [`Session::verified`].
    Verify(Box<Received>),
    /// Store the message durably, then call [`Session::delivered`] — and only then.
    Deliver(Outgoing),
}

/// A complete message on its way to the store.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub id: String,
    pub delivery: Delivery,
    /// Submission: sign as this domain, inserting the signature at `offset` of the raw
    /// message (after our Received header); what follows it is what gets signed.
    pub sign: Option<(String, usize)>,
    /// Port 25: the DMARC evaluation to keep for aggregate reports once stored.
    pub dmarc: Option<Box<DmarcEvaluationRecord>>,
}

/// How checking credentials went.
#[derive(Debug)]
pub(crate) enum AuthOutcome {
    Accepted(Account),
    Rejected,
    /// Too many failures from this address (the login throttle).
    Throttled,
    /// The store failed.
    Unavailable,
}

/// The client's EHLO or HELO.
#[derive(Debug)]
struct Helo {
    name: String,
    extended: bool,
}

#[derive(Debug)]
pub(crate) struct Session {
    config: SessionConfig,
    peer: IpAddr,
    tls: Option<TlsInfo>,
    helo: Option<Helo>,
    user: Option<Account>,
    transaction: Option<Transaction>,
    /// A SASL exchange waiting for the client's response line.
    sasl: Option<Exchange>,
    /// 5xx replies sent so far.
    errors: u32,
    /// Messages stored so far.
    accepted: u32,
}

impl Session {
    /// `tls` is the handshake report when the connection is TLS from the start (465).
    pub(crate) fn new(config: SessionConfig, peer: IpAddr, tls: Option<TlsInfo>) -> Self {
        Self {
            config,
            peer,
            tls,
            helo: None,
            user: None,
            transaction: None,
            sasl: None,
            errors: 0,
            accepted: 0,
        }
    }

    pub(crate) fn greeting(&self) -> Reply {
        Reply::greeting(&self.config.hostname)
    }

    pub(crate) fn peer(&self) -> IpAddr {
        self.peer
    }

    /// How long the client may stay silent before the session ends.
    pub(crate) fn idle_timeout(&self) -> std::time::Duration {
        self.config.limits.idle_timeout
    }

    pub(crate) fn kind(&self) -> ListenerKind {
        self.config.kind
    }

    pub(crate) fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// The authenticated account's address.
    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|account| account.address.as_str())
    }

    pub(crate) fn messages_accepted(&self) -> u32 {
        self.accepted
    }

    /// Identities of a verified TLS client certificate, for AUTH EXTERNAL.
    pub(crate) fn certificate_identities(&self) -> &[String] {
        self.tls.as_ref().map_or(&[], TlsInfo::verified_identities)
    }

    /// A BDAT transaction is under way; it finishes before a shutdown ends the session.
    pub(crate) fn is_receiving_chunks(&self) -> bool {
        self.transaction
            .as_ref()
            .is_some_and(Transaction::is_chunking)
    }

    /// The longest line the next read may return.
    pub(crate) fn line_limit(&self) -> usize {
        if self.sasl.is_some() {
            auth::MAX_RESPONSE_LINE
        } else {
            self.config.limits.max_command_line
        }
    }

    /// A line from the client: a command, or the response to a SASL challenge.
    pub(crate) fn on_line(&mut self, line: &[u8]) -> Action {
        let action = match self.sasl.take() {
            Some(exchange) => self.sasl_step(auth::respond(exchange, line)),
            None => match commands::parse(line) {
                Ok(command) => self.command(command),
                Err(error) => Action::Reply(error.reply()),
            },
        };
        self.conclude(action)
    }

    /// A line longer than [`Session::line_limit`] was read and discarded.
    pub(crate) fn on_line_too_long(&mut self) -> Action {
        self.sasl = None;
        self.conclude(Action::Reply(Reply::command_line_too_long()))
    }

    pub(crate) fn recipient_found(
        &mut self,
        query: RecipientQuery,
        lookup: RecipientLookup,
    ) -> Action {
        let may_relay = self.config.kind != ListenerKind::Mx && self.user.is_some();
        let Some(transaction) = self.transaction.as_mut() else {
            return self.conclude(Action::Reply(Reply::bad_sequence("need MAIL command")));
        };
        let reply = match lookup {
            RecipientLookup::Account(account) => {
                transaction.add_local(query.address, account.id);
                Reply::recipient_ok()
            }
            RecipientLookup::UnknownLocal => Reply::unknown_recipient(),
            RecipientLookup::Remote if may_relay => {
                transaction.add_remote(query.address);
                Reply::recipient_ok()
            }
            RecipientLookup::Remote => {
                info!(peer = %self.peer, recipient = %query.address, "relay access denied");
                Reply::relay_denied()
            }
            RecipientLookup::Unavailable => Reply::store_unavailable(),
        };
        self.conclude(Action::Reply(reply))
    }

    pub(crate) fn authenticated(
        &mut self,
        credentials: Credentials,
        outcome: AuthOutcome,
    ) -> Action {
        let reply = match outcome {
            AuthOutcome::Accepted(account) => {
                let authzid_refused = match &credentials {
                    Credentials::Certificate {
                        authzid: Some(authzid),
                    } => authzid.to_lowercase() != account.address,
                    _ => false,
                };
                if authzid_refused {
                    info!(peer = %self.peer, user = %account.address, "AUTH EXTERNAL authzid refused");
                    Reply::auth_failed()
                } else {
                    info!(peer = %self.peer, user = %account.address, "authenticated");
                    self.user = Some(account);
                    Reply::auth_succeeded()
                }
            }
            AuthOutcome::Rejected => {
                let user = match &credentials {
                    Credentials::Password { username, .. } => username.as_str(),
                    Credentials::Certificate { .. } => "(certificate)",
                };
                info!(peer = %self.peer, %user, "authentication failed");
                Reply::auth_failed()
            }
            AuthOutcome::Throttled => Reply::auth_throttled(),
            AuthOutcome::Unavailable => Reply::auth_unavailable(),
        };
        self.conclude(Action::Reply(reply))
    }

    /// The connection is now TLS. Everything learned before is forgotten (RFC 3207
    /// §4.2): the client must EHLO again, and no AUTH or transaction carries over.
    pub(crate) fn tls_started(&mut self, tls: TlsInfo) {
        self.tls = Some(tls);
        self.helo = None;
        self.user = None;
        self.transaction = None;
        self.sasl = None;
    }

    pub(crate) fn data_received(&mut self, receiver: DataReceiver, now: OffsetDateTime) -> Action {
        let Some(transaction) = self.transaction.take() else {
            return self.conclude(Action::Reply(Reply::bad_sequence("need MAIL command")));
        };
        let action = match receiver.finish() {
            Ok(content) => self.complete(transaction, content, now),
            Err(error) => Action::Reply(self.refuse_message(error)),
        };
        self.conclude(action)
    }

    pub(crate) fn chunk_received(
        &mut self,
        receiver: ChunkReceiver,
        now: OffsetDateTime,
    ) -> Action {
        let (sink, size, last) = receiver.into_parts();
        let action = match sink {
            ChunkSink::Refused(reply) => {
                if last {
                    self.transaction = None;
                }
                Action::Reply(reply)
            }
            ChunkSink::Message(body) if !last => {
                let too_big = body.error() == Some(BodyError::TooBig);
                match self.transaction.as_mut() {
                    Some(transaction) => {
                        transaction.put_chunks(body);
                        Action::Reply(if too_big {
                            Reply::message_too_big()
                        } else {
                            Reply::chunk_received(size)
                        })
                    }
                    None => Action::Reply(Reply::bad_sequence("need MAIL command")),
                }
            }
            ChunkSink::Message(body) => match (self.transaction.take(), body.finish()) {
                (None, _) => Action::Reply(Reply::bad_sequence("need MAIL command")),
                (Some(transaction), Ok(content)) => self.complete(transaction, content, now),
                (Some(_), Err(error)) => Action::Reply(self.refuse_message(error)),
            },
        };
        self.conclude(action)
    }

    /// The verifier's verdict on a [`Action::Verify`]: refused now (550 5.7.1), refused for
    /// now (451 4.7.1), or on to the store with the Authentication-Results header and, for
    /// quarantine, into Junk. `cleaned` is the content without forged
    /// Authentication-Results fields, when there were any.
    /// Without a verdict (no verifier after all) the message is stored unannotated.
    pub(crate) fn verified(
        &mut self,
        received: Received,
        verdict: Option<InboundVerdict>,
        cleaned: Option<Vec<u8>>,
    ) -> Action {
        let Received {
            transaction,
            content,
            date,
        } = received;
        let Some(verdict) = verdict else {
            return Action::Deliver(self.outgoing(transaction, "", content, date, false));
        };
        let junk = match &verdict.action {
            PolicyAction::Accept => false,
            PolicyAction::Quarantine => true,
            PolicyAction::Reject(reason) => {
                info!(peer = %self.peer, id = transaction.id(), %reason, "message refused by DMARC policy");
                return self.conclude(Action::Reply(Reply::refused_by_policy(reason)));
            }
            PolicyAction::TempFail(reason) => {
                info!(peer = %self.peer, id = transaction.id(), %reason, "message deferred: authentication incomplete");
                return self.conclude(Action::Reply(Reply::authentication_unavailable(reason)));
            }
        };
        let dmarc = verdict.dmarc.as_ref().map(|outcome| {
            Box::new(evaluation_record(
                outcome,
                transaction.first_recipient_domain(),
                date.unix_timestamp(),
            ))
        });
        let content = cleaned.unwrap_or(content);
        let mut outgoing = self.outgoing(transaction, &verdict.header, content, date, junk);
        outgoing.dmarc = dmarc;
        self.conclude(Action::Deliver(outgoing))
    }

    /// The store answered a [`Action::Deliver`]; `stored` means it is on disk.
    pub(crate) fn delivered(&mut self, id: &str, stored: bool) -> Action {
        let reply = if stored {
            self.accepted += 1;
            Reply::message_accepted(id)
        } else {
            Reply::store_unavailable()
        };
        self.conclude(Action::Reply(reply))
    }

    fn command(&mut self, command: Command) -> Action {
        match command {
            Command::Ehlo(name) => self.hello(name, true),
            Command::Helo(name) => self.hello(name, false),
            Command::Mail(from) => self.mail(from),
            Command::Rcpt(to) => self.rcpt(to),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Command::StartTls => self.starttls(),
            Command::Rset => {
                self.transaction = None;
                Action::Reply(Reply::ok())
            }
            Command::Noop => Action::Reply(Reply::ok()),
            Command::Vrfy => Action::Reply(Reply::vrfy()),
            Command::Help => Action::Reply(Reply::help()),
            Command::Quit => Action::Close(vec![Reply::closing(&self.config.hostname)]),
            Command::NotImplemented => Action::Reply(Reply::not_implemented()),
        }
    }

    /// EHLO/HELO (RFC 5321 §4.1.1.1); either one also aborts a transaction.
    fn hello(&mut self, name: String, extended: bool) -> Action {
        self.transaction = None;
        self.helo = Some(Helo { name, extended });
        if !extended {
            return Action::Reply(Reply::helo(&self.config.hostname));
        }
        let mut lines: Vec<Cow<'static, str>> = vec![
            self.config.hostname.clone().into(),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.limits.max_message_size).into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        // RFC 8689: REQUIRETLS means something only on a TLS session.
        if self.tls.is_some() {
            lines.push("REQUIRETLS".into());
        }
        if self.starttls_offered() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push(if self.certificate_identities().is_empty() {
                "AUTH PLAIN LOGIN".into()
            } else {
                "AUTH PLAIN LOGIN EXTERNAL".into()
            });
        }
        Action::Reply(Reply::multiline(250, lines))
    }

    /// STARTTLS only where the connection is plaintext and can be upgraded (never 465).
    fn starttls_offered(&self) -> bool {
        self.tls.is_none() && self.config.starttls && self.config.kind != ListenerKind::Submissions
    }

    /// AUTH only on the submission ports and only under TLS (DESIGN.md, RFC 8314 §3).
    fn auth_offered(&self) -> bool {
        self.tls.is_some() && self.config.kind != ListenerKind::Mx
    }

    fn starttls(&mut self) -> Action {
        if self.tls.is_some() {
            return Action::Reply(Reply::bad_sequence("TLS already active"));
        }
        if !self.starttls_offered() {
            return Action::Reply(Reply::not_implemented());
        }
        Action::StartTls(Reply::ready_for_tls())
    }

    fn auth(&mut self, mechanism: Option<Mechanism>, initial_response: Option<String>) -> Action {
        if self.config.kind == ListenerKind::Mx {
            return Action::Reply(Reply::auth_not_available());
        }
        if self.tls.is_none() {
            return Action::Reply(Reply::encryption_required());
        }
        if self.helo.is_none() {
            return Action::Reply(Reply::bad_sequence("send EHLO first"));
        }
        if self.user.is_some() {
            return Action::Reply(Reply::bad_sequence("already authenticated"));
        }
        if self.transaction.is_some() {
            return Action::Reply(Reply::bad_sequence(
                "AUTH not allowed during a mail transaction",
            ));
        }
        let Some(mechanism) = mechanism else {
            return Action::Reply(Reply::unknown_mechanism());
        };
        if mechanism == Mechanism::External && self.certificate_identities().is_empty() {
            return Action::Reply(Reply::unknown_mechanism());
        }
        self.sasl_step(auth::start(mechanism, initial_response.as_deref()))
    }

    fn sasl_step(&mut self, step: Step) -> Action {
        match step {
            Step::Challenge(reply, exchange) => {
                self.sasl = Some(exchange);
                Action::Reply(reply)
            }
            Step::Credentials(credentials) => Action::Authenticate(credentials),
            Step::Failed(reply) => Action::Reply(reply),
        }
    }

    fn mail(&mut self, from: MailFrom) -> Action {
        if self.helo.is_none() {
            return Action::Reply(Reply::bad_sequence("send EHLO/HELO first"));
        }
        if self.transaction.is_some() {
            return Action::Reply(Reply::bad_sequence("nested MAIL command"));
        }
        if self.config.kind != ListenerKind::Mx && self.user.is_none() {
            return Action::Reply(Reply::auth_required());
        }
        if from.size > self.config.limits.max_message_size {
            return Action::Reply(Reply::message_too_big());
        }
        if !from.smtputf8 && !from.address.is_ascii() {
            return Action::Reply(Reply::utf8_address_without_smtputf8());
        }
        // RFC 8689 §2: REQUIRETLS is used only over TLS (it is not offered before). 530
        // with 5.7.10 "encryption needed", as for STARTTLS required (RFC 3207 §4).
        if from.require_tls && self.tls.is_none() {
            return Action::Reply(Reply::new(530, "5.7.10 REQUIRETLS needs a TLS session"));
        }
        // A submission client may only send as itself (RFC 6409 §4.2), never as `<>`.
        if let Some(user) = &self.user
            && self.config.kind != ListenerKind::Mx
            && (from.address.is_empty() || from.address.to_lowercase() != user.address)
        {
            info!(peer = %self.peer, user = %user.address, sender = %from.address, "sender not owned");
            return Action::Reply(Reply::sender_not_owned());
        }
        self.transaction = Some(Transaction::new(
            from.address,
            from.smtputf8,
            from.require_tls,
        ));
        Action::Reply(Reply::sender_ok())
    }

    fn rcpt(&mut self, to: RcptTo) -> Action {
        let Some(transaction) = &self.transaction else {
            return Action::Reply(Reply::bad_sequence("need MAIL command"));
        };
        if transaction.is_chunking() {
            return Action::Reply(Reply::bad_sequence("RCPT not allowed after BDAT"));
        }
        if !transaction.smtputf8() && !to.address.is_ascii() {
            return Action::Reply(Reply::utf8_address_without_smtputf8());
        }
        if transaction.recipient_count() >= self.config.limits.max_recipients {
            return Action::Reply(Reply::too_many_recipients());
        }
        Action::LookupRecipient(RecipientQuery::new(&to.address, &self.config.hostname))
    }

    fn data(&mut self) -> Action {
        let Some(transaction) = &self.transaction else {
            return Action::Reply(Reply::bad_sequence("need MAIL command"));
        };
        if transaction.is_chunking() {
            return Action::Reply(Reply::bad_sequence("DATA not allowed after BDAT"));
        }
        if transaction.recipient_count() == 0 {
            return Action::Reply(Reply::no_valid_recipients());
        }
        let limits = &self.config.limits;
        Action::ReceiveData(
            Reply::start_mail_input(),
            DataReceiver::new(limits.max_message_size, limits.max_text_line),
        )
    }

    /// BDAT's chunk is read whatever the answer (RFC 3030 §2), so a refusal is a receiver
    /// that drops the octets.
    fn bdat(&mut self, size: usize, last: bool) -> Action {
        let max_size = self.config.limits.max_message_size;
        let receiver = match self.transaction.as_mut() {
            None => ChunkReceiver::refused(Reply::bad_sequence("need MAIL command"), size, last),
            Some(transaction) if transaction.recipient_count() == 0 => {
                ChunkReceiver::refused(Reply::no_valid_recipients(), size, last)
            }
            Some(transaction) => ChunkReceiver::new(transaction.take_chunks(max_size), size, last),
        };
        Action::ReceiveChunk(receiver)
    }

    fn refuse_message(&self, error: BodyError) -> Reply {
        info!(peer = %self.peer, ?error, "message refused");
        error.reply()
    }

    /// A message received in full: authenticated first on port 25 when verification is
    /// on, otherwise on to the store.
    fn complete(&self, transaction: Transaction, content: Vec<u8>, now: OffsetDateTime) -> Action {
        if self.config.verify && self.config.kind == ListenerKind::Mx {
            return Action::Verify(Box::new(Received {
                transaction,
                content,
                date: now,
            }));
        }
        Action::Deliver(self.outgoing(transaction, "", content, now, false))
    }

    /// The HELO name and the peer, for the verifier.
    pub(crate) fn client(&self) -> (IpAddr, &str) {
        (
            self.peer,
            self.helo.as_ref().map_or("", |helo| helo.name.as_str()),
        )
    }

    /// The stored form: our Received header, on port 25 the Authentication-Results
    /// header, on submission any missing Date/Message-ID, then exactly the octets the
    /// client sent (on port 25 less forged Authentication-Results). `junk` delivers the
    /// local copies to Junk instead of INBOX.
    fn outgoing(
        &self,
        transaction: Transaction,
        authentication_results: &str,
        content: Vec<u8>,
        now: OffsetDateTime,
        junk: bool,
    ) -> Outgoing {
        let (helo, extended) = self
            .helo
            .as_ref()
            .map_or(("unknown", false), |h| (h.name.as_str(), h.extended));
        let trace = Trace {
            helo,
            peer: self.peer,
            hostname: &self.config.hostname,
            protocol: Protocol::of(extended, self.tls.is_some(), self.user.is_some()),
            tls: self.tls.as_ref(),
            id: transaction.id(),
            recipient: transaction.single_recipient(),
            date: now,
        };
        let mut raw = trace.header().into_bytes();
        raw.extend_from_slice(authentication_results.as_bytes());
        let signed_from = raw.len();
        if self.config.kind != ListenerKind::Mx {
            raw.extend_from_slice(missing_fields(&content, &self.config.hostname, now).as_bytes());
        }
        raw.extend_from_slice(&content);
        // The sender's domain: on submission MAIL FROM is the account's own address.
        let sign = transaction
            .sender()
            .rsplit_once('@')
            .filter(|_| self.config.sign && self.config.kind != ListenerKind::Mx)
            .map(|(_, domain)| (domain.to_string(), signed_from));
        let id = transaction.id().to_string();
        let mailbox = if junk { JUNK } else { INBOX };
        Outgoing {
            id,
            delivery: transaction.into_delivery(raw, now.unix_timestamp(), mailbox),
            sign,
            dmarc: None,
        }
    }

    /// Counts 5xx replies; past `max_errors` the session says 421 and ends.
    fn conclude(&mut self, action: Action) -> Action {
        match action {
            Action::Reply(reply) if reply.is_permanent_error() => {
                self.errors = self.errors.saturating_add(1);
                if self.errors >= self.config.limits.max_errors {
                    info!(peer = %self.peer, errors = self.errors, "too many errors");
                    Action::Close(vec![reply, Reply::too_many_errors()])
                } else {
                    Action::Reply(reply)
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
