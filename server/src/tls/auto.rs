//! `--auto-tls` and `--peer-auto-tls`: when the side has no certificate of its own, a
//! self-signed one (rcgen) for the hosts of its listen URLs, valid for
//! `--self-signed-cert-validity` years, kept in `<data-dir>/fixtures/client` or
//! `<data-dir>/fixtures/peer` as `cert.pem` and `key.pem` and reused on the next start,
//! as etcd's `SelfCert` does. A dialer cannot check a self-signed certificate, so a
//! member using peer auto-TLS does not check the certificates of the members it dials
//! (etcd's behaviour too).

use std::path::Path;

use super::certs::self_signed;
use super::TlsInfo;
use crate::urls::Url;

/// Fills `info` with a self-signed certificate under `dir` when `enabled` and `info`
/// names no certificate.
pub fn apply(
    info: &mut TlsInfo,
    enabled: bool,
    dir: &Path,
    urls: &[Url],
    validity_years: u64,
    side: &str,
) -> Result<(), String> {
    if !enabled {
        return Ok(());
    }
    if !info.is_empty() {
        crate::log(&format!("ignoring {side} auto TLS since certs given"));
        return Ok(());
    }
    if validity_years == 0 {
        return Err("selfSignedCertValidity is invalid,it should be greater than 0".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if !(cert.is_file() && key.is_file()) {
        let hosts: Vec<String> = urls
            .iter()
            .map(|u| match u.host.rsplit_once(':') {
                Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']').to_string(),
                None => u.host.clone(),
            })
            .collect();
        let days = i64::try_from(validity_years.saturating_mul(365)).unwrap_or(i64::MAX / 2);
        let issued = self_signed(&hosts, days)?;
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        write(&cert, &issued.cert_pem)?;
        write(&key, &issued.key_pem)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", key.display()))?;
        crate::log(&format!(
            "{side} auto TLS: made a self-signed certificate in {}",
            dir.display()
        ));
    }
    info.cert_file = cert.to_string_lossy().into_owned();
    info.key_file = key.to_string_lossy().into_owned();
    info.self_signed = true;
    Ok(())
}
