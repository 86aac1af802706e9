//! `himmel keyholder init`: a new key holder directory with its own root
//! key, a CA, a server certificate for the key holder and a client
//! certificate for the region (in `region/`, the files to hand over).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use chrono::{Datelike, Utc};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::{KeyHolderError, Layout};
use crate::root::file::KeyFile;

/// The host names and addresses the server certificate is for when the
/// operator names none: a key holder tried out on the region's machine.
pub const DEFAULT_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

/// The subject of the region's client certificate, as the key holder's log
/// shows it.
pub const REGION_SUBJECT: &str = "himmel region";

const CA_YEARS: i32 = 10;
const LEAF_YEARS: i32 = 5;

/// Makes the key holder directory `dir`; refuses to touch one that already
/// holds a root key.
pub fn init(dir: &Path, hosts: &[String]) -> Result<Layout, KeyHolderError> {
    let layout = Layout::new(dir);
    if layout.root_key().exists() {
        return Err(KeyHolderError::Invalid(format!(
            "{} already holds a key holder's root key; refusing to overwrite it",
            dir.display()
        )));
    }
    let hosts: Vec<String> = if hosts.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect()
    } else {
        hosts.to_vec()
    };
    if let Some(bad) = hosts.iter().find(|h| !valid_host(h)) {
        return Err(KeyHolderError::Invalid(format!(
            "{bad:?} is neither a host name nor an IP address"
        )));
    }
    for d in [dir.to_owned(), layout.region_dir()] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .map_err(KeyHolderError::io(&d))?;
    }

    let cert_err = |e: rcgen::Error| KeyHolderError::Invalid(format!("making certificates: {e}"));
    let ca_key = KeyPair::generate().map_err(cert_err)?;
    let ca = ca_params().self_signed(&ca_key).map_err(cert_err)?;

    let server_key = KeyPair::generate().map_err(cert_err)?;
    let server = leaf_params(
        CertificateParams::new(hosts).map_err(cert_err)?,
        "himmel key holder",
        ExtendedKeyUsagePurpose::ServerAuth,
    )
    .signed_by(&server_key, &ca, &ca_key)
    .map_err(cert_err)?;

    let client_key = KeyPair::generate().map_err(cert_err)?;
    let client = leaf_params(
        CertificateParams::default(),
        REGION_SUBJECT,
        ExtendedKeyUsagePurpose::ClientAuth,
    )
    .signed_by(&client_key, &ca, &ca_key)
    .map_err(cert_err)?;

    write_public(&layout.ca_cert(), &ca)?;
    write_secret(&layout.ca_key(), &ca_key.serialize_pem())?;
    write_public(&layout.server_cert(), &server)?;
    write_secret(&layout.server_key(), &server_key.serialize_pem())?;
    write_public(&layout.region_ca(), &ca)?;
    write_public(&layout.region_cert(), &client)?;
    write_secret(&layout.region_key(), &client_key.serialize_pem())?;
    // The root key last: its presence is what marks a finished directory.
    KeyFile::open_or_create(&layout.root_key())?;
    Ok(layout)
}

/// An IP address, or a DNS name of letters, digits and hyphens.
fn valid_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "himmel key holder CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_YEARS);
    params
}

fn leaf_params(
    mut params: CertificateParams,
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> CertificateParams {
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_YEARS);
    params
}

/// From yesterday (clocks differ a little) for `years` years.
fn validity(params: &mut CertificateParams, years: i32) {
    let from = (Utc::now() - chrono::Duration::days(1)).date_naive();
    // Day 28 at most, so that the end date exists in every year.
    let day = from.day().min(28) as u8;
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, day);
    params.not_after = rcgen::date_time_ymd(from.year() + years, from.month() as u8, day);
}

fn write_public(path: &Path, cert: &Certificate) -> Result<(), KeyHolderError> {
    write_file(path, cert.pem().as_bytes(), 0o644)
}

fn write_secret(path: &Path, pem: &str) -> Result<(), KeyHolderError> {
    let pem = zeroize::Zeroizing::new(pem.to_owned());
    write_file(path, pem.as_bytes(), 0o600)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyHolderError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(KeyHolderError::io(path))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(KeyHolderError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_makes_every_file_and_refuses_to_run_twice() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("kh");
        let layout = init(&kh, &[]).unwrap();
        for (path, mode) in [
            (layout.root_key(), 0o600),
            (layout.ca_key(), 0o600),
            (layout.server_key(), 0o600),
            (layout.region_key(), 0o600),
            (layout.ca_cert(), 0o644),
            (layout.server_cert(), 0o644),
            (layout.region_cert(), 0o644),
            (layout.region_ca(), 0o644),
        ] {
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{path:?}");
        }
        let err = init(&kh, &[]).unwrap_err().to_string();
        assert!(err.contains("refusing"), "{err}");
    }

    #[test]
    fn bad_host_names_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["not a host", "", "-x.example", "a..b", "x/y"] {
            assert!(init(dir.path(), &[bad.into()]).is_err(), "{bad:?}");
        }
        assert!(!Layout::new(dir.path()).root_key().exists());
        init(dir.path(), &["kh.example.org".into(), "::1".into()]).unwrap();
    }
}
