//! Tests of the whole view: structures, sections, BINARY, search and hostile input.

use super::*;

/// Checks that `value` is exactly one well-formed parenthesized IMAP list: quoted strings
/// with escapes, `{n}` literals counted in octets, atoms, balanced parentheses, and single
/// spaces between items (none needed between adjacent lists).
pub(super) fn assert_balanced(value: &str) {
    let bytes = value.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    let mut closed_top = false;
    while i < bytes.len() {
        assert!(
            !closed_top,
            "text after the top-level list at {i}: {value:?}"
        );
        match bytes[i] {
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                assert!(depth > 0, "unbalanced ')' at {i}: {value:?}");
                depth -= 1;
                closed_top = depth == 0;
                i += 1;
            }
            b' ' => {
                assert!(depth > 0, "space outside the list at {i}: {value:?}");
                assert!(
                    !matches!(bytes.get(i + 1), Some(b' ' | b')')) && bytes[i - 1] != b'(',
                    "misplaced space at {i}: {value:?}"
                );
                i += 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        Some(b'\\') => {
                            assert!(
                                matches!(bytes.get(i + 1), Some(b'"' | b'\\')),
                                "bad escape at {i}"
                            );
                            i += 2;
                        }
                        Some(b'"') => break,
                        Some(b'\r' | b'\n') | None => {
                            panic!("unterminated quoted string: {value:?}")
                        }
                        Some(b) => {
                            assert!(*b < 0x80, "8-bit octet in a quoted string: {value:?}");
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            b'{' => {
                let close = i + bytes[i..]
                    .iter()
                    .position(|&b| b == b'}')
                    .expect("literal count");
                let count: usize = value[i + 1..close]
                    .parse()
                    .expect("literal count is a number");
                assert_eq!(
                    &bytes[close + 1..close + 3],
                    b"\r\n",
                    "literal count must end a line"
                );
                i = close + 3 + count;
                assert!(i <= bytes.len(), "literal runs past the end: {value:?}");
            }
            b if b.is_ascii_alphanumeric() => {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let atom = &value[start..i];
                assert!(
                    atom == "NIL" || atom.bytes().all(|b| b.is_ascii_digit()),
                    "unexpected atom {atom:?} in {value:?}"
                );
            }
            other => panic!("unexpected byte {:?} at {i}: {value:?}", other as char),
        }
        if i < bytes.len() && depth > 0 {
            let prev = bytes[i - 1];
            let next = bytes[i];
            if prev != b'(' && prev != b' ' && next != b')' && next != b' ' {
                assert!(
                    prev == b')' && next == b'(',
                    "items not separated at {i}: {value:?}"
                );
            }
        }
    }
    assert!(closed_top && depth == 0, "unbalanced list: {value:?}");
}

use crate::section::{Section, SectionText};

const PLAIN: &str = "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
From: Fred Foobar <foobar@Blurdybloop.example>\r\n\
Subject: afternoon meeting\r\n\
To: mooch@owatagu.siam.edu.example\r\n\
Message-Id: <B27397-0100000@Blurdybloop.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\
\r\n\
Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";

const ALTERNATIVE: &str = "From: a@example.test\r\n\
Subject: alt\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"XX\"\r\n\
\r\n\
preamble\r\n\
--XX\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n\
--XX\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Gr&uuml;&szlig;e</p>\r\n\
\r\n\
--XX--\r\n\
epilogue\r\n";

const MIXED: &str = "From: a@example.test\r\n\
Subject: report\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\
\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
\r\n\
See the attachment.\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-ID: <att1@example.test>\r\n\
Content-Description: the report\r\n\
\r\n\
JVBERi0xLjQKc2VjcmV0IG5lZWRsZSBpbnNpZGUK\r\n\
--outer--\r\n";

const INNER: &str = "From: Inner Sender <inner@example.test>\r\n\
To: y@example.test, z@example.test\r\n\
Subject: inner\r\n\
Date: Sun, 12 Aug 2012 12:34:56 +0300\r\n\
Message-ID: <inner@example.test>\r\n\
Content-Type: multipart/alternative; boundary=\"b2\"\r\n\
\r\n\
--b2\r\n\
Content-Type: text/plain\r\n\
\r\n\
plain text\r\n\
--b2\r\n\
Content-Type: text/html\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
<b>html</b>\r\n\
--b2--\r\n";

fn nested() -> String {
    format!(
        "From: outer@example.test\r\n\
         To: x@example.test\r\n\
         Subject: Fwd: inner\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         Forwarded below.\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: message/rfc822\r\n\
         Content-Disposition: inline\r\n\
         \r\n\
         {INNER}\
         \r\n\
         --b1--\r\n"
    )
}

/// Dovecot's test message for its BODYSTRUCTURE writer, every extension field set.
const EXTENSION_FIELDS: &str = "From: user@domain.org\r\n\
Date: Sat, 24 Mar 2007 23:00:00 +0200\r\n\
Mime-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"foo bar\"\r\n\
\r\n\
Root MIME prologue\r\n\
\r\n\
--foo bar\r\n\
Content-Type: text/x-myown; charset=us-ascii; foo=\"quoted\\\"string\"\r\n\
Content-ID: <foo@example.com>\r\n\
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\
Content-Disposition: inline; foo=bar\r\n\
Content-Description: hellodescription\r\n\
Content-Language: en, fi, se\r\n\
Content-Location: http://example.com/test.txt\r\n\
\r\n\
hello\r\n\
\r\n\
--foo bar--\r\n";

fn structure(raw: &str, extensible: bool) -> String {
    let structure = ParsedMessage::parse(raw.as_bytes()).body_structure(extensible);
    assert_balanced(&structure);
    structure
}

fn section(raw: &str, part: &[u32], text: Option<SectionText>) -> Option<String> {
    let section = Section {
        part: part.to_vec(),
        text,
    };
    ParsedMessage::parse(raw.as_bytes())
        .section(&section)
        .map(|bytes| String::from_utf8(bytes).expect("test sections are UTF-8"))
}

fn fields(names: &[&str], not: bool) -> Option<SectionText> {
    Some(SectionText::HeaderFields {
        not,
        fields: names.iter().map(|n| n.to_string()).collect(),
    })
}

// --- BODYSTRUCTURE -----------------------------------------------------------------------

#[test]
fn bodystructure_of_text_plain_has_size_and_line_count() {
    assert_eq!(
        structure(PLAIN, true),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 55 1 NIL NIL NIL NIL)"
    );
    assert_eq!(
        structure(PLAIN, false),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 55 1)"
    );
}

#[test]
fn bodystructure_of_multipart_alternative() {
    assert_eq!(
        structure(ALTERNATIVE, true),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 29 0 \
         NIL NIL NIL NIL)\
         (\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 25 1 NIL NIL NIL NIL) \
         \"ALTERNATIVE\" (\"BOUNDARY\" \"XX\") NIL NIL NIL)"
    );
    assert_eq!(
        structure(ALTERNATIVE, false),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 29 0)\
         (\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 25 1) \"ALTERNATIVE\")"
    );
}

#[test]
fn bodystructure_of_mixed_with_base64_attachment_has_disposition_and_filename() {
    assert_eq!(
        structure(MIXED, true),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 19 0 NIL NIL NIL NIL)\
         (\"APPLICATION\" \"PDF\" (\"NAME\" \"report.pdf\") \"<att1@example.test>\" \
         \"the report\" \"BASE64\" 40 NIL (\"ATTACHMENT\" (\"FILENAME\" \"report.pdf\")) NIL NIL) \
         \"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)"
    );
}

#[test]
fn bodystructure_of_nested_message_has_envelope_body_and_lines() {
    assert_eq!(
        structure(&nested(), false),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 18 1)\
         (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 353 \
         (\"Sun, 12 Aug 2012 12:34:56 +0300\" \"inner\" \
         ((\"Inner Sender\" NIL \"inner\" \"example.test\")) \
         ((\"Inner Sender\" NIL \"inner\" \"example.test\")) \
         ((\"Inner Sender\" NIL \"inner\" \"example.test\")) \
         ((NIL NIL \"y\" \"example.test\")(NIL NIL \"z\" \"example.test\")) \
         NIL NIL NIL \"<inner@example.test>\") \
         ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 10 0)\
         (\"TEXT\" \"HTML\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"8BIT\" 11 0) \"ALTERNATIVE\") \
         17) \"MIXED\")"
    );
}

/// What Dovecot 2.3.19 answers for these messages (from `doveadm fetch imap.body
/// imap.bodystructure`, outer parentheses added). Dovecot keeps each token's case from the
/// header and writes its defaults in lower case; we upper-case tokens as RFC 9051's examples
/// do, so the comparison ignores ASCII case and nothing else.
#[test]
fn bodystructure_matches_dovecot_ignoring_case() {
    let dovecot = [
        (
            EXTENSION_FIELDS,
            true,
            "((\"text\" \"x-myown\" (\"charset\" \"us-ascii\" \"foo\" \"quoted\\\"string\") \
             \"<foo@example.com>\" \"hellodescription\" \"7bit\" 7 1 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" \
             (\"inline\" (\"foo\" \"bar\")) (\"en\" \"fi\" \"se\") \"http://example.com/test.txt\") \
             \"mixed\" (\"boundary\" \"foo bar\") NIL NIL NIL)",
        ),
        (
            MIXED,
            false,
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 19 0)\
             (\"application\" \"pdf\" (\"name\" \"report.pdf\") \"<att1@example.test>\" \
             \"the report\" \"base64\" 40) \"mixed\")",
        ),
        (
            &nested(),
            true,
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 18 1 NIL NIL NIL NIL)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 353 (\"Sun, 12 Aug 2012 12:34:56 +0300\" \
             \"inner\" ((\"Inner Sender\" NIL \"inner\" \"example.test\")) \
             ((\"Inner Sender\" NIL \"inner\" \"example.test\")) \
             ((\"Inner Sender\" NIL \"inner\" \"example.test\")) \
             ((NIL NIL \"y\" \"example.test\")(NIL NIL \"z\" \"example.test\")) NIL NIL NIL \
             \"<inner@example.test>\") ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \
             \"7bit\" 10 0 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \
             \"8bit\" 11 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"b2\") NIL NIL NIL) 17 \
             NIL (\"inline\" NIL) NIL NIL) \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)",
        ),
    ];
    for (raw, extensible, expected) in dovecot {
        assert_eq!(
            structure(raw, extensible).to_ascii_lowercase(),
            expected.to_ascii_lowercase()
        );
    }
}

#[test]
fn envelope_matches_dovecot() {
    let envelope = ParsedMessage::parse(PLAIN.as_bytes()).envelope();
    assert_eq!(
        envelope,
        "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"afternoon meeting\" \
         ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) \
         ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) \
         ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) \
         ((NIL NIL \"mooch\" \"owatagu.siam.edu.example\")) NIL NIL NIL \
         \"<B27397-0100000@Blurdybloop.example>\")"
    );
}

#[test]
fn non_ascii_parameter_values_go_out_in_rfc2231_form() {
    let raw = "Content-Type: application/octet-stream;\r\n name*=utf-8''%C3%BCber.txt\r\n\r\nx";
    let structure = structure(raw, false);
    assert!(
        structure.contains("(\"NAME*\" \"utf-8''%C3%BCber.txt\")"),
        "{structure}"
    );
}

#[test]
fn message_without_headers_is_one_text_part() {
    let raw = "just some words\r\nno header at all\r\n";
    let parsed = ParsedMessage::parse(raw.as_bytes());
    assert_eq!(
        parsed.body_structure(false),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 35 2)"
    );
    assert_eq!(
        parsed.envelope(),
        "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
    assert_eq!(section(raw, &[1], None).as_deref(), Some(raw));
    assert_eq!(
        section(raw, &[], Some(SectionText::Text)).as_deref(),
        Some(raw)
    );
    assert_eq!(
        section(raw, &[], Some(SectionText::Header)).as_deref(),
        Some("")
    );
    assert!(parsed.matches_text("NO HEADER", TextScope::Body));

    let empty = ParsedMessage::parse(b"");
    assert_balanced(&empty.body_structure(true));
    assert_eq!(empty.section(&Section::default()), Some(Vec::new()));
}

#[test]
fn multipart_without_boundary_is_reported_as_text() {
    let raw = "Content-Type: multipart/mixed\r\n\r\nno boundary here\r\n";
    assert_eq!(
        structure(raw, false),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 18 1)"
    );
}

#[test]
fn base64_encapsulated_message_is_read_from_its_decoded_content() {
    // "Subject: encoded\r\n\r\nhello\r\n", base64-encoded.
    let raw = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
               Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
               U3ViamVjdDogZW5jb2RlZA0KDQpoZWxsbw0K\r\n--b--\r\n";
    assert_eq!(
        structure(raw, false),
        "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"BASE64\" 36 \
         (NIL \"encoded\" NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 7 1) 0) \"MIXED\")"
    );
    assert_eq!(section(raw, &[1, 1], None).as_deref(), Some("hello\r\n"));
    assert_eq!(
        section(raw, &[1], Some(SectionText::Header)).as_deref(),
        Some("Subject: encoded\r\n\r\n")
    );
}

#[test]
fn top_level_message_rfc822_is_walked_into() {
    let raw = "Subject: top\r\nContent-Type: message/rfc822\r\n\r\n\
               Subject: inside\r\nFrom: i@x.test\r\n\r\ninner body\r\n";
    assert_eq!(
        structure(raw, false),
        "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 47 \
         (NIL \"inside\" ((NIL NIL \"i\" \"x.test\")) ((NIL NIL \"i\" \"x.test\")) \
         ((NIL NIL \"i\" \"x.test\")) NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 12 1) 4)"
    );
    assert_eq!(
        section(raw, &[1, 1], None).as_deref(),
        Some("inner body\r\n")
    );
    assert_eq!(
        section(raw, &[1], Some(SectionText::Header)).as_deref(),
        Some("Subject: inside\r\nFrom: i@x.test\r\n\r\n")
    );
}

// --- BODY[section] -----------------------------------------------------------------------

const FOLDED: &str = "Subject: a subject\r\n  folded onto two lines\r\n\
X-Other: yes\r\n\
from: Someone\r\n\tElse <someone@example.test>\r\n\
To: to@example.test\r\n\
\r\n\
Body line.\r\n";

#[test]
fn empty_section_is_the_whole_message() {
    let raw = nested();
    assert_eq!(section(&raw, &[], None), Some(raw.clone()));
}

#[test]
fn header_section_includes_the_blank_line() {
    assert_eq!(
        section(FOLDED, &[], Some(SectionText::Header)).as_deref(),
        Some(
            "Subject: a subject\r\n  folded onto two lines\r\nX-Other: yes\r\n\
             from: Someone\r\n\tElse <someone@example.test>\r\nTo: to@example.test\r\n\r\n"
        )
    );
}

#[test]
fn header_fields_keep_folded_lines_and_match_names_ignoring_case() {
    assert_eq!(
        section(FOLDED, &[], fields(&["Subject", "FROM"], false)).as_deref(),
        Some(
            "Subject: a subject\r\n  folded onto two lines\r\n\
             from: Someone\r\n\tElse <someone@example.test>\r\n\r\n"
        )
    );
    assert_eq!(
        section(FOLDED, &[], fields(&["x-absent"], false)).as_deref(),
        Some("\r\n")
    );
}

#[test]
fn header_fields_not_keeps_every_other_field() {
    assert_eq!(
        section(FOLDED, &[], fields(&["subject", "from"], true)).as_deref(),
        Some("X-Other: yes\r\nTo: to@example.test\r\n\r\n")
    );
}

#[test]
fn text_section_is_the_body() {
    assert_eq!(
        section(FOLDED, &[], Some(SectionText::Text)).as_deref(),
        Some("Body line.\r\n")
    );
}

#[test]
fn numbered_parts_of_a_multipart() {
    let raw = nested();
    assert_eq!(
        section(&raw, &[1], None).as_deref(),
        Some("Forwarded below.\r\n")
    );
    assert_eq!(
        section(&raw, &[2, 1], None).as_deref(),
        Some("plain text"),
        "the CRLF before a boundary belongs to the boundary"
    );
    assert_eq!(section(&raw, &[2, 2], None).as_deref(), Some("<b>html</b>"));
    assert_eq!(
        section(&raw, &[2], None).as_deref(),
        Some(INNER),
        "an encapsulated message is the whole inner message"
    );
}

#[test]
fn mime_section_is_the_part_header() {
    let raw = nested();
    assert_eq!(
        section(&raw, &[2], Some(SectionText::Mime)).as_deref(),
        Some("Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n")
    );
    assert_eq!(
        section(&raw, &[2, 2], Some(SectionText::Mime)).as_deref(),
        Some("Content-Type: text/html\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    );
}

#[test]
fn header_and_text_of_an_encapsulated_message() {
    let raw = nested();
    let (inner_header, inner_body) = INNER.split_at(INNER.find("\r\n\r\n").unwrap() + 4);
    assert_eq!(
        section(&raw, &[2], Some(SectionText::Header)).as_deref(),
        Some(inner_header)
    );
    assert_eq!(
        section(&raw, &[2], Some(SectionText::Text)).as_deref(),
        Some(inner_body)
    );
    assert_eq!(
        section(&raw, &[2], fields(&["subject"], false)).as_deref(),
        Some("Subject: inner\r\n\r\n")
    );
}

#[test]
fn header_of_a_part_that_is_not_a_message_is_none() {
    assert_eq!(section(&nested(), &[1], Some(SectionText::Header)), None);
    assert_eq!(section(&nested(), &[1], Some(SectionText::Text)), None);
}

#[test]
fn part_one_of_a_single_part_message_is_its_body() {
    assert_eq!(
        section(PLAIN, &[1], None).as_deref(),
        Some("Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n")
    );
    assert_eq!(
        section(PLAIN, &[1], Some(SectionText::Mime)),
        section(PLAIN, &[], Some(SectionText::Header))
    );
}

#[test]
fn nonexistent_parts_are_none() {
    assert_eq!(section(PLAIN, &[2], None), None);
    assert_eq!(section(PLAIN, &[1, 1], None), None);
    assert_eq!(section(PLAIN, &[0], None), None);
    assert_eq!(section(&nested(), &[3], None), None);
    assert_eq!(section(&nested(), &[2, 3], None), None);
    assert_eq!(section(&nested(), &[1, 1], None), None);
}

#[test]
fn partial_clamps_to_the_available_bytes() {
    let bytes = b"0123456789";
    assert_eq!(partial(bytes, 0, 4), b"0123");
    assert_eq!(partial(bytes, 8, 100), b"89");
    assert_eq!(partial(bytes, 10, 1), b"");
    assert_eq!(partial(bytes, 50, 5), b"");
    assert_eq!(partial(bytes, 3, 0), b"");
    assert_eq!(partial(bytes, u32::MAX, u32::MAX), b"");
    assert_eq!(partial(bytes, 2, u32::MAX), b"23456789");
}

// --- BINARY ------------------------------------------------------------------------------

#[test]
fn binary_decodes_base64() {
    let parsed = ParsedMessage::parse(MIXED.as_bytes());
    assert_eq!(
        parsed.binary_section(&[2]),
        Ok(b"%PDF-1.4\nsecret needle inside\n".to_vec())
    );
    assert_eq!(
        parsed.binary_section(&[1]),
        Ok(b"See the attachment.".to_vec())
    );
}

#[test]
fn binary_decodes_quoted_printable() {
    let parsed = ParsedMessage::parse(ALTERNATIVE.as_bytes());
    assert_eq!(
        parsed.binary_section(&[1]),
        Ok("Grüße aus Köln".as_bytes().to_vec())
    );
}

#[test]
fn binary_of_an_unknown_encoding_or_missing_part_fails() {
    let raw = "Content-Type: application/octet-stream\r\n\
               Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n";
    let parsed = ParsedMessage::parse(raw.as_bytes());
    assert_eq!(
        parsed.binary_section(&[1]),
        Err(BinaryError::UnknownEncoding)
    );
    assert_eq!(parsed.binary_section(&[2]), Err(BinaryError::NoSuchPart));
}

// --- SEARCH ------------------------------------------------------------------------------

#[test]
fn search_finds_text_inside_a_base64_body() {
    let raw = "Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n\
               Content-Transfer-Encoding: base64\r\n\r\n\
               VGhlIHBhc3N3b3JkIGlzIFN3b3JkZmlzaC4K\r\n";
    let parsed = ParsedMessage::parse(raw.as_bytes());
    assert!(parsed.matches_text("swordFISH", TextScope::Body));
    assert!(parsed.matches_text("swordfish", TextScope::Text));
    assert!(!parsed.matches_text("VGhlIHBh", TextScope::Body));
    assert!(!parsed.matches_text("swordfish", TextScope::Header("Subject".into())));
}

#[test]
fn search_finds_text_in_attachments_and_encapsulated_messages() {
    assert!(ParsedMessage::parse(MIXED.as_bytes()).matches_text("NEEDLE", TextScope::Body));
    let nested = nested();
    let parsed = ParsedMessage::parse(nested.as_bytes());
    assert!(parsed.matches_text("<B>HTML", TextScope::Body));
    assert!(parsed.matches_text("inner sender", TextScope::Body));
    assert!(!parsed.matches_text("inner sender", TextScope::Header("From".into())));
}

#[test]
fn search_decodes_encoded_word_subjects_and_charsets() {
    let raw = "Subject: =?iso-8859-1?q?Gr=FC=DFe_aus_K=F6ln?=\r\n\
               From: =?utf-8?b?SsO2cmc=?= <j@example.test>\r\n\
               Content-Type: text/plain; charset=iso-8859-1\r\n\
               Content-Transfer-Encoding: quoted-printable\r\n\r\n\
               M=FCnchen\r\n";
    let parsed = ParsedMessage::parse(raw.as_bytes());
    assert!(parsed.matches_text("grüße aus", TextScope::Header("SUBJECT".into())));
    assert!(parsed.matches_text("KÖLN", TextScope::Header("subject".into())));
    assert!(parsed.matches_text("jörg", TextScope::Header("from".into())));
    assert!(parsed.matches_text("MÜNCHEN", TextScope::Body));
    assert!(parsed.matches_text("köln", TextScope::Text));
    assert_eq!(
        parsed.header_value("subject").as_deref(),
        Some("Grüße aus Köln")
    );
    assert_eq!(parsed.header_value("x-missing"), None);
}

#[test]
fn search_header_with_empty_string_matches_when_the_field_exists() {
    let parsed = ParsedMessage::parse(FOLDED.as_bytes());
    assert!(parsed.matches_text("", TextScope::Header("x-other".into())));
    assert!(!parsed.matches_text("", TextScope::Header("x-missing".into())));
    assert!(parsed.matches_text("else <someone", TextScope::Header("From".into())));
}

#[test]
fn sent_date_is_the_date_field() {
    let parsed = ParsedMessage::parse(PLAIN.as_bytes());
    // Mon, 7 Feb 1994 21:52:25 -0800 is 1994-02-08 05:52:25 UTC.
    assert_eq!(parsed.sent_date(), Some(760_686_745));
    assert_eq!(
        parsed.sent_day(),
        Some(time::macros::date!(1994 - 02 - 07)),
        "the day as written, not as in UTC"
    );
    assert_eq!(ParsedMessage::parse(FOLDED.as_bytes()).sent_date(), None);
}

// --- Hostile input -----------------------------------------------------------------------

#[test]
fn deeply_nested_multipart_does_not_crash() {
    let levels = 1000;
    let mut raw = String::from("Subject: deep\r\n");
    for level in 0..levels {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
    for level in (0..levels).rev() {
        raw.push_str(&format!("--b{level}--\r\n"));
    }
    let parsed = ParsedMessage::parse(raw.as_bytes());
    let structure = parsed.body_structure(true);
    assert_balanced(&structure);
    let multiparts = structure.matches("\"MIXED\"").count();
    assert_eq!(
        multiparts,
        parts::MAX_DEPTH,
        "walked to the depth limit, then opaque"
    );
    assert!(structure.contains("(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"7BIT\" "));
    assert!(
        parsed
            .section(&Section {
                part: vec![1; 100],
                text: None
            })
            .is_none()
    );
    assert!(
        parsed
            .section(&Section {
                part: vec![1; 10],
                text: None
            })
            .is_some()
    );
    assert!(!parsed.matches_text("nothing like this", TextScope::Text));
}

/// mail-parser nests each encapsulated message inside its parent, so this also checks that
/// dropping the parse does not recurse once per level.
#[test]
fn deeply_nested_messages_do_not_crash() {
    let levels = 20_000;
    let mut raw = String::new();
    for _ in 0..levels {
        raw.push_str("Subject: wrapper\r\nContent-Type: message/rfc822\r\n\r\n");
    }
    raw.push_str("Subject: bottom\r\n\r\nbottom\r\n");
    let parsed = ParsedMessage::parse(raw.as_bytes());
    assert_balanced(&parsed.body_structure(true));
    assert_balanced(&parsed.envelope());
    assert!(!parsed.matches_text("nothing like this", TextScope::Body));
}

#[test]
fn many_header_fields_render_in_linear_time() {
    let mut raw = String::new();
    for i in 0..50_000 {
        raw.push_str(&format!("X-Field-{i}: value {i}\r\n"));
    }
    raw.push_str("Subject: last\r\n\r\nbody\r\n");
    let parsed = ParsedMessage::parse(raw.as_bytes());
    let started = std::time::Instant::now();
    assert!(parsed.envelope().contains("\"last\""));
    let kept = parsed
        .section(&Section {
            part: vec![],
            text: fields(&["subject"], false),
        })
        .unwrap();
    assert_eq!(kept, b"Subject: last\r\n\r\n");
    assert!(parsed.matches_text("value 49999", TextScope::Text));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
