use super::*;
use crate::command::*;
use crate::section::{Section, SectionText};

fn parse(input: &str) -> CommandBody {
    match parse_command(input.as_bytes()) {
        Ok(command) => command.body,
        Err(e) => panic!("{input:?}: {e}"),
    }
}

fn error(input: &[u8]) -> ParseError {
    parse_command(input).expect_err("should not parse")
}

#[test]
fn login_with_quoted_strings_as_imaplib_sends_it() {
    let command = parse_command(b"a001 LOGIN \"user@example.test\" \"p\\\"w\"\r\n").unwrap();
    assert_eq!(command.tag, "a001");
    assert_eq!(
        command.body,
        CommandBody::Login {
            user: b"user@example.test".to_vec(),
            password: b"p\"w".to_vec(),
        }
    );
}

#[test]
fn login_with_literals() {
    assert_eq!(
        parse("a LOGIN {4}\r\nuser {3+}\r\npwd\r\n"),
        CommandBody::Login {
            user: b"user".to_vec(),
            password: b"pwd".to_vec(),
        }
    );
}

#[test]
fn bad_syntax_keeps_the_tag() {
    let e = error(b"x1 LOGIN onlyuser\r\n");
    assert_eq!(e.tag.as_deref(), Some("x1"));
    let e = error(b"x2 FROBNICATE\r\n");
    assert_eq!(e.kind, ParseErrorKind::UnknownCommand("FROBNICATE".into()));
    let e = error(b"\r\n");
    assert_eq!(e.tag, None);
}

#[test]
fn uid_fetch_body_peek_as_imaplib_sends_it() {
    let CommandBody::Fetch(fetch) = parse("a UID FETCH 1:* (BODY.PEEK[])\r\n") else {
        panic!()
    };
    assert!(fetch.uid);
    assert_eq!(
        fetch.set,
        SequenceSet(vec![(SeqNumber::Value(1), SeqNumber::Largest)])
    );
    assert_eq!(
        fetch.attributes,
        vec![FetchAttribute::BodySection {
            peek: true,
            section: Section::default(),
            partial: None
        }]
    );
}

#[test]
fn fetch_sections_partials_and_macros() {
    let CommandBody::Fetch(fetch) = parse(
        "a FETCH 2,4:6 (FLAGS BODY[1.2.HEADER.FIELDS.NOT (From \"To\")]<10.20> \
         BINARY.PEEK[1]<0.5> BINARY.SIZE[] BODY[2.MIME] RFC822.SIZE MODSEQ) (CHANGEDSINCE 7)\r\n",
    ) else {
        panic!()
    };
    assert_eq!(fetch.changed_since, Some(7));
    assert_eq!(
        fetch.attributes[1],
        FetchAttribute::BodySection {
            peek: false,
            section: Section {
                part: vec![1, 2],
                text: Some(SectionText::HeaderFields {
                    not: true,
                    fields: vec!["From".into(), "To".into()]
                })
            },
            partial: Some((10, 20)),
        }
    );
    assert_eq!(
        fetch.attributes[2],
        FetchAttribute::Binary {
            peek: true,
            part: vec![1],
            partial: Some((0, 5))
        }
    );
    assert_eq!(
        fetch.attributes[3],
        FetchAttribute::BinarySize { part: vec![] }
    );
    assert_eq!(
        fetch.attributes[4],
        FetchAttribute::BodySection {
            peek: false,
            section: Section {
                part: vec![2],
                text: Some(SectionText::Mime)
            },
            partial: None
        }
    );
    let CommandBody::Fetch(fetch) = parse("a FETCH 1 ALL\r\n") else {
        panic!()
    };
    assert_eq!(fetch.attributes.len(), 4);
    let CommandBody::Fetch(fetch) = parse("a fetch 1 body[header.fields (subject)]\r\n") else {
        panic!()
    };
    assert!(matches!(
        &fetch.attributes[0],
        FetchAttribute::BodySection {
            section: Section {
                text: Some(SectionText::HeaderFields { not: false, .. }),
                ..
            },
            ..
        }
    ));
}

#[test]
fn vanished_needs_uid_fetch_with_changedsince() {
    assert!(parse_command(b"a UID FETCH 1:* FLAGS (CHANGEDSINCE 3 VANISHED)\r\n").is_ok());
    assert!(parse_command(b"a FETCH 1:* FLAGS (CHANGEDSINCE 3 VANISHED)\r\n").is_err());
}

#[test]
fn store_forms() {
    assert_eq!(
        parse("a UID STORE 1:3 (UNCHANGEDSINCE 9) +FLAGS.SILENT (\\Seen $Junk)\r\n"),
        CommandBody::Store(StoreCommand {
            uid: true,
            set: SequenceSet(vec![(SeqNumber::Value(1), SeqNumber::Value(3))]),
            unchanged_since: Some(9),
            operation: StoreOperation::Add,
            silent: true,
            flags: vec!["\\Seen".into(), "$Junk".into()],
        })
    );
    let CommandBody::Store(store) = parse("a STORE 1 FLAGS \\Deleted \\Seen\r\n") else {
        panic!()
    };
    assert_eq!(store.operation, StoreOperation::Replace);
    assert_eq!(store.flags.len(), 2);
}

#[test]
fn search_keys_nest() {
    let CommandBody::Search(search) = parse(
        "a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (FROM alice SEEN) NOT 1:5 \
         SINCE 1-Feb-2024 HEADER X-Spam yes UNKEYWORD $Junk\r\n",
    ) else {
        panic!()
    };
    assert!(search.uid);
    assert_eq!(
        search.returns,
        Some(vec![SearchReturn::Min, SearchReturn::Count])
    );
    assert_eq!(search.charset.as_deref(), Some("UTF-8"));
    let SearchKey::And(keys) = search.key else {
        panic!()
    };
    assert_eq!(keys.len(), 4);
    assert_eq!(
        keys[1],
        SearchKey::Since(SearchDate {
            year: 2024,
            month: 2,
            day: 1
        })
    );
    assert_eq!(keys[3], SearchKey::NoFlag("$Junk".into()));
}

#[test]
fn nesting_is_bounded() {
    let limits = ParserLimits {
        max_nesting: 8,
        ..ParserLimits::default()
    };
    let deep = format!("a SEARCH {}ALL{}\r\n", "(".repeat(8), ")".repeat(8));
    assert!(parse_command_with(deep.as_bytes(), &limits).is_ok());
    let deeper = format!("a SEARCH {}ALL{}\r\n", "(".repeat(9), ")".repeat(9));
    let e = parse_command_with(deeper.as_bytes(), &limits).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TooDeep);
    let nots = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(9));
    let e = parse_command_with(nots.as_bytes(), &limits).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TooDeep);
    // The default bound holds back a stack-busting input.
    let hostile = format!("a SEARCH {}ALL\r\n", "(".repeat(100_000));
    assert_eq!(error(hostile.as_bytes()).kind, ParseErrorKind::TooDeep);
}

#[test]
fn sequence_set_item_count_is_bounded() {
    let limits = ParserLimits {
        max_sequence_items: 3,
        ..ParserLimits::default()
    };
    assert!(parse_command_with(b"a FETCH 1,2,3 FLAGS\r\n", &limits).is_ok());
    let e = parse_command_with(b"a FETCH 1,2,3,4 FLAGS\r\n", &limits).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TooManySequenceItems);
}

#[test]
fn search_key_count_is_bounded() {
    let limits = ParserLimits {
        max_search_keys: 3,
        ..ParserLimits::default()
    };
    assert!(parse_command_with(b"a SEARCH SEEN DELETED DRAFT\r\n", &limits).is_ok());
    let e = parse_command_with(b"a SEARCH SEEN DELETED DRAFT FLAGGED\r\n", &limits).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::TooManySearchKeys);
}

#[test]
fn append_with_flags_date_and_literal() {
    let CommandBody::Append(append) =
        parse("a APPEND \"Sent\" (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5+}\r\nhello\r\n")
    else {
        panic!()
    };
    assert_eq!(append.mailbox, b"Sent");
    assert_eq!(append.flags, vec!["\\Seen".to_string()]);
    assert_eq!(append.date, Some(760_686_745));
    assert_eq!(append.message, b"hello");
    assert!(parse_command(b"a APPEND INBOX \"hello\"\r\n").is_err());
    assert!(parse_command(b"a APPEND INBOX {10}\r\nshort\r\n").is_err());
}

#[test]
fn list_extended_and_status_return() {
    assert_eq!(
        parse(
            "a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"*\" %/x) RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\n"
        ),
        CommandBody::List(ListCommand {
            selection: vec![ListSelection::Subscribed, ListSelection::RecursiveMatch],
            reference: vec![],
            patterns: vec![b"*".to_vec(), b"%/x".to_vec()],
            returns: vec![
                ListReturn::Children,
                ListReturn::Status(vec![StatusItem::Messages, StatusItem::Size])
            ],
        })
    );
    assert!(matches!(parse("a LIST \"\" *\r\n"), CommandBody::List(_)));
    assert!(parse_command(b"a LIST (RECURSIVEMATCH) \"\" *\r\n").is_err());
}

#[test]
fn select_with_qresync() {
    assert_eq!(
        parse("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n"),
        CommandBody::Select {
            mailbox: b"INBOX".to_vec(),
            read_only: false,
            params: SelectParams {
                condstore: false,
                qresync: Some(QresyncParams {
                    uid_validity: 67_890_007,
                    modseq: 20_050_715_194_045_000,
                    known_uids: Some(SequenceSet(vec![
                        (SeqNumber::Value(41), SeqNumber::Value(41)),
                        (SeqNumber::Value(43), SeqNumber::Value(211)),
                        (SeqNumber::Value(214), SeqNumber::Value(541)),
                    ])),
                    seq_match: None,
                }),
            },
        }
    );
    let CommandBody::Select { params, .. } =
        parse("a EXAMINE x (QRESYNC (1 2 1:9 (1,3 5,9)) CONDSTORE)\r\n")
    else {
        panic!()
    };
    assert!(params.condstore);
    assert!(params.qresync.unwrap().seq_match.is_some());
}

#[test]
fn authenticate_with_initial_response() {
    assert_eq!(
        parse("a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n"),
        CommandBody::Authenticate {
            mechanism: "PLAIN".into(),
            initial: Some(b"AHVzZXIAcGFzcw==".to_vec()),
        }
    );
    assert_eq!(
        parse("a authenticate external =\r\n"),
        CommandBody::Authenticate {
            mechanism: "EXTERNAL".into(),
            initial: Some(b"=".to_vec()),
        }
    );
}

#[test]
fn id_enable_and_simple_commands() {
    assert_eq!(
        parse("a ID (\"name\" \"imaplib\" \"version\" NIL)\r\n"),
        CommandBody::Id(Some(vec![
            ("name".into(), Some("imaplib".into())),
            ("version".into(), None)
        ]))
    );
    assert_eq!(parse("a ID NIL\r\n"), CommandBody::Id(None));
    assert_eq!(
        parse("a ENABLE IMAP4rev2 CONDSTORE\r\n"),
        CommandBody::Enable(vec!["IMAP4REV2".into(), "CONDSTORE".into()])
    );
    assert_eq!(parse("a IDLE\r\n"), CommandBody::Idle);
    assert_eq!(parse("a noop\n"), CommandBody::Noop);
    assert!(parse_command(b"a NOOP extra\r\n").is_err());
    assert_eq!(
        parse("a UID EXPUNGE 3:5\r\n"),
        CommandBody::Expunge {
            uids: Some(SequenceSet(vec![(
                SeqNumber::Value(3),
                SeqNumber::Value(5)
            )]))
        }
    );
    assert_eq!(
        parse("a UID MOVE 1 Trash\r\n"),
        CommandBody::Move {
            uid: true,
            set: SequenceSet(vec![(SeqNumber::Value(1), SeqNumber::Value(1))]),
            mailbox: b"Trash".to_vec()
        }
    );
}

#[test]
fn status_items() {
    assert_eq!(
        parse(
            "a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ)\r\n"
        ),
        CommandBody::Status {
            mailbox: b"INBOX".to_vec(),
            items: vec![
                StatusItem::Messages,
                StatusItem::UidNext,
                StatusItem::UidValidity,
                StatusItem::Unseen,
                StatusItem::Deleted,
                StatusItem::Size,
                StatusItem::HighestModSeq
            ]
        }
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    let samples: &[&[u8]] = &[
        b"a FETCH 1:* (BODY[1.",
        b"a SEARCH OR",
        b"a APPEND x {99999999999999999999}\r\n",
        b"a LOGIN \"\\",
        b"a FETCH 0 FLAGS\r\n",
        b"a STORE 1 +FLAGS (\\*)\r\n",
        b"a SELECT INBOX (QRESYNC (1",
        b"\xff\xfe LOGIN a b\r\n",
        b"a SEARCH 1:$\r\n",
        b"a APPEND x \"31-Feb-2024 00:00:00 +0000\" {1}\r\nx\r\n",
    ];
    for sample in samples {
        assert!(parse_command(sample).is_err(), "{sample:?}");
    }
    // Every prefix of a valid command either parses or fails cleanly.
    let full =
        b"t1 UID FETCH 1:*,4 (FLAGS BODY.PEEK[1.HEADER.FIELDS (A B)]<0.9>) (CHANGEDSINCE 5)\r\n";
    for end in 0..full.len() {
        let _ = parse_command(&full[..end]);
    }
}

/// A small deterministic fuzzer: valid commands with bytes flipped, dropped and
/// duplicated must never panic the parser (cargo-fuzz can drive `parse_command` the
/// same way).
#[test]
fn mutated_commands_never_panic() {
    let seeds: &[&[u8]] = &[
        b"a1 UID FETCH 1:*,7 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100>) (CHANGEDSINCE 9 VANISHED)\r\n",
        b"a2 SEARCH RETURN (MIN MAX) CHARSET UTF-8 OR (FROM \"x\" NOT SEEN) SINCE 1-Jan-2020 UID 1:5\r\n",
        b"a3 APPEND INBOX (\\Seen) \" 1-Jan-2020 00:00:00 +0000\" {3+}\r\nabc\r\n",
        b"a4 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (* %) RETURN (STATUS (MESSAGES SIZE))\r\n",
        b"a5 SELECT INBOX (QRESYNC (1 2 1:9 (1,3 5,9)))\r\n",
        b"a6 STORE 1:3 (UNCHANGEDSINCE 4) +FLAGS.SILENT (\\Deleted $x)\r\n",
        b"a7 LOGIN {4}\r\nuser \"pa\\\"ss\"\r\n",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for seed in seeds {
        assert!(
            parse_command(seed).is_ok(),
            "{}",
            String::from_utf8_lossy(seed)
        );
        for _ in 0..3_000 {
            let mut input = seed.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % input.len().max(1);
                match next() % 4 {
                    0 if !input.is_empty() => input[at] = next() as u8,
                    1 if !input.is_empty() => {
                        input.remove(at);
                    }
                    2 => input.insert(
                        at.min(input.len()),
                        b"(){}[]<>\\\" *%:,.0123456789~+"[(next() % 28) as usize],
                    ),
                    _ => input.truncate(at),
                }
            }
            let _ = parse_command(&input);
        }
    }
}
