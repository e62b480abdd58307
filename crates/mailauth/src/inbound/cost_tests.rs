//! What one verification costs, for `scripts/bench-mailauth`'s target: run with
//! `cargo test --release -p sealpost-mailauth verification_cost -- --ignored --nocapture`.
//! It prints the time per message of the whole verdict on a 4 KiB RSA-signed message whose
//! records are all in the resolver's cache, next to one bare RSA-2048 verification.

use std::time::{Duration, Instant};

use super::*;
use crate::inbound::testing::{TestKey, dns};

const ROUNDS: u32 = 5_000;

fn signed_message(key: &TestKey) -> Vec<u8> {
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\r\n";
    let mut message = String::from(
        "From: News <news@sender.test>\r\nTo: bench@example.test\r\n\
         Subject: sealpost mailauth bench\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\
         Message-ID: <bench@sender.test>\r\n\r\n",
    );
    while message.len() < 3_500 {
        message.push_str(line);
    }
    key.sign("sender.test", "bench", message.as_bytes())
}

#[tokio::test]
#[ignore = "a measurement, not a check: run it in release"]
async fn verification_cost() {
    let key = TestKey::rsa();
    let zone = format!(
        "@ TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
         bench._domainkey TXT {}\n\
         _dmarc TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@sender.test\"\n",
        key.record()
    );
    let (_dns, resolver) = dns(&[("sender.test", &zone)], &[]).await;
    let verifier = InboundVerifier::new(resolver, "mx.example.test");
    let message = signed_message(&key);
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let verify = || verifier.verify(peer, "bench.example.test", "bounce@sender.test", &message);
    let warm = verify().await;
    assert!(warm.header.contains("dmarc=pass"), "{}", warm.header);

    let started = Instant::now();
    for _ in 0..ROUNDS {
        let verdict = verify().await;
        assert_eq!(verdict.action, PolicyAction::Accept);
    }
    let whole = started.elapsed() / ROUNDS;
    println!("verification: {} µs per message", micros(whole));

    let authenticator = &verifier.authenticator;
    let parse = time(|| async {
        AuthenticatedMessage::parse_with_opts(&message, None, false).unwrap();
    })
    .await;
    let parsed = AuthenticatedMessage::parse_with_opts(&message, None, false).unwrap();
    let spf = spf::SpfVerifier::new(
        &verifier.resolver,
        &verifier.spf_records,
        peer,
        "bench.example.test",
        "mx.example.test",
    );
    let helo = time(|| async {
        spf.check_helo().await;
    })
    .await;
    let mail_from = time(|| async {
        spf.check_mail_from("bounce@sender.test").await;
    })
    .await;
    let dkim = time(|| async {
        dkim::verify(authenticator, &verifier.records, &parsed).await;
    })
    .await;
    let arc = time(|| async {
        authenticator
            .verify_arc(Parameters::new(&parsed).with_txt_cache(&verifier.records))
            .await;
    })
    .await;
    let (_, outputs) = dkim::verify(authenticator, &verifier.records, &parsed).await;
    let spf_check = spf.check_mail_from("bounce@sender.test").await;
    let dmarc = time(|| async {
        dmarc::evaluate(
            authenticator,
            DmarcInput {
                resolver: &verifier.resolver,
                records: &verifier.records,
                message: &parsed,
                dkim: &outputs,
                spf: &spf_check,
            },
        )
        .await;
    })
    .await;
    println!(
        "parse {} helo {} mail_from {} dkim {} arc {} dmarc {} (µs)",
        micros(parse),
        micros(helo),
        micros(mail_from),
        micros(dkim),
        micros(arc),
        micros(dmarc)
    );
}

/// One RSA-2048 PKCS#1 SHA-256 verification of a short input, the floor of a DKIM check:
/// with the key parsed each time (as mail-auth does) and parsed once.
#[test]
#[ignore = "a measurement, not a check: run it in release"]
fn rsa_verification_cost() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeyPair;
    use aws_lc_rs::signature::{
        KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
        UnparsedPublicKey,
    };
    let pair = KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let input = [b'x'; 300];
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        &input,
        &mut signature,
    )
    .unwrap();
    let public = pair.public_key().as_ref().to_vec();
    let unparsed = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public);
    let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public).unwrap();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        unparsed.verify(&input, &signature).unwrap();
    }
    let each_parsed = started.elapsed() / ROUNDS;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        parsed.verify_sig(&input, &signature).unwrap();
    }
    let once_parsed = started.elapsed() / ROUNDS;
    println!(
        "RSA-2048 verify: {} µs parsing the key each time, {} µs with it parsed once",
        micros(each_parsed),
        micros(once_parsed)
    );
}

async fn time<F, Fut>(run: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run().await;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        run().await;
    }
    started.elapsed() / ROUNDS
}

fn micros(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e6)
}
