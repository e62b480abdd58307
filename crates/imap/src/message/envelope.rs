//! ENVELOPE (RFC 9051 §7.5.2): `(date subject from sender reply-to to cc bcc in-reply-to
//! message-id)`.
//!
//! Date, subject, in-reply-to and message-id are the raw header values (unfolded, encoded
//! words left for the client to decode). Addresses come from mail-parser, which decodes
//! display names; a name that is not plain ASCII is sent back as one RFC 2047 encoded word
//! so a client that does not speak UTF-8 still gets 7-bit data it can decode.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_parser::{Addr, Address, HeaderName, HeaderValue};

use super::parts::{PartRef, unfolded};
use super::strings::{push_nstring, push_string};

const MISSING_DOMAIN: &str = "MISSING_DOMAIN";

/// Appends the envelope of the message whose root part is `root`.
pub(super) fn write_envelope(out: &mut String, root: PartRef<'_, '_>) {
    let raw = |name| root.first_field(name).map(unfolded);
    let addresses = |name| {
        root.first_parsed(name)
            .and_then(HeaderValue::as_address)
            .filter(|list| has_entries(list))
    };

    let from = addresses(HeaderName::From);
    // RFC 9051 §7.5.2: sender and reply-to default to from when absent (or empty).
    let sender = addresses(HeaderName::Sender).or(from);
    let reply_to = addresses(HeaderName::ReplyTo).or(from);

    out.push('(');
    push_nstring(out, raw(HeaderName::Date).as_deref());
    out.push(' ');
    push_nstring(out, raw(HeaderName::Subject).as_deref());
    for list in [
        from,
        sender,
        reply_to,
        addresses(HeaderName::To),
        addresses(HeaderName::Cc),
        addresses(HeaderName::Bcc),
    ] {
        out.push(' ');
        write_address_list(out, list);
    }
    out.push(' ');
    push_nstring(out, raw(HeaderName::InReplyTo).as_deref());
    out.push(' ');
    push_nstring(out, raw(HeaderName::MessageId).as_deref());
    out.push(')');
}

/// An empty group (`undisclosed-recipients:;`) is still an entry; an empty field is not.
fn has_entries(list: &Address<'_>) -> bool {
    match list {
        Address::List(addrs) => !addrs.is_empty(),
        Address::Group(groups) => groups
            .iter()
            .any(|g| g.name.is_some() || !g.addresses.is_empty()),
    }
}

fn write_address_list(out: &mut String, list: Option<&Address<'_>>) {
    let Some(list) = list else {
        out.push_str("NIL");
        return;
    };
    out.push('(');
    match list {
        Address::List(addrs) => addrs.iter().for_each(|addr| write_address(out, addr)),
        Address::Group(groups) => {
            for group in groups {
                match &group.name {
                    // RFC 9051 §7.5.2: a group is a start marker with the group name in the
                    // mailbox field and NIL host, its members, then an all-NIL end marker.
                    Some(name) => {
                        out.push_str("(NIL NIL ");
                        push_string(out, name);
                        out.push_str(" NIL)");
                        group.addresses.iter().for_each(|a| write_address(out, a));
                        out.push_str("(NIL NIL NIL NIL)");
                    }
                    // Addresses outside any group in a mixed list.
                    None => group.addresses.iter().for_each(|a| write_address(out, a)),
                }
            }
        }
    }
    out.push(')');
}

/// `(name adl mailbox host)`. The host is never NIL for a real address (NIL marks a group),
/// so an address without a domain gets Dovecot's placeholder.
fn write_address(out: &mut String, addr: &Addr<'_>) {
    // A bare word with no angle brackets ("To: localuser") arrives as a name without an
    // address; it is the mailbox (as Dovecot reads it).
    let (name, address) = match (addr.name.as_deref(), addr.address.as_deref()) {
        (name, Some(address)) => (name.filter(|n| !n.is_empty()), address),
        (Some(bare), None) => (None, bare),
        (None, None) => return,
    };
    let (mailbox, host) = address
        .rsplit_once('@')
        .unwrap_or((address, MISSING_DOMAIN));

    out.push('(');
    push_nstring(out, name.map(encode_name).as_deref());
    out.push_str(" NIL ");
    push_string(out, mailbox);
    out.push(' ');
    push_string(out, host);
    out.push(')');
}

fn encode_name(name: &str) -> String {
    if name.is_ascii() {
        name.to_string()
    } else {
        format!("=?utf-8?b?{}?=", STANDARD.encode(name))
    }
}

#[cfg(test)]
mod tests {
    use super::super::ParsedMessage;
    use super::super::tests::assert_balanced;

    fn envelope(raw: &str) -> String {
        let envelope = ParsedMessage::parse(raw.as_bytes()).envelope();
        assert_balanced(&envelope);
        envelope
    }

    #[test]
    fn envelope_of_a_simple_message() {
        let raw = "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n\
                   From: Terry Gray <gray@cac.washington.edu>\r\n\
                   Subject: IMAP4rev2 WG mtg summary and minutes\r\n\
                   To: imap@cac.washington.edu\r\n\
                   cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n\
                   Message-Id: <B27397-0100000@cac.washington.edu>\r\n\
                   \r\n\
                   body\r\n";
        // RFC 9051 §8's example FETCH response, field for field.
        assert_eq!(
            envelope(raw),
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \
             \"IMAP4rev2 WG mtg summary and minutes\" \
             ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
             ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
             ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
             ((NIL NIL \"imap\" \"cac.washington.edu\")) \
             ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")\
             (\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) \
             NIL NIL \"<B27397-0100000@cac.washington.edu>\")"
        );
    }

    #[test]
    fn missing_fields_are_nil() {
        assert_eq!(
            envelope("X-Nothing: here\r\n\r\nbody\r\n"),
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn sender_and_reply_to_are_their_own_when_present() {
        let raw = "From: a@example.test\r\nSender: s@example.test\r\n\
                   Reply-To: r@example.test\r\n\r\n";
        assert_eq!(
            envelope(raw),
            "(NIL NIL ((NIL NIL \"a\" \"example.test\")) ((NIL NIL \"s\" \"example.test\")) \
             ((NIL NIL \"r\" \"example.test\")) NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn group_addresses_use_start_and_end_markers() {
        let raw = "From: a@example.test\r\n\
                   To: Team: b@example.test, Carol <c@example.test>;, d@example.test\r\n\
                   Cc: undisclosed-recipients:;\r\n\r\n";
        let envelope = envelope(raw);
        assert!(
            envelope.contains(
                "((NIL NIL \"Team\" NIL)(NIL NIL \"b\" \"example.test\")\
                 (\"Carol\" NIL \"c\" \"example.test\")(NIL NIL NIL NIL)\
                 (NIL NIL \"d\" \"example.test\"))"
            ),
            "{envelope}"
        );
        assert!(
            envelope.contains("((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))"),
            "{envelope}"
        );
    }

    #[test]
    fn address_without_domain_gets_a_placeholder_host() {
        assert!(
            envelope("To: localuser\r\n\r\n")
                .contains("((NIL NIL \"localuser\" \"MISSING_DOMAIN\"))")
        );
    }

    #[test]
    fn empty_reply_to_defaults_to_from() {
        let raw = "From: a@example.test\r\nReply-To:\r\n\r\n";
        assert_eq!(
            envelope(raw),
            "(NIL NIL ((NIL NIL \"a\" \"example.test\")) ((NIL NIL \"a\" \"example.test\")) \
             ((NIL NIL \"a\" \"example.test\")) NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn encoded_word_subject_is_kept_raw() {
        let raw = "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= und\r\n =?ISO-8859-1?Q?mehr?=\r\n\r\n";
        assert!(
            envelope(raw)
                .starts_with("(NIL \"=?utf-8?q?Gr=C3=BC=C3=9Fe?= und =?ISO-8859-1?Q?mehr?=\" ")
        );
    }

    #[test]
    fn quotes_and_backslashes_are_escaped_and_eight_bit_goes_as_a_literal() {
        let raw = "Subject: say \"hi\" \\o/\r\nMessage-ID: <x@y>\r\n\r\n";
        assert!(envelope(raw).starts_with(r#"(NIL "say \"hi\" \\o/" "#));

        let raw = "Subject: Grüße\r\n\r\n";
        assert!(envelope(raw).starts_with("(NIL {7}\r\nGrüße NIL"));
    }

    #[test]
    fn non_ascii_display_names_are_sent_as_encoded_words() {
        let raw = "From: =?utf-8?q?J=C3=B6rg?= <j@example.test>\r\n\r\n";
        assert!(envelope(raw).contains("((\"=?utf-8?b?SsO2cmc=?=\" NIL \"j\" \"example.test\"))"));
    }

    #[test]
    fn quoted_display_names_keep_their_specials() {
        let raw = "From: \"Doe, John \\\"JD\\\"\" <jd@example.test>\r\n\r\n";
        assert!(
            envelope(raw).contains(r#"(("Doe, John \"JD\"" NIL "jd" "example.test"))"#),
            "{}",
            envelope(raw)
        );
    }
}
