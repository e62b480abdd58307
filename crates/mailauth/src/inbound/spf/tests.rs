//! check_host() against a real DNS server, in the spirit of the RFC 7208 test suite.

use super::*;
use crate::inbound::testing::dns;

const ZONE: &str = r#"
pass        TXT "v=spf1 ip4:192.0.2.0/24 -all"
fail        TXT "v=spf1 -all"
softfail    TXT "v=spf1 ~all"
neutral     TXT "v=spf1 ?all"
nomatch     TXT "v=spf1 ip4:10.0.0.1"
nospf       TXT "just some text"
syntax      TXT "v=spf1 ip4:999.0.2.1 -all"
unknownmech TXT "v=spf1 frobnicate:x -all"
modifier    TXT "v=spf1 future=%{d}.x ip4:192.0.2.0/24 -all"
badcidr     TXT "v=spf1 ip4:192.0.2.0/33 -all"
two         TXT "v=spf1 +all"
two         TXT "v=spf1 -all"
spf10       TXT "v=spf1 ip4:192.0.2.0/24 -all"
spf10x      TXT "v=spf1x +all"
amech       TXT "v=spf1 a:host.example.test -all"
host        A   192.0.2.7
host        AAAA 2001:db8::7
mxmech      TXT "v=spf1 mx -all"
mxmech      MX  10 host
incl        TXT "v=spf1 include:pass.example.test -all"
inclnone    TXT "v=spf1 include:nospf.example.test -all"
inclfail    TXT "v=spf1 include:fail.example.test ~all"
redir       TXT "v=spf1 redirect=pass.example.test"
redirnone   TXT "v=spf1 redirect=nospf.example.test"
exists      TXT "v=spf1 exists:%{i}.ip.example.test -all"
192.0.2.1.ip A 127.0.0.2
ip6         TXT "v=spf1 ip6:2001:db8::/32 -all"
mail        TXT "v=spf1 a -all"
mail        A   192.0.2.1
slowincl    TXT "v=spf1 include:slow.example.test -all"
lookups10   TXT "v=spf1 a:h1.example.test a:h2.example.test a:h3.example.test a:h4.example.test a:h5.example.test a:h6.example.test a:h7.example.test a:h8.example.test a:h9.example.test a:h10.example.test -all"
lookups11   TXT "v=spf1 a:h1.example.test a:h2.example.test a:h3.example.test a:h4.example.test a:h5.example.test a:h6.example.test a:h7.example.test a:h8.example.test a:h9.example.test a:h10.example.test a:h11.example.test -all"
nested11    TXT "v=spf1 include:lookups10.example.test a:host.example.test ~all"
h1 A 198.51.100.1
h2 A 198.51.100.2
h3 A 198.51.100.3
h4 A 198.51.100.4
h5 A 198.51.100.5
h6 A 198.51.100.6
h7 A 198.51.100.7
h8 A 198.51.100.8
h9 A 198.51.100.9
h10 A 198.51.100.10
h11 A 198.51.100.11
void2       TXT "v=spf1 a:v1.example.test a:v2.example.test -all"
void3       TXT "v=spf1 a:v1.example.test a:v2.example.test mx:v3.example.test -all"
voidnodata  TXT "v=spf1 a:nospf.example.test a:nomatch.example.test exists:nospf.example.test -all"
manymx      TXT "v=spf1 mx -all"
manymx      MX 1 m1
manymx      MX 2 m2
manymx      MX 3 m3
manymx      MX 4 m4
manymx      MX 5 m5
manymx      MX 6 m6
manymx      MX 7 m7
manymx      MX 8 m8
manymx      MX 9 m9
manymx      MX 10 m10
manymx      MX 11 host
"#;

async fn check(ip: &str, mail_from: &str) -> SpfCheck {
    check_with_helo(ip, "client.example.test", mail_from).await
}

async fn check_with_helo(ip: &str, helo: &str, mail_from: &str) -> SpfCheck {
    let (_dns, resolver) = dns(&[("example.test", ZONE)], &["slow.example.test"]).await;
    let records = SpfRecords::new();
    SpfVerifier::new(
        &resolver,
        &records,
        ip.parse().unwrap(),
        helo,
        "mx.sealpost.test",
    )
    .check_mail_from(mail_from)
    .await
}

async fn result(ip: &str, domain: &str) -> SpfResult {
    check(ip, &format!("someone@{domain}.example.test"))
        .await
        .result
}

#[tokio::test]
async fn ip4_in_range_passes_and_all_qualifiers_give_their_results() {
    assert_eq!(result("192.0.2.1", "pass").await, SpfResult::Pass);
    assert_eq!(result("198.51.100.1", "pass").await, SpfResult::Fail);
    assert_eq!(result("192.0.2.1", "fail").await, SpfResult::Fail);
    assert_eq!(result("192.0.2.1", "softfail").await, SpfResult::SoftFail);
    assert_eq!(result("192.0.2.1", "neutral").await, SpfResult::Neutral);
}

#[tokio::test]
async fn no_match_and_no_all_is_neutral() {
    assert_eq!(result("192.0.2.1", "nomatch").await, SpfResult::Neutral);
}

#[tokio::test]
async fn domain_without_spf_record_or_without_existence_is_none() {
    assert_eq!(result("192.0.2.1", "nospf").await, SpfResult::None);
    assert_eq!(result("192.0.2.1", "nonexistent").await, SpfResult::None);
    // "v=spf1x" is not an SPF record (RFC 7208 §4.5).
    assert_eq!(result("192.0.2.1", "spf10x").await, SpfResult::None);
    let check = check("192.0.2.1", "someone@localhost").await;
    assert_eq!(check.result, SpfResult::None);
}

#[tokio::test]
async fn syntax_errors_and_two_records_are_permerror() {
    assert_eq!(result("192.0.2.1", "syntax").await, SpfResult::PermError);
    assert_eq!(
        result("192.0.2.1", "unknownmech").await,
        SpfResult::PermError
    );
    assert_eq!(result("192.0.2.1", "badcidr").await, SpfResult::PermError);
    // Unknown modifiers are ignored (RFC 7208 §6).
    assert_eq!(result("192.0.2.1", "modifier").await, SpfResult::Pass);
    let two = check("192.0.2.1", "x@two.example.test").await;
    assert_eq!(two.result, SpfResult::PermError);
    assert!(two.reason.unwrap().contains("several SPF records"));
}

#[tokio::test]
async fn a_and_mx_mechanisms_match_the_client_family() {
    assert_eq!(result("192.0.2.7", "amech").await, SpfResult::Pass);
    assert_eq!(result("2001:db8::7", "amech").await, SpfResult::Pass);
    assert_eq!(result("192.0.2.8", "amech").await, SpfResult::Fail);
    assert_eq!(result("192.0.2.7", "mxmech").await, SpfResult::Pass);
    assert_eq!(result("2001:db8::7", "mxmech").await, SpfResult::Pass);
    // An IPv4-mapped IPv6 peer is treated as the IPv4 address it is.
    assert_eq!(result("::ffff:192.0.2.7", "amech").await, SpfResult::Pass);
}

#[tokio::test]
async fn include_and_redirect() {
    assert_eq!(result("192.0.2.1", "incl").await, SpfResult::Pass);
    assert_eq!(result("198.51.100.1", "incl").await, SpfResult::Fail);
    // An included fail is only "no match": the including record's ~all decides.
    assert_eq!(result("192.0.2.1", "inclfail").await, SpfResult::SoftFail);
    assert_eq!(result("192.0.2.1", "inclnone").await, SpfResult::PermError);
    assert_eq!(result("192.0.2.1", "redir").await, SpfResult::Pass);
    assert_eq!(result("198.51.100.1", "redir").await, SpfResult::Fail);
    assert_eq!(result("192.0.2.1", "redirnone").await, SpfResult::PermError);
}

#[tokio::test]
async fn exists_expands_macros() {
    assert_eq!(result("192.0.2.1", "exists").await, SpfResult::Pass);
    assert_eq!(result("192.0.2.2", "exists").await, SpfResult::Fail);
}

#[tokio::test]
async fn ip6_mechanism() {
    assert_eq!(result("2001:db8::1", "ip6").await, SpfResult::Pass);
    assert_eq!(result("2001:db9::1", "ip6").await, SpfResult::Fail);
    assert_eq!(result("192.0.2.1", "ip6").await, SpfResult::Fail);
}

#[tokio::test]
async fn ten_dns_lookups_are_allowed_the_eleventh_is_permerror() {
    assert_eq!(result("192.0.2.1", "lookups10").await, SpfResult::Fail);
    let eleven = check("192.0.2.1", "x@lookups11.example.test").await;
    assert_eq!(eleven.result, SpfResult::PermError);
    assert!(eleven.reason.unwrap().contains("more than 10"));
    // The limit covers included records too: 1 include + 10 inside + 1 after.
    assert_eq!(result("192.0.2.7", "nested11").await, SpfResult::PermError);
}

#[tokio::test]
async fn two_void_lookups_are_allowed_the_third_is_permerror() {
    assert_eq!(result("192.0.2.1", "void2").await, SpfResult::Fail);
    let three = check("192.0.2.1", "x@void3.example.test").await;
    assert_eq!(three.result, SpfResult::PermError);
    assert!(three.reason.unwrap().contains("void"));
    // NODATA answers are void too.
    assert_eq!(
        result("192.0.2.1", "voidnodata").await,
        SpfResult::PermError
    );
}

#[tokio::test]
async fn more_than_ten_mx_names_is_permerror() {
    assert_eq!(result("192.0.2.7", "manymx").await, SpfResult::PermError);
}

#[tokio::test]
async fn dns_timeout_is_temperror() {
    let slow = check("192.0.2.1", "x@slowincl.example.test").await;
    assert_eq!(slow.result, SpfResult::TempError, "{slow:?}");
    assert_eq!(result("192.0.2.1", "slow").await, SpfResult::TempError);
}

#[tokio::test]
async fn helo_identity_and_null_sender() {
    let (_dns, resolver) = dns(&[("example.test", ZONE)], &[]).await;
    let records = SpfRecords::new();
    let verifier = SpfVerifier::new(
        &resolver,
        &records,
        "192.0.2.1".parse().unwrap(),
        "mail.example.test",
        "mx.sealpost.test",
    );
    let helo = verifier.check_helo().await;
    assert_eq!(
        (helo.result, helo.domain.as_str()),
        (SpfResult::Pass, "mail.example.test")
    );
    let null = verifier.check_mail_from("").await;
    assert_eq!(
        (null.result, null.domain.as_str()),
        (SpfResult::Pass, "mail.example.test")
    );
    // An address literal HELO has no SPF identity.
    let literal = SpfVerifier::new(
        &resolver,
        &records,
        "192.0.2.1".parse().unwrap(),
        "[192.0.2.1]",
        "mx.sealpost.test",
    )
    .check_helo()
    .await;
    assert_eq!(literal.result, SpfResult::None);
    assert_eq!(
        check_with_helo("192.0.2.9", "mail.example.test", "")
            .await
            .result,
        SpfResult::Fail
    );
}

#[tokio::test]
async fn records_are_kept_for_their_ttl_and_shared_by_checks() {
    let (_dns, resolver) = dns(&[("example.test", ZONE)], &[]).await;
    let records = SpfRecords::new();
    let verifier = SpfVerifier::new(
        &resolver,
        &records,
        "192.0.2.1".parse().unwrap(),
        "nohost.example.test",
        "mx.sealpost.test",
    );
    for _ in 0..2 {
        let check = verifier.check_mail_from("x@incl.example.test").await;
        assert_eq!(check.result, SpfResult::Pass, "{check:?}");
        // A HELO name that does not exist: remembered as having no record.
        assert_eq!(verifier.check_helo().await.result, SpfResult::None);
    }
    // incl, the pass record it includes, and the HELO name's absence.
    assert_eq!(records.0.len(), 3);
}
