//! `sealpost dns example.org`: every DNS record the domain should publish, in zone-file
//! syntax, from the domain's active DKIM keys and the certificate the server presents.

use std::path::PathBuf;

use anyhow::{Context, bail};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sealpost_mailauth::KeyDirectory;
use sealpost_mailauth::records::{DomainRecords, tlsa_3_1_1};

use crate::config::Config;
use crate::domain::{DMARC_REPORTS_LOCAL_PART, TLS_REPORTS_LOCAL_PART};

pub fn print(domain: &str, config: &Config) -> anyhow::Result<()> {
    let Some(keys) = KeyDirectory::new(&config.data_dir)
        .load(domain)
        .with_context(|| format!("cannot read the DKIM keys of {domain}"))?
    else {
        bail!("{domain} has no DKIM keys: run `sealpost domain add {domain}` first");
    };
    let mut dkim = Vec::new();
    for key in &keys.keys {
        dkim.push((key.selector.clone(), key.dns_record()?));
    }
    let domain = keys.domain;
    let records = DomainRecords {
        dmarc_rua: format!("{DMARC_REPORTS_LOCAL_PART}@{domain}"),
        tls_rpt_rua: format!("{TLS_REPORTS_LOCAL_PART}@{domain}"),
        hostname: config.hostname.clone(),
        dkim,
        tlsa: server_tlsa(config)?,
        domain,
    };
    print!("{}", records.zone_text());
    Ok(())
}

/// The `3 1 1` data of every certificate the server presents: `[tls] cert` and the
/// `certificates` list, or the generated `DATA/tls/cert.pem`. Only the first certificate
/// of each chain (the server's own) counts. A key shared by two files is listed once.
fn server_tlsa(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<PathBuf> = config.tls.cert.iter().cloned().collect();
    files.extend(config.tls.certificates.iter().map(|pair| pair.cert.clone()));
    if files.is_empty() {
        let generated = config.data_dir.join("tls/cert.pem");
        if !generated.exists() {
            return Ok(Vec::new());
        }
        files.push(generated);
    }
    let mut tlsa = Vec::new();
    for file in files {
        let leaf = CertificateDer::pem_file_iter(&file)
            .with_context(|| format!("cannot read the certificate {}", file.display()))?
            .next()
            .with_context(|| format!("{} holds no certificate", file.display()))?
            .with_context(|| format!("cannot read the certificate {}", file.display()))?;
        let data = tlsa_3_1_1(&leaf).with_context(|| format!("in {}", file.display()))?;
        if !tlsa.contains(&data) {
            tlsa.push(data);
        }
    }
    Ok(tlsa)
}
