use super::*;

const MAX: usize = 64 * 1024;

fn complete(received: &[u8], eof: bool) -> Response {
    match parse_response(received, eof, MAX).unwrap() {
        Parsed::Complete(response) => response,
        Parsed::Incomplete => panic!("incomplete"),
    }
}

#[test]
fn content_length_body_is_complete_without_waiting_for_close() {
    let response = complete(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
        false,
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.into_policy_body().unwrap(), b"hello");
}

#[test]
fn body_without_length_ends_at_close() {
    let text =
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nversion: STSv1\n";
    assert!(matches!(
        parse_response(text, false, MAX).unwrap(),
        Parsed::Incomplete
    ));
    assert_eq!(complete(text, true).body, b"version: STSv1\n");
}

#[test]
fn chunked_body_is_joined_and_trailers_are_skipped() {
    let text = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    assert_eq!(complete(text, false).body, b"hello, world");
    let partial = &text[..text.len() - 10];
    assert!(matches!(
        parse_response(partial, false, MAX).unwrap(),
        Parsed::Incomplete
    ));
    let no_trailer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    assert_eq!(complete(no_trailer, false).body, b"ok");
}

#[test]
fn redirects_are_failures_not_followed() {
    let response = complete(
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://evil.example/\r\nContent-Length: 0\r\n\r\n",
        false,
    );
    let error = response.into_policy_body().unwrap_err();
    assert!(
        matches!(&error, FetchError::Fetch(text) if text.contains("redirect") && text.contains("evil.example")),
        "{error}"
    );
}

#[test]
fn only_text_plain_is_a_policy() {
    let response = complete(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi",
        false,
    );
    assert!(response.into_policy_body().is_err());
    let missing = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", false);
    assert!(missing.into_policy_body().is_err());
    let not_found = complete(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
        false,
    );
    assert!(not_found.into_policy_body().is_err());
}

#[test]
fn oversized_bodies_and_headers_are_refused() {
    let big = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        MAX + 1
    );
    assert!(parse_response(big.as_bytes(), false, MAX).is_err());
    let chunk = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        MAX + 1
    );
    assert!(parse_response(chunk.as_bytes(), false, MAX).is_err());
    let mut header = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    header.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
    assert!(parse_response(&header, false, MAX).is_err());
    let mut close_delimited = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    close_delimited.extend(std::iter::repeat_n(b'a', MAX + 1));
    assert!(parse_response(&close_delimited, false, MAX).is_err());
}

#[test]
fn garbage_is_an_error_not_a_hang() {
    assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false, MAX).is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false, MAX).is_err());
    assert!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            false,
            MAX
        )
        .is_err()
    );
    assert!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            false,
            MAX
        )
        .is_err()
    );
    assert!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
            MAX
        )
        .is_err()
    );
}
