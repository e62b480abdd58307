//! SEARCH and UID SEARCH (RFC 9051 §6.4.4), answered as `* SEARCH` for IMAP4rev1
//! clients and as ESEARCH (RFC 4731) when asked with RETURN or after ENABLE IMAP4rev2.

use std::fmt::Write as _;
use std::sync::Arc;

use sealpost_store::{MessageMeta, Store};
use time::{Date, Month, OffsetDateTime};

use super::select::has_flag;
use super::store_failure;
use crate::command::{SearchCommand, SearchDate, SearchKey, SearchReturn};
use crate::message::{ParsedMessage, TextScope};
use crate::response::{Completion, quoted, sequence_set, untagged};
use crate::selected::{Enabled, SelectedMailbox};

/// One message as a search key sees it.
struct Candidate<'a> {
    seq: u32,
    meta: &'a MessageMeta,
    parsed: Option<&'a ParsedMessage<'a>>,
    last_seq: u32,
    last_uid: u32,
}

pub(super) async fn search(
    store: &Arc<dyn Store>,
    selected: &mut SelectedMailbox,
    command: &SearchCommand,
    tag: &str,
    enabled: &mut Enabled,
    out: &mut Vec<u8>,
) -> Completion {
    if let Some(charset) = &command.charset
        && !charset.eq_ignore_ascii_case("UTF-8")
        && !charset.eq_ignore_ascii_case("US-ASCII")
    {
        return Completion::no("unsupported charset").with_code("BADCHARSET (UTF-8 US-ASCII)");
    }
    let uses_modseq = mentions_modseq(&command.key);
    if uses_modseq {
        enabled.condstore = true;
    }
    let metas = match store.messages(selected.id).await {
        Ok(metas) => metas,
        Err(error) => return store_failure(&error),
    };
    let needs_content = needs_content(&command.key);
    let last_seq = selected.exists();
    let last_uid = selected.uids().last().unwrap_or(0);
    let mut found: Vec<(u32, u32)> = Vec::new();
    let mut highest_modseq = 0;
    for (index, uid) in selected.uids().iter().enumerate() {
        let Ok(i) = metas.binary_search_by_key(&uid, |m| m.uid) else {
            continue;
        };
        let meta = &metas[i];
        let seq = index as u32 + 1;
        let raw = if needs_content {
            match store.message_raw(selected.id, uid).await {
                Ok(Some(raw)) => raw,
                Ok(None) => continue,
                Err(error) => return store_failure(&error),
            }
        } else {
            Vec::new()
        };
        let parsed = needs_content.then(|| ParsedMessage::parse(&raw));
        let candidate = Candidate {
            seq,
            meta,
            parsed: parsed.as_ref(),
            last_seq,
            last_uid,
        };
        if matches(&command.key, &candidate) {
            found.push((seq, uid));
            highest_modseq = highest_modseq.max(meta.modseq);
        }
    }
    let numbers: Vec<u32> = found
        .iter()
        .map(|&(seq, uid)| if command.uid { uid } else { seq })
        .collect();

    let returns = match (&command.returns, enabled.rev2) {
        (Some(returns), _) => Some(returns.clone()),
        (None, true) => Some(Vec::new()),
        (None, false) => None,
    };
    let mut line = String::new();
    match returns {
        None => {
            line.push_str("SEARCH");
            for n in &numbers {
                let _ = write!(line, " {n}");
            }
            if uses_modseq && !numbers.is_empty() {
                let _ = write!(line, " (MODSEQ {highest_modseq})");
            }
        }
        Some(returns) => {
            let all = returns.is_empty() || returns.contains(&SearchReturn::All);
            line.push_str("ESEARCH (TAG ");
            quoted(&mut line, tag);
            line.push(')');
            if command.uid {
                line.push_str(" UID");
            }
            if returns.contains(&SearchReturn::Min)
                && let Some(min) = numbers.first()
            {
                let _ = write!(line, " MIN {min}");
            }
            if returns.contains(&SearchReturn::Max)
                && let Some(max) = numbers.last()
            {
                let _ = write!(line, " MAX {max}");
            }
            if returns.contains(&SearchReturn::Count) {
                let _ = write!(line, " COUNT {}", numbers.len());
            }
            if all && !numbers.is_empty() {
                let _ = write!(line, " ALL {}", sequence_set(&numbers));
            }
            if uses_modseq && !numbers.is_empty() {
                let _ = write!(line, " MODSEQ {highest_modseq}");
            }
        }
    }
    untagged(out, &line);
    Completion::ok("SEARCH completed")
}

fn mentions_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(keys) => keys.iter().any(mentions_modseq),
        SearchKey::Or(a, b) => mentions_modseq(a) || mentions_modseq(b),
        SearchKey::Not(key) => mentions_modseq(key),
        _ => false,
    }
}

/// Whether the key looks inside messages (and so needs their bytes).
fn needs_content(key: &SearchKey) -> bool {
    match key {
        SearchKey::Header(..)
        | SearchKey::Body(_)
        | SearchKey::Text(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => true,
        SearchKey::And(keys) => keys.iter().any(needs_content),
        SearchKey::Or(a, b) => needs_content(a) || needs_content(b),
        SearchKey::Not(key) => needs_content(key),
        _ => false,
    }
}

fn matches(key: &SearchKey, message: &Candidate<'_>) -> bool {
    let meta = message.meta;
    match key {
        SearchKey::All | SearchKey::Old => true,
        // No message is ever \Recent here.
        SearchKey::New | SearchKey::Recent => false,
        SearchKey::And(keys) => keys.iter().all(|k| matches(k, message)),
        SearchKey::Or(a, b) => matches(a, message) || matches(b, message),
        SearchKey::Not(key) => !matches(key, message),
        SearchKey::SequenceSet(set) => set.contains(message.seq, message.last_seq),
        SearchKey::Uid(set) => set.contains(meta.uid, message.last_uid),
        SearchKey::Flag(flag) => has_flag(meta, flag),
        SearchKey::NoFlag(flag) => !has_flag(meta, flag),
        SearchKey::Before(date) => internal_day(meta) < day(date),
        SearchKey::On(date) => internal_day(meta) == day(date),
        SearchKey::Since(date) => internal_day(meta) >= day(date),
        SearchKey::SentBefore(date) => sent_day(message).is_some_and(|d| Some(d) < day(date)),
        SearchKey::SentOn(date) => sent_day(message).is_some_and(|d| Some(d) == day(date)),
        SearchKey::SentSince(date) => sent_day(message).is_some_and(|d| Some(d) >= day(date)),
        SearchKey::Larger(size) => meta.size > *size,
        SearchKey::Smaller(size) => meta.size < *size,
        SearchKey::ModSeq(modseq) => meta.modseq >= *modseq,
        SearchKey::Header(name, value) => message.parsed.is_some_and(|p| {
            if value.is_empty() {
                // RFC 9051 §6.4.4: an empty string matches every message with the field.
                p.header_value(name).is_some()
            } else {
                p.matches_text(value, TextScope::Header(name.clone()))
            }
        }),
        SearchKey::Body(text) => message
            .parsed
            .is_some_and(|p| p.matches_text(text, TextScope::Body)),
        SearchKey::Text(text) => message
            .parsed
            .is_some_and(|p| p.matches_text(text, TextScope::Text)),
    }
}

fn day(date: &SearchDate) -> Option<Date> {
    let month = Month::try_from(date.month).ok()?;
    Date::from_calendar_date(date.year, month, date.day).ok()
}

/// The internal date's calendar day (in UTC, the zone we store it in).
fn internal_day(meta: &MessageMeta) -> Option<Date> {
    OffsetDateTime::from_unix_timestamp(meta.internal_date)
        .ok()
        .map(OffsetDateTime::date)
}

fn sent_day(message: &Candidate<'_>) -> Option<Date> {
    message.parsed.and_then(ParsedMessage::sent_day)
}
