//! COPY (RFC 9051 §6.4.7) and MOVE (RFC 6851), answering with UIDPLUS's COPYUID.

use sealpost_store::{Copied, Store};

use super::mailbox::find;
use super::{Authenticated, store_failure};
use crate::command::SequenceSet;
use crate::response::{Completion, sequence_set, untagged};
use crate::selected::{Enabled, SelectedMailbox};

pub(super) async fn copy(
    store: &dyn Store,
    auth: &Authenticated,
    selected: &mut SelectedMailbox,
    uid: bool,
    set: &SequenceSet,
    target: &[u8],
    enabled: Enabled,
) -> Completion {
    let target = match find(store, auth, target, enabled, "TRYCREATE").await {
        Ok(mailbox) => mailbox,
        Err(refusal) => return refusal,
    };
    let uids: Vec<u32> = selected
        .resolve(set, uid)
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    if uids.is_empty() {
        return Completion::ok("COPY completed (no messages)");
    }
    match store.copy_messages(selected.id, uids, target.id).await {
        Ok(copied) => {
            if target.id == selected.id {
                selected.mark_dirty();
            }
            match copy_uid(&copied) {
                Some(code) => Completion::ok("COPY completed").with_code(code),
                None => Completion::ok("COPY completed"),
            }
        }
        Err(error) => store_failure(&error),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn move_messages(
    store: &dyn Store,
    auth: &Authenticated,
    selected: &mut SelectedMailbox,
    uid: bool,
    set: &SequenceSet,
    target: &[u8],
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> Completion {
    if selected.read_only {
        return Completion::no("mailbox is read-only").with_code("READ-ONLY");
    }
    let target = match find(store, auth, target, enabled, "TRYCREATE").await {
        Ok(mailbox) => mailbox,
        Err(refusal) => return refusal,
    };
    let uids: Vec<u32> = selected
        .resolve(set, uid)
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    if uids.is_empty() {
        return Completion::ok("MOVE completed (no messages)");
    }
    match store.move_messages(selected.id, uids, target.id).await {
        Ok(copied) => {
            // RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges.
            if let Some(code) = copy_uid(&copied) {
                untagged(out, &format!("OK [{code}] moved"));
            }
            let moved: Vec<u32> = copied.uids.iter().map(|&(from, _)| from).collect();
            selected.report_expunged(&moved, out, enabled);
            if target.id == selected.id {
                selected.mark_dirty();
            }
            Completion::ok("MOVE completed")
        }
        Err(error) => store_failure(&error),
    }
}

/// `COPYUID <uidvalidity> <source uids> <new uids>`, both sets in the same order.
fn copy_uid(copied: &Copied) -> Option<String> {
    if copied.uids.is_empty() {
        return None;
    }
    let sources: Vec<u32> = copied.uids.iter().map(|&(from, _)| from).collect();
    let targets: Vec<u32> = copied.uids.iter().map(|&(_, to)| to).collect();
    Some(format!(
        "COPYUID {} {} {}",
        copied.uid_validity,
        sequence_set(&sources),
        sequence_set(&targets)
    ))
}
