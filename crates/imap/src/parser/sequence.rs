//! Sequence sets (RFC 9051 §9 `sequence-set`): `1:4,7,9:*`. The number of items is
//! bounded, since each one costs the server work on every message it is checked against.

use super::ParseErrorKind;
use super::lexer::{Cursor, Parsed};
use crate::command::{SeqNumber, SequenceSet};

pub(crate) fn sequence_set(cursor: &mut Cursor<'_>) -> Parsed<SequenceSet> {
    let mut items = Vec::new();
    loop {
        if items.len() == cursor.limits.max_sequence_items {
            return Err(ParseErrorKind::TooManySequenceItems);
        }
        let start = seq_number(cursor)?;
        let end = if cursor.eat(b':') {
            seq_number(cursor)?
        } else {
            start
        };
        items.push((start, end));
        if !cursor.eat(b',') {
            return Ok(SequenceSet(items));
        }
    }
}

fn seq_number(cursor: &mut Cursor<'_>) -> Parsed<SeqNumber> {
    if cursor.eat(b'*') {
        return Ok(SeqNumber::Largest);
    }
    if cursor.peek() == Some(b'$') {
        return Err(ParseErrorKind::Syntax(
            "search result variable $ is not supported (no SEARCHRES)",
        ));
    }
    cursor
        .nz_number()
        .map(SeqNumber::Value)
        .map_err(|_| ParseErrorKind::Syntax("expected a sequence set"))
}
