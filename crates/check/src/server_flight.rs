//! Reading a server's answer to a hand-built ClientHello: its first flight (ServerHello,
//! Certificate, CertificateStatus ... ServerHelloDone) or an alert. Records and handshake
//! messages are parsed by tls-parser; handshake messages may span records (RFC 5246 §6.2.1)
//! so their bytes are joined before parsing.

use tls_parser::{
    TlsMessage, TlsMessageHandshake, TlsRecordType, parse_tls_message_handshake,
    parse_tls_raw_record,
};

use crate::hello::WireVersion;

/// What the server chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerFlight {
    pub version: WireVersion,
    pub cipher_suite: u16,
    /// DER certificates in the order sent (TLS 1.2 and older send them in the clear).
    pub certificates: Vec<Vec<u8>>,
    /// A CertificateStatus message came (OCSP stapling, RFC 6066 §8).
    pub ocsp_stapled: bool,
}

/// The server's answer to one ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HelloAnswer {
    Accepted(ServerFlight),
    /// A fatal alert instead of a ServerHello (its description code, RFC 5246 §7.2).
    Alert(u8),
    /// The connection closed (or was reset) with no answer: the usual refusal of
    /// stacks that do not know the offered version at all.
    Closed,
}

/// The state of parsing what has arrived so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parse {
    /// Need more bytes.
    Incomplete,
    Done(HelloAnswer),
    /// Not TLS at all (a protocol error message, an SSLv2 reply ...).
    NotTls(String),
}

/// Parses the bytes received so far. With `want_certificates`, a ServerHello alone is not
/// the end: parsing continues to ServerHelloDone so the chain is captured.
pub(crate) fn parse_flight(bytes: &[u8], want_certificates: bool) -> Parse {
    let mut rest = bytes;
    let mut handshake = Vec::new();
    while !rest.is_empty() {
        let record = match parse_tls_raw_record(rest) {
            Ok((after, record)) => {
                rest = after;
                record
            }
            Err(tls_parser::Err::Incomplete(_)) if looks_like_tls_start(rest) => break,
            Err(_) => return Parse::NotTls(printable(rest)),
        };
        match record.hdr.record_type {
            TlsRecordType::Handshake => handshake.extend_from_slice(record.data),
            TlsRecordType::Alert => {
                // An alert before the ServerHello is the answer; one after it (say, to our
                // missing key exchange) changes nothing about what was chosen.
                return match parse_handshake(&handshake, want_certificates) {
                    Parse::Incomplete => match partial_flight(&handshake) {
                        Some(flight) => Parse::Done(HelloAnswer::Accepted(flight)),
                        None => Parse::Done(HelloAnswer::Alert(
                            record.data.get(1).copied().unwrap_or(0),
                        )),
                    },
                    done => done,
                };
            }
            TlsRecordType::ChangeCipherSpec => {}
            other => {
                return Parse::NotTls(format!("an unexpected TLS record of type {}", other.0));
            }
        }
    }
    parse_handshake(&handshake, want_certificates)
}

/// What can be said when the stream ends: whatever ServerHello arrived, or `Closed`.
pub(crate) fn parse_at_end(bytes: &[u8]) -> HelloAnswer {
    match parse_flight(bytes, true) {
        Parse::Done(answer) => answer,
        Parse::Incomplete | Parse::NotTls(_) => {
            let mut handshake = Vec::new();
            let mut rest = bytes;
            while let Ok((after, record)) = parse_tls_raw_record(rest) {
                if record.hdr.record_type == TlsRecordType::Handshake {
                    handshake.extend_from_slice(record.data);
                }
                rest = after;
            }
            partial_flight(&handshake).map_or(HelloAnswer::Closed, HelloAnswer::Accepted)
        }
    }
}

fn parse_handshake(handshake: &[u8], want_certificates: bool) -> Parse {
    let walk = walk_handshake(handshake);
    if let Some(error) = walk.error {
        return Parse::NotTls(error);
    }
    match walk.flight {
        Some(flight) if !want_certificates || walk.server_done => {
            Parse::Done(HelloAnswer::Accepted(flight))
        }
        _ => Parse::Incomplete,
    }
}

/// The ServerHello (and certificates) among whatever complete messages arrived.
fn partial_flight(handshake: &[u8]) -> Option<ServerFlight> {
    walk_handshake(handshake).flight
}

/// What the complete handshake messages in `handshake` say.
struct Walk {
    flight: Option<ServerFlight>,
    server_done: bool,
    error: Option<String>,
}

fn walk_handshake(handshake: &[u8]) -> Walk {
    let mut walk = Walk {
        flight: None,
        server_done: false,
        error: None,
    };
    let mut rest = handshake;
    while !rest.is_empty() && !walk.server_done {
        let message = match parse_tls_message_handshake(rest) {
            Ok((after, TlsMessage::Handshake(message))) => {
                rest = after;
                message
            }
            Err(tls_parser::Err::Incomplete(_)) => break,
            Ok(_) | Err(_) => {
                walk.error = Some("an unparseable handshake message".into());
                break;
            }
        };
        match message {
            TlsMessageHandshake::ServerHello(hello) => {
                walk.flight = Some(ServerFlight {
                    version: WireVersion(hello.version.0),
                    cipher_suite: hello.cipher.0,
                    certificates: Vec::new(),
                    ocsp_stapled: false,
                });
            }
            TlsMessageHandshake::Certificate(chain) => {
                if let Some(flight) = &mut walk.flight {
                    flight.certificates =
                        chain.cert_chain.iter().map(|c| c.data.to_vec()).collect();
                }
            }
            TlsMessageHandshake::CertificateStatus(_) => {
                if let Some(flight) = &mut walk.flight {
                    flight.ocsp_stapled = true;
                }
            }
            TlsMessageHandshake::ServerDone(_) => walk.server_done = true,
            _ => {}
        }
    }
    walk
}

/// A record header so far: handshake or alert, major version 3.
fn looks_like_tls_start(bytes: &[u8]) -> bool {
    match bytes {
        [] => true,
        [t] => matches!(t, 20..=23),
        [t, major, ..] => matches!(t, 20..=23) && *major == 3,
    }
}

fn printable(bytes: &[u8]) -> String {
    let text: String = bytes
        .iter()
        .take(80)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("not a TLS reply: {text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind, 3, 3];
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn handshake_message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(body);
        out
    }

    fn server_hello(version: u16, suite: u16) -> Vec<u8> {
        let mut body = version.to_be_bytes().to_vec();
        body.extend_from_slice(&[9; 32]);
        body.push(0); // session id
        body.extend_from_slice(&suite.to_be_bytes());
        body.push(0); // compression
        handshake_message(2, &body)
    }

    fn certificate(certs: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for c in certs {
            list.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
            list.extend_from_slice(c);
        }
        let mut body = (list.len() as u32).to_be_bytes()[1..].to_vec();
        body.extend_from_slice(&list);
        handshake_message(11, &body)
    }

    #[test]
    fn a_server_hello_alone_answers_a_version_probe() {
        let bytes = record(22, &server_hello(0x0301, 0x002f));
        let Parse::Done(HelloAnswer::Accepted(flight)) = parse_flight(&bytes, false) else {
            panic!("{:?}", parse_flight(&bytes, false));
        };
        assert_eq!(flight.version, WireVersion::TLS10);
        assert_eq!(flight.cipher_suite, 0x002f);
    }

    #[test]
    fn the_chain_is_read_across_fragmented_records() {
        let mut flight = server_hello(0x0303, 0xc02f);
        flight.extend_from_slice(&certificate(&[b"leaf-der", b"intermediate-der"]));
        flight.extend_from_slice(&handshake_message(22, &[1, 0, 0, 0])); // CertificateStatus
        flight.extend_from_slice(&handshake_message(14, &[]));
        let (a, b) = flight.split_at(50);
        let mut bytes = record(22, a);
        // The first record alone is not enough.
        assert_eq!(parse_flight(&bytes, true), Parse::Incomplete);
        bytes.extend_from_slice(&record(22, b));
        let Parse::Done(HelloAnswer::Accepted(flight)) = parse_flight(&bytes, true) else {
            panic!("{:?}", parse_flight(&bytes, true));
        };
        assert_eq!(
            flight.certificates,
            [b"leaf-der".to_vec(), b"intermediate-der".to_vec()]
        );
        assert!(flight.ocsp_stapled);
    }

    #[test]
    fn a_partial_record_is_incomplete() {
        let bytes = record(22, &server_hello(0x0303, 0xc02f));
        assert_eq!(parse_flight(&bytes[..7], false), Parse::Incomplete);
        assert_eq!(parse_flight(&[], false), Parse::Incomplete);
    }

    #[test]
    fn an_alert_is_a_refusal() {
        let bytes = record(21, &[2, 70]); // fatal protocol_version
        assert_eq!(
            parse_flight(&bytes, false),
            Parse::Done(HelloAnswer::Alert(70))
        );
    }

    #[test]
    fn plaintext_is_not_tls() {
        assert!(matches!(
            parse_flight(b"554 5.7.0 go away\r\n", false),
            Parse::NotTls(text) if text.contains("554")
        ));
    }

    #[test]
    fn at_end_of_stream_a_hello_without_done_still_counts() {
        let bytes = record(22, &server_hello(0x0302, 0x0035));
        assert!(
            matches!(parse_at_end(&bytes), HelloAnswer::Accepted(f) if f.cipher_suite == 0x0035)
        );
        assert_eq!(parse_at_end(&[]), HelloAnswer::Closed);
    }
}
