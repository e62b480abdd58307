//! ClientHellos built by hand, for what rustls will not speak: SSLv3, TLS 1.0 and 1.1, and
//! TLS 1.2 offering suites that are not ECDHE+AEAD. The server's answer to such a hello
//! (a ServerHello or an alert) tells what it accepts; no handshake is ever completed, so
//! no cryptography is needed here.
//!
//! Layout per RFC 5246 §7.4.1.2 (and RFC 6101 §5.6.1.2 for SSLv3, which has the same
//! shape without extensions).

/// A protocol version as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WireVersion(pub u16);

impl WireVersion {
    pub const SSL3: WireVersion = WireVersion(0x0300);
    pub const TLS10: WireVersion = WireVersion(0x0301);
    pub const TLS11: WireVersion = WireVersion(0x0302);
    pub const TLS12: WireVersion = WireVersion(0x0303);
    pub const TLS13: WireVersion = WireVersion(0x0304);

    pub fn name(self) -> &'static str {
        match self.0 {
            0x0300 => "SSLv3",
            0x0301 => "TLSv1.0",
            0x0302 => "TLSv1.1",
            0x0303 => "TLSv1.2",
            0x0304 => "TLSv1.3",
            _ => "unknown",
        }
    }
}

/// Extension type codes (IANA "TLS ExtensionType Values").
mod ext {
    pub const SERVER_NAME: u16 = 0x0000;
    pub const SUPPORTED_GROUPS: u16 = 0x000a;
    pub const EC_POINT_FORMATS: u16 = 0x000b;
    pub const SIGNATURE_ALGORITHMS: u16 = 0x000d;
    pub const EXTENDED_MASTER_SECRET: u16 = 0x0017;
    pub const RENEGOTIATION_INFO: u16 = 0xff01;
}

/// Groups offered for (EC)DHE suites: the common curves and the RFC 7919 finite-field
/// groups, so a server is never refused for want of a group it could use.
const GROUPS: &[u16] = &[
    0x001d, // x25519
    0x0017, // secp256r1
    0x0018, // secp384r1
    0x0019, // secp521r1
    0x001e, // x448
    0x0100, // ffdhe2048
    0x0101, // ffdhe3072
    0x0102, // ffdhe4096
];

/// Signature schemes, old ones included: the probe asks what the server accepts, it does
/// not vouch for anything (RFC 8446 §4.2.3 code points; 0x0201/0x0203 are SHA-1).
const SIGNATURE_SCHEMES: &[u16] = &[
    0x0403, 0x0503, 0x0603, // ecdsa_secp{256,384,521}r1_sha{256,384,512}
    0x0807, 0x0808, // ed25519, ed448
    0x0804, 0x0805, 0x0806, // rsa_pss_rsae_sha{256,384,512}
    0x0809, 0x080a, 0x080b, // rsa_pss_pss_sha{256,384,512}
    0x0401, 0x0501, 0x0601, // rsa_pkcs1_sha{256,384,512}
    0x0303, 0x0301, // sha224 ecdsa/rsa
    0x0203, 0x0201, 0x0202, // ecdsa_sha1, rsa_pkcs1_sha1, dsa_sha1
    0x0402, 0x0502, 0x0602, // dsa_sha{256,384,512}
];

/// One ClientHello to send.
#[derive(Debug, Clone)]
pub struct ClientHello<'a> {
    /// `client_version`: the highest version offered (no supported_versions extension is
    /// sent, so TLS 1.3 is never negotiated by these hellos).
    pub version: WireVersion,
    pub cipher_suites: &'a [u16],
    /// SNI host name; `None` for IP literals (RFC 6066 §3 forbids them in SNI).
    pub server_name: Option<&'a str>,
    /// 32 random bytes; the caller supplies them so the output is testable.
    pub random: [u8; 32],
}

impl ClientHello<'_> {
    /// The complete TLS record carrying this ClientHello.
    pub fn to_record(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(512);
        put_u16(&mut body, self.version.0);
        body.extend_from_slice(&self.random);
        body.push(0); // empty session_id
        put_u16(&mut body, (self.cipher_suites.len() * 2) as u16);
        for suite in self.cipher_suites {
            put_u16(&mut body, *suite);
        }
        body.extend_from_slice(&[1, 0]); // compression: null only
        // SSLv3 predates extensions (RFC 6101); some SSLv3-only stacks reject them.
        if self.version > WireVersion::SSL3 {
            let extensions = self.extensions();
            put_u16(&mut body, extensions.len() as u16);
            body.extend_from_slice(&extensions);
        }

        let mut handshake = Vec::with_capacity(body.len() + 4);
        handshake.push(1); // client_hello
        put_u24(&mut handshake, body.len());
        handshake.extend_from_slice(&body);

        let mut record = Vec::with_capacity(handshake.len() + 5);
        record.push(22); // handshake
        // Record-layer version: TLS 1.0 for anything newer, as browsers do, because some
        // servers drop a first record claiming more (RFC 8446 §5.1 keeps the habit).
        put_u16(&mut record, self.version.min(WireVersion::TLS10).0);
        put_u16(&mut record, handshake.len() as u16);
        record.extend_from_slice(&handshake);
        record
    }

    fn extensions(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        if let Some(name) = self.server_name {
            let mut list = Vec::with_capacity(name.len() + 3);
            list.push(0); // host_name
            put_u16(&mut list, name.len() as u16);
            list.extend_from_slice(name.as_bytes());
            let mut data = Vec::with_capacity(list.len() + 2);
            put_u16(&mut data, list.len() as u16);
            data.extend_from_slice(&list);
            put_extension(&mut out, ext::SERVER_NAME, &data);
        }
        put_extension(&mut out, ext::SUPPORTED_GROUPS, &u16_list(GROUPS));
        put_extension(&mut out, ext::EC_POINT_FORMATS, &[1, 0]); // uncompressed
        if self.version >= WireVersion::TLS12 {
            put_extension(
                &mut out,
                ext::SIGNATURE_ALGORITHMS,
                &u16_list(SIGNATURE_SCHEMES),
            );
        }
        put_extension(&mut out, ext::EXTENDED_MASTER_SECRET, &[]);
        put_extension(&mut out, ext::RENEGOTIATION_INFO, &[0]);
        out
    }
}

fn u16_list(values: &[u16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 2 + 2);
    put_u16(&mut out, (values.len() * 2) as u16);
    for v in values {
        put_u16(&mut out, *v);
    }
    out
}

fn put_extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    put_u16(out, kind);
    put_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u24(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
}

#[cfg(test)]
mod tests {
    use tls_parser::{
        TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extensions, parse_tls_plaintext,
    };

    use super::*;

    fn hello(version: WireVersion, server_name: Option<&str>) -> Vec<u8> {
        ClientHello {
            version,
            cipher_suites: &[0x002f, 0xc02f, 0x000a],
            server_name,
            random: [7; 32],
        }
        .to_record()
    }

    /// tls-parser, written by others, is the oracle for our bytes.
    fn parsed_extensions(record: &[u8]) -> (u16, u16, Vec<u16>, Vec<String>) {
        let (rest, plaintext) = parse_tls_plaintext(record).expect("a valid record");
        assert!(rest.is_empty(), "trailing bytes after the record");
        let [TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch))] = &plaintext.msg[..]
        else {
            panic!("not one ClientHello: {:?}", plaintext.msg);
        };
        assert_eq!(ch.random, &[7; 32]);
        assert_eq!(ch.comp.len(), 1);
        let suites = ch.ciphers.iter().map(|c| c.0).collect();
        let names = match ch.ext {
            None => Vec::new(),
            Some(bytes) => {
                let (rest, exts) = parse_tls_extensions(bytes).expect("valid extensions");
                assert!(rest.is_empty());
                exts.iter()
                    .map(|e| match e {
                        TlsExtension::SNI(names) => {
                            format!("sni={}", String::from_utf8_lossy(names[0].1))
                        }
                        TlsExtension::EllipticCurves(groups) => format!("groups={}", groups.len()),
                        TlsExtension::SignatureAlgorithms(schemes) => {
                            format!("signature_algorithms={}", schemes.len())
                        }
                        TlsExtension::EcPointFormats(formats) => {
                            format!("point_formats={formats:?}")
                        }
                        TlsExtension::ExtendedMasterSecret => "extended_master_secret".into(),
                        TlsExtension::RenegotiationInfo(info) => {
                            format!("renegotiation_info={info:?}")
                        }
                        other => format!("unexpected {other:?}"),
                    })
                    .collect()
            }
        };
        (plaintext.hdr.version.0, ch.version.0, suites, names)
    }

    #[test]
    fn tls12_hello_parses_with_every_extension() {
        let (record_version, version, suites, exts) =
            parsed_extensions(&hello(WireVersion::TLS12, Some("mx.example.org")));
        assert_eq!(record_version, 0x0301);
        assert_eq!(version, 0x0303);
        assert_eq!(suites, [0x002f, 0xc02f, 0x000a]);
        assert_eq!(
            exts,
            [
                "sni=mx.example.org".to_string(),
                format!("groups={}", GROUPS.len()),
                "point_formats=[0]".into(),
                format!("signature_algorithms={}", SIGNATURE_SCHEMES.len()),
                "extended_master_secret".into(),
                "renegotiation_info=[]".into(),
            ]
        );
    }

    #[test]
    fn tls10_hello_has_no_signature_algorithms_and_no_sni_for_ip() {
        let (record_version, version, _, exts) =
            parsed_extensions(&hello(WireVersion::TLS10, None));
        assert_eq!((record_version, version), (0x0301, 0x0301));
        assert!(!exts.iter().any(|e| e.starts_with("sni")));
        assert!(!exts.iter().any(|e| e.starts_with("signature_algorithms")));
    }

    #[test]
    fn ssl3_hello_has_no_extensions_and_an_ssl3_record() {
        let record = hello(WireVersion::SSL3, Some("mx.example.org"));
        let (record_version, version, suites, exts) = parsed_extensions(&record);
        assert_eq!((record_version, version), (0x0300, 0x0300));
        assert_eq!(suites.len(), 3);
        assert!(exts.is_empty());
        // Handshake body ends right after compression methods.
        assert_eq!(&record[record.len() - 2..], &[1, 0]);
    }

    #[test]
    fn lengths_are_consistent() {
        let record = hello(WireVersion::TLS12, Some("a.example"));
        let record_len = u16::from_be_bytes([record[3], record[4]]) as usize;
        assert_eq!(record_len, record.len() - 5);
        let hs_len = u32::from_be_bytes([0, record[6], record[7], record[8]]) as usize;
        assert_eq!(hs_len, record.len() - 9);
    }
}
