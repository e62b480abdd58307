//! Secure with no configuration (DESIGN.md): when `[tls]` names no certificate, sealpost
//! makes its own CA and a server certificate signed by it in `DATA/tls/`, so TLS is on
//! from the first start and clients can pin one file, `ca.pem`.
//!
//! The CA is kept apart from the server certificate so that the server certificate can be
//! reissued (expiry, a new hostname) without asking every client to trust a new CA.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{ServerName, UnixTime};
use time::{Duration, OffsetDateTime};
use tracing::{info, warn};
use x509_parser::extensions::GeneralName;

use crate::error::TlsError;
use crate::resolver::{read_certificates, read_file};

/// Ten years: long enough that nobody has to re-distribute the CA in practice.
const CA_VALIDITY: Duration = Duration::days(3652);
/// Apple platforms reject TLS server certificates valid for more than 825 days, even
/// from private CAs (support.apple.com/HT210176), and macOS/iOS mail clients are common.
const SERVER_VALIDITY: Duration = Duration::days(825);
/// Backdating absorbs clock skew between us and clients.
const BACKDATE: Duration = Duration::hours(1);
/// A server certificate this close to its end is reissued at load or reload.
const RENEW_BEFORE: Duration = Duration::days(30);

/// The files of the self-signed setup, all in `DATA/tls/`.
#[derive(Debug, Clone)]
pub(crate) struct SelfSignedFiles {
    pub(crate) dir: PathBuf,
    /// The CA certificate clients should trust.
    pub(crate) ca: PathBuf,
    /// The CA's private key, kept (0600) so the server certificate can be reissued.
    pub(crate) ca_key: PathBuf,
    /// The server certificate (leaf only; clients are expected to have `ca.pem`).
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl SelfSignedFiles {
    pub(crate) fn in_data_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        Self {
            ca: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        }
    }
}

/// Makes sure `files.cert`/`files.key` hold a usable server certificate for `hostname`:
/// reuses what is there, reissues the server certificate from the existing CA when it is
/// missing, near its end or does not name `hostname`, and creates everything when there is
/// no CA yet. Refuses to replace a CA that is gone while its certificates remain, because
/// clients may trust it.
pub(crate) fn ensure(
    files: &SelfSignedFiles,
    hostname: &str,
    provider: &Arc<CryptoProvider>,
) -> Result<(), TlsError> {
    let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
    if hostname.is_empty() {
        return Err(TlsError::Config(
            "hostname is empty; set `hostname` in the config to generate a certificate".into(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let have_server = files.cert.exists() || files.key.exists();
    if !files.ca.exists() {
        if have_server {
            return Err(TlsError::Config(format!(
                "{} is missing but {} or {} exists; restore the CA, or remove {} to \
                 generate a new CA (clients will then need to trust the new ca.pem)",
                files.ca.display(),
                files.cert.display(),
                files.key.display(),
                files.dir.display()
            )));
        }
        return generate_all(files, &hostname, provider, now);
    }
    warn_if_readable_by_others(&files.key);
    let reason = match reissue_reason(files, &hostname, now) {
        None => return Ok(()),
        Some(reason) => reason,
    };
    if !files.ca_key.exists() {
        return Err(TlsError::Config(format!(
            "{reason}, and {} is missing so it cannot be reissued; remove {} to generate \
             a new CA and certificate",
            files.ca_key.display(),
            files.dir.display()
        )));
    }
    info!(cert = %files.cert.display(), "reissuing self-signed server certificate: {reason}");
    let ca_key = load_key(&files.ca_key)?;
    let ca_pem = read_file(&files.ca)?;
    let ca_der = read_certificates(&files.ca)?;
    let ca_name = ca_common_name(&ca_der[0]).ok_or_else(|| TlsError::BadPem {
        path: files.ca.clone(),
        reason: "CA certificate has no common name".into(),
    })?;
    let issuer = Issuer::new(ca_params(&ca_name, now), ca_key);
    let (cert_pem, key_pem) = issue_server(&issuer, &hostname, provider, now)?;
    check_chain(&ca_pem, &cert_pem, provider, &files.ca)?;
    write_server(files, &cert_pem, &key_pem)
}

/// Why the existing server certificate can't stay, or `None` if it can. An unparseable
/// file is left alone: loading it then fails with an error naming the file, rather than
/// sealpost silently overwriting something it does not understand.
fn reissue_reason(files: &SelfSignedFiles, hostname: &str, now: OffsetDateTime) -> Option<String> {
    if !files.cert.exists() || !files.key.exists() {
        return Some(format!(
            "{} or {} is missing",
            files.cert.display(),
            files.key.display()
        ));
    }
    let der = read_certificates(&files.cert).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    if not_after < (now + RENEW_BEFORE).unix_timestamp() {
        return Some("the server certificate expires within 30 days".into());
    }
    let ip: Option<IpAddr> = hostname.parse().ok();
    let names_host = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .is_some_and(|ext| {
            ext.value.general_names.iter().any(|name| match (name, ip) {
                (GeneralName::DNSName(dns), None) => dns.eq_ignore_ascii_case(hostname),
                (GeneralName::IPAddress(bytes), Some(ip)) => ip_bytes(ip) == *bytes,
                _ => false,
            })
        });
    (!names_host).then(|| format!("the server certificate does not name {hostname}"))
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn generate_all(
    files: &SelfSignedFiles,
    hostname: &str,
    provider: &Arc<CryptoProvider>,
    now: OffsetDateTime,
) -> Result<(), TlsError> {
    create_private_dir(&files.dir)?;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
    let mut params = ca_params(&format!("sealpost CA for {hostname}"), now);
    params.serial_number = Some(random_serial(provider)?);
    let ca_cert = params.self_signed(&ca_key).map_err(generate_error)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(params, ca_key);
    let (cert_pem, key_pem) = issue_server(&issuer, hostname, provider, now)?;
    check_chain(ca_cert.pem().as_bytes(), &cert_pem, provider, &files.ca)?;
    // Order matters for a crash half-way: once ca.pem exists with its key, the next start
    // only has to reissue the server certificate.
    write_atomically(&files.ca_key, ca_key_pem.as_bytes(), 0o600)?;
    write_atomically(&files.ca, ca_cert.pem().as_bytes(), 0o644)?;
    write_server(files, &cert_pem, &key_pem)?;
    info!(
        ca = %files.ca.display(),
        "generated a self-signed CA and server certificate for {hostname}; \
         clients must trust the CA file"
    );
    Ok(())
}

fn write_server(files: &SelfSignedFiles, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
    create_private_dir(&files.dir)?;
    write_atomically(&files.key, key_pem.as_bytes(), 0o600)?;
    write_atomically(&files.cert, cert_pem.as_bytes(), 0o644)
}

/// The CA's parameters: may sign end-entity certificates only (path length 0), nothing
/// else (RFC 5280 §4.2.1.9, §4.2.1.3).
fn ca_params(common_name: &str, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params
}

/// A P-256 server certificate for `hostname`, `localhost`, 127.0.0.1 and ::1, so local
/// clients and tests can verify it too. Returns (certificate PEM, key PEM).
fn issue_server(
    issuer: &Issuer<'_, KeyPair>,
    hostname: &str,
    provider: &CryptoProvider,
    now: OffsetDateTime,
) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, hostname);
    params.subject_alt_names = server_names(hostname)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial(provider)?);
    params.not_before = now - BACKDATE;
    params.not_after = params.not_before + SERVER_VALIDITY;
    let cert = params.signed_by(&key, issuer).map_err(generate_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn server_names(hostname: &str) -> Result<Vec<SanType>, TlsError> {
    let mut names = Vec::new();
    for name in [hostname, "localhost", "127.0.0.1", "::1"] {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.try_into().map_err(|_| {
                TlsError::Config(format!(
                    "hostname {name:?} is not a valid DNS name for a certificate"
                ))
            })?),
        };
        if !names.contains(&san) {
            names.push(san);
        }
    }
    Ok(names)
}

/// 127 random bits: RFC 5280 §4.1.2.2 wants unique positive serials of at most 20
/// octets, and CA/B Forum practice is at least 64 bits of randomness.
fn random_serial(provider: &CryptoProvider) -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    provider
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| TlsError::Generate("no randomness for a serial number".into()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Proves that what was just issued verifies as clients will verify it, so a bug here
/// shows up as a startup error instead of as every client refusing the certificate.
fn check_chain(
    ca_pem: &[u8],
    cert_pem: &str,
    provider: &Arc<CryptoProvider>,
    ca_path: &Path,
) -> Result<(), TlsError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let ca = CertificateDer::from_pem_slice(ca_pem).map_err(|e| TlsError::BadPem {
        path: ca_path.to_owned(),
        reason: e.to_string(),
    })?;
    let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    roots.add(ca).map_err(|e| TlsError::BadPem {
        path: ca_path.to_owned(),
        reason: e.to_string(),
    })?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let name = ServerName::try_from("localhost").map_err(|e| TlsError::Generate(e.to_string()))?;
    verifier
        .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        .map_err(|e| {
            TlsError::Generate(format!(
                "the new server certificate does not verify against {}: {e}",
                ca_path.display()
            ))
        })?;
    Ok(())
}

fn ca_common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

fn load_key(path: &Path) -> Result<KeyPair, TlsError> {
    let pem = read_file(path)?;
    let pem = String::from_utf8(pem).map_err(|_| TlsError::BadPem {
        path: path.to_owned(),
        reason: "not a PEM text file".into(),
    })?;
    KeyPair::from_pem(&pem).map_err(|e| TlsError::BadPem {
        path: path.to_owned(),
        reason: format!("unusable CA key: {e}"),
    })
}

fn generate_error(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Writes via a temporary file and a rename, so a reader (or a crash) never sees half a
/// file; the file is created with `mode` so a key is never readable by others, not even
/// for an instant before a chmod.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let write_error = |source: io::Error| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| write_error(io::Error::other("no parent directory")))?;
    let name = path
        .file_name()
        .ok_or_else(|| write_error(io::Error::other("no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_error(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    drop(file);
    fs::rename(&tmp, path).map_err(write_error)?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error)
}

fn warn_if_readable_by_others(key: &Path) {
    if let Ok(meta) = fs::metadata(key)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(
            key = %key.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "private key is readable by other users; chmod 600 it"
        );
    }
}
