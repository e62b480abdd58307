//! The TLS 1.2-and-older cipher suites a probe can offer, from tls-parser's copy of the
//! IANA registry, each with the weaknesses that matter for grading.

use serde::Serialize;
use tls_parser::{TlsCipherAu, TlsCipherEnc, TlsCipherEncMode, TlsCipherKx, TlsCipherSuite};

/// A property of a cipher suite that costs points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weakness {
    /// Static RSA or (EC)DH key exchange: recorded traffic can be decrypted later with
    /// the server's key.
    NoForwardSecrecy,
    /// CBC mode: MAC-then-encrypt, the Lucky13/POODLE family (RFC 7457).
    Cbc,
    /// 64-bit block cipher: Sweet32.
    TripleDes,
    /// RC4 is prohibited (RFC 7465).
    Rc4,
    /// Single DES, RC2, or other ciphers with keys breakable today.
    BrokenCipher,
    /// No encryption at all.
    NullCipher,
    /// 1990s export-grade keys (FREAK, Logjam).
    Export,
    /// No server authentication: any man in the middle can answer.
    Anonymous,
}

/// Groups of suites enumerated in parallel, so one server does not need one
/// connection after another for every suite it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    EcdheAead,
    EcdheOther,
    Dhe,
    RsaKeyExchange,
    StaticDh,
    Obsolete,
    Rc4,
    NullExportAnon,
}

impl Family {
    pub const ALL: [Family; 8] = [
        Family::EcdheAead,
        Family::EcdheOther,
        Family::Dhe,
        Family::RsaKeyExchange,
        Family::StaticDh,
        Family::Obsolete,
        Family::Rc4,
        Family::NullExportAnon,
    ];
}

/// The IANA name of a suite, or its code in hex.
pub fn suite_name(id: u16) -> String {
    TlsCipherSuite::from_id(id).map_or_else(|| format!("0x{id:04X}"), |s| s.name.to_string())
}

/// The weaknesses of a suite, most severe last (for display, order does not matter).
pub fn weaknesses(id: u16) -> Vec<Weakness> {
    let Some(suite) = TlsCipherSuite::from_id(id) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let anonymous = suite.au == TlsCipherAu::Null && suite.kx != TlsCipherKx::Tls13;
    let ephemeral = matches!(
        suite.kx,
        TlsCipherKx::Dhe | TlsCipherKx::Ecdhe | TlsCipherKx::Tls13
    );
    if !ephemeral && !anonymous {
        out.push(Weakness::NoForwardSecrecy);
    }
    if suite.enc_mode == TlsCipherEncMode::Cbc {
        out.push(Weakness::Cbc);
    }
    match suite.enc {
        TlsCipherEnc::TripleDes => out.push(Weakness::TripleDes),
        TlsCipherEnc::Rc4 => out.push(Weakness::Rc4),
        TlsCipherEnc::Des | TlsCipherEnc::Rc2 => out.push(Weakness::BrokenCipher),
        TlsCipherEnc::Null => out.push(Weakness::NullCipher),
        _ => {}
    }
    if suite.name.contains("EXPORT") {
        out.push(Weakness::Export);
    }
    if anonymous {
        out.push(Weakness::Anonymous);
    }
    out
}

/// Every suite worth offering in a TLS ≤ 1.2 ClientHello, by family. Suites that need
/// something we do not send (PSK, SRP, Kerberos identities), GOST, and the TLS 1.3 and
/// signalling values are left out: no server picks them for a plain hello.
pub(crate) fn family_suites(family: Family) -> Vec<u16> {
    let mut ids: Vec<u16> = tls_parser::CIPHERS
        .values()
        .filter(|s| probeable(s) && family_of(s) == family)
        .map(|s| s.id.0)
        .collect();
    // Strongest first within a family, so a server honouring client order picks
    // something sensible; the order is otherwise only for stable output.
    ids.sort_by_key(|id| (weaknesses(*id).len(), *id));
    ids
}

/// Every probeable suite, strongest first.
pub(crate) fn all_suites() -> Vec<u16> {
    Family::ALL.into_iter().flat_map(family_suites).collect()
}

/// Suites an SSLv3 server can know: the one-byte-era codes.
pub(crate) fn ssl3_suites() -> Vec<u16> {
    all_suites().into_iter().filter(|id| *id < 0x0100).collect()
}

fn probeable(suite: &TlsCipherSuite) -> bool {
    matches!(
        suite.kx,
        TlsCipherKx::Rsa
            | TlsCipherKx::Dh
            | TlsCipherKx::Dhe
            | TlsCipherKx::Ecdh
            | TlsCipherKx::Ecdhe
            | TlsCipherKx::Aecdh
    ) && suite.id.0 != 0x0000
        && !suite.name.contains("PSK")
        && !suite.name.contains("GOST")
}

fn family_of(suite: &TlsCipherSuite) -> Family {
    let weak = weaknesses(suite.id.0);
    let has = |w| weak.contains(&w);
    if has(Weakness::NullCipher) || has(Weakness::Export) || has(Weakness::Anonymous) {
        Family::NullExportAnon
    } else if has(Weakness::Rc4) {
        Family::Rc4
    } else if has(Weakness::TripleDes) || has(Weakness::BrokenCipher) {
        Family::Obsolete
    } else if suite.kx == TlsCipherKx::Rsa {
        Family::RsaKeyExchange
    } else if matches!(suite.kx, TlsCipherKx::Dh | TlsCipherKx::Ecdh) {
        Family::StaticDh
    } else if suite.kx == TlsCipherKx::Dhe {
        Family::Dhe
    } else if suite.enc_mode == TlsCipherEncMode::Gcm
        || suite.enc == TlsCipherEnc::Chacha20_Poly1305
        || suite.enc_mode == TlsCipherEncMode::Ccm
    {
        Family::EcdheAead
    } else {
        Family::EcdheOther
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn well_known_suites_get_the_right_weaknesses() {
        use Weakness::*;
        let cases: &[(u16, &[Weakness])] = &[
            (0xc02f, &[]),                                    // ECDHE_RSA_AES_128_GCM_SHA256
            (0xcca8, &[]),                                    // ECDHE_RSA_CHACHA20_POLY1305
            (0xc013, &[Cbc]),                                 // ECDHE_RSA_AES_128_CBC_SHA
            (0x002f, &[NoForwardSecrecy, Cbc]),               // RSA_AES_128_CBC_SHA
            (0x009c, &[NoForwardSecrecy]),                    // RSA_AES_128_GCM_SHA256
            (0x000a, &[NoForwardSecrecy, Cbc, TripleDes]),    // RSA_3DES_EDE_CBC_SHA
            (0x0005, &[NoForwardSecrecy, Rc4]),               // RSA_RC4_128_SHA
            (0x0002, &[NoForwardSecrecy, NullCipher]),        // RSA_NULL_SHA
            (0x0003, &[NoForwardSecrecy, Rc4, Export]),       // RSA_EXPORT_RC4_40_MD5
            (0x0034, &[Cbc, Anonymous]),                      // DH_anon_AES_128_CBC_SHA
            (0x0009, &[NoForwardSecrecy, Cbc, BrokenCipher]), // RSA_DES_CBC_SHA
        ];
        for (id, expected) in cases {
            assert_eq!(weaknesses(*id), *expected, "{}", suite_name(*id));
        }
    }

    #[test]
    fn families_partition_the_probeable_suites() {
        let mut seen = HashSet::new();
        for family in Family::ALL {
            for id in family_suites(family) {
                assert!(seen.insert(id), "{} in two families", suite_name(id));
            }
        }
        assert!(seen.len() > 200, "only {} suites", seen.len());
        assert!(seen.contains(&0x002f) && seen.contains(&0xc02b) && seen.contains(&0x0005));
        // TLS 1.3 suites, PSK and the empty suite are never offered.
        for id in [0x1301, 0x1302, 0x00a8, 0x0000] {
            assert!(!seen.contains(&id), "{}", suite_name(id));
        }
    }

    #[test]
    fn modern_family_is_ecdhe_aead_only() {
        let modern = family_suites(Family::EcdheAead);
        assert!(modern.contains(&0xc02f) && modern.contains(&0xcca9));
        assert!(modern.iter().all(|id| weaknesses(*id).is_empty()));
    }

    #[test]
    fn ssl3_suites_fit_in_one_byte_codes() {
        let ssl3 = ssl3_suites();
        assert!(ssl3.contains(&0x000a) && ssl3.contains(&0x002f));
        assert!(ssl3.iter().all(|id| *id < 0x100));
    }

    #[test]
    fn names_come_from_the_registry() {
        assert_eq!(suite_name(0x002f), "TLS_RSA_WITH_AES_128_CBC_SHA");
        assert_eq!(suite_name(0xfefe), "0xFEFE");
    }
}
