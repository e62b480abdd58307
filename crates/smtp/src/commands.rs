//! Command lines (RFC 5321 §4.1), parsed by smtp-proto and narrowed to our own types: the
//! session only ever sees the commands and parameters that sealpost offers.

use smtp_proto::{
    AUTH_EXTERNAL, AUTH_LOGIN, AUTH_PLAIN, MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_REQUIRETLS,
    MAIL_SMTPUTF8, Request,
};

use crate::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Ehlo(String),
    Helo(String),
    Mail(MailFrom),
    Rcpt(RcptTo),
    Data,
    Bdat {
        size: usize,
        last: bool,
    },
    Auth {
        mechanism: Option<Mechanism>,
        /// `None` when the client sent none; `Some("")` for `=` (RFC 4954 §4).
        initial_response: Option<String>,
    },
    StartTls,
    Rset,
    Noop,
    Vrfy,
    Help,
    Quit,
    /// Known to the grammar but not offered here (EXPN, ETRN, ATRN, BURL).
    NotImplemented,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Login,
    External,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MailFrom {
    /// Empty for the null reverse-path `<>`.
    pub address: String,
    /// The RFC 1870 SIZE declaration, 0 when absent.
    pub size: usize,
    pub smtputf8: bool,
    /// RFC 8689: every onward hop must be over verified TLS.
    pub require_tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RcptTo {
    /// Empty for `<postmaster>` (smtp-proto maps the bare form so).
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommandError {
    Unknown,
    BadSender,
    BadRecipient,
    Syntax(&'static str),
    BadParameter(&'static str),
    UnsupportedParameter,
    BadHelo,
}

impl CommandError {
    pub(crate) fn reply(&self) -> Reply {
        match self {
            CommandError::Unknown => Reply::unknown_command(),
            CommandError::BadSender => Reply::syntax("5.1.7 bad sender address syntax"),
            CommandError::BadRecipient => Reply::syntax("5.1.3 bad recipient address syntax"),
            CommandError::Syntax(syntax) => Reply::syntax(format!("5.5.4 syntax: {syntax}")),
            CommandError::BadParameter(param) => {
                Reply::syntax(format!("5.5.4 invalid {param} parameter"))
            }
            CommandError::UnsupportedParameter => Reply::unsupported_parameter(),
            CommandError::BadHelo => Reply::syntax("5.5.4 invalid domain in EHLO/HELO"),
        }
    }
}

/// MAIL parameters we advertise: BODY (8BITMIME, RFC 6152), SIZE (RFC 1870), SMTPUTF8
/// (RFC 6531), REQUIRETLS (RFC 8689; the session accepts it only under TLS) and AUTH=
/// (RFC 4954 §5, accepted and ignored).
const MAIL_FLAGS_OFFERED: u64 =
    MAIL_BODY_7BIT | MAIL_BODY_8BITMIME | MAIL_SMTPUTF8 | MAIL_REQUIRETLS;

/// Parses one command line (line ending included).
pub(crate) fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let request = Request::parse(&mut line.iter()).map_err(from_proto)?;
    Ok(match request {
        Request::Ehlo { host } => Command::Ehlo(helo_name(&host)?),
        Request::Helo { host } => Command::Helo(helo_name(&host)?),
        Request::Lhlo { .. } => return Err(CommandError::Unknown),
        Request::Mail { from } => {
            let unsupported = from.flags & !MAIL_FLAGS_OFFERED != 0
                || from.trans_id.is_some()
                || from.by != 0
                || from.env_id.is_some()
                || from.solicit.is_some()
                || from.mtrk.is_some()
                || from.hold_for != 0
                || from.hold_until != 0
                || from.mt_priority != 0;
            if unsupported {
                return Err(CommandError::UnsupportedParameter);
            }
            Command::Mail(MailFrom {
                address: from.address.into_owned(),
                size: from.size,
                smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
                require_tls: from.flags & MAIL_REQUIRETLS != 0,
            })
        }
        Request::Rcpt { to } => {
            if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
                return Err(CommandError::UnsupportedParameter);
            }
            Command::Rcpt(RcptTo {
                address: to.address.into_owned(),
            })
        }
        Request::Data => Command::Data,
        Request::Bdat {
            chunk_size,
            is_last,
        } => {
            // smtp-proto 0.2.5 restarts counting after saturating on an over-long number
            // (`BDAT 99999999999999999999999999` reads as 999999); a chunk size we get
            // wrong would turn message octets into commands, so it is checked here.
            if declared_chunk_size(line) != Some(chunk_size) {
                return Err(CommandError::Syntax("BDAT chunk-size [LAST]"));
            }
            Command::Bdat {
                size: chunk_size,
                last: is_last,
            }
        }
        Request::Auth {
            mechanism,
            initial_response,
        } => Command::Auth {
            mechanism: match mechanism {
                AUTH_PLAIN => Some(Mechanism::Plain),
                AUTH_LOGIN => Some(Mechanism::Login),
                AUTH_EXTERNAL => Some(Mechanism::External),
                _ => None,
            },
            initial_response: match initial_response.as_ref() {
                "" => None,
                "=" => Some(String::new()),
                other => Some(other.to_string()),
            },
        },
        Request::StartTls => Command::StartTls,
        Request::Rset => Command::Rset,
        Request::Noop { .. } => Command::Noop,
        Request::Vrfy { .. } => Command::Vrfy,
        Request::Help { .. } => Command::Help,
        Request::Quit => Command::Quit,
        Request::Expn { .. }
        | Request::Etrn { .. }
        | Request::Atrn { .. }
        | Request::Burl { .. } => Command::NotImplemented,
    })
}

fn from_proto(error: smtp_proto::Error) -> CommandError {
    match error {
        smtp_proto::Error::UnknownCommand => CommandError::Unknown,
        smtp_proto::Error::InvalidSenderAddress => CommandError::BadSender,
        smtp_proto::Error::InvalidRecipientAddress => CommandError::BadRecipient,
        smtp_proto::Error::SyntaxError { syntax } => CommandError::Syntax(syntax),
        smtp_proto::Error::InvalidParameter { param } => CommandError::BadParameter(param),
        smtp_proto::Error::UnsupportedParameter { .. } => CommandError::UnsupportedParameter,
        smtp_proto::Error::NeedsMoreData { .. }
        | smtp_proto::Error::ResponseTooLong
        | smtp_proto::Error::InvalidResponse { .. } => CommandError::Syntax("command line"),
    }
}

/// The chunk-size of a BDAT line, read independently of smtp-proto.
fn declared_chunk_size(line: &[u8]) -> Option<usize> {
    let size = line
        .split(u8::is_ascii_whitespace)
        .find(|t| !t.is_empty() && t[0].is_ascii_digit())?;
    std::str::from_utf8(size).ok()?.parse().ok()
}

/// The EHLO/HELO argument ends up in our Received header, so only characters that cannot
/// break out of its `from` clause are accepted (RFC 5321 §4.1.4 allows a 501 here).
fn helo_name(host: &str) -> Result<String, CommandError> {
    let acceptable = host
        .chars()
        .all(|c| !c.is_control() && !c.is_whitespace() && !"()<>;\\\"".contains(c));
    if acceptable {
        Ok(host.to_string())
    } else {
        Err(CommandError::BadHelo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command, CommandError> {
        parse(line.as_bytes())
    }

    #[test]
    fn mail_from_with_size_and_body_parameters() {
        assert_eq!(
            parse_str("MAIL FROM:<a@example.test> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n"),
            Ok(Command::Mail(MailFrom {
                address: "a@example.test".into(),
                size: 1000,
                smtputf8: true,
                require_tls: false,
            }))
        );
    }

    #[test]
    fn null_reverse_path_is_an_empty_address() {
        assert_eq!(
            parse_str("MAIL FROM:<>\r\n"),
            Ok(Command::Mail(MailFrom {
                address: String::new(),
                size: 0,
                smtputf8: false,
                require_tls: false,
            }))
        );
    }

    #[test]
    fn mail_from_with_requiretls() {
        assert_eq!(
            parse_str("MAIL FROM:<a@example.test> REQUIRETLS\r\n"),
            Ok(Command::Mail(MailFrom {
                address: "a@example.test".into(),
                size: 0,
                smtputf8: false,
                require_tls: true,
            }))
        );
        // A value makes it another parameter, which we do not know.
        let err = parse_str("MAIL FROM:<a@example.test> REQUIRETLS=YES\r\n").unwrap_err();
        assert_eq!(err.reply().code(), 555);
    }

    #[test]
    fn parameters_of_extensions_we_do_not_offer_are_555() {
        for line in [
            "MAIL FROM:<a@example.test> RET=FULL\r\n",
            "MAIL FROM:<a@example.test> BODY=BINARYMIME\r\n",
            "RCPT TO:<a@example.test> NOTIFY=NEVER\r\n",
            "MAIL FROM:<a@example.test> X-UNKNOWN=1\r\n",
        ] {
            let err = parse_str(line).expect_err(line);
            assert_eq!(err.reply().code(), 555, "{line}");
        }
    }

    #[test]
    fn auth_initial_response_forms() {
        assert_eq!(
            parse_str("AUTH PLAIN\r\n"),
            Ok(Command::Auth {
                mechanism: Some(Mechanism::Plain),
                initial_response: None
            })
        );
        assert_eq!(
            parse_str("AUTH EXTERNAL =\r\n"),
            Ok(Command::Auth {
                mechanism: Some(Mechanism::External),
                initial_response: Some(String::new())
            })
        );
        assert_eq!(
            parse_str("auth login dXNlcg==\r\n"),
            Ok(Command::Auth {
                mechanism: Some(Mechanism::Login),
                initial_response: Some("dXNlcg==".into())
            })
        );
        assert_eq!(
            parse_str("AUTH CRAM-MD5\r\n"),
            Ok(Command::Auth {
                mechanism: None,
                initial_response: None
            })
        );
    }

    #[test]
    fn bdat_sizes_and_last() {
        assert_eq!(
            parse_str("BDAT 10\r\n"),
            Ok(Command::Bdat {
                size: 10,
                last: false
            })
        );
        assert_eq!(
            parse_str("BDAT 0 LAST\r\n"),
            Ok(Command::Bdat {
                size: 0,
                last: true
            })
        );
        assert_eq!(
            parse_str("BDAT x\r\n").map_err(|e| e.reply().code()),
            Err(501)
        );
        for huge in ["99999999999999999999999999", "18446744073709551616"] {
            assert_eq!(
                parse_str(&format!("BDAT {huge} LAST\r\n")).map_err(|e| e.reply().code()),
                Err(501),
                "{huge}"
            );
        }
        assert_eq!(
            parse_str("BDAT 18446744073709551614\r\n"),
            Ok(Command::Bdat {
                size: 18446744073709551614,
                last: false
            })
        );
    }

    #[test]
    fn unknown_command_is_500_5_5_1() {
        let reply = parse_str("FOO bar\r\n").unwrap_err().reply();
        assert_eq!(reply.to_string(), "500 5.5.1 unrecognized command\r\n");
        assert_eq!(parse_str("LHLO x\r\n"), Err(CommandError::Unknown));
        assert_eq!(parse_str("\r\n"), Err(CommandError::Unknown));
    }

    #[test]
    fn bad_syntax_is_501_with_enhanced_code() {
        let reply = parse_str("EHLO\r\n").unwrap_err().reply();
        assert!(reply.to_string().starts_with("501 5.5.4 "), "{reply}");
        let reply = parse_str("MAIL FROM:<a..b@x>\r\n").unwrap_err().reply();
        assert!(reply.to_string().starts_with("501 5.1.7 "), "{reply}");
        let reply = parse_str("RCPT TO:<nobody>\r\n").unwrap_err().reply();
        assert!(reply.to_string().starts_with("501 5.1.3 "), "{reply}");
    }

    #[test]
    fn helo_name_that_could_break_the_received_header_is_refused() {
        assert_eq!(parse_str("EHLO evil(x)\r\n"), Err(CommandError::BadHelo));
        assert_eq!(parse_str("HELO a;b\r\n"), Err(CommandError::BadHelo));
        assert_eq!(
            parse_str("EHLO [192.0.2.1]\r\n"),
            Ok(Command::Ehlo("[192.0.2.1]".into()))
        );
    }

    #[test]
    fn unsupported_known_commands_are_not_implemented() {
        assert_eq!(parse_str("EXPN staff\r\n"), Ok(Command::NotImplemented));
        assert_eq!(
            parse_str("ETRN example.test\r\n"),
            Ok(Command::NotImplemented)
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for line in [
            &b"\xff\xfe\r\n"[..],
            b"MAIL FROM:<\xff@x>\r\n",
            b"RCPT TO:<\"unterminated@x>\r\n",
            b"AUTH",
            b"",
            b"BDAT",
            b"MAIL FROM:<a@b> SIZE=\r\n",
        ] {
            let _ = parse(line);
        }
    }
}
