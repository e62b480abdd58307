//! Our own IMAP4rev2/IMAP4rev1 command parser: bytes of one complete command (literals
//! already gathered by the framer) in, a [`Command`] out. No I/O, so it can be fuzzed
//! directly; every recursive or repeated rule is bounded by [`ParserLimits`].

mod fetch;
mod grammar;
mod lexer;
mod mailbox;
mod search;
mod sequence;

#[cfg(test)]
mod tests;

use crate::command::Command;

use self::lexer::Cursor;

/// Bounds on what one command may ask of the parser and of the session after it.
#[derive(Debug, Clone)]
pub struct ParserLimits {
    /// Parenthesised lists and NOT/OR search keys nested inside each other.
    pub max_nesting: usize,
    /// Items (`n` or `n:m`) in one sequence set.
    pub max_sequence_items: usize,
    /// Search keys in one SEARCH.
    pub max_search_keys: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        Self {
            max_nesting: 32,
            max_sequence_items: 16_384,
            max_search_keys: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("{0}")]
    Syntax(&'static str),
    #[error("unknown command {0}")]
    UnknownCommand(String),
    #[error("lists or search keys nested too deeply")]
    TooDeep,
    #[error("too many items in a sequence set")]
    TooManySequenceItems,
    #[error("too many search keys")]
    TooManySearchKeys,
}

/// Why a command was refused, with its tag when one could be read (so the reply can be
/// a tagged BAD rather than an untagged one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    pub tag: Option<String>,
    pub kind: ParseErrorKind,
}

/// Parses one complete command with the default limits.
pub fn parse_command(input: &[u8]) -> Result<Command, ParseError> {
    parse_command_with(input, &ParserLimits::default())
}

pub fn parse_command_with(input: &[u8], limits: &ParserLimits) -> Result<Command, ParseError> {
    let mut cursor = Cursor::new(input, limits);
    let tag = cursor
        .tag()
        .map_err(|kind| ParseError { tag: None, kind })?;
    let body = cursor
        .sp()
        .and_then(|()| grammar::command_body(&mut cursor))
        .map_err(|kind| ParseError {
            tag: Some(tag.clone()),
            kind,
        })?;
    Ok(Command { tag, body })
}
