//! FETCH data items (RFC 9051 §6.4.5), body sections and partials, the macros, and the
//! RFC 7162 CHANGEDSINCE/VANISHED modifiers.

use super::ParseErrorKind;
use super::lexer::{Cursor, Parsed, is_atom_char};
use super::sequence::sequence_set;
use crate::command::{FetchAttribute, FetchCommand};
use crate::section::{Section, SectionText};

/// After `FETCH` (or `UID FETCH`) and its space.
pub(crate) fn fetch(cursor: &mut Cursor<'_>, uid: bool) -> Parsed<FetchCommand> {
    let set = sequence_set(cursor)?;
    cursor.sp()?;
    let attributes = if cursor.peek() == Some(b'(') {
        cursor.paren_list(fetch_attribute)?
    } else if cursor.eat_keyword("ALL") {
        vec![
            FetchAttribute::Flags,
            FetchAttribute::InternalDate,
            FetchAttribute::Rfc822Size,
            FetchAttribute::Envelope,
        ]
    } else if cursor.eat_keyword("FAST") {
        vec![
            FetchAttribute::Flags,
            FetchAttribute::InternalDate,
            FetchAttribute::Rfc822Size,
        ]
    } else if cursor.eat_keyword("FULL") {
        vec![
            FetchAttribute::Flags,
            FetchAttribute::InternalDate,
            FetchAttribute::Rfc822Size,
            FetchAttribute::Envelope,
            FetchAttribute::Body,
        ]
    } else {
        vec![fetch_attribute(cursor)?]
    };
    let mut command = FetchCommand {
        uid,
        set,
        attributes,
        changed_since: None,
        vanished: false,
    };
    if cursor.eat(b' ') {
        cursor.paren_list(|cursor| {
            match cursor.keyword()?.as_str() {
                "CHANGEDSINCE" => {
                    cursor.sp()?;
                    command.changed_since = Some(cursor.number64()?);
                }
                "VANISHED" => command.vanished = true,
                _ => return Err(ParseErrorKind::Syntax("unknown FETCH modifier")),
            }
            Ok(())
        })?;
    }
    cursor.end()?;
    if command.vanished && (!uid || command.changed_since.is_none()) {
        return Err(ParseErrorKind::Syntax(
            "VANISHED needs UID FETCH with CHANGEDSINCE (RFC 7162 §3.2.6)",
        ));
    }
    Ok(command)
}

/// The item name up to `[`, `<` or the end of the atom.
fn item_name(cursor: &mut Cursor<'_>) -> Parsed<String> {
    let rest = cursor.rest();
    let len = rest
        .iter()
        .position(|&b| !is_atom_char(b) || b == b'[' || b == b'<')
        .unwrap_or(rest.len());
    if len == 0 {
        return Err(ParseErrorKind::Syntax("expected a FETCH item"));
    }
    let name = String::from_utf8_lossy(&rest[..len]).to_ascii_uppercase();
    cursor.advance(len);
    Ok(name)
}

fn fetch_attribute(cursor: &mut Cursor<'_>) -> Parsed<FetchAttribute> {
    let name = item_name(cursor)?;
    let with_section = cursor.peek() == Some(b'[');
    Ok(match (name.as_str(), with_section) {
        ("ENVELOPE", false) => FetchAttribute::Envelope,
        ("FLAGS", false) => FetchAttribute::Flags,
        ("INTERNALDATE", false) => FetchAttribute::InternalDate,
        ("RFC822", false) => FetchAttribute::Rfc822,
        ("RFC822.HEADER", false) => FetchAttribute::Rfc822Header,
        ("RFC822.SIZE", false) => FetchAttribute::Rfc822Size,
        ("RFC822.TEXT", false) => FetchAttribute::Rfc822Text,
        ("BODY", false) => FetchAttribute::Body,
        ("BODYSTRUCTURE", false) => FetchAttribute::BodyStructure,
        ("UID", false) => FetchAttribute::Uid,
        ("MODSEQ", false) => FetchAttribute::ModSeq,
        ("BODY" | "BODY.PEEK", true) => {
            let section = section(cursor)?;
            FetchAttribute::BodySection {
                peek: name == "BODY.PEEK",
                section,
                partial: partial(cursor)?,
            }
        }
        ("BINARY" | "BINARY.PEEK", true) => {
            let part = binary_part(cursor)?;
            FetchAttribute::Binary {
                peek: name == "BINARY.PEEK",
                part,
                partial: partial(cursor)?,
            }
        }
        ("BINARY.SIZE", true) => FetchAttribute::BinarySize {
            part: binary_part(cursor)?,
        },
        _ => return Err(ParseErrorKind::Syntax("unknown FETCH item")),
    })
}

/// `[1.2.HEADER.FIELDS (From To)]`
pub(crate) fn section(cursor: &mut Cursor<'_>) -> Parsed<Section> {
    cursor.expect(b'[', "expected '['")?;
    let mut section = Section::default();
    if cursor.eat(b']') {
        return Ok(section);
    }
    while cursor.peek().is_some_and(|b| b.is_ascii_digit()) {
        section.part.push(cursor.nz_number()?);
        if !cursor.eat(b'.') {
            cursor.expect(b']', "expected ']' after a section part")?;
            return Ok(section);
        }
    }
    let text = if cursor.eat_keyword("HEADER.FIELDS.NOT") || cursor.eat_keyword("HEADER.FIELDS") {
        let not = cursor_previous_was_not(cursor);
        cursor.sp()?;
        let fields = cursor
            .paren_list(|cursor| Ok(String::from_utf8_lossy(&cursor.astring()?).into_owned()))?;
        SectionText::HeaderFields { not, fields }
    } else if cursor.eat_keyword("HEADER") {
        SectionText::Header
    } else if cursor.eat_keyword("TEXT") {
        SectionText::Text
    } else if !section.part.is_empty() && cursor.eat_keyword("MIME") {
        SectionText::Mime
    } else {
        return Err(ParseErrorKind::Syntax("bad body section"));
    };
    section.text = Some(text);
    cursor.expect(b']', "expected ']' to end the section")?;
    Ok(section)
}

/// `eat_keyword` does not say which alternative matched; `.NOT` is recognisable from
/// what was consumed.
fn cursor_previous_was_not(cursor: &Cursor<'_>) -> bool {
    cursor.consumed().to_ascii_uppercase().ends_with(b".NOT")
}

/// `[1.2]` of BINARY; empty means the whole message.
fn binary_part(cursor: &mut Cursor<'_>) -> Parsed<Vec<u32>> {
    cursor.expect(b'[', "expected '['")?;
    let mut part = Vec::new();
    if cursor.eat(b']') {
        return Ok(part);
    }
    loop {
        part.push(cursor.nz_number()?);
        if cursor.eat(b']') {
            return Ok(part);
        }
        cursor.expect(b'.', "bad BINARY section")?;
    }
}

/// `<origin.count>`
fn partial(cursor: &mut Cursor<'_>) -> Parsed<Option<(u32, u32)>> {
    if !cursor.eat(b'<') {
        return Ok(None);
    }
    let origin = cursor.number()?;
    cursor.expect(b'.', "expected '.' in a partial")?;
    let count = cursor.nz_number()?;
    cursor.expect(b'>', "expected '>' to end a partial")?;
    Ok(Some((origin, count)))
}
