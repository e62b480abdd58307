//! STORE (RFC 9051 §6.4.6) with CONDSTORE's UNCHANGEDSINCE and MODIFIED (RFC 7162
//! §3.1.3).

use std::fmt::Write as _;

use sealpost_store::{FlagOperation, FlagUpdate, Store};

use super::store_failure;
use crate::command::{StoreCommand, StoreOperation};
use crate::response::{Completion, flag_list, sequence_set, untagged};
use crate::selected::{Enabled, SelectedMailbox};

pub(super) async fn store(
    store: &dyn Store,
    selected: &mut SelectedMailbox,
    command: &StoreCommand,
    enabled: &mut Enabled,
    out: &mut Vec<u8>,
) -> Completion {
    if selected.read_only {
        return Completion::no("mailbox is read-only").with_code("READ-ONLY");
    }
    if command.unchanged_since.is_some() {
        // A CONDSTORE-enabling command (RFC 7162 §3.1).
        enabled.condstore = true;
    }
    let targets = selected.resolve(&command.set, command.uid);
    if targets.is_empty() {
        return Completion::ok("STORE completed");
    }
    let update = FlagUpdate {
        uids: targets.iter().map(|&(_, uid)| uid).collect(),
        operation: match command.operation {
            StoreOperation::Add => FlagOperation::Add,
            StoreOperation::Remove => FlagOperation::Remove,
            StoreOperation::Replace => FlagOperation::Replace,
        },
        // \Recent is the server's to set, never the client's (RFC 3501 §2.3.2).
        flags: command
            .flags
            .iter()
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .cloned()
            .collect(),
        unchanged_since: command.unchanged_since,
    };
    let updated = match store.update_flags(selected.id, update).await {
        Ok(updated) => updated,
        Err(error) => return store_failure(&error),
    };
    let mut changed = updated.changed;
    changed.sort_by_key(|m| m.uid);
    let mut line = String::new();
    for meta in &changed {
        selected.seen_modseq(meta.uid, meta.modseq);
        let Some(seq) = selected.seq_of(meta.uid) else {
            continue;
        };
        if command.silent && !enabled.condstore {
            continue;
        }
        line.clear();
        let _ = write!(line, "{seq} FETCH (");
        if command.uid {
            let _ = write!(line, "UID {} ", meta.uid);
        }
        if !command.silent {
            line.push_str("FLAGS ");
            flag_list(&mut line, &meta.flags);
            line.push(' ');
        }
        if enabled.condstore {
            let _ = write!(line, "MODSEQ ({})", meta.modseq);
        }
        let trimmed = line.trim_end().to_string();
        untagged(out, &format!("{trimmed})"));
    }
    if updated.modified.is_empty() {
        return Completion::ok("STORE completed");
    }
    let mut modified: Vec<u32> = if command.uid {
        updated.modified
    } else {
        updated
            .modified
            .iter()
            .filter_map(|&uid| selected.seq_of(uid))
            .collect()
    };
    modified.sort_unstable();
    Completion::ok("conditional STORE failed for some messages")
        .with_code(format!("MODIFIED {}", sequence_set(&modified)))
}
