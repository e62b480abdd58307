//! CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE and STATUS (RFC 9051 §6.3).

use std::fmt::Write as _;

use sealpost_store::{MAILBOX_DELIMITER, Mailbox, Store, StoreError};

use super::{Authenticated, store_failure};
use crate::command::StatusItem;
use crate::mailbox_name;
use crate::response::{Completion, quoted, untagged};
use crate::selected::Enabled;

/// A mailbox name from the client in UTF-8, or the BAD to answer.
pub(super) fn decode_name(raw: &[u8], enabled: Enabled) -> Result<String, Completion> {
    mailbox_name::decode(raw, enabled.rev2)
        .ok_or_else(|| Completion::bad("mailbox name is not valid UTF-8 or modified UTF-7"))
}

/// Looks a mailbox up by the client's name; `NO [NONEXISTENT]` (or TRYCREATE, for
/// targets of APPEND/COPY/MOVE) when absent.
pub(super) async fn find(
    store: &dyn Store,
    auth: &Authenticated,
    raw: &[u8],
    enabled: Enabled,
    absent_code: &str,
) -> Result<Mailbox, Completion> {
    let name = decode_name(raw, enabled)?;
    match store.mailbox(auth.account.id, &name).await {
        Ok(Some(mailbox)) => Ok(mailbox),
        Ok(None) => Err(Completion::no("no such mailbox").with_code(absent_code)),
        Err(error) => Err(store_failure(&error)),
    }
}

pub(super) async fn create(
    store: &dyn Store,
    auth: &Authenticated,
    raw: &[u8],
    enabled: Enabled,
) -> Completion {
    let name = match decode_name(raw, enabled) {
        Ok(name) => name,
        Err(bad) => return bad,
    };
    // RFC 9051 §6.3.4: a trailing delimiter only says the client means to create
    // mailboxes below it.
    let name = name.strip_suffix(MAILBOX_DELIMITER).unwrap_or(&name);
    match store.create_mailbox(auth.account.id, name).await {
        Ok(_) => Completion::ok("CREATE completed"),
        Err(error) => store_failure(&error),
    }
}

pub(super) async fn delete(
    store: &dyn Store,
    auth: &Authenticated,
    raw: &[u8],
    enabled: Enabled,
) -> Completion {
    let name = match decode_name(raw, enabled) {
        Ok(name) => name,
        Err(bad) => return bad,
    };
    match store.delete_mailbox(auth.account.id, &name).await {
        Ok(()) => Completion::ok("DELETE completed"),
        Err(error) => store_failure(&error),
    }
}

pub(super) async fn rename(
    store: &dyn Store,
    auth: &Authenticated,
    from: &[u8],
    to: &[u8],
    enabled: Enabled,
) -> Completion {
    let (from, to) = match (decode_name(from, enabled), decode_name(to, enabled)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(bad), _) | (_, Err(bad)) => return bad,
    };
    let to = to.strip_suffix(MAILBOX_DELIMITER).unwrap_or(&to);
    match store.rename_mailbox(auth.account.id, &from, to).await {
        Ok(()) => Completion::ok("RENAME completed"),
        Err(error) => store_failure(&error),
    }
}

pub(super) async fn subscribe(
    store: &dyn Store,
    auth: &Authenticated,
    raw: &[u8],
    subscribed: bool,
    enabled: Enabled,
) -> Completion {
    let name = match decode_name(raw, enabled) {
        Ok(name) => name,
        Err(bad) => return bad,
    };
    let done = if subscribed {
        "SUBSCRIBE completed"
    } else {
        "UNSUBSCRIBE completed"
    };
    match store
        .set_subscribed(auth.account.id, &name, subscribed)
        .await
    {
        Ok(()) => Completion::ok(done),
        // Unsubscribing from a mailbox that is gone leaves nothing subscribed: done.
        Err(StoreError::NotFound(_)) if !subscribed => Completion::ok(done),
        Err(error) => store_failure(&error),
    }
}

pub(super) async fn status(
    store: &dyn Store,
    auth: &Authenticated,
    raw: &[u8],
    items: &[StatusItem],
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> Completion {
    let mailbox = match find(store, auth, raw, enabled, "NONEXISTENT").await {
        Ok(mailbox) => mailbox,
        Err(refusal) => return refusal,
    };
    match status_response(store, &mailbox, items, enabled).await {
        Ok(line) => {
            untagged(out, &line);
            Completion::ok("STATUS completed")
        }
        Err(error) => store_failure(&error),
    }
}

/// `STATUS "name" (MESSAGES 2 UIDNEXT 9 ...)`, for STATUS and LIST-STATUS.
pub(super) async fn status_response(
    store: &dyn Store,
    mailbox: &Mailbox,
    items: &[StatusItem],
    enabled: Enabled,
) -> Result<String, StoreError> {
    let needs_messages = items.iter().any(|item| {
        matches!(
            item,
            StatusItem::Messages | StatusItem::Unseen | StatusItem::Deleted | StatusItem::Size
        )
    });
    let messages = if needs_messages {
        store.messages(mailbox.id).await?
    } else {
        Vec::new()
    };
    let count_flag = |flag: &str| {
        messages
            .iter()
            .filter(|m| m.flags.iter().any(|f| f.eq_ignore_ascii_case(flag)))
            .count()
    };
    let mut line = String::from("STATUS ");
    quoted(
        &mut line,
        &mailbox_name::encode(&mailbox.name, enabled.rev2),
    );
    line.push_str(" (");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let _ = match item {
            StatusItem::Messages => write!(line, "MESSAGES {}", messages.len()),
            StatusItem::Recent => write!(line, "RECENT 0"),
            StatusItem::UidNext => write!(line, "UIDNEXT {}", mailbox.uid_next),
            StatusItem::UidValidity => write!(line, "UIDVALIDITY {}", mailbox.uid_validity),
            StatusItem::Unseen => write!(line, "UNSEEN {}", messages.len() - count_flag("\\Seen")),
            StatusItem::Deleted => write!(line, "DELETED {}", count_flag("\\Deleted")),
            StatusItem::Size => write!(
                line,
                "SIZE {}",
                messages.iter().map(|m| m.size).sum::<u64>()
            ),
            StatusItem::HighestModSeq => write!(line, "HIGHESTMODSEQ {}", mailbox.highest_modseq),
        };
    }
    line.push(')');
    Ok(line)
}
