//! SEARCH (RFC 9051 §6.4.4, RFC 4731 ESEARCH return options, RFC 7162 MODSEQ). Keys
//! nest through NOT, OR and parentheses; depth and count are bounded.

use super::ParseErrorKind;
use super::lexer::{Cursor, Parsed};
use super::sequence::sequence_set;
use crate::command::{SearchCommand, SearchDate, SearchKey, SearchReturn};

/// After `SEARCH` (or `UID SEARCH`) and its space.
pub(crate) fn search(cursor: &mut Cursor<'_>, uid: bool) -> Parsed<SearchCommand> {
    let mut returns = None;
    if cursor.eat_keyword("RETURN") {
        cursor.sp()?;
        cursor.expect(b'(', "expected '(' after RETURN")?;
        let mut options = Vec::new();
        while !cursor.eat(b')') {
            if !options.is_empty() {
                cursor.sp()?;
            }
            options.push(match cursor.keyword()?.as_str() {
                "MIN" => SearchReturn::Min,
                "MAX" => SearchReturn::Max,
                "ALL" => SearchReturn::All,
                "COUNT" => SearchReturn::Count,
                "SAVE" => {
                    return Err(ParseErrorKind::Syntax(
                        "SEARCH RETURN SAVE is not supported",
                    ));
                }
                _ => return Err(ParseErrorKind::Syntax("unknown SEARCH return option")),
            });
        }
        returns = Some(options);
        cursor.sp()?;
    }
    let mut charset = None;
    if cursor.eat_keyword("CHARSET") {
        cursor.sp()?;
        charset = Some(String::from_utf8_lossy(&cursor.astring()?).into_owned());
        cursor.sp()?;
    }
    let mut keys = vec![search_key(cursor)?];
    while cursor.eat(b' ') {
        keys.push(search_key(cursor)?);
    }
    cursor.end()?;
    let key = if keys.len() == 1 {
        keys.remove(0)
    } else {
        SearchKey::And(keys)
    };
    Ok(SearchCommand {
        uid,
        returns,
        charset,
        key,
    })
}

fn search_key(cursor: &mut Cursor<'_>) -> Parsed<SearchKey> {
    cursor.search_keys += 1;
    if cursor.search_keys > cursor.limits.max_search_keys {
        return Err(ParseErrorKind::TooManySearchKeys);
    }
    match cursor.peek() {
        Some(b'(') => {
            let keys = cursor.paren_list(search_key)?;
            return Ok(SearchKey::And(keys));
        }
        Some(b'0'..=b'9' | b'*' | b'$') => {
            return sequence_set(cursor).map(SearchKey::SequenceSet);
        }
        _ => {}
    }
    let name = cursor.keyword()?;
    let flag = |name: &str| Ok(SearchKey::Flag(name.to_string()));
    let no_flag = |name: &str| Ok(SearchKey::NoFlag(name.to_string()));
    match name.as_str() {
        "ALL" => Ok(SearchKey::All),
        "ANSWERED" => flag("\\Answered"),
        "DELETED" => flag("\\Deleted"),
        "DRAFT" => flag("\\Draft"),
        "FLAGGED" => flag("\\Flagged"),
        "SEEN" => flag("\\Seen"),
        "UNANSWERED" => no_flag("\\Answered"),
        "UNDELETED" => no_flag("\\Deleted"),
        "UNDRAFT" => no_flag("\\Draft"),
        "UNFLAGGED" => no_flag("\\Flagged"),
        "UNSEEN" => no_flag("\\Seen"),
        "NEW" => Ok(SearchKey::New),
        "OLD" => Ok(SearchKey::Old),
        "RECENT" => Ok(SearchKey::Recent),
        "KEYWORD" | "UNKEYWORD" => {
            cursor.sp()?;
            let keyword = String::from_utf8_lossy(cursor.atom()?).into_owned();
            if name == "KEYWORD" {
                Ok(SearchKey::Flag(keyword))
            } else {
                Ok(SearchKey::NoFlag(keyword))
            }
        }
        "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => {
            cursor.sp()?;
            let value = text(cursor)?;
            let header = match name.as_str() {
                "BCC" => "Bcc",
                "CC" => "Cc",
                "FROM" => "From",
                "SUBJECT" => "Subject",
                _ => "To",
            };
            Ok(SearchKey::Header(header.to_string(), value))
        }
        "HEADER" => {
            cursor.sp()?;
            let field = text(cursor)?;
            cursor.sp()?;
            let value = text(cursor)?;
            Ok(SearchKey::Header(field, value))
        }
        "BODY" => {
            cursor.sp()?;
            Ok(SearchKey::Body(text(cursor)?))
        }
        "TEXT" => {
            cursor.sp()?;
            Ok(SearchKey::Text(text(cursor)?))
        }
        "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
            cursor.sp()?;
            let date = search_date(cursor)?;
            Ok(match name.as_str() {
                "BEFORE" => SearchKey::Before(date),
                "ON" => SearchKey::On(date),
                "SINCE" => SearchKey::Since(date),
                "SENTBEFORE" => SearchKey::SentBefore(date),
                "SENTON" => SearchKey::SentOn(date),
                _ => SearchKey::SentSince(date),
            })
        }
        "LARGER" => {
            cursor.sp()?;
            Ok(SearchKey::Larger(cursor.number64()?))
        }
        "SMALLER" => {
            cursor.sp()?;
            Ok(SearchKey::Smaller(cursor.number64()?))
        }
        "UID" => {
            cursor.sp()?;
            Ok(SearchKey::Uid(sequence_set(cursor)?))
        }
        "NOT" => {
            cursor.sp()?;
            cursor.enter()?;
            let key = search_key(cursor)?;
            cursor.leave();
            Ok(SearchKey::Not(Box::new(key)))
        }
        "OR" => {
            cursor.sp()?;
            cursor.enter()?;
            let left = search_key(cursor)?;
            cursor.sp()?;
            let right = search_key(cursor)?;
            cursor.leave();
            Ok(SearchKey::Or(Box::new(left), Box::new(right)))
        }
        "MODSEQ" => {
            cursor.sp()?;
            // RFC 7162 §3.1.5: an optional metadata entry name and type come first;
            // we keep one MODSEQ per message, so they only narrow nothing.
            if cursor.peek() == Some(b'"') {
                cursor.quoted()?;
                cursor.sp()?;
                cursor.keyword()?;
                cursor.sp()?;
            }
            Ok(SearchKey::ModSeq(cursor.number64()?))
        }
        _ => Err(ParseErrorKind::Syntax("unknown search key")),
    }
}

fn text(cursor: &mut Cursor<'_>) -> Parsed<String> {
    Ok(String::from_utf8_lossy(&cursor.astring()?).into_owned())
}

/// `date`: `1-Feb-2024`, optionally quoted.
pub(crate) fn search_date(cursor: &mut Cursor<'_>) -> Parsed<SearchDate> {
    let quoted = cursor.eat(b'"');
    let day = cursor.number()?;
    cursor.expect(b'-', "bad date")?;
    let month = month(cursor)?;
    cursor.expect(b'-', "bad date")?;
    let year = cursor.number()?;
    if quoted {
        cursor.expect(b'"', "bad date")?;
    }
    if !(1..=31).contains(&day) || year > 9999 {
        return Err(ParseErrorKind::Syntax("bad date"));
    }
    Ok(SearchDate {
        year: year as i32,
        month,
        day: day as u8,
    })
}

pub(crate) fn month(cursor: &mut Cursor<'_>) -> Parsed<u8> {
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let rest = cursor.rest();
    let name = rest.get(..3).ok_or(ParseErrorKind::Syntax("bad month"))?;
    let index = MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(name))
        .ok_or(ParseErrorKind::Syntax("bad month"))?;
    cursor.advance(3);
    Ok(index as u8 + 1)
}
