//! POP3 command lines (RFC 1939 §3, RFC 2449 §3): a keyword of three or four letters,
//! matched case-insensitively, and its arguments separated by spaces.

use std::fmt;

/// The longest command line, CRLF included (RFC 2449 §4).
pub const MAX_COMMAND_LINE: usize = 255;

/// A message number as the client wrote it: 1-based, maybe out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageNumber(pub usize);

/// A password, kept out of `Debug` output so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(Secret),
    Stat,
    List(Option<MessageNumber>),
    Retr(MessageNumber),
    Dele(MessageNumber),
    Noop,
    Rset,
    /// TOP msg n: the headers and the first `n` body lines.
    Top(MessageNumber, usize),
    Uidl(Option<MessageNumber>),
    Quit,
    Capa,
    Stls,
    /// AUTH alone lists the mechanisms; AUTH mechanism [initial-response] (RFC 5034 §4).
    Auth(Option<AuthStart>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthStart {
    /// Upper-cased.
    pub mechanism: String,
    /// Base64 as sent; `=` stands for an empty response.
    pub initial_response: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command")]
    Unknown,
    #[error("{0}")]
    Syntax(&'static str),
}

/// Strips the line ending: CRLF, or a lone LF from a lenient client.
pub fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl Command {
    /// Parses one command line (line ending already stripped).
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let line = std::str::from_utf8(line)
            .map_err(|_| CommandError::Syntax("command line is not valid UTF-8"))?;
        let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
        if !(3..=4).contains(&keyword.len()) || !keyword.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(CommandError::Unknown);
        }
        let keyword = keyword.to_ascii_uppercase();
        // PASS takes the rest of the line verbatim: a password may contain spaces
        // (RFC 1939 §7, PASS).
        if keyword == "PASS" {
            if rest.is_empty() {
                return Err(CommandError::Syntax("PASS needs a password"));
            }
            return Ok(Command::Pass(Secret::new(rest)));
        }
        let args: Vec<&str> = rest.split_ascii_whitespace().collect();
        let command = match (keyword.as_str(), args.as_slice()) {
            ("USER", [name]) => Command::User((*name).to_string()),
            ("USER", _) => return Err(CommandError::Syntax("usage: USER name")),
            ("STAT", []) => Command::Stat,
            ("LIST", []) => Command::List(None),
            ("LIST", [n]) => Command::List(Some(message_number(n)?)),
            ("RETR", [n]) => Command::Retr(message_number(n)?),
            ("DELE", [n]) => Command::Dele(message_number(n)?),
            ("NOOP", []) => Command::Noop,
            ("RSET", []) => Command::Rset,
            ("TOP", [n, lines]) => Command::Top(message_number(n)?, count(lines)?),
            ("UIDL", []) => Command::Uidl(None),
            ("UIDL", [n]) => Command::Uidl(Some(message_number(n)?)),
            ("QUIT", []) => Command::Quit,
            ("CAPA", []) => Command::Capa,
            ("STLS", []) => Command::Stls,
            ("AUTH", []) => Command::Auth(None),
            ("AUTH", [mechanism]) => Command::Auth(Some(AuthStart {
                mechanism: mechanism.to_ascii_uppercase(),
                initial_response: None,
            })),
            ("AUTH", [mechanism, initial]) => Command::Auth(Some(AuthStart {
                mechanism: mechanism.to_ascii_uppercase(),
                initial_response: Some((*initial).to_string()),
            })),
            ("STAT" | "NOOP" | "RSET" | "QUIT" | "CAPA" | "STLS", _) => {
                return Err(CommandError::Syntax("this command takes no arguments"));
            }
            ("LIST" | "UIDL", _) => {
                return Err(CommandError::Syntax("at most one message number"));
            }
            ("RETR" | "DELE", _) => return Err(CommandError::Syntax("one message number")),
            ("TOP", _) => return Err(CommandError::Syntax("usage: TOP msg lines")),
            ("AUTH", _) => {
                return Err(CommandError::Syntax(
                    "usage: AUTH mechanism [initial-response]",
                ));
            }
            _ => return Err(CommandError::Unknown),
        };
        Ok(command)
    }
}

/// Digits only. A number too large for memory names no message, so it saturates rather
/// than failing as a syntax error.
fn count(arg: &str) -> Result<usize, CommandError> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax("not a number"));
    }
    Ok(arg.parse().unwrap_or(usize::MAX))
}

fn message_number(arg: &str) -> Result<MessageNumber, CommandError> {
    count(arg)
        .map(MessageNumber)
        .map_err(|_| CommandError::Syntax("invalid message number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, CommandError> {
        Command::parse(line.as_bytes())
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse("stat"), Ok(Command::Stat));
        assert_eq!(parse("StAt"), Ok(Command::Stat));
        assert_eq!(parse("top 1 10"), Ok(Command::Top(MessageNumber(1), 10)));
        assert_eq!(parse("uidl 3"), Ok(Command::Uidl(Some(MessageNumber(3)))));
    }

    #[test]
    fn pass_keeps_spaces_in_the_password() {
        assert_eq!(
            parse("PASS  two words "),
            Ok(Command::Pass(Secret::new(" two words ")))
        );
        assert_eq!(
            parse("PASS"),
            Err(CommandError::Syntax("PASS needs a password"))
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let command = parse("PASS hunter2").unwrap();
        assert!(!format!("{command:?}").contains("hunter2"));
    }

    #[test]
    fn message_numbers_must_be_digits() {
        assert!(matches!(parse("RETR one"), Err(CommandError::Syntax(_))));
        assert!(matches!(parse("RETR -1"), Err(CommandError::Syntax(_))));
        assert!(matches!(parse("RETR +1"), Err(CommandError::Syntax(_))));
        assert!(matches!(parse("RETR"), Err(CommandError::Syntax(_))));
        assert_eq!(
            parse("RETR 99999999999999999999999"),
            Ok(Command::Retr(MessageNumber(usize::MAX)))
        );
    }

    #[test]
    fn unknown_and_malformed_keywords_are_unknown() {
        assert_eq!(parse("APOP a b"), Err(CommandError::Unknown));
        assert_eq!(parse("LAST"), Err(CommandError::Unknown));
        assert_eq!(parse(""), Err(CommandError::Unknown));
        assert_eq!(parse("RETRIEVE 1"), Err(CommandError::Unknown));
        assert_eq!(parse("ST4T"), Err(CommandError::Unknown));
    }

    #[test]
    fn auth_takes_a_mechanism_and_an_optional_initial_response() {
        assert_eq!(parse("AUTH"), Ok(Command::Auth(None)));
        assert_eq!(
            parse("auth plain AGEAYg=="),
            Ok(Command::Auth(Some(AuthStart {
                mechanism: "PLAIN".into(),
                initial_response: Some("AGEAYg==".into()),
            })))
        );
        assert!(matches!(parse("AUTH a b c"), Err(CommandError::Syntax(_))));
    }

    #[test]
    fn line_endings_are_stripped_leniently() {
        assert_eq!(strip_line_ending(b"STAT\r\n"), b"STAT");
        assert_eq!(strip_line_ending(b"STAT\n"), b"STAT");
        assert_eq!(strip_line_ending(b"STAT"), b"STAT");
    }
}
