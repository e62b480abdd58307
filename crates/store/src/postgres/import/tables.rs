//! What is copied, table by table, in an order that respects the foreign keys: each
//! table's columns as the embedded store has them and as PostgreSQL stores them. Ids are
//! kept, so references between tables need no translation and a resumed copy recognises
//! the rows it already wrote.

/// How a column travels: read from SQLite as this, bound to PostgreSQL as an array of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `bigint` (also into `integer` columns, by PostgreSQL's assignment cast).
    Int,
    Text,
    /// SQLite's 0/1 integers as `boolean`.
    Bool,
    Bytes,
    /// The embedded store's space-separated flags as a `text[]`.
    Flags,
}

pub(super) struct Column {
    /// The SQLite expression, usually the column name.
    pub(super) source: &'static str,
    /// The PostgreSQL column.
    pub(super) target: &'static str,
    pub(super) kind: Kind,
}

pub(super) struct Table {
    pub(super) name: &'static str,
    /// The SQLite ORDER BY: rows go in key order, so a batch is a contiguous range.
    pub(super) order: &'static str,
    pub(super) columns: &'static [Column],
    /// What a row that is already there does (a resumed copy).
    pub(super) on_conflict: &'static str,
    /// The identity column whose sequence must move past the copied ids.
    pub(super) identity: Option<&'static str>,
}

const fn column(name: &'static str, kind: Kind) -> Column {
    Column {
        source: name,
        target: name,
        kind,
    }
}

const fn renamed(source: &'static str, target: &'static str, kind: Kind) -> Column {
    Column {
        source,
        target,
        kind,
    }
}

use Kind::{Bool, Bytes, Flags, Int, Text};

const SKIP: &str = "ON CONFLICT DO NOTHING";

pub(super) const TABLES: &[Table] = &[
    Table {
        name: "domains",
        order: "name",
        columns: &[column("name", Text)],
        on_conflict: SKIP,
        identity: None,
    },
    Table {
        name: "accounts",
        order: "id",
        columns: &[
            column("id", Int),
            column("address", Text),
            column("domain", Text),
            column("password_hash", Text),
        ],
        on_conflict: SKIP,
        identity: Some("id"),
    },
    Table {
        name: "mailboxes",
        order: "id",
        columns: &[
            column("id", Int),
            column("account", Int),
            column("name", Text),
            column("uid_validity", Int),
            column("uid_next", Int),
            column("highest_modseq", Int),
            column("special_use", Text),
            column("subscribed", Bool),
        ],
        // Counters only ever grow: a resumed copy never hands a UID out again.
        on_conflict: "ON CONFLICT (id) DO UPDATE SET \
            uid_next = GREATEST(mailboxes.uid_next, excluded.uid_next), \
            highest_modseq = GREATEST(mailboxes.highest_modseq, excluded.highest_modseq)",
        identity: Some("id"),
    },
    Table {
        name: "blobs",
        order: "id",
        columns: &[column("id", Int), column("raw", Bytes)],
        on_conflict: SKIP,
        identity: Some("id"),
    },
    Table {
        name: "messages",
        order: "mailbox, uid",
        columns: &[
            column("mailbox", Int),
            column("uid", Int),
            column("blob", Int),
            column("flags", Flags),
            column("internal_date", Int),
            column("size", Int),
            column("modseq", Int),
        ],
        on_conflict: SKIP,
        identity: None,
    },
    Table {
        name: "expunged",
        order: "mailbox, uid",
        columns: &[
            column("mailbox", Int),
            column("uid", Int),
            column("modseq", Int),
        ],
        on_conflict: SKIP,
        identity: None,
    },
    Table {
        name: "queue",
        order: "id",
        // The lease is not copied: a worker of the old store holds nothing here.
        columns: &[
            column("id", Int),
            column("blob", Int),
            column("sender", Text),
            column("size", Int),
            column("created", Int),
            column("next_attempt", Int),
            column("attempts", Int),
            column("require_tls", Bool),
            column("policy", Text),
        ],
        on_conflict: SKIP,
        identity: Some("id"),
    },
    Table {
        name: "queue_recipients",
        order: "queue, position",
        columns: &[
            column("queue", Int),
            column("position", Int),
            column("address", Text),
            column("status", Text),
            column("last_error", Text),
        ],
        on_conflict: SKIP,
        identity: None,
    },
    Table {
        name: "delivery_memos",
        order: "kind, domain",
        columns: &[
            column("kind", Text),
            column("domain", Text),
            column("value", Text),
        ],
        on_conflict: SKIP,
        identity: None,
    },
    Table {
        name: "tls_results",
        order: "id",
        columns: &[
            column("id", Int),
            column("at", Int),
            column("policy_domain", Text),
            column("policy_type", Text),
            column("policy_strings", Text),
            column("mx_host", Text),
            column("receiving_ip", Text),
            column("result_type", Text),
            column("failure_detail", Text),
        ],
        on_conflict: SKIP,
        identity: Some("id"),
    },
    Table {
        name: "reports_sent",
        order: "kind, policy_domain, begin",
        columns: &[
            column("kind", Text),
            column("policy_domain", Text),
            renamed("begin", "begin_at", Int),
            renamed("end", "end_at", Int),
            column("report_id", Text),
            column("queue_id", Int),
        ],
        on_conflict: SKIP,
        identity: None,
    },
    Table {
        name: "dmarc_evaluations",
        order: "id",
        columns: &[
            column("id", Int),
            column("evaluated_at", Int),
            column("source_ip", Text),
            column("header_from", Text),
            column("envelope_from", Text),
            column("envelope_to", Text),
            column("policy_domain", Text),
            column("p", Text),
            column("sp", Text),
            column("np", Text),
            column("adkim_strict", Bool),
            column("aspf_strict", Bool),
            column("testing", Bool),
            column("fo", Text),
            column("disposition", Text),
            column("dkim_aligned", Bool),
            column("spf_aligned", Bool),
            column("dkim", Text),
            column("spf", Text),
            column("rua", Text),
        ],
        on_conflict: SKIP,
        identity: Some("id"),
    },
    Table {
        name: "dmarc_reports",
        order: "id",
        columns: &[
            column("id", Int),
            column("org_name", Text),
            column("email", Text),
            column("report_id", Text),
            renamed("begin", "begin_at", Int),
            renamed("end", "end_at", Int),
            column("policy_domain", Text),
            column("p", Text),
            column("sp", Text),
            column("np", Text),
            column("adkim_strict", Bool),
            column("aspf_strict", Bool),
            column("testing", Bool),
            column("fo", Text),
        ],
        on_conflict: SKIP,
        identity: Some("id"),
    },
    Table {
        name: "dmarc_report_rows",
        order: "report, position",
        columns: &[
            column("report", Int),
            column("position", Int),
            column("source_ip", Text),
            column("count", Int),
            column("disposition", Text),
            column("dkim_aligned", Bool),
            column("spf_aligned", Bool),
            column("header_from", Text),
            column("envelope_from", Text),
            column("dkim", Text),
            column("spf", Text),
        ],
        on_conflict: SKIP,
        identity: None,
    },
];

impl Table {
    /// Reads every row in key order.
    pub(super) fn select(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.source))
            .collect();
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            self.name,
            self.order
        )
    }

    /// Inserts a batch given as one array parameter per column.
    pub(super) fn insert(&self) -> String {
        let targets: Vec<&str> = self.columns.iter().map(|c| c.target).collect();
        let mut arrays = Vec::new();
        let mut values = Vec::new();
        for (i, column) in self.columns.iter().enumerate() {
            let array_type = match column.kind {
                Kind::Int => "bigint[]",
                Kind::Text | Kind::Flags => "text[]",
                Kind::Bool => "boolean[]",
                Kind::Bytes => "bytea[]",
            };
            arrays.push(format!("${}::{array_type}", i + 1));
            values.push(match column.kind {
                Kind::Flags => format!("string_to_array(u.c{i}, ' ')"),
                _ => format!("u.c{i}"),
            });
        }
        let names: Vec<String> = (0..self.columns.len()).map(|i| format!("c{i}")).collect();
        format!(
            "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS u({}) {}",
            self.name,
            targets.join(", "),
            values.join(", "),
            arrays.join(", "),
            names.join(", "),
            self.on_conflict
        )
    }
}
