//! The command grammar (RFC 9051 §6, §9 `command`): tag, name, arguments, end.

use super::ParseErrorKind;
use super::fetch::fetch;
use super::lexer::{Cursor, Parsed};
use super::mailbox::{append, list, select_params, status_items};
use super::search::search;
use super::sequence::sequence_set;
use crate::command::{CommandBody, StoreCommand, StoreOperation};

/// Everything after the tag and its space.
pub(crate) fn command_body(cursor: &mut Cursor<'_>) -> Parsed<CommandBody> {
    let name = cursor.keyword()?;
    let body = match name.as_str() {
        "CAPABILITY" => CommandBody::Capability,
        "NOOP" => CommandBody::Noop,
        "LOGOUT" => CommandBody::Logout,
        "STARTTLS" => CommandBody::StartTls,
        "NAMESPACE" => CommandBody::Namespace,
        "IDLE" => CommandBody::Idle,
        "CHECK" => CommandBody::Check,
        "CLOSE" => CommandBody::Close,
        "UNSELECT" => CommandBody::Unselect,
        "EXPUNGE" => CommandBody::Expunge { uids: None },
        "AUTHENTICATE" => {
            cursor.sp()?;
            let mechanism = cursor.keyword()?;
            let initial = if cursor.eat(b' ') {
                Some(sasl_initial_response(cursor)?)
            } else {
                None
            };
            CommandBody::Authenticate { mechanism, initial }
        }
        "LOGIN" => {
            cursor.sp()?;
            let user = cursor.astring()?;
            cursor.sp()?;
            let password = cursor.astring()?;
            CommandBody::Login { user, password }
        }
        "ENABLE" => {
            let mut capabilities = Vec::new();
            while cursor.eat(b' ') {
                capabilities.push(cursor.keyword()?);
            }
            if capabilities.is_empty() {
                return Err(ParseErrorKind::Syntax("ENABLE needs a capability"));
            }
            CommandBody::Enable(capabilities)
        }
        "SELECT" | "EXAMINE" => {
            cursor.sp()?;
            let mailbox = cursor.astring()?;
            let params = select_params(cursor)?;
            CommandBody::Select {
                mailbox,
                read_only: name == "EXAMINE",
                params,
            }
        }
        "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => {
            cursor.sp()?;
            let mailbox = cursor.astring()?;
            if name == "CREATE" && cursor.eat(b' ') {
                // RFC 4466 create parameters: we know none (USE= would be RFC 6154 §3).
                return Err(ParseErrorKind::Syntax(
                    "CREATE parameters are not supported",
                ));
            }
            match name.as_str() {
                "CREATE" => CommandBody::Create(mailbox),
                "DELETE" => CommandBody::Delete(mailbox),
                "SUBSCRIBE" => CommandBody::Subscribe(mailbox),
                _ => CommandBody::Unsubscribe(mailbox),
            }
        }
        "RENAME" => {
            cursor.sp()?;
            let from = cursor.astring()?;
            cursor.sp()?;
            let to = cursor.astring()?;
            CommandBody::Rename { from, to }
        }
        "LIST" => {
            cursor.sp()?;
            CommandBody::List(list(cursor)?)
        }
        "LSUB" => {
            cursor.sp()?;
            let reference = cursor.astring()?;
            cursor.sp()?;
            let pattern = cursor.list_mailbox()?;
            CommandBody::Lsub { reference, pattern }
        }
        "STATUS" => {
            cursor.sp()?;
            let mailbox = cursor.astring()?;
            cursor.sp()?;
            let items = status_items(cursor)?;
            CommandBody::Status { mailbox, items }
        }
        "APPEND" => {
            cursor.sp()?;
            return append(cursor).map(CommandBody::Append);
        }
        "SEARCH" => {
            cursor.sp()?;
            return search(cursor, false).map(CommandBody::Search);
        }
        "FETCH" => {
            cursor.sp()?;
            return fetch(cursor, false).map(CommandBody::Fetch);
        }
        "STORE" => {
            cursor.sp()?;
            CommandBody::Store(store(cursor, false)?)
        }
        "COPY" | "MOVE" => {
            cursor.sp()?;
            copy_or_move(cursor, &name, false)?
        }
        "UID" => {
            cursor.sp()?;
            return uid_command(cursor);
        }
        "ID" => {
            cursor.sp()?;
            CommandBody::Id(id_parameters(cursor)?)
        }
        _ => return Err(ParseErrorKind::UnknownCommand(name)),
    };
    cursor.end()?;
    Ok(body)
}

fn uid_command(cursor: &mut Cursor<'_>) -> Parsed<CommandBody> {
    let name = cursor.keyword()?;
    let body = match name.as_str() {
        "FETCH" => {
            cursor.sp()?;
            return fetch(cursor, true).map(CommandBody::Fetch);
        }
        "SEARCH" => {
            cursor.sp()?;
            return search(cursor, true).map(CommandBody::Search);
        }
        "STORE" => {
            cursor.sp()?;
            CommandBody::Store(store(cursor, true)?)
        }
        "COPY" | "MOVE" => {
            cursor.sp()?;
            copy_or_move(cursor, &name, true)?
        }
        "EXPUNGE" => {
            cursor.sp()?;
            CommandBody::Expunge {
                uids: Some(sequence_set(cursor)?),
            }
        }
        _ => return Err(ParseErrorKind::UnknownCommand(format!("UID {name}"))),
    };
    cursor.end()?;
    Ok(body)
}

fn copy_or_move(cursor: &mut Cursor<'_>, name: &str, uid: bool) -> Parsed<CommandBody> {
    let set = sequence_set(cursor)?;
    cursor.sp()?;
    let mailbox = cursor.astring()?;
    Ok(if name == "COPY" {
        CommandBody::Copy { uid, set, mailbox }
    } else {
        CommandBody::Move { uid, set, mailbox }
    })
}

/// `set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] (flags | flag flag ...)`
fn store(cursor: &mut Cursor<'_>, uid: bool) -> Parsed<StoreCommand> {
    let set = sequence_set(cursor)?;
    cursor.sp()?;
    let mut unchanged_since = None;
    if cursor.peek() == Some(b'(') {
        cursor.paren_list(|cursor| {
            if !cursor.eat_keyword("UNCHANGEDSINCE") {
                return Err(ParseErrorKind::Syntax("unknown STORE modifier"));
            }
            cursor.sp()?;
            unchanged_since = Some(cursor.number64()?);
            Ok(())
        })?;
        cursor.sp()?;
    }
    let operation = if cursor.eat(b'+') {
        StoreOperation::Add
    } else if cursor.eat(b'-') {
        StoreOperation::Remove
    } else {
        StoreOperation::Replace
    };
    let silent = if cursor.eat_keyword("FLAGS.SILENT") {
        true
    } else if cursor.eat_keyword("FLAGS") {
        false
    } else {
        return Err(ParseErrorKind::Syntax("expected FLAGS or FLAGS.SILENT"));
    };
    cursor.sp()?;
    let flags = if cursor.peek() == Some(b'(') {
        cursor.flag_list()?
    } else {
        let mut flags = vec![cursor.flag()?];
        while cursor.eat(b' ') {
            flags.push(cursor.flag()?);
        }
        flags
    };
    if flags.iter().any(|f| f == "\\*") {
        return Err(ParseErrorKind::Syntax("\\* is not a flag"));
    }
    Ok(StoreCommand {
        uid,
        set,
        unchanged_since,
        operation,
        silent,
        flags,
    })
}

/// RFC 4959: base64 or `=` for an empty response.
fn sasl_initial_response(cursor: &mut Cursor<'_>) -> Parsed<Vec<u8>> {
    let rest = cursor.rest();
    let len = rest
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')))
        .unwrap_or(rest.len());
    if len == 0 {
        return Err(ParseErrorKind::Syntax("expected a base64 initial response"));
    }
    let response = rest[..len].to_vec();
    cursor.advance(len);
    Ok(response)
}

/// RFC 2971: `NIL` or `("name" "value" ...)` with at most 30 pairs.
#[allow(clippy::type_complexity)]
fn id_parameters(cursor: &mut Cursor<'_>) -> Parsed<Option<Vec<(String, Option<String>)>>> {
    if cursor.eat_keyword("NIL") {
        return Ok(None);
    }
    cursor.expect(b'(', "expected '(' or NIL")?;
    let mut pairs = Vec::new();
    while !cursor.eat(b')') {
        if !pairs.is_empty() {
            cursor.sp()?;
        }
        if pairs.len() == 30 {
            return Err(ParseErrorKind::Syntax("too many ID fields"));
        }
        let name = String::from_utf8_lossy(&cursor.string()?).into_owned();
        cursor.sp()?;
        let value = cursor
            .nstring()?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        pairs.push((name, value));
    }
    Ok(Some(pairs))
}
