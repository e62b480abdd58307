//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2).
//!
//! The layout follows Dovecot (children of a multipart written back to back, `7BIT` and
//! `charset=us-ascii` filled in for text when absent, sizes and line counts of the body as
//! stored, lines counted as LF characters). Case-insensitive tokens (type, subtype,
//! parameter names, encoding, disposition) are upper-cased as in RFC 9051's examples;
//! values keep their case.

use mail_parser::{ContentType, HeaderName, HeaderValue, PartType};

use super::envelope::write_envelope;
use super::parts::{Content, PartRef, unfolded};
use super::strings::{push_nstring, push_string};

/// Appends the `body` production for `part`, parentheses included.
pub(super) fn write_body(out: &mut String, part: PartRef<'_, '_>, extensible: bool) {
    match part.content() {
        Content::Multipart(children) => write_multipart(out, part, &children, extensible),
        Content::Message(nested) => write_single(out, part, Shape::Message(nested), extensible),
        Content::Leaf => write_single(out, part, Shape::Leaf, extensible),
    }
}

enum Shape<'m, 'a> {
    Message(&'m mail_parser::Message<'a>),
    Leaf,
}

fn write_multipart(
    out: &mut String,
    part: PartRef<'_, '_>,
    children: &[PartRef<'_, '_>],
    extensible: bool,
) {
    let content_type = content_type(part);
    out.push('(');
    if children.is_empty() {
        // A multipart needs at least one body (RFC 9051 body-type-mpart); mail-parser does
        // not build an empty one, but an empty text part keeps the syntax right regardless.
        out.push_str("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0");
        out.push_str(if extensible { " NIL NIL NIL NIL)" } else { ")" });
    }
    for child in children {
        write_body(out, *child, extensible);
    }
    out.push(' ');
    let subtype = content_type
        .and_then(ContentType::subtype)
        .unwrap_or("x-unknown");
    push_string(out, &subtype.to_ascii_uppercase());
    if extensible {
        out.push(' ');
        write_params(out, content_type, false);
        out.push(' ');
        write_disposition(out, part);
        out.push(' ');
        write_language(out, part);
        out.push(' ');
        push_nstring(out, field(part, HeaderName::ContentLocation).as_deref());
    }
    out.push(')');
}

fn write_single(out: &mut String, part: PartRef<'_, '_>, shape: Shape<'_, '_>, extensible: bool) {
    let declared = content_type(part);
    let (media_type, subtype, params) = media_type(part, &shape, declared);
    let text = media_type == "TEXT";
    let body = part.body_bytes();

    out.push('(');
    push_string(out, &media_type);
    out.push(' ');
    push_string(out, &subtype);
    out.push(' ');
    write_params(out, params, text);
    out.push(' ');
    push_nstring(out, field(part, HeaderName::ContentId).as_deref());
    out.push(' ');
    push_nstring(out, field(part, HeaderName::ContentDescription).as_deref());
    out.push(' ');
    push_string(out, &transfer_encoding(part));
    out.push_str(&format!(" {}", body.len()));

    match shape {
        Shape::Message(nested) => {
            let nested_root = PartRef::root(nested, part.depth + 1);
            out.push(' ');
            write_envelope(out, nested_root);
            out.push(' ');
            write_body(out, nested_root, extensible);
            out.push_str(&format!(" {}", line_count(body)));
        }
        Shape::Leaf if text => out.push_str(&format!(" {}", line_count(body))),
        Shape::Leaf => {}
    }

    if extensible {
        out.push(' ');
        push_nstring(out, field(part, HeaderName::ContentMd5).as_deref());
        out.push(' ');
        write_disposition(out, part);
        out.push(' ');
        write_language(out, part);
        out.push(' ');
        push_nstring(out, field(part, HeaderName::ContentLocation).as_deref());
    }
    out.push(')');
}

/// The type, subtype and parameters to report. The declared type is used unless it would
/// promise a shape the part does not have: a multipart mail-parser could not split (no
/// boundary) is text; a message/rfc822 that could not be read as a message, and any
/// multipart or message at the depth limit, is opaque octets.
fn media_type<'p>(
    part: PartRef<'p, '_>,
    shape: &Shape<'_, '_>,
    declared: Option<&'p ContentType<'p>>,
) -> (String, String, Option<&'p ContentType<'p>>) {
    let named = |media_type: &str, subtype: &str, params| {
        (media_type.to_string(), subtype.to_string(), params)
    };
    if let Shape::Message(_) = shape {
        let global = declared
            .and_then(ContentType::subtype)
            .is_some_and(|s| s.eq_ignore_ascii_case("global"));
        let subtype = if global { "GLOBAL" } else { "RFC822" };
        return named("MESSAGE", subtype, declared);
    }
    if matches!(
        part.part().body,
        PartType::Multipart(_) | PartType::Message(_)
    ) {
        // Structure that the walk did not go into.
        return named("APPLICATION", "OCTET-STREAM", None);
    }
    let Some(declared) = declared else {
        return named("TEXT", "PLAIN", None);
    };
    let media_type = declared.ctype().to_ascii_uppercase();
    let subtype = declared.subtype().unwrap_or_default().to_ascii_uppercase();
    match (media_type.as_str(), subtype.as_str()) {
        ("MULTIPART", _) => named("TEXT", "PLAIN", None),
        ("TEXT", "") => named("TEXT", "PLAIN", Some(declared)),
        ("MESSAGE", "RFC822" | "GLOBAL") | (_, "") | ("", _) => {
            named("APPLICATION", "OCTET-STREAM", None)
        }
        _ => (media_type, subtype, Some(declared)),
    }
}

fn content_type<'m>(part: PartRef<'m, '_>) -> Option<&'m ContentType<'m>> {
    part.last_parsed(HeaderName::ContentType)
        .and_then(HeaderValue::as_content_type)
}

/// `("NAME" "value" ...)` or NIL; text without a charset gets `us-ascii` (RFC 2045 §5.2).
fn write_params(out: &mut String, content_type: Option<&ContentType<'_>>, text: bool) {
    let params = content_type
        .and_then(ContentType::attributes)
        .unwrap_or_default();
    let add_charset = text
        && !params
            .iter()
            .any(|a| a.name.eq_ignore_ascii_case("charset"));
    if params.is_empty() && !add_charset {
        out.push_str("NIL");
        return;
    }
    out.push('(');
    let mut first = true;
    for attr in params {
        if !first {
            out.push(' ');
        }
        first = false;
        write_param(out, &attr.name, &attr.value);
    }
    if add_charset {
        if !first {
            out.push(' ');
        }
        out.push_str("\"CHARSET\" \"US-ASCII\"");
    }
    out.push(')');
}

/// mail-parser decodes RFC 2231 and RFC 2047 parameter values to UTF-8; a value that is
/// not ASCII goes back out in RFC 2231 form (`NAME*` = `utf-8''%XX..`), which clients
/// already expect from BODYSTRUCTURE, instead of as 8-bit data.
fn write_param(out: &mut String, name: &str, value: &str) {
    let name = name.to_ascii_uppercase();
    if value.is_ascii() {
        push_string(out, &name);
        out.push(' ');
        push_string(out, value);
        return;
    }
    push_string(out, &format!("{name}*"));
    out.push(' ');
    let mut encoded = String::from("utf-8''");
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    push_string(out, &encoded);
}

/// `("TYPE" params)` or NIL.
fn write_disposition(out: &mut String, part: PartRef<'_, '_>) {
    let disposition = part
        .last_parsed(HeaderName::ContentDisposition)
        .and_then(HeaderValue::as_content_type)
        .filter(|d| !d.ctype().is_empty());
    let Some(disposition) = disposition else {
        out.push_str("NIL");
        return;
    };
    out.push('(');
    push_string(out, &disposition.ctype().to_ascii_uppercase());
    out.push(' ');
    write_params(out, Some(disposition), false);
    out.push(')');
}

/// `("tag" ...)` from Content-Language, or NIL.
fn write_language(out: &mut String, part: PartRef<'_, '_>) {
    let raw = field(part, HeaderName::ContentLanguage).unwrap_or_default();
    let tags: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tags.is_empty() {
        out.push_str("NIL");
        return;
    }
    out.push('(');
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_string(out, tag);
    }
    out.push(')');
}

/// The Content-Transfer-Encoding token, upper-cased; `7BIT` when absent or not a token.
fn transfer_encoding(part: PartRef<'_, '_>) -> String {
    field(part, HeaderName::ContentTransferEncoding)
        .filter(|v| !v.is_empty() && v.bytes().all(is_token_char))
        .map(|v| v.to_ascii_uppercase())
        .unwrap_or_else(|| "7BIT".to_string())
}

/// RFC 2045 §5.1 token characters.
fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&byte)
}

fn field(part: PartRef<'_, '_>, name: HeaderName<'_>) -> Option<String> {
    part.last_field(name).map(unfolded)
}

fn line_count(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == b'\n').count()
}
