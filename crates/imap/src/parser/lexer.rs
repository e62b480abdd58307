//! The tokens of RFC 9051 §9 (atoms, strings, literals, numbers) over one complete
//! command, with the nesting bound every recursive rule goes through.

use super::{ParseErrorKind, ParserLimits};

pub(crate) struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
    pub(crate) limits: &'a ParserLimits,
    /// Search keys parsed so far, bounded by `limits.max_search_keys`.
    pub(crate) search_keys: usize,
}

pub(crate) type Parsed<T> = Result<T, ParseErrorKind>;

/// RFC 9051 §9 `ATOM-CHAR`: any CHAR except atom-specials.
pub(crate) fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `ASTRING-CHAR`: an atom char or `]`.
pub(crate) fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// `list-char`: an astring char or a wildcard.
fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(input: &'a [u8], limits: &'a ParserLimits) -> Self {
        Self {
            input,
            pos: 0,
            depth: 0,
            limits,
            search_keys: 0,
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// What has been parsed so far.
    pub(crate) fn consumed(&self) -> &'a [u8] {
        &self.input[..self.pos]
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.input[self.pos..]
    }

    pub(crate) fn error(&self, what: &'static str) -> ParseErrorKind {
        ParseErrorKind::Syntax(what)
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.input.len());
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, b: u8, what: &'static str) -> Parsed<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    pub(crate) fn sp(&mut self) -> Parsed<()> {
        self.expect(b' ', "expected a space")
    }

    /// At the end of the command: CRLF (or a bare LF, which lenient clients send).
    pub(crate) fn at_end(&self) -> bool {
        matches!(self.rest(), b"" | b"\r\n" | b"\n")
    }

    pub(crate) fn end(&mut self) -> Parsed<()> {
        if self.at_end() {
            self.pos = self.input.len();
            Ok(())
        } else {
            Err(self.error("unexpected text at the end of the command"))
        }
    }

    /// Enters a parenthesised list or a nested search key; bounded so a hostile client
    /// cannot recurse the parser off the stack.
    pub(crate) fn enter(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > self.limits.max_nesting {
            return Err(ParseErrorKind::TooDeep);
        }
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        &self.input[start..self.pos]
    }

    pub(crate) fn atom(&mut self) -> Parsed<&'a [u8]> {
        let atom = self.take_while(is_atom_char);
        if atom.is_empty() {
            Err(self.error("expected an atom"))
        } else {
            Ok(atom)
        }
    }

    /// An atom as an upper-case string, for keywords.
    pub(crate) fn keyword(&mut self) -> Parsed<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    /// Consumes `word` (case-insensitively) if the next atom is exactly it.
    pub(crate) fn eat_keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        let len = word.len();
        if rest.len() >= len
            && rest[..len].eq_ignore_ascii_case(word.as_bytes())
            && !rest.get(len).copied().is_some_and(is_atom_char)
        {
            self.pos += len;
            true
        } else {
            false
        }
    }

    /// The tag: astring chars except `+`.
    pub(crate) fn tag(&mut self) -> Parsed<String> {
        let tag = self.take_while(|b| is_astring_char(b) && b != b'+');
        if tag.is_empty() {
            return Err(self.error("expected a tag"));
        }
        Ok(String::from_utf8_lossy(tag).into_owned())
    }

    pub(crate) fn number(&mut self) -> Parsed<u32> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(ParseErrorKind::Syntax("expected a number"))
    }

    pub(crate) fn number64(&mut self) -> Parsed<u64> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(ParseErrorKind::Syntax("expected a number"))
    }

    pub(crate) fn nz_number(&mut self) -> Parsed<u32> {
        match self.number()? {
            0 => Err(self.error("expected a non-zero number")),
            n => Ok(n),
        }
    }

    pub(crate) fn astring(&mut self) -> Parsed<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{' | b'~') => self.string(),
            _ => {
                let chars = self.take_while(is_astring_char);
                if chars.is_empty() {
                    Err(self.error("expected a string"))
                } else {
                    Ok(chars.to_vec())
                }
            }
        }
    }

    /// `string`: quoted or literal (a `~{n}` literal8 is accepted where strings are).
    pub(crate) fn string(&mut self) -> Parsed<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            Some(b'~') => {
                self.pos += 1;
                self.literal()
            }
            _ => Err(self.error("expected a quoted string or a literal")),
        }
    }

    pub(crate) fn nstring(&mut self) -> Parsed<Option<Vec<u8>>> {
        if self.eat_keyword("NIL") {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// `"..."` with `\"` and `\\` escapes; UTF-8 is allowed inside (IMAP4rev2).
    pub(crate) fn quoted(&mut self) -> Parsed<Vec<u8>> {
        self.expect(b'"', "expected a quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b @ (b'"' | b'\\')) => {
                            out.push(b);
                            self.pos += 1;
                        }
                        _ => return Err(self.error("bad escape in quoted string")),
                    }
                }
                Some(b'\r' | b'\n' | 0) | None => {
                    return Err(self.error("unterminated quoted string"));
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// `{n}CRLF` or `{n+}CRLF` followed by n octets; the framer has already gathered them.
    pub(crate) fn literal(&mut self) -> Parsed<Vec<u8>> {
        self.expect(b'{', "expected a literal")?;
        let size = self.number64()?;
        self.eat(b'+');
        self.expect(b'}', "bad literal")?;
        self.eat(b'\r');
        self.expect(b'\n', "bad literal")?;
        let size =
            usize::try_from(size).map_err(|_| ParseErrorKind::Syntax("literal too large"))?;
        if self.rest().len() < size {
            return Err(self.error("literal shorter than announced"));
        }
        let bytes = self.input[self.pos..self.pos + size].to_vec();
        self.pos += size;
        Ok(bytes)
    }

    /// `list-mailbox`: list chars (wildcards included) or a string.
    pub(crate) fn list_mailbox(&mut self) -> Parsed<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{' | b'~') => self.string(),
            _ => {
                let chars = self.take_while(is_list_char);
                if chars.is_empty() {
                    Err(self.error("expected a mailbox pattern"))
                } else {
                    Ok(chars.to_vec())
                }
            }
        }
    }

    /// A flag: `\Seen`, `\*` (where permitted by the caller) or a keyword atom.
    pub(crate) fn flag(&mut self) -> Parsed<String> {
        if self.eat(b'\\') {
            if self.eat(b'*') {
                return Ok("\\*".to_string());
            }
            let name = self.atom()?;
            Ok(format!("\\{}", String::from_utf8_lossy(name)))
        } else {
            Ok(String::from_utf8_lossy(self.atom()?).into_owned())
        }
    }

    /// `(flag flag ...)`, possibly empty.
    pub(crate) fn flag_list(&mut self) -> Parsed<Vec<String>> {
        self.expect(b'(', "expected a flag list")?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp()?;
        }
    }

    /// A parenthesised, space-separated list of items (at least one).
    pub(crate) fn paren_list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Parsed<T>,
    ) -> Parsed<Vec<T>> {
        self.expect(b'(', "expected '('")?;
        self.enter()?;
        let mut items = Vec::new();
        loop {
            items.push(item(self)?);
            if self.eat(b')') {
                self.leave();
                return Ok(items);
            }
            self.sp()?;
        }
    }
}
