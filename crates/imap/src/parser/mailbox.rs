//! Arguments of the mailbox commands: SELECT parameters (RFC 7162), LIST-EXTENDED and
//! LIST-STATUS options (RFC 5258, RFC 5819), STATUS items, and APPEND's flags and date.

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

use super::ParseErrorKind;
use super::lexer::{Cursor, Parsed};
use super::search::month;
use super::sequence::sequence_set;
use crate::command::{
    AppendCommand, ListCommand, ListReturn, ListSelection, QresyncParams, SelectParams, StatusItem,
};

/// `[SP "(" select-param *(SP select-param) ")"]` after the mailbox name.
pub(crate) fn select_params(cursor: &mut Cursor<'_>) -> Parsed<SelectParams> {
    let mut params = SelectParams::default();
    if !cursor.eat(b' ') {
        return Ok(params);
    }
    cursor.paren_list(|cursor| {
        match cursor.keyword()?.as_str() {
            "CONDSTORE" => params.condstore = true,
            "QRESYNC" => {
                cursor.sp()?;
                params.qresync = Some(qresync(cursor)?);
            }
            _ => return Err(ParseErrorKind::Syntax("unknown SELECT parameter")),
        }
        Ok(())
    })?;
    Ok(params)
}

/// `(uidvalidity modseq [known-uids [(seq-match-data)]])`
fn qresync(cursor: &mut Cursor<'_>) -> Parsed<QresyncParams> {
    cursor.expect(b'(', "expected '(' after QRESYNC")?;
    let uid_validity = cursor.nz_number()?;
    cursor.sp()?;
    let modseq = cursor.number64()?;
    let mut params = QresyncParams {
        uid_validity,
        modseq,
        known_uids: None,
        seq_match: None,
    };
    if cursor.eat(b' ') {
        if cursor.peek() != Some(b'(') {
            params.known_uids = Some(sequence_set(cursor)?);
            if !cursor.eat(b' ') {
                cursor.expect(b')', "expected ')' to end QRESYNC")?;
                return Ok(params);
            }
        }
        cursor.expect(b'(', "expected sequence match data")?;
        let seqs = sequence_set(cursor)?;
        cursor.sp()?;
        let uids = sequence_set(cursor)?;
        cursor.expect(b')', "expected ')' to end sequence match data")?;
        params.seq_match = Some((seqs, uids));
    }
    cursor.expect(b')', "expected ')' to end QRESYNC")?;
    Ok(params)
}

/// After `LIST `.
pub(crate) fn list(cursor: &mut Cursor<'_>) -> Parsed<ListCommand> {
    let mut command = ListCommand::default();
    if cursor.peek() == Some(b'(') {
        cursor.expect(b'(', "expected '('")?;
        while !cursor.eat(b')') {
            if !command.selection.is_empty() {
                cursor.sp()?;
            }
            command.selection.push(match cursor.keyword()?.as_str() {
                "SUBSCRIBED" => ListSelection::Subscribed,
                "REMOTE" => ListSelection::Remote,
                "RECURSIVEMATCH" => ListSelection::RecursiveMatch,
                "SPECIAL-USE" => ListSelection::SpecialUse,
                _ => return Err(ParseErrorKind::Syntax("unknown LIST selection option")),
            });
        }
        cursor.sp()?;
    }
    command.reference = cursor.astring()?;
    cursor.sp()?;
    command.patterns = if cursor.peek() == Some(b'(') {
        cursor.paren_list(Cursor::list_mailbox)?
    } else {
        vec![cursor.list_mailbox()?]
    };
    if cursor.eat(b' ') {
        if !cursor.eat_keyword("RETURN") {
            return Err(ParseErrorKind::Syntax("expected RETURN"));
        }
        cursor.sp()?;
        cursor.expect(b'(', "expected '(' after RETURN")?;
        while !cursor.eat(b')') {
            if !command.returns.is_empty() {
                cursor.sp()?;
            }
            command.returns.push(match cursor.keyword()?.as_str() {
                "SUBSCRIBED" => ListReturn::Subscribed,
                "CHILDREN" => ListReturn::Children,
                "SPECIAL-USE" => ListReturn::SpecialUse,
                "STATUS" => {
                    cursor.sp()?;
                    ListReturn::Status(status_items(cursor)?)
                }
                _ => return Err(ParseErrorKind::Syntax("unknown LIST return option")),
            });
        }
    }
    let recursive_alone = command.selection.contains(&ListSelection::RecursiveMatch)
        && !command
            .selection
            .iter()
            .any(|s| matches!(s, ListSelection::Subscribed | ListSelection::SpecialUse));
    if recursive_alone {
        // RFC 5258 §3.1: RECURSIVEMATCH needs another selection option beside it.
        return Err(ParseErrorKind::Syntax(
            "RECURSIVEMATCH must be combined with another selection option",
        ));
    }
    Ok(command)
}

/// `(MESSAGES UNSEEN ...)`
pub(crate) fn status_items(cursor: &mut Cursor<'_>) -> Parsed<Vec<StatusItem>> {
    cursor.paren_list(|cursor| {
        Ok(match cursor.keyword()?.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "SIZE" => StatusItem::Size,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            _ => return Err(ParseErrorKind::Syntax("unknown STATUS item")),
        })
    })
}

/// After `APPEND `: mailbox, optional flags, optional date-time, the message literal.
pub(crate) fn append(cursor: &mut Cursor<'_>) -> Parsed<AppendCommand> {
    let mailbox = cursor.astring()?;
    cursor.sp()?;
    let mut flags = Vec::new();
    if cursor.peek() == Some(b'(') {
        flags = cursor.flag_list()?;
        cursor.sp()?;
    }
    let mut date = None;
    if cursor.peek() == Some(b'"') {
        date = Some(date_time(cursor)?);
        cursor.sp()?;
    }
    let message = match cursor.peek() {
        Some(b'{' | b'~') => cursor.string()?,
        _ => {
            return Err(ParseErrorKind::Syntax(
                "APPEND needs the message as a literal",
            ));
        }
    };
    cursor.end()?;
    Ok(AppendCommand {
        mailbox,
        flags,
        date,
        message,
    })
}

/// `"17-Jul-1996 02:44:25 -0700"` as seconds since the Unix epoch.
pub(crate) fn date_time(cursor: &mut Cursor<'_>) -> Parsed<i64> {
    let bad = ParseErrorKind::Syntax("bad date-time");
    cursor.expect(b'"', "expected a date-time")?;
    cursor.eat(b' ');
    let day = cursor.number()?;
    cursor.expect(b'-', "bad date-time")?;
    let month = month(cursor)?;
    cursor.expect(b'-', "bad date-time")?;
    let year = cursor.number()?;
    cursor.sp()?;
    let hour = two_digits(cursor)?;
    cursor.expect(b':', "bad date-time")?;
    let minute = two_digits(cursor)?;
    cursor.expect(b':', "bad date-time")?;
    let second = two_digits(cursor)?;
    cursor.sp()?;
    let sign: i32 = if cursor.eat(b'+') {
        1
    } else if cursor.eat(b'-') {
        -1
    } else {
        return Err(bad);
    };
    let zone_hours = two_digits(cursor)?;
    let zone_minutes = two_digits(cursor)?;
    cursor.expect(b'"', "bad date-time")?;

    let month = Month::try_from(month).map_err(|_| bad.clone())?;
    let year = i32::try_from(year).map_err(|_| bad.clone())?;
    let day = u8::try_from(day).map_err(|_| bad.clone())?;
    let date = Date::from_calendar_date(year, month, day).map_err(|_| bad.clone())?;
    let time = Time::from_hms(hour, minute, second).map_err(|_| bad.clone())?;
    let offset = UtcOffset::from_hms(
        (sign * i32::from(zone_hours)) as i8,
        (sign * i32::from(zone_minutes)) as i8,
        0,
    )
    .map_err(|_| bad.clone())?;
    Ok(PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .unix_timestamp())
}

fn two_digits(cursor: &mut Cursor<'_>) -> Parsed<u8> {
    let rest = cursor.rest();
    match rest.get(..2) {
        Some([a, b]) if a.is_ascii_digit() && b.is_ascii_digit() => {
            cursor.advance(2);
            Ok((a - b'0') * 10 + (b - b'0'))
        }
        _ => Err(ParseErrorKind::Syntax("bad date-time")),
    }
}
