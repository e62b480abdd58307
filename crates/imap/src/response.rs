//! Encoding of server responses (RFC 9051 §7) into the session's output buffer.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        }
    }
}

/// The tagged completion of a command: `tag OK [CODE] text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub status: Status,
    pub code: Option<String>,
    pub text: String,
}

impl Completion {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            status: Status::Ok,
            code: None,
            text: text.into(),
        }
    }

    pub fn no(text: impl Into<String>) -> Self {
        Self {
            status: Status::No,
            code: None,
            text: text.into(),
        }
    }

    pub fn bad(text: impl Into<String>) -> Self {
        Self {
            status: Status::Bad,
            code: None,
            text: text.into(),
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn write(&self, out: &mut Vec<u8>, tag: &str) {
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.status.as_str().as_bytes());
        if let Some(code) = &self.code {
            out.extend_from_slice(b" [");
            out.extend_from_slice(code.as_bytes());
            out.push(b']');
        }
        out.push(b' ');
        out.extend_from_slice(self.text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// `* text\r\n`
pub fn untagged(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"* ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A mailbox name (or other short text without CR/LF) as a quoted string.
pub fn quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// `(\Seen $Junk)`
pub fn flag_list(out: &mut String, flags: &[String]) {
    out.push('(');
    for (i, flag) in flags.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(flag);
    }
    out.push(')');
}

/// Ascending numbers as a compact sequence set: `1:3,7,9:10`. Empty for none.
pub fn sequence_set(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end.wrapping_add(1) {
            end = numbers[i + 1];
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}:{end}");
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_sets_are_compressed() {
        assert_eq!(sequence_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(sequence_set(&[]), "");
        assert_eq!(sequence_set(&[5]), "5");
    }

    #[test]
    fn completion_with_code() {
        let mut out = Vec::new();
        Completion::no("too big")
            .with_code("TOOBIG")
            .write(&mut out, "a1");
        assert_eq!(out, b"a1 NO [TOOBIG] too big\r\n");
    }

    #[test]
    fn quoting_escapes() {
        let mut out = String::new();
        quoted(&mut out, "a\"b\\c");
        assert_eq!(out, "\"a\\\"b\\\\c\"");
    }
}
