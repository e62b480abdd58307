//! The parsed form of a client command (RFC 9051 §6, RFC 3501 §6 and the extensions we
//! advertise). The parser builds it; the session acts on it. Mailbox names stay raw
//! bytes here because how to decode them (modified UTF-7 or UTF-8) depends on whether
//! the session has enabled IMAP4rev2.

use crate::section::Section;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub body: CommandBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    Capability,
    Noop,
    Logout,
    StartTls,
    /// `initial` is the SASL-IR initial response still base64-encoded (`=` for empty).
    Authenticate {
        mechanism: String,
        initial: Option<Vec<u8>>,
    },
    Login {
        user: Vec<u8>,
        password: Vec<u8>,
    },
    Enable(Vec<String>),
    Select {
        mailbox: Vec<u8>,
        read_only: bool,
        params: SelectParams,
    },
    Create(Vec<u8>),
    Delete(Vec<u8>),
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
    List(ListCommand),
    Lsub {
        reference: Vec<u8>,
        pattern: Vec<u8>,
    },
    Namespace,
    Status {
        mailbox: Vec<u8>,
        items: Vec<StatusItem>,
    },
    Append(AppendCommand),
    Idle,
    Check,
    Close,
    Unselect,
    /// `uids` is set for UID EXPUNGE (RFC 4315).
    Expunge {
        uids: Option<SequenceSet>,
    },
    Search(SearchCommand),
    Fetch(FetchCommand),
    Store(StoreCommand),
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    /// RFC 2971; `None` is the client's `NIL`.
    Id(Option<Vec<(String, Option<String>)>>),
}

impl CommandBody {
    /// The command's name as a reply text uses it (`UID FETCH` is `FETCH`).
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::Capability => "CAPABILITY",
            CommandBody::Noop => "NOOP",
            CommandBody::Logout => "LOGOUT",
            CommandBody::StartTls => "STARTTLS",
            CommandBody::Authenticate { .. } => "AUTHENTICATE",
            CommandBody::Login { .. } => "LOGIN",
            CommandBody::Enable(_) => "ENABLE",
            CommandBody::Select {
                read_only: false, ..
            } => "SELECT",
            CommandBody::Select {
                read_only: true, ..
            } => "EXAMINE",
            CommandBody::Create(_) => "CREATE",
            CommandBody::Delete(_) => "DELETE",
            CommandBody::Rename { .. } => "RENAME",
            CommandBody::Subscribe(_) => "SUBSCRIBE",
            CommandBody::Unsubscribe(_) => "UNSUBSCRIBE",
            CommandBody::List(_) => "LIST",
            CommandBody::Lsub { .. } => "LSUB",
            CommandBody::Namespace => "NAMESPACE",
            CommandBody::Status { .. } => "STATUS",
            CommandBody::Append(_) => "APPEND",
            CommandBody::Idle => "IDLE",
            CommandBody::Check => "CHECK",
            CommandBody::Close => "CLOSE",
            CommandBody::Unselect => "UNSELECT",
            CommandBody::Expunge { .. } => "EXPUNGE",
            CommandBody::Search(_) => "SEARCH",
            CommandBody::Fetch(_) => "FETCH",
            CommandBody::Store(_) => "STORE",
            CommandBody::Copy { .. } => "COPY",
            CommandBody::Move { .. } => "MOVE",
            CommandBody::Id(_) => "ID",
        }
    }
}

/// SELECT/EXAMINE parameters (RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectParams {
    pub condstore: bool,
    pub qresync: Option<QresyncParams>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QresyncParams {
    pub uid_validity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
    /// (known sequence numbers, the UIDs they had): lets the server narrow VANISHED.
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// A message number or UID, or `*`: the largest one in use (RFC 9051 §9, `seq-number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNumber {
    Value(u32),
    Largest,
}

impl SeqNumber {
    fn resolve(self, largest: u32) -> u32 {
        match self {
            SeqNumber::Value(n) => n,
            SeqNumber::Largest => largest,
        }
    }
}

/// `1,4:7,9:*`, in the order the client wrote it; a range may be written backwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(SeqNumber, SeqNumber)>);

impl SequenceSet {
    /// Whether `n` is in the set, with `*` standing for `largest`.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (a.resolve(largest), b.resolve(largest));
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            (low..=high).contains(&n)
        })
    }

    /// The ranges with `*` resolved, each low..=high.
    pub fn ranges(&self, largest: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.0.iter().map(move |&(a, b)| {
            let (a, b) = (a.resolve(largest), b.resolve(largest));
            if a <= b { (a, b) } else { (b, a) }
        })
    }
}

/// LIST with the RFC 5258 (LIST-EXTENDED) and RFC 5819 (LIST-STATUS) options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListCommand {
    pub selection: Vec<ListSelection>,
    pub reference: Vec<u8>,
    pub patterns: Vec<Vec<u8>>,
    pub returns: Vec<ListReturn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSelection {
    Subscribed,
    Remote,
    RecursiveMatch,
    SpecialUse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturn {
    Subscribed,
    Children,
    SpecialUse,
    Status(Vec<StatusItem>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    HighestModSeq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendCommand {
    pub mailbox: Vec<u8>,
    pub flags: Vec<String>,
    /// Seconds since the Unix epoch.
    pub date: Option<i64>,
    pub message: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCommand {
    pub uid: bool,
    /// `None` without RETURN; `Some(vec![])` for `RETURN ()`, which means ALL.
    pub returns: Option<Vec<SearchReturn>>,
    pub charset: Option<String>,
    pub key: SearchKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
}

/// A date as SEARCH gives it (no time of day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchDate {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// RFC 9051 §6.4.4 search keys; a list of keys is their conjunction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    SequenceSet(SequenceSet),
    Uid(SequenceSet),
    /// A system flag set (`ANSWERED`, `SEEN`, ...) or a keyword (`KEYWORD x`).
    Flag(String),
    /// `UNANSWERED`, `UNSEEN`, `UNKEYWORD x`, ...
    NoFlag(String),
    /// RFC 3501 `NEW` (recent and unseen); we have no recent messages.
    New,
    Old,
    Recent,
    Before(SearchDate),
    On(SearchDate),
    Since(SearchDate),
    SentBefore(SearchDate),
    SentOn(SearchDate),
    SentSince(SearchDate),
    Larger(u64),
    Smaller(u64),
    Header(String, String),
    Body(String),
    Text(String),
    ModSeq(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchCommand {
    pub uid: bool,
    pub set: SequenceSet,
    pub attributes: Vec<FetchAttribute>,
    /// RFC 7162 CHANGEDSINCE modifier.
    pub changed_since: Option<u64>,
    /// RFC 7162 §3.2.6 VANISHED modifier (UID FETCH with CHANGEDSINCE only).
    pub vanished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttribute {
    Envelope,
    Flags,
    InternalDate,
    Rfc822,
    Rfc822Header,
    Rfc822Size,
    Rfc822Text,
    /// `BODY` without a section: BODYSTRUCTURE without extension data.
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    BodySection {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    BinarySize {
        part: Vec<u32>,
    },
}

impl FetchAttribute {
    /// Whether answering it marks the message `\Seen` (RFC 9051 §6.4.5).
    pub fn sets_seen(&self) -> bool {
        matches!(
            self,
            FetchAttribute::Rfc822
                | FetchAttribute::Rfc822Text
                | FetchAttribute::BodySection { peek: false, .. }
                | FetchAttribute::Binary { peek: false, .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOperation {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCommand {
    pub uid: bool,
    pub set: SequenceSet,
    pub unchanged_since: Option<u64>,
    pub operation: StoreOperation,
    pub silent: bool,
    pub flags: Vec<String>,
}
