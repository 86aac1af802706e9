//! Options: flags, then `HIMMEL_*` environment variables (both by clap),
//! then an optional TOML file, then built-in defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Directory for the state database, keys and generated files.
    #[arg(long, env = "HIMMEL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the OpenStack API listener.
    #[arg(long, env = "HIMMEL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the S3 listener.
    #[arg(long, env = "HIMMEL_S3_LISTEN")]
    pub s3_listen: Option<SocketAddr>,
    /// `sqlite://PATH` or `postgres://…`; SQLite in the data dir by default.
    #[arg(long, env = "HIMMEL_DATABASE")]
    pub database: Option<String>,
    /// Region name.
    #[arg(long, env = "HIMMEL_REGION")]
    pub region: Option<String>,
    /// The region S3 clients sign for (lower-case letters, digits and `-`, as S3 requires);
    /// the region name in lower case by default. The catalog lists the S3 endpoints under it.
    #[arg(long, env = "HIMMEL_S3_REGION")]
    pub s3_region: Option<String>,
    /// The URL clients reach the API listener at (for the catalog).
    #[arg(long, env = "HIMMEL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// What holds the root key: `file` (default), `pkcs11` or `keyholder`
    /// (details in the config file's `[root_key]` section).
    #[arg(long, env = "HIMMEL_ROOT_KEY")]
    pub root_key: Option<crate::keys::RootKeyKind>,
    /// The root key file (`file` provider); `DATA_DIR/root.key` by default.
    /// Keep it off the data disk to make a copy of that disk useless alone.
    #[arg(long, env = "HIMMEL_ROOT_KEY_FILE")]
    pub root_key_file: Option<PathBuf>,
    /// Do not drive the network dataplane even when this host could (the API still works).
    #[arg(long, env = "HIMMEL_NO_DATAPLANE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_dataplane: bool,
    /// Prefix (1-3 characters) of every interface and namespace the dataplane creates;
    /// derived from the data dir by default, so two regions on one host never meet.
    #[arg(long, env = "HIMMEL_DATAPLANE_PREFIX")]
    pub dataplane_prefix: Option<String>,
    /// The interface the external (flat) network is bridged to.
    #[arg(long, env = "HIMMEL_EXTERNAL_INTERFACE")]
    pub external_interface: Option<String>,
    /// This host's name as ports are bound to it (`binding:host_id`); the system host
    /// name by default.
    #[arg(long, env = "HIMMEL_HOST_NAME")]
    pub host_name: Option<String>,
    /// Optional TOML file with the same options (and `[security_compliance]`).
    #[arg(long, env = "HIMMEL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The TOML file's shape: every option of the command line, plus sections
/// that have no flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    s3_listen: Option<SocketAddr>,
    database: Option<String>,
    region: Option<String>,
    s3_region: Option<String>,
    public_url: Option<String>,
    token_expiration: Option<i64>,
    audit_retention_days: Option<u32>,
    #[serde(default)]
    security_compliance: himmel_identity::SecurityCompliance,
    #[serde(default)]
    root_key: crate::keys::RootKeyConfig,
    #[serde(default)]
    dataplane: DataplaneFile,
}

/// The `[dataplane]` section of the TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct DataplaneFile {
    enabled: Option<bool>,
    prefix: Option<String>,
    external_interface: Option<String>,
    host_name: Option<String>,
}

/// S3 signatures name the region in their credential scope, and S3 (like
/// the protocol library) accepts only AWS-style names there.
fn is_s3_region(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// How this region drives the host's network dataplane.
#[derive(Debug, Clone)]
pub struct DataplaneSettings {
    pub enabled: bool,
    pub prefix: String,
    pub external_interface: Option<String>,
    pub host_name: String,
}

/// `h` and two base-36 digits of a hash of the data dir: stable for a region, different for
/// two regions on one host (FNV-1a; it only needs to spread, not to resist anyone).
fn derived_prefix(data_dir: &std::path::Path) -> String {
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let hash = path
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let digit = |n: u64| char::from_digit((n % 36) as u32, 36).unwrap_or('0');
    format!("h{}{}", digit(hash), digit(hash / 36))
}

fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub s3_listen: SocketAddr,
    pub database: String,
    pub region: String,
    /// The region S3 clients sign for.
    pub s3_region: String,
    pub public_url: String,
    pub token_expiration: i64,
    pub audit_retention_days: u32,
    pub security: himmel_identity::SecurityCompliance,
    pub root_key: crate::keys::RootKeyConfig,
    pub dataplane: DataplaneSettings,
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("himmel-data"));
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:5000".parse().expect("addr"));
        let s3_listen = self
            .s3_listen
            .or(file.s3_listen)
            .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("addr"));
        let database = self
            .database
            .or(file.database)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("state.db").display()));
        let public_url = self.public_url.or(file.public_url).unwrap_or_else(|| {
            let host = if listen.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                listen.ip().to_string()
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            format!("http://{host}:{}", listen.port())
        });
        let dataplane = DataplaneSettings {
            enabled: !self.no_dataplane && file.dataplane.enabled.unwrap_or(true),
            prefix: self
                .dataplane_prefix
                .or(file.dataplane.prefix)
                .unwrap_or_else(|| derived_prefix(&data_dir)),
            external_interface: self
                .external_interface
                .or(file.dataplane.external_interface),
            host_name: self
                .host_name
                .or(file.dataplane.host_name)
                .unwrap_or_else(system_host_name),
        };
        let region = self
            .region
            .or(file.region)
            .unwrap_or_else(|| "RegionOne".into());
        let s3_region = self
            .s3_region
            .or(file.s3_region)
            .unwrap_or_else(|| region.to_lowercase());
        if !is_s3_region(&s3_region) {
            anyhow::bail!(
                "the S3 region {s3_region:?} must consist of lower-case letters, digits and '-' \
                 (S3 clients sign requests for it); set --s3-region"
            );
        }
        Ok(Settings {
            dataplane,
            data_dir: data_dir.clone(),
            listen,
            s3_listen,
            database,
            region,
            s3_region,
            public_url: public_url.trim_end_matches('/').to_string(),
            token_expiration: file.token_expiration.unwrap_or(3600),
            audit_retention_days: file.audit_retention_days.unwrap_or(90),
            security: file.security_compliance,
            root_key: file
                .root_key
                .resolve(self.root_key, self.root_key_file, &data_dir),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ServeArgs;

    fn resolve(region: Option<&str>, s3_region: Option<&str>) -> anyhow::Result<super::Settings> {
        let dir = tempfile::tempdir()?;
        ServeArgs {
            data_dir: Some(dir.path().to_path_buf()),
            region: region.map(String::from),
            s3_region: s3_region.map(String::from),
            ..Default::default()
        }
        .resolve()
    }

    #[test]
    fn the_s3_region_is_the_region_in_lower_case_unless_named() {
        let s = resolve(None, None).unwrap();
        assert_eq!(
            (s.region.as_str(), s.s3_region.as_str()),
            ("RegionOne", "regionone")
        );
        assert_eq!(resolve(Some("North"), None).unwrap().s3_region, "north");
        assert_eq!(
            resolve(None, Some("eu-north-1")).unwrap().s3_region,
            "eu-north-1"
        );
        // S3 signatures cannot name these
        for bad in ["RegionOne", "eu_north", ""] {
            let err = resolve(None, Some(bad)).unwrap_err().to_string();
            assert!(err.contains("--s3-region"), "{bad}: {err}");
        }
        assert!(resolve(Some("Nord Süd"), None).is_err());
    }
}
