//! APPEND (RFC 9051 §6.3.12) with UIDPLUS's APPENDUID (RFC 4315) and APPENDLIMIT
//! (RFC 7889). The store has the message on disk before we answer OK.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sealpost_store::{NewMessage, Store};

use super::mailbox::find;
use super::{Authenticated, store_failure};
use crate::command::AppendCommand;
use crate::response::Completion;
use crate::selected::{Enabled, SelectedMailbox};

pub(super) async fn append(
    store: &dyn Store,
    auth: &Authenticated,
    selected: Option<&mut SelectedMailbox>,
    command: AppendCommand,
    limit: u64,
    enabled: Enabled,
) -> Completion {
    let mailbox = match find(store, auth, &command.mailbox, enabled, "TRYCREATE").await {
        Ok(mailbox) => mailbox,
        Err(refusal) => return refusal,
    };
    if command.message.len() as u64 > limit {
        return Completion::no(format!("message larger than APPENDLIMIT={limit}"))
            .with_code("TOOBIG");
    }
    if command.message.is_empty() {
        return Completion::no("an empty message cannot be appended").with_code("CANNOT");
    }
    // \Recent is the server's to set, never the client's (RFC 3501 §2.3.2).
    let flags = command
        .flags
        .into_iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    let internal_date = command.date.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    let message = NewMessage {
        raw: Arc::new(command.message),
        flags,
        internal_date,
    };
    match store.append(mailbox.id, message).await {
        Ok(appended) => {
            if let Some(selected) = selected
                && selected.id == mailbox.id
            {
                selected.mark_dirty();
            }
            Completion::ok("APPEND completed").with_code(format!(
                "APPENDUID {} {}",
                appended.uid_validity, appended.uid
            ))
        }
        Err(error) => store_failure(&error),
    }
}
