//! SELECT and EXAMINE (RFC 9051 §6.3.2–3, with CONDSTORE and QRESYNC, RFC 7162 §3.2.5),
//! CLOSE and EXPUNGE (with UIDPLUS's UID EXPUNGE, RFC 4315).

use std::fmt::Write as _;

use sealpost_store::{MessageMeta, Store};

use super::mailbox::find;
use super::{Authenticated, store_failure};
use crate::command::{QresyncParams, SequenceSet};
use crate::mailbox_name;
use crate::response::{Completion, flag_list, quoted, sequence_set, untagged};
use crate::selected::{Enabled, SelectedMailbox};

const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

pub(super) async fn select(
    store: &dyn Store,
    auth: &Authenticated,
    raw: &[u8],
    read_only: bool,
    qresync: Option<&QresyncParams>,
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> (Completion, Option<SelectedMailbox>) {
    let mailbox = match find(store, auth, raw, enabled, "NONEXISTENT").await {
        Ok(mailbox) => mailbox,
        Err(refusal) => return (refusal, None),
    };
    // Subscribe before reading, so nothing committed in between goes unnoticed.
    let changes = store.subscribe();
    let messages = match store.messages(mailbox.id).await {
        Ok(messages) => messages,
        Err(error) => return (store_failure(&error), None),
    };
    let uid_next = mailbox
        .uid_next
        .max(messages.last().map_or(1, |m| m.uid.saturating_add(1)));
    let highest_modseq = messages
        .iter()
        .map(|m| m.modseq)
        .max()
        .unwrap_or(0)
        .max(mailbox.highest_modseq);

    let flags = flags_in_use(&messages);
    let mut line = String::from("FLAGS ");
    flag_list(&mut line, &flags);
    untagged(out, &line);
    untagged(out, &format!("{} EXISTS", messages.len()));
    if !enabled.rev2 {
        untagged(out, "0 RECENT");
        let first_unseen = messages.iter().position(|m| !has_flag(m, "\\Seen"));
        if let Some(i) = first_unseen {
            untagged(out, &format!("OK [UNSEEN {}] first unseen", i + 1));
        }
    }
    let mut line = String::from("OK [PERMANENTFLAGS ");
    if read_only {
        line.push_str("()");
    } else {
        let mut permanent = flags.clone();
        permanent.push("\\*".to_string());
        flag_list(&mut line, &permanent);
    }
    line.push_str("] flags permitted");
    untagged(out, &line);
    untagged(
        out,
        &format!("OK [UIDVALIDITY {}] UIDs valid", mailbox.uid_validity),
    );
    untagged(out, &format!("OK [UIDNEXT {uid_next}] predicted next UID"));
    untagged(
        out,
        &format!("OK [HIGHESTMODSEQ {highest_modseq}] highest mod-sequence"),
    );
    if enabled.rev2 {
        let mut line = String::from("LIST () \"/\" ");
        quoted(&mut line, &mailbox_name::encode(&mailbox.name, true));
        untagged(out, &line);
    }
    if let Some(params) = qresync
        && params.uid_validity == mailbox.uid_validity
        && let Err(error) = resynchronize(store, mailbox.id, &messages, params, out).await
    {
        return (store_failure(&error), None);
    }
    let selected = SelectedMailbox::new(&mailbox, &messages, read_only, changes);
    let (code, done) = if read_only {
        ("READ-ONLY", "EXAMINE completed")
    } else {
        ("READ-WRITE", "SELECT completed")
    };
    (Completion::ok(done).with_code(code), Some(selected))
}

/// RFC 7162 §3.2.5.2: what vanished and what changed since the client's MODSEQ.
async fn resynchronize(
    store: &dyn Store,
    mailbox: sealpost_store::MailboxId,
    messages: &[MessageMeta],
    params: &QresyncParams,
    out: &mut Vec<u8>,
) -> Result<(), sealpost_store::StoreError> {
    let mut vanished = store.expunged_since(mailbox, params.modseq).await?;
    if let Some(known) = &params.known_uids {
        vanished.retain(|&uid| known.contains(uid, u32::MAX));
    }
    vanished.sort_unstable();
    vanished.dedup();
    if !vanished.is_empty() {
        untagged(
            out,
            &format!("VANISHED (EARLIER) {}", sequence_set(&vanished)),
        );
    }
    let mut line = String::new();
    for (i, meta) in messages.iter().enumerate() {
        if meta.modseq > params.modseq {
            line.clear();
            let _ = write!(line, "{} FETCH (UID {} FLAGS ", i + 1, meta.uid);
            flag_list(&mut line, &meta.flags);
            let _ = write!(line, " MODSEQ ({}))", meta.modseq);
            untagged(out, &line);
        }
    }
    Ok(())
}

/// The system flags and every keyword some message has.
fn flags_in_use(messages: &[MessageMeta]) -> Vec<String> {
    let mut flags: Vec<String> = SYSTEM_FLAGS.iter().map(|f| f.to_string()).collect();
    for message in messages {
        for flag in &message.flags {
            if !flag.starts_with('\\') && !flags.iter().any(|f| f.eq_ignore_ascii_case(flag)) {
                flags.push(flag.clone());
            }
        }
    }
    flags
}

pub(crate) fn has_flag(meta: &MessageMeta, flag: &str) -> bool {
    meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// CLOSE: expunge silently when read-write (RFC 9051 §6.4.1), then leave the mailbox.
pub(super) async fn close(store: &dyn Store, selected: SelectedMailbox) -> Completion {
    if !selected.read_only
        && let Err(error) = store.expunge(selected.id, None).await
    {
        return store_failure(&error);
    }
    Completion::ok("CLOSE completed")
}

pub(super) async fn expunge(
    store: &dyn Store,
    selected: &mut SelectedMailbox,
    uids: Option<&SequenceSet>,
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> Completion {
    if selected.read_only {
        return Completion::no("mailbox is read-only").with_code("READ-ONLY");
    }
    let only = uids.map(|set| {
        selected
            .resolve(set, true)
            .into_iter()
            .map(|(_, uid)| uid)
            .collect::<Vec<_>>()
    });
    if only.as_ref().is_some_and(Vec::is_empty) {
        return Completion::ok("EXPUNGE completed");
    }
    match store.expunge(selected.id, only).await {
        Ok(removed) => {
            selected.report_expunged(&removed, out, enabled);
            Completion::ok("EXPUNGE completed")
        }
        Err(error) => store_failure(&error),
    }
}
