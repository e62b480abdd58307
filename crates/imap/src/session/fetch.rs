//! FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2), with BINARY (RFC 3516) and the
//! CONDSTORE/QRESYNC modifiers (RFC 7162 §3.1.4, §3.2.6).
//!
//! The session holds one message at a time: bodies are read ahead a few at once (the
//! store reads on a thread pool) and the responses leave in chunks of
//! [`super::output::FLUSH_AT`], so a FETCH of a whole mailbox streams.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use sealpost_store::{FlagOperation, FlagUpdate, MessageMeta, Store, StoreError};
use tokio::task::JoinHandle;

use super::output::Output;
use super::select::has_flag;
use super::store_failure;
use crate::command::{FetchAttribute, FetchCommand};
use crate::message::{BinaryError, ParsedMessage, partial};
use crate::response::{Completion, flag_list, quoted, sequence_set, untagged};
use crate::section::{Section, SectionText};
use crate::selected::{Enabled, SelectedMailbox};

/// Message bodies read from the store in one round trip; the next batch is read while
/// this one is written out.
const READ_BATCH: usize = 64;

type RawRead = JoinHandle<Result<Vec<(u32, Vec<u8>)>, StoreError>>;

pub(super) async fn fetch(
    store: &Arc<dyn Store>,
    selected: &mut SelectedMailbox,
    command: &FetchCommand,
    enabled: &mut Enabled,
    out: &mut Output<'_>,
) -> io::Result<Completion> {
    let asks_modseq = command.attributes.contains(&FetchAttribute::ModSeq);
    if asks_modseq || command.changed_since.is_some() {
        // CONDSTORE-enabling (RFC 7162 §3.1).
        enabled.condstore = true;
    }
    if command.vanished && !enabled.qresync {
        return Ok(Completion::bad("VANISHED needs ENABLE QRESYNC"));
    }
    let targets = selected.resolve(&command.set, command.uid);
    if command.vanished
        && let Some(since) = command.changed_since
    {
        match store.expunged_since(selected.id, since).await {
            Ok(mut vanished) => {
                // `*` here reaches past the last message: an expunged UID may be above it.
                vanished.retain(|&uid| command.set.contains(uid, u32::MAX));
                vanished.sort_unstable();
                if !vanished.is_empty() {
                    untagged(
                        &mut out.buf,
                        &format!("VANISHED (EARLIER) {}", sequence_set(&vanished)),
                    );
                }
            }
            Err(error) => return Ok(store_failure(&error)),
        }
    }
    if targets.is_empty() {
        return Ok(Completion::ok("FETCH completed"));
    }
    let mut metas = match store.messages(selected.id).await {
        Ok(metas) => metas,
        Err(error) => return Ok(store_failure(&error)),
    };

    // Fetching a body marks it \Seen (RFC 9051 §6.4.5), unless EXAMINEd or PEEKed.
    let mut newly_seen: Vec<u32> = Vec::new();
    if !selected.read_only && command.attributes.iter().any(FetchAttribute::sets_seen) {
        let unseen: Vec<u32> = targets
            .iter()
            .filter_map(|&(_, uid)| find_meta(&metas, uid))
            .filter(|meta| !has_flag(meta, "\\Seen"))
            .map(|meta| meta.uid)
            .collect();
        if !unseen.is_empty() {
            let update = FlagUpdate {
                uids: unseen,
                operation: FlagOperation::Add,
                flags: vec!["\\Seen".to_string()],
                unchanged_since: None,
            };
            match store.update_flags(selected.id, update).await {
                Ok(updated) => {
                    newly_seen.reserve(updated.changed.len());
                    for changed in updated.changed {
                        selected.seen_modseq(changed.uid, changed.modseq);
                        newly_seen.push(changed.uid);
                        if let Ok(i) = metas.binary_search_by_key(&changed.uid, |m| m.uid) {
                            metas[i] = changed;
                        }
                    }
                    newly_seen.sort_unstable();
                }
                Err(error) => return Ok(store_failure(&error)),
            }
        }
    }

    let wanted: Vec<(u32, &MessageMeta)> = targets
        .iter()
        .filter_map(|&(seq, uid)| find_meta(&metas, uid).map(|meta| (seq, meta)))
        .filter(|(_, meta)| {
            command
                .changed_since
                .is_none_or(|since| meta.modseq > since)
        })
        .collect();
    let needs_body = command.attributes.iter().any(needs_body);
    let mut unknown_encoding = false;
    // RFC 7162 §3.1.4: with CONDSTORE on, a FETCH that reports a flag change (an
    // implicit \Seen) carries MODSEQ too.
    let modseq_asked = enabled.condstore && (asks_modseq || command.changed_since.is_some());
    let batches: Vec<&[(u32, &MessageMeta)]> = wanted.chunks(READ_BATCH).collect();
    // Bodies are read a batch ahead, so the store works while the last batch is rendered.
    let mut next_read = match (needs_body, batches.first()) {
        (true, Some(first)) => Some(spawn_read(store, selected.id, first)),
        _ => None,
    };
    for (index, batch) in batches.iter().enumerate() {
        let mut bodies = match next_read.take() {
            Some(read) => {
                if let Some(next) = batches.get(index + 1) {
                    next_read = Some(spawn_read(store, selected.id, next));
                }
                match read.await {
                    Ok(Ok(bodies)) => bodies.into_iter().peekable(),
                    Ok(Err(error)) => return Ok(store_failure(&error)),
                    Err(join) => {
                        return Ok(store_failure(&StoreError::Database(format!(
                            "message read failed: {join}"
                        ))));
                    }
                }
            }
            None => Vec::new().into_iter().peekable(),
        };
        for &(seq, meta) in batch.iter() {
            let raw = if needs_body {
                match bodies.next_if(|(uid, _)| *uid == meta.uid) {
                    Some((_, raw)) => Some(raw),
                    // Expunged since the listing: nothing to say about it.
                    None => continue,
                }
            } else {
                None
            };
            let seen_now = newly_seen.binary_search(&meta.uid).is_ok();
            let show_modseq = modseq_asked || (enabled.condstore && seen_now);
            let rendered = render(
                &mut out.buf,
                seq,
                meta,
                raw.as_deref(),
                command,
                show_modseq,
                seen_now,
            );
            if rendered.is_err() {
                unknown_encoding = true;
            }
            out.flush_if_full().await?;
        }
    }
    Ok(if unknown_encoding {
        Completion::no("a body part has an unknown Content-Transfer-Encoding")
            .with_code("UNKNOWN-CTE")
    } else {
        Completion::ok("FETCH completed")
    })
}

fn find_meta(metas: &[MessageMeta], uid: u32) -> Option<&MessageMeta> {
    metas
        .binary_search_by_key(&uid, |m| m.uid)
        .ok()
        .map(|i| &metas[i])
}

fn spawn_read(store: &Arc<dyn Store>, mailbox: i64, batch: &[(u32, &MessageMeta)]) -> RawRead {
    let store = Arc::clone(store);
    let uids = batch.iter().map(|(_, meta)| meta.uid).collect();
    tokio::spawn(async move { store.messages_raw(mailbox, uids).await })
}

fn needs_body(attribute: &FetchAttribute) -> bool {
    !matches!(
        attribute,
        FetchAttribute::Flags
            | FetchAttribute::InternalDate
            | FetchAttribute::Rfc822Size
            | FetchAttribute::Uid
            | FetchAttribute::ModSeq
    )
}

/// One `* seq FETCH (...)` response. A BINARY of an undecodable part makes it an error
/// (the line is still complete, with that item NIL).
fn render<'a>(
    out: &mut Vec<u8>,
    seq: u32,
    meta: &MessageMeta,
    raw: Option<&'a [u8]>,
    command: &FetchCommand,
    show_modseq: bool,
    seen_now: bool,
) -> Result<(), BinaryError> {
    let mut result = Ok(());
    let mut parsed: Option<ParsedMessage<'a>> = None;
    let parse = |parsed: &mut Option<ParsedMessage<'a>>| {
        if parsed.is_none() {
            *parsed = Some(ParsedMessage::parse(raw.unwrap_or_default()));
        }
    };
    let _ = write!(Bytes(out), "* {seq} FETCH (");
    let mut first = true;
    let mut item = |out: &mut Vec<u8>| {
        if !first {
            out.push(b' ');
        }
        first = false;
    };
    if command.uid || command.attributes.contains(&FetchAttribute::Uid) {
        item(out);
        let _ = write!(Bytes(out), "UID {}", meta.uid);
    }
    let asks_flags = command.attributes.contains(&FetchAttribute::Flags);
    if asks_flags || seen_now {
        item(out);
        let mut flags = String::from("FLAGS ");
        flag_list(&mut flags, &meta.flags);
        out.extend_from_slice(flags.as_bytes());
    }
    if show_modseq {
        item(out);
        let _ = write!(Bytes(out), "MODSEQ ({})", meta.modseq);
    }
    for attribute in &command.attributes {
        match attribute {
            FetchAttribute::Uid | FetchAttribute::Flags | FetchAttribute::ModSeq => {}
            FetchAttribute::InternalDate => {
                item(out);
                let _ = write!(
                    Bytes(out),
                    "INTERNALDATE \"{}\"",
                    internal_date(meta.internal_date)
                );
            }
            FetchAttribute::Rfc822Size => {
                item(out);
                let _ = write!(Bytes(out), "RFC822.SIZE {}", meta.size);
            }
            FetchAttribute::Envelope => {
                parse(&mut parsed);
                item(out);
                out.extend_from_slice(b"ENVELOPE ");
                if let Some(parsed) = &parsed {
                    out.extend_from_slice(parsed.envelope().as_bytes());
                }
            }
            FetchAttribute::Body | FetchAttribute::BodyStructure => {
                parse(&mut parsed);
                item(out);
                let extensible = *attribute == FetchAttribute::BodyStructure;
                out.extend_from_slice(if extensible {
                    b"BODYSTRUCTURE "
                } else {
                    b"BODY "
                });
                if let Some(parsed) = &parsed {
                    out.extend_from_slice(parsed.body_structure(extensible).as_bytes());
                }
            }
            FetchAttribute::Rfc822 => {
                item(out);
                out.extend_from_slice(b"RFC822 ");
                literal(out, raw.unwrap_or_default());
            }
            FetchAttribute::Rfc822Header | FetchAttribute::Rfc822Text => {
                parse(&mut parsed);
                item(out);
                let (name, text) = if *attribute == FetchAttribute::Rfc822Header {
                    ("RFC822.HEADER ", SectionText::Header)
                } else {
                    ("RFC822.TEXT ", SectionText::Text)
                };
                out.extend_from_slice(name.as_bytes());
                let section = Section {
                    part: Vec::new(),
                    text: Some(text),
                };
                let bytes = parsed.as_ref().and_then(|p| p.section(&section));
                nliteral(out, bytes.as_deref());
            }
            FetchAttribute::BodySection {
                section,
                partial: range,
                ..
            } => {
                item(out);
                out.extend_from_slice(b"BODY");
                section_name(out, section);
                let whole = section.part.is_empty() && section.text.is_none();
                let owned;
                let bytes = if whole {
                    raw
                } else {
                    parse(&mut parsed);
                    owned = parsed.as_ref().and_then(|p| p.section(section));
                    owned.as_deref()
                };
                write_partial(out, bytes, *range);
            }
            FetchAttribute::Binary {
                part,
                partial: range,
                ..
            } => {
                parse(&mut parsed);
                item(out);
                out.extend_from_slice(b"BINARY");
                part_name(out, part);
                match parsed.as_ref().map(|p| p.binary_section(part)) {
                    Some(Ok(bytes)) => write_partial(out, Some(&bytes), *range),
                    Some(Err(error)) => {
                        if error == BinaryError::UnknownEncoding {
                            result = Err(error);
                        }
                        out.extend_from_slice(b" NIL");
                    }
                    None => out.extend_from_slice(b" NIL"),
                }
            }
            FetchAttribute::BinarySize { part } => {
                parse(&mut parsed);
                item(out);
                out.extend_from_slice(b"BINARY.SIZE");
                part_name(out, part);
                match parsed.as_ref().map(|p| p.binary_section(part)) {
                    Some(Ok(bytes)) => {
                        let _ = write!(Bytes(out), " {}", bytes.len());
                    }
                    Some(Err(error)) => {
                        if error == BinaryError::UnknownEncoding {
                            result = Err(error);
                        }
                        out.extend_from_slice(b" NIL");
                    }
                    None => out.extend_from_slice(b" NIL"),
                }
            }
        }
    }
    out.extend_from_slice(b")\r\n");
    result
}

/// ` <origin> data` after a section name: `<origin>` only when the client gave one.
fn write_partial(out: &mut Vec<u8>, bytes: Option<&[u8]>, range: Option<(u32, u32)>) {
    match (bytes, range) {
        (None, Some((origin, _))) => {
            let _ = write!(Bytes(out), "<{origin}> NIL");
        }
        (None, None) => out.extend_from_slice(b" NIL"),
        (Some(bytes), Some((origin, count))) => {
            let _ = write!(Bytes(out), "<{origin}> ");
            literal(out, partial(bytes, origin, count));
        }
        (Some(bytes), None) => {
            out.push(b' ');
            literal(out, bytes);
        }
    }
}

/// Message data always goes out as a literal (`~{n}` when it holds NUL, RFC 3516).
fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.contains(&0) {
        out.push(b'~');
    }
    let _ = write!(Bytes(out), "{{{}}}\r\n", bytes.len());
    out.extend_from_slice(bytes);
}

fn nliteral(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => literal(out, bytes),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// `[1.2.HEADER.FIELDS ("From" "To")]` as the client asked for it.
fn section_name(out: &mut Vec<u8>, section: &Section) {
    let mut name = String::from("[");
    for (i, part) in section.part.iter().enumerate() {
        if i > 0 {
            name.push('.');
        }
        let _ = write!(name, "{part}");
    }
    if let Some(text) = &section.text {
        if !section.part.is_empty() {
            name.push('.');
        }
        match text {
            SectionText::Header => name.push_str("HEADER"),
            SectionText::Text => name.push_str("TEXT"),
            SectionText::Mime => name.push_str("MIME"),
            SectionText::HeaderFields { not, fields } => {
                name.push_str(if *not {
                    "HEADER.FIELDS.NOT ("
                } else {
                    "HEADER.FIELDS ("
                });
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        name.push(' ');
                    }
                    quoted(&mut name, field);
                }
                name.push(')');
            }
        }
    }
    name.push(']');
    out.extend_from_slice(name.as_bytes());
}

fn part_name(out: &mut Vec<u8>, part: &[u32]) {
    let parts: Vec<String> = part.iter().map(u32::to_string).collect();
    let _ = write!(Bytes(out), "[{}]", parts.join("."));
}

/// `17-Jul-1996 02:44:25 +0000` (RFC 9051 `date-time`), in UTC.
pub(crate) fn internal_date(seconds: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let date = time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        date.day(),
        MONTHS[usize::from(u8::from(date.month())) - 1],
        date.year(),
        date.hour(),
        date.minute(),
        date.second()
    )
}

/// `write!` straight into a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
