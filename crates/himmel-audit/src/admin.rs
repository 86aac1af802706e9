//! Entry points for the binary: starting the trail in `himmel serve`, and
//! the `himmel admin audit …` commands.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use himmel_db::Db;

use crate::{
    export, spawn_retention, verify_export, verify_store, AuditConfig, AuditKey, AuditLog,
    ExportSummary, Summary, VerifyFailure, KEY_FILE_NAME,
};

/// For `himmel serve`: loads (or on first start creates) the audit key in
/// `data_dir`, starts the writer and the daily retention task. Call
/// [`AuditLog::shutdown`] after the server drained, so the head is signed.
pub async fn start_for_region(
    db: Db,
    data_dir: &Path,
    region: &str,
    retention: Duration,
) -> anyhow::Result<AuditLog> {
    let key = AuditKey::load_or_create(&data_dir.join(KEY_FILE_NAME))?;
    let config = AuditConfig {
        observer_id: region.to_string(),
        ..Default::default()
    };
    let log = AuditLog::start(db.clone(), key.clone(), config).await?;
    spawn_retention(db, key, retention);
    Ok(log)
}

/// `himmel admin audit verify [--file EXPORT]`: verifies the export at
/// `file`, or else the live store at `database_url`. Checkpoints must be
/// signed by the key in `data_dir`; an export verified without that key
/// (none in `data_dir`) is checked against the key it carries, which the
/// summary's key id names. Ok is the summary to print; Err names the first
/// broken event.
pub async fn verify_command(
    data_dir: &Path,
    database_url: &str,
    file: Option<&Path>,
) -> Result<Summary, VerifyFailure> {
    let key_path = data_dir.join(KEY_FILE_NAME);
    match file {
        Some(file) => {
            let trusted = match key_path.exists() {
                true => Some(
                    AuditKey::load(&key_path)
                        .map_err(VerifyFailure::Unreadable)?
                        .verifying_key(),
                ),
                false => None,
            };
            let f = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("opening {}", file.display()))
                .map_err(VerifyFailure::Unreadable)?;
            verify_export(tokio::io::BufReader::new(f), trusted.as_ref()).await
        }
        None => {
            let key = AuditKey::load(&key_path).map_err(VerifyFailure::Unreadable)?;
            let db = Db::connect(database_url)
                .await
                .map_err(VerifyFailure::Unreadable)?;
            verify_store(&db, &key.verifying_key()).await
        }
    }
}

/// `himmel admin audit export [--out FILE]`: writes the trail (events,
/// checkpoints, public key) as JSON lines to `out` (created mode 0600),
/// or to stdout.
pub async fn export_command(
    data_dir: &Path,
    database_url: &str,
    out: Option<&Path>,
) -> anyhow::Result<ExportSummary> {
    let key = AuditKey::load(&data_dir.join(KEY_FILE_NAME))?;
    let db = Db::connect(database_url).await?;
    match out {
        Some(path) => {
            let mut opts = tokio::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            opts.mode(0o600);
            let file = opts
                .open(path)
                .await
                .with_context(|| format!("creating {}", path.display()))?;
            let summary = export(&db, &key, file).await?;
            Ok(summary)
        }
        None => export(&db, &key, tokio::io::stdout()).await,
    }
}
