use std::os::unix::fs::PermissionsExt;

use super::*;

fn today() -> time::Date {
    time::macros::date!(2026 - 11 - 28)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_new_domain_gets_an_rsa_and_an_ed25519_key_under_dated_selectors() {
    let data = tempfile::tempdir().unwrap();
    let dir = KeyDirectory::new(data.path());
    let (keys, created) = dir.ensure("Example.ORG", today()).unwrap();
    assert_eq!(created, [KeyAlgorithm::Rsa, KeyAlgorithm::Ed25519]);
    assert_eq!(keys.domain, "example.org");
    let selectors: Vec<&str> = keys.keys.iter().map(|k| k.selector.as_str()).collect();
    assert_eq!(selectors, ["s20261128r", "s20261128e"]);
    assert_eq!(
        keys.keys[0].path,
        data.path().join("dkim/example.org/s20261128r.pem")
    );
    let manifest = std::fs::read_to_string(data.path().join("dkim/example.org/selectors")).unwrap();
    assert!(manifest.contains("rsa-sha256 s20261128r\n"));
    assert!(manifest.contains("ed25519-sha256 s20261128e\n"));
    assert_eq!(dir.domains().unwrap(), ["example.org"]);
}

#[test]
fn key_files_are_0600_in_0700_directories() {
    let data = tempfile::tempdir().unwrap();
    let (keys, _) = KeyDirectory::new(data.path())
        .ensure("example.org", today())
        .unwrap();
    for key in &keys.keys {
        assert_eq!(mode(&key.path), 0o600, "{}", key.path.display());
        let pem = std::fs::read_to_string(&key.path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }
    assert_eq!(mode(&data.path().join("dkim")), 0o700);
    assert_eq!(mode(&data.path().join("dkim/example.org")), 0o700);
}

#[test]
fn ensure_keeps_existing_keys() {
    let data = tempfile::tempdir().unwrap();
    let dir = KeyDirectory::new(data.path());
    let (first, _) = dir.ensure("example.org", today()).unwrap();
    let later = time::macros::date!(2027 - 01 - 05);
    let (again, created) = dir.ensure("example.org", later).unwrap();
    assert!(created.is_empty());
    for (a, b) in first.keys.iter().zip(&again.keys) {
        assert_eq!(a.selector, b.selector);
        assert_eq!(a.pkcs8_der(), b.pkcs8_der());
    }
}

#[test]
fn rotation_makes_new_selectors_and_keeps_the_old_files() {
    let data = tempfile::tempdir().unwrap();
    let dir = KeyDirectory::new(data.path());
    let (old, _) = dir.ensure("example.org", today()).unwrap();
    let new = dir
        .rotate("example.org", time::macros::date!(2027 - 02 - 01))
        .unwrap();
    let selectors: Vec<&str> = new.keys.iter().map(|k| k.selector.as_str()).collect();
    assert_eq!(selectors, ["s20270201r", "s20270201e"]);
    for key in &old.keys {
        assert!(key.path.exists());
    }
    let reloaded = dir.load("example.org").unwrap().unwrap();
    assert_eq!(reloaded.keys[0].selector, "s20270201r");
}

#[test]
fn dns_records_carry_the_public_keys() {
    let data = tempfile::tempdir().unwrap();
    let (keys, _) = KeyDirectory::new(data.path())
        .ensure("example.org", today())
        .unwrap();
    let rsa = keys.keys[0].dns_record().unwrap();
    // A 2048-bit SubjectPublicKeyInfo: 294 octets, so 392 base64 characters.
    let p = rsa.strip_prefix("v=DKIM1; k=rsa; p=").unwrap();
    assert_eq!(p.len(), 392);
    assert!(p.starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
    let ed = keys.keys[1].dns_record().unwrap();
    let p = ed.strip_prefix("v=DKIM1; k=ed25519; p=").unwrap();
    assert_eq!(p.len(), 44);
}

#[test]
fn domains_that_could_name_other_paths_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let dir = KeyDirectory::new(data.path());
    for bad in [
        "", ".", "..", "../etc", "a/b", "a..b", "-a.org", "a-.org", "é.org", "a b",
    ] {
        assert!(
            matches!(dir.ensure(bad, today()), Err(KeyError::InvalidDomain(_))),
            "{bad:?}"
        );
    }
    assert_eq!(
        normalise_domain("Mail.Example.ORG.").unwrap(),
        "mail.example.org"
    );
}

#[test]
fn a_manifest_naming_an_unknown_algorithm_is_an_error() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("dkim/example.org");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("selectors"), "rsa-sha1 old\n").unwrap();
    assert!(matches!(
        KeyDirectory::new(data.path()).load("example.org"),
        Err(KeyError::Malformed { .. })
    ));
}
