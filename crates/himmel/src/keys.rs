//! The root key provider a region runs with, from its settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use himmel_kms::root::file::KeyFile;
use himmel_kms::root::keyholder::KeyHolderClient;
use himmel_kms::root::pkcs11::Pkcs11Root;
use himmel_kms::root::RootKeyProvider;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RootKeyKind {
    /// A key file (mode 0600), generated on first start.
    #[default]
    File,
    /// A key on a PKCS#11 token that never leaves it.
    Pkcs11,
    /// An external key holder (`himmel keyholder serve`) over mutual TLS.
    Keyholder,
}

/// The config file's `[root_key]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKeyConfig {
    pub provider: Option<RootKeyKind>,
    /// `file`: where the root key lives (default `DATA_DIR/root.key`).
    pub file: Option<PathBuf>,
    /// How long an unwrapped project key stays in memory (default 60 s).
    pub cache_seconds: Option<u64>,
    /// `pkcs11`: the module (e.g. SoftHSM2's libsofthsm2.so), the token
    /// label, and the user PIN, or a file holding it; `HIMMEL_PKCS11_PIN`
    /// overrides both.
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_token: Option<String>,
    pub pkcs11_pin: Option<String>,
    pub pkcs11_pin_file: Option<PathBuf>,
    /// `keyholder`: its URL, and the directory with the files its `init`
    /// made for the region (`ca.pem`, `client.pem`, `client.key`); or each
    /// file on its own.
    pub keyholder_url: Option<String>,
    pub keyholder_dir: Option<PathBuf>,
    pub keyholder_ca: Option<PathBuf>,
    pub keyholder_cert: Option<PathBuf>,
    pub keyholder_key: Option<PathBuf>,
}

impl RootKeyConfig {
    /// Applies the command line (which wins) and the data dir default.
    pub fn resolve(
        mut self,
        provider: Option<RootKeyKind>,
        file: Option<PathBuf>,
        data_dir: &Path,
    ) -> RootKeyConfig {
        self.provider = provider.or(self.provider).or(Some(RootKeyKind::File));
        self.file = file
            .or(self.file)
            .or_else(|| Some(data_dir.join("root.key")));
        self
    }

    pub fn cache_ttl(&self) -> Duration {
        self.cache_seconds
            .map_or(himmel_kms::keyring::DEFAULT_CACHE_TTL, Duration::from_secs)
    }

    /// Opens the configured provider.
    pub fn open(&self) -> anyhow::Result<Arc<dyn RootKeyProvider>> {
        let missing =
            |what: &str| anyhow::anyhow!("[root_key] {what} must be set for this provider");
        Ok(match self.provider.unwrap_or_default() {
            RootKeyKind::File => {
                let path = self.file.as_deref().ok_or_else(|| missing("file"))?;
                Arc::new(KeyFile::open_or_create(path)?)
            }
            RootKeyKind::Pkcs11 => {
                let module = self
                    .pkcs11_module
                    .as_deref()
                    .ok_or_else(|| missing("pkcs11_module"))?;
                let token = self
                    .pkcs11_token
                    .as_deref()
                    .ok_or_else(|| missing("pkcs11_token"))?;
                let pin = self.pkcs11_pin()?;
                Arc::new(Pkcs11Root::open(module, token, &pin)?)
            }
            RootKeyKind::Keyholder => {
                let url = self
                    .keyholder_url
                    .as_deref()
                    .ok_or_else(|| missing("keyholder_url"))?;
                let file = |own: &Option<PathBuf>, name: &str| {
                    own.clone()
                        .or_else(|| self.keyholder_dir.as_ref().map(|d| d.join(name)))
                        .ok_or_else(|| missing(&format!("keyholder_dir (or the path of {name})")))
                };
                Arc::new(KeyHolderClient::new(
                    url,
                    &file(&self.keyholder_ca, "ca.pem")?,
                    &file(&self.keyholder_cert, "client.pem")?,
                    &file(&self.keyholder_key, "client.key")?,
                )?)
            }
        })
    }

    fn pkcs11_pin(&self) -> anyhow::Result<String> {
        if let Ok(pin) = std::env::var("HIMMEL_PKCS11_PIN") {
            return Ok(pin);
        }
        if let Some(pin) = &self.pkcs11_pin {
            return Ok(pin.clone());
        }
        let path = self
            .pkcs11_pin_file
            .as_deref()
            .context("[root_key] pkcs11_pin, pkcs11_pin_file or HIMMEL_PKCS11_PIN must be set")?;
        let pin = std::fs::read_to_string(path)
            .with_context(|| format!("reading the PKCS#11 PIN file {}", path.display()))?;
        Ok(pin.trim_end().to_string())
    }
}
