//! The one HTTPS request delivery makes: GET of an MTA-STS policy (RFC 8461 §3.3).
//!
//! Written by hand rather than with hyper: it is one GET with `Connection: close` whose
//! answer is at most 64 KiB of text, and the three crates hyper needs (hyper, hyper-util,
//! http-body-util) are not otherwise in the tree. What the RFC asks of it: the host's
//! certificate must verify (PKIX) for `mta-sts.<domain>`, redirects are not followed,
//! only 200 counts, the media type is `text/plain`, and the whole exchange is bounded in
//! size and time. The response parser is sans-IO: bytes in, a response out once
//! complete, with bodies delimited by Content-Length, chunked encoding or the close.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The status line and header fields together may not be longer than this.
const MAX_HEAD: usize = 16 * 1024;

/// Why a GET gave no policy text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    /// The server's certificate did not verify (RFC 8460 `sts-webpki-invalid`).
    #[error("{0}")]
    Certificate(String),
    /// Anything else: no connection, an HTTP status other than 200, a bad response, too
    /// big, too slow (RFC 8460 `sts-policy-fetch-error`).
    #[error("{0}")]
    Fetch(String),
}

/// One GET of `https://<host>:<port><path>`, trying `addresses` in order until one
/// connects.
pub(crate) struct HttpsGet<'a> {
    pub host: &'a str,
    pub port: u16,
    pub path: &'a str,
    pub addresses: &'a [IpAddr],
    pub tls: Arc<ClientConfig>,
    pub max_body: usize,
    pub timeout: Duration,
}

impl HttpsGet<'_> {
    /// The body of a 200 `text/plain` response.
    pub async fn fetch(&self) -> Result<Vec<u8>, FetchError> {
        tokio::time::timeout(self.timeout, self.fetch_unbounded())
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Fetch(format!(
                    "no complete answer from https://{}:{} within {:?}",
                    self.host, self.port, self.timeout
                )))
            })
    }

    async fn fetch_unbounded(&self) -> Result<Vec<u8>, FetchError> {
        let name = ServerName::try_from(self.host.to_string())
            .map_err(|_| FetchError::Fetch(format!("{} is not a host name", self.host)))?;
        let mut last_error = FetchError::Fetch(format!("{} has no addresses", self.host));
        for ip in self.addresses {
            let address = SocketAddr::new(*ip, self.port);
            let tcp = match TcpStream::connect(address).await {
                Ok(tcp) => tcp,
                Err(error) => {
                    last_error = FetchError::Fetch(format!(
                        "cannot connect to {} ({address}): {error}",
                        self.host
                    ));
                    continue;
                }
            };
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
            let mut tls = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|error| tls_failure(self.host, error))?;
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sealpost\r\n\
                 Accept: text/plain\r\nConnection: close\r\n\r\n",
                self.path,
                host_header(self.host, self.port)
            );
            tls.write_all(request.as_bytes())
                .await
                .map_err(|error| FetchError::Fetch(format!("{}: {error}", self.host)))?;
            return self.read_response(&mut tls).await;
        }
        Err(last_error)
    }

    async fn read_response<S: tokio::io::AsyncRead + Unpin>(
        &self,
        stream: &mut S,
    ) -> Result<Vec<u8>, FetchError> {
        let limit = MAX_HEAD + self.max_body * 2 + 1024;
        let mut received = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        loop {
            let read = match stream.read(&mut chunk).await {
                Ok(read) => read,
                // A server that closes without close_notify has still said what it said;
                // a body it cut short is caught by the parser below.
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(error) => {
                    return Err(FetchError::Fetch(format!("{}: {error}", self.host)));
                }
            };
            received.extend_from_slice(&chunk[..read]);
            let eof = read == 0;
            match parse_response(&received, eof, self.max_body) {
                Ok(Parsed::Complete(response)) => return response.into_policy_body(),
                Ok(Parsed::Incomplete) if eof => {
                    return Err(FetchError::Fetch(format!(
                        "{} closed the connection in the middle of the response",
                        self.host
                    )));
                }
                Ok(Parsed::Incomplete) if received.len() > limit => {
                    return Err(FetchError::Fetch(format!(
                        "the response of {} is too large",
                        self.host
                    )));
                }
                Ok(Parsed::Incomplete) => {}
                Err(error) => return Err(FetchError::Fetch(format!("{}: {error}", self.host))),
            }
        }
    }
}

fn host_header(host: &str, port: u16) -> String {
    if port == 443 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// A certificate the roots do not vouch for is told apart from other handshake failures.
fn tls_failure(host: &str, error: std::io::Error) -> FetchError {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(certificate)) => FetchError::Certificate(format!(
            "the certificate of {host} does not verify: {certificate:?}"
        )),
        _ => FetchError::Fetch(format!("TLS with {host} failed: {error}")),
    }
}

/// A whole HTTP response, as far as a policy fetch cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    /// RFC 8461 §3.3: only a 200 with a `text/plain` body is a policy; a redirect is a
    /// failure, not something to follow.
    fn into_policy_body(self) -> Result<Vec<u8>, FetchError> {
        match self.status {
            200 => {}
            300..=399 => {
                return Err(FetchError::Fetch(format!(
                    "the policy URL redirects (HTTP {}{}); redirects are not followed \
                     (RFC 8461 §3.3)",
                    self.status,
                    self.location
                        .map(|to| format!(" to {to}"))
                        .unwrap_or_default()
                )));
            }
            status => {
                return Err(FetchError::Fetch(format!(
                    "the policy URL answered HTTP {status}"
                )));
            }
        }
        let media_type = self
            .content_type
            .as_deref()
            .and_then(|value| value.split(';').next())
            .map(|media_type| media_type.trim().to_ascii_lowercase());
        if media_type.as_deref() != Some("text/plain") {
            return Err(FetchError::Fetch(format!(
                "the policy is served as {}, not text/plain (RFC 8461 §3.3)",
                self.content_type.as_deref().unwrap_or("no media type")
            )));
        }
        Ok(self.body)
    }
}

pub(crate) enum Parsed {
    /// More bytes are needed.
    Incomplete,
    Complete(Response),
}

/// Parses what has been received so far. `eof`: the server closed the connection, which
/// ends a body that has neither Content-Length nor chunked encoding.
pub(crate) fn parse_response(
    received: &[u8],
    eof: bool,
    max_body: usize,
) -> Result<Parsed, String> {
    let Some(head_end) = find(received, b"\r\n\r\n") else {
        if received.len() > MAX_HEAD {
            return Err("the response header is too large".into());
        }
        return Ok(Parsed::Incomplete);
    };
    if head_end > MAX_HEAD {
        return Err("the response header is too large".into());
    }
    let head = std::str::from_utf8(&received[..head_end])
        .map_err(|_| "the response header is not text".to_string())?;
    let mut lines = head.split("\r\n");
    let status = parse_status(lines.next().unwrap_or(""))?;
    let mut content_type = None;
    let mut location = None;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header line {line:?}"))?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = Some(value.to_string()),
            "location" => location = Some(value.to_string()),
            "content-length" => {
                let length: usize = value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?;
                if content_length.is_some_and(|earlier| earlier != length) {
                    return Err("conflicting Content-Length fields".into());
                }
                content_length = Some(length);
            }
            "transfer-encoding" => {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
                if !chunked {
                    return Err(format!("unsupported Transfer-Encoding {value:?}"));
                }
            }
            _ => {}
        }
    }
    let rest = &received[head_end + 4..];
    let body = if chunked {
        match dechunk(rest, max_body)? {
            Some(body) => body,
            None => return Ok(Parsed::Incomplete),
        }
    } else if let Some(length) = content_length {
        if length > max_body {
            return Err(format!("the body is larger than {max_body} bytes"));
        }
        if rest.len() < length {
            return Ok(Parsed::Incomplete);
        }
        rest[..length].to_vec()
    } else {
        if rest.len() > max_body {
            return Err(format!("the body is larger than {max_body} bytes"));
        }
        if !eof {
            return Ok(Parsed::Incomplete);
        }
        rest.to_vec()
    };
    Ok(Parsed::Complete(Response {
        status,
        content_type,
        location,
        body,
    }))
}

fn parse_status(line: &str) -> Result<u16, String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(format!("not an HTTP/1 status line: {line:?}"));
    }
    code.parse()
        .map_err(|_| format!("not an HTTP/1 status line: {line:?}"))
}

/// The body of a complete chunked encoding (RFC 9112 §7.1), `None` while incomplete.
fn dechunk(mut data: &[u8], max_body: usize) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            if data.len() > 1024 {
                return Err("a chunk size line is too long".into());
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..line_end])
            .map_err(|_| "a chunk size line is not text".to_string())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailer fields, then an empty line.
            return Ok(find(data, b"\r\n\r\n")
                .or_else(|| data.starts_with(b"\r\n").then_some(0))
                .map(|_| body));
        }
        if body.len() + size > max_body {
            return Err(format!("the body is larger than {max_body} bytes"));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err("a chunk does not end in CRLF".into());
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests;
