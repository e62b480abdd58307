//! Just enough of an IMAP client to drive a server hard: tagged commands, responses read
//! whole (every `{n}` literal consumed by its size, RFC 9051 §4.3), counted rather than
//! parsed, so the client spends as little of the shared CPU as possible.

use std::io::ErrorKind;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A response line longer than this (not counting literals) means something is wrong.
const MAX_LINE: usize = 1 << 20;
/// Untagged lines kept per command, for CAPABILITY and error messages.
const KEPT_UNTAGGED: usize = 64;
/// Keep at most this much of a line's text.
const KEPT_TEXT: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// The outcome of one tagged command.
#[derive(Debug, Default)]
pub struct Reply {
    /// The tagged line after the tag, e.g. `OK [READ-WRITE] SELECT completed`.
    pub tagged: String,
    /// The first untagged lines (text before any literal).
    pub untagged: Vec<String>,
    pub untagged_count: u64,
    pub literals: u64,
    pub literal_bytes: u64,
}

/// One logical response line: its text up to the first literal, and what the literals in
/// it held.
struct Line {
    text: String,
    literals: u64,
    literal_bytes: u64,
}

pub struct ImapClient<S> {
    stream: S,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    next_tag: u64,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ImapClient<S> {
    /// `buffer` is the initial read buffer size; it grows only for a line longer than it.
    pub fn new(stream: S, buffer: usize, timeout: Duration) -> Self {
        ImapClient {
            stream,
            buf: vec![0; buffer.max(64)],
            start: 0,
            end: 0,
            next_tag: 1,
            timeout,
        }
    }

    /// Reads the server greeting; anything but `* OK` is an error.
    pub async fn greeting(&mut self) -> anyhow::Result<String> {
        let line = self.read_line().await.context("no greeting")?;
        if !line.text.starts_with("* OK") {
            bail!("greeting is not * OK: {}", line.text);
        }
        Ok(line.text)
    }

    /// Sends `TAG command` and reads up to its tagged reply; a NO or BAD is an error.
    pub async fn command(&mut self, command: &str) -> anyhow::Result<Reply> {
        let tag = self.send_command(command).await?;
        let reply = self.read_reply(&tag).await?;
        let verb = command.split(' ').next().unwrap_or(command);
        match status(&reply.tagged) {
            Some(Status::Ok) => Ok(reply),
            _ => bail!("{verb} answered {}", reply.tagged),
        }
    }

    /// `LOGIN` with both arguments as quoted strings (RFC 9051 §4.3).
    pub async fn login(&mut self, user: &str, password: &str) -> anyhow::Result<Reply> {
        self.command(&format!("LOGIN {} {}", quoted(user)?, quoted(password)?))
            .await
    }

    /// `APPEND mailbox {n}` with `message` as the literal: sent with the command when the
    /// server has LITERAL+ (RFC 7888), else after its continuation request.
    pub async fn append(
        &mut self,
        mailbox: &str,
        message: &[u8],
        literal_plus: bool,
    ) -> anyhow::Result<Reply> {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        let size = message.len();
        let mut bytes = if literal_plus {
            format!("{tag} APPEND {mailbox} {{{size}+}}\r\n").into_bytes()
        } else {
            self.write(format!("{tag} APPEND {mailbox} {{{size}}}\r\n").as_bytes())
                .await?;
            self.read_continuation().await?;
            Vec::new()
        };
        bytes.extend_from_slice(message);
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes).await?;
        let reply = self.read_reply(&tag).await?;
        match status(&reply.tagged) {
            Some(Status::Ok) => Ok(reply),
            _ => bail!("APPEND answered {}", reply.tagged),
        }
    }

    /// Writes `TAG command\r\n` in one go and returns the tag.
    pub async fn send_command(&mut self, command: &str) -> anyhow::Result<String> {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        self.write(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        Ok(tag)
    }

    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(self.timeout, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .context("timed out writing")?
        .context("write failed")
    }

    /// Reads lines until the one tagged `tag`.
    pub async fn read_reply(&mut self, tag: &str) -> anyhow::Result<Reply> {
        let mut reply = Reply::default();
        loop {
            let line = self.read_line().await?;
            reply.literals += line.literals;
            reply.literal_bytes += line.literal_bytes;
            if let Some(rest) = line
                .text
                .strip_prefix(tag)
                .and_then(|rest| rest.strip_prefix(' '))
            {
                reply.tagged = rest.to_string();
                return Ok(reply);
            }
            reply.untagged_count += 1;
            if reply.untagged.len() < KEPT_UNTAGGED {
                reply.untagged.push(line.text);
            }
        }
    }

    /// Reads one line that must be a command continuation request (`+ ...`), as IDLE
    /// and a synchronizing literal wait for.
    pub async fn read_continuation(&mut self) -> anyhow::Result<String> {
        loop {
            let line = self.read_line().await?;
            if line.text.starts_with('+') {
                return Ok(line.text);
            }
            if !line.text.starts_with('*') {
                bail!("expected a continuation request, got {}", line.text);
            }
        }
    }

    /// Waits for the server to close the connection, discarding what it still sends. A
    /// close without TLS close_notify counts as closed: the session was already over.
    pub async fn read_to_end(&mut self) -> anyhow::Result<()> {
        tokio::time::timeout(self.timeout, async {
            loop {
                match self.stream.read(&mut self.buf).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                        ) =>
                    {
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .context("timed out waiting for the server to close")?
        .context("read failed")
    }

    async fn read_line(&mut self) -> anyhow::Result<Line> {
        let mut line = Line {
            text: String::new(),
            literals: 0,
            literal_bytes: 0,
        };
        let mut first = true;
        loop {
            let (from, to) = self.read_segment().await?;
            let segment = &self.buf[from..to];
            let literal = literal_size(segment)?;
            if first {
                let kept = &segment[..segment.len().min(KEPT_TEXT)];
                line.text = String::from_utf8_lossy(kept).into_owned();
                first = false;
            }
            match literal {
                None => return Ok(line),
                Some(size) => {
                    self.skip(size).await?;
                    line.literals += 1;
                    line.literal_bytes += size;
                }
            }
        }
    }

    /// Finds the next CRLF-terminated segment; returns its bounds without the line end
    /// and consumes it (the bytes stay valid until the next read).
    async fn read_segment(&mut self) -> anyhow::Result<(usize, usize)> {
        let mut searched = self.start;
        loop {
            if let Some(at) = self.buf[searched..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let newline = searched + at;
                let from = self.start;
                let to = if newline > from && self.buf[newline - 1] == b'\r' {
                    newline - 1
                } else {
                    newline
                };
                self.start = newline + 1;
                return Ok((from, to));
            }
            searched = self.end;
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                searched -= self.start;
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                if self.buf.len() >= MAX_LINE {
                    bail!("response line longer than {MAX_LINE} bytes");
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            self.fill().await?;
        }
    }

    /// Consumes a literal's `size` bytes, from the buffer first, then straight from the
    /// stream.
    async fn skip(&mut self, mut size: u64) -> anyhow::Result<()> {
        loop {
            let buffered = (self.end - self.start) as u64;
            if buffered >= size {
                self.start += size as usize;
                return Ok(());
            }
            size -= buffered;
            self.start = 0;
            self.end = 0;
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let read = tokio::time::timeout(self.timeout, self.stream.read(&mut self.buf[self.end..]))
            .await
            .context("timed out waiting for the server")?
            .context("read failed")?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        self.end += read;
        Ok(())
    }
}

/// The status word of a tagged line's text (after the tag).
pub fn status(tagged: &str) -> Option<Status> {
    let word = tagged.split(' ').next()?;
    if word.eq_ignore_ascii_case("OK") {
        Some(Status::Ok)
    } else if word.eq_ignore_ascii_case("NO") {
        Some(Status::No)
    } else if word.eq_ignore_ascii_case("BAD") {
        Some(Status::Bad)
    } else {
        None
    }
}

/// The size of the literal announced at the end of a segment: `{n}`, `{n+}` or `~{n}`.
fn literal_size(segment: &[u8]) -> anyhow::Result<Option<u64>> {
    let Some(inner) = segment.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = inner.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let digits = inner[open + 1..]
        .strip_suffix(b"+")
        .unwrap_or(&inner[open + 1..]);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    let size = std::str::from_utf8(digits)?
        .parse()
        .context("literal size out of range")?;
    Ok(Some(size))
}

/// An IMAP quoted string (RFC 9051 §4.3): backslash and double quote escaped; CR and LF
/// cannot be quoted at all.
fn quoted(value: &str) -> anyhow::Result<String> {
    if value.contains(['\r', '\n']) {
        bail!("a user name or password with CR or LF cannot be sent as a quoted string");
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(server_says: &[u8]) -> ImapClient<tokio::io::DuplexStream> {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let bytes = server_says.to_vec();
        tokio::spawn(async move {
            theirs.write_all(&bytes).await.unwrap();
            // Hold the server side open until the client is done reading.
            let mut sink = Vec::new();
            let _ = theirs.read_to_end(&mut sink).await;
        });
        ImapClient::new(ours, 64, Duration::from_secs(5))
    }

    #[tokio::test]
    async fn fetch_literals_are_consumed_by_size_even_when_they_hold_crlf_and_tags() {
        let mut server = Vec::new();
        server.extend_from_slice(b"* 1 FETCH (UID 1 BODY[] {20}\r\na1 OK fake\r\nbody!!\r\n)\r\n");
        server.extend_from_slice(b"* 2 FETCH (UID 2 BODY[] {3}\r\nabc FLAGS (\\Seen))\r\n");
        server.extend_from_slice(b"a1 OK UID FETCH done\r\n");
        let mut imap = client(&server);
        imap.next_tag = 1;
        let reply = imap.read_reply("a1").await.unwrap();
        assert_eq!(reply.tagged, "OK UID FETCH done");
        assert_eq!(reply.literals, 2);
        assert_eq!(reply.literal_bytes, 23);
        assert_eq!(reply.untagged_count, 2);
        assert_eq!(reply.untagged[0], "* 1 FETCH (UID 1 BODY[] {20}");
    }

    #[tokio::test]
    async fn lines_longer_than_the_buffer_are_read_whole() {
        let long = format!(
            "* CAPABILITY IMAP4rev1 {}\r\na1 NO nope\r\n",
            "X".repeat(500)
        );
        let mut imap = client(long.as_bytes());
        let reply = imap.read_reply("a1").await.unwrap();
        assert_eq!(reply.untagged[0].len(), KEPT_TEXT);
        assert_eq!(status(&reply.tagged), Some(Status::No));
    }

    #[tokio::test]
    async fn a_closed_connection_mid_literal_is_an_error() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        theirs
            .write_all(b"* 1 FETCH (BODY[] {100}\r\nshort")
            .await
            .unwrap();
        drop(theirs);
        let mut imap = ImapClient::new(ours, 64, Duration::from_secs(5));
        assert!(imap.read_reply("a1").await.is_err());
    }

    #[test]
    fn literal_markers_are_recognised_only_at_the_end() {
        assert_eq!(
            literal_size(b"* 1 FETCH (BODY[] {4096}").unwrap(),
            Some(4096)
        );
        assert_eq!(literal_size(b"a APPEND INBOX {12+}").unwrap(), Some(12));
        assert_eq!(literal_size(b"* OK {not a literal}").unwrap(), None);
        assert_eq!(literal_size(b"* OK {}").unwrap(), None);
        assert_eq!(literal_size(b"* OK done").unwrap(), None);
    }

    #[test]
    fn quoted_strings_escape_quote_and_backslash() {
        assert_eq!(quoted(r#"p"w\d"#).unwrap(), r#""p\"w\\d""#);
        assert!(quoted("a\r\nb").is_err());
    }
}
