use std::sync::Arc;

pub type AccountId = i64;
pub type MailboxId = i64;
pub type QueueId = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// Lower-case `local@domain`.
    pub address: String,
    /// PHC string (argon2id), see [`crate::password`].
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account: AccountId,
    pub name: String,
    pub uid_validity: u32,
    /// The UID the next message will get; UIDs are never reused.
    pub uid_next: u32,
    pub highest_modseq: u64,
    /// RFC 6154 attribute, e.g. `\Sent`.
    pub special_use: Option<String>,
    pub subscribed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub mailbox: MailboxId,
    pub uid: u32,
    pub flags: Vec<String>,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
    pub size: u64,
    pub modseq: u64,
}

/// Where a local copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    pub account: AccountId,
    pub mailbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<String>,
    /// The message was sent with REQUIRETLS (RFC 8689): every hop must be verified TLS.
    pub require_tls: bool,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message exactly as it will be read back (trace headers included).
    pub raw: Arc<Vec<u8>>,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
    pub local: Vec<LocalTarget>,
    pub outbound: Option<Outbound>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// One per local target, in the same order.
    pub messages: Vec<(MailboxId, u32)>,
    pub queue_id: Option<QueueId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: QueueId,
    pub sender: String,
    pub recipients: Vec<QueueRecipient>,
    pub size: u64,
    pub created: i64,
    pub next_attempt: i64,
    pub attempts: u32,
    /// REQUIRETLS (RFC 8689) was asked for when the message was submitted.
    pub require_tls: bool,
    /// The TLS policy of the last attempt, as `sealpost queue list` shows it.
    pub policy: Option<String>,
}

/// What one delivery attempt did to a queue entry (`Store::finish_queue_attempt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueAttempt {
    pub id: QueueId,
    /// Recipients whose state changed, by address: `Delivered`, `Failed` (permanent, or
    /// given up), or `Pending` with the error that deferred them.
    pub recipients: Vec<QueueRecipient>,
    /// When the recipients still pending are tried again (seconds since the epoch).
    pub next_attempt: i64,
    /// The TLS policy that applied and its verdict, e.g. `mta-sts enforce: verified`.
    pub policy: Option<String>,
}

/// The TLS outcome of one outbound SMTP session, for TLS-RPT (RFC 8460 §4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSessionResult {
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// The recipient domain whose policy applied.
    pub policy_domain: String,
    /// `sts`, `tlsa` or `no-policy-found`.
    pub policy_type: String,
    /// The policy as RFC 8460 §4.4 lists it: the MTA-STS policy's lines, or the TLSA
    /// records in presentation format.
    pub policy_strings: Vec<String>,
    /// The MX name the session was with.
    pub mx_host: String,
    pub receiving_ip: Option<std::net::IpAddr>,
    /// `None` for a successful session; otherwise the result type, e.g.
    /// `certificate-host-mismatch`, `starttls-not-supported`, `validation-failure`.
    pub result_type: Option<String>,
    /// Human-readable detail of a failure.
    pub failure_detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecipient {
    pub address: String,
    pub status: RecipientStatus,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientStatus {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub raw: Arc<Vec<u8>>,
    pub flags: Vec<String>,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub uid_validity: u32,
    pub uid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOperation {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    pub uids: Vec<u32>,
    pub operation: FlagOperation,
    pub flags: Vec<String>,
    pub unchanged_since: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagsUpdated {
    /// Messages whose flags changed, with their new flags and MODSEQ.
    pub changed: Vec<MessageMeta>,
    /// UIDs left alone because their MODSEQ exceeded `unchanged_since`.
    pub modified: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub uid_validity: u32,
    /// (source UID, new UID), in source UID order.
    pub uids: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    MessageAdded {
        account: AccountId,
        mailbox: MailboxId,
        uid: u32,
    },
    FlagsChanged {
        account: AccountId,
        mailbox: MailboxId,
        uids: Vec<u32>,
    },
    Expunged {
        account: AccountId,
        mailbox: MailboxId,
        uids: Vec<u32>,
    },
    MailboxesChanged {
        account: AccountId,
    },
    QueueAdded {
        id: QueueId,
    },
}

/// A lock that sessions on every node sharing the store honour (see
/// [`crate::Store::try_session_lock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionLock {
    /// POP3's exclusive access to an account's maildrop (RFC 1939 §8).
    Pop3Maildrop(AccountId),
    /// One of the `max_sessions_per_account` IMAP session slots of an account.
    ImapSession { account: AccountId, slot: u32 },
}

/// Holds a [`SessionLock`] while it lives; dropping it frees the lock.
pub struct SessionLockGuard {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl SessionLockGuard {
    /// A guard that frees the lock by calling `release` when dropped.
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            release: Some(Box::new(release)),
        }
    }

    /// A guard with nothing to free: the store has no locks beyond the process's own.
    pub fn process_local() -> Self {
        Self { release: None }
    }
}

impl Drop for SessionLockGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for SessionLockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLockGuard")
            .field("shared", &self.release.is_some())
            .finish()
    }
}

/// A DMARC policy or the disposition applied to a message (RFC 9990 `DispositionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DmarcDisposition {
    None,
    Quarantine,
    Reject,
}

impl DmarcDisposition {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcDisposition::None => "none",
            DmarcDisposition::Quarantine => "quarantine",
            DmarcDisposition::Reject => "reject",
        }
    }

    /// Case-insensitive; `None` for anything but the three values.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::None, Self::Quarantine, Self::Reject]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

/// The DMARC record that applied, as RFC 9990's `policy_published` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcPolicyPublished {
    pub p: DmarcDisposition,
    pub sp: Option<DmarcDisposition>,
    /// RFC 9989 `np`: the policy for non-existent subdomains.
    pub np: Option<DmarcDisposition>,
    /// `adkim=s`; relaxed otherwise.
    pub adkim_strict: bool,
    /// `aspf=s`; relaxed otherwise.
    pub aspf_strict: bool,
    /// RFC 9989 `t=y`.
    pub testing: bool,
    /// The `fo=` value, if the record had one.
    pub fo: Option<String>,
}

/// One DKIM signature's result (RFC 9990 `DKIMAuthResultType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimAuthResult {
    pub domain: String,
    pub selector: String,
    /// `none`, `pass`, `fail`, `policy`, `neutral`, `temperror` or `permerror`.
    pub result: String,
}

/// The SPF result (RFC 9990 `SPFAuthResultType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfAuthResult {
    pub domain: String,
    /// `mfrom` or `helo`.
    pub scope: String,
    /// `none`, `neutral`, `pass`, `fail`, `softfail`, `temperror` or `permerror`.
    pub result: String,
}

/// One DMARC evaluation of a message received on port 25, kept for the aggregate
/// reports sealpost sends to the policy domain's `rua` (RFC 9990).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcEvaluationRecord {
    /// Seconds since the Unix epoch.
    pub evaluated_at: i64,
    pub source_ip: std::net::IpAddr,
    /// The RFC5322.From domain.
    pub header_from: String,
    /// The RFC5321.MailFrom domain (the HELO name for the null sender).
    pub envelope_from: String,
    /// The recipient's domain.
    pub envelope_to: String,
    /// The domain whose DMARC record applied (the From domain or the one the tree walk
    /// found above it).
    pub policy_domain: String,
    pub policy: DmarcPolicyPublished,
    /// What was done with the message.
    pub disposition: DmarcDisposition,
    /// DMARC's verdicts: an aligned DKIM pass, an aligned SPF pass.
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    pub dkim: Vec<DkimAuthResult>,
    pub spf: Option<SpfAuthResult>,
    /// The record's `rua` URIs as published, e.g. `mailto:dmarc@example.org`.
    pub rua: Vec<String>,
}

/// An aggregate report sealpost has built (DMARC or TLS-RPT), to be queued once per
/// policy domain and period.
#[derive(Debug, Clone)]
pub struct OutgoingReport {
    pub policy_domain: String,
    /// The period covered, seconds since the Unix epoch.
    pub begin: i64,
    pub end: i64,
    pub report_id: String,
    /// The report message and its outbound recipients.
    pub delivery: Delivery,
}

/// An aggregate report received from another organisation (RFC 9990 `feedback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcAggregateReport {
    pub org_name: String,
    pub email: String,
    pub report_id: String,
    /// The period covered, seconds since the Unix epoch.
    pub begin: i64,
    pub end: i64,
    pub policy_domain: String,
    pub policy: DmarcPolicyPublished,
    pub rows: Vec<DmarcReportRow>,
}

/// One `record` of an aggregate report: a source and what happened to its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcReportRow {
    pub source_ip: Option<std::net::IpAddr>,
    pub count: u64,
    pub disposition: DmarcDisposition,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    pub header_from: String,
    pub envelope_from: String,
    pub dkim: Vec<DkimAuthResult>,
    pub spf: Vec<SpfAuthResult>,
}
