//! `himmel admin audit verify|export`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::config::ServeArgs;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and check every signed checkpoint; names the
    /// first broken event. Checks the live store, or an export with --file.
    Verify {
        #[command(flatten)]
        region: ServeArgs,
        /// An export written by `himmel admin audit export`.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write the trail, its checkpoints and the public key as JSON lines.
    Export {
        #[command(flatten)]
        region: ServeArgs,
        /// Output file (standard output when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn key_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join(himmel_audit::KEY_FILE_NAME)
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { region, file } => {
            let result = match file {
                Some(path) => {
                    let f = tokio::fs::File::open(&path)
                        .await
                        .with_context(|| format!("opening {}", path.display()))?;
                    // Trust the region's key when this machine has it; an
                    // export carries its public key otherwise.
                    let trusted = region
                        .data_dir
                        .as_deref()
                        .map(key_path)
                        .filter(|p| p.exists())
                        .map(|p| {
                            himmel_audit::AuditKey::load_or_create(&p).map(|k| k.verifying_key())
                        })
                        .transpose()?;
                    himmel_audit::verify_export(tokio::io::BufReader::new(f), trusted.as_ref())
                        .await
                }
                None => {
                    let s = region.resolve()?;
                    let db = himmel_db::Db::connect(&s.database).await?;
                    let key = himmel_audit::AuditKey::load_or_create(&key_path(&s.data_dir))?;
                    himmel_audit::verify_store(&db, &key.verifying_key()).await
                }
            };
            match result {
                Ok(summary) => {
                    println!("audit trail verified: {summary}");
                    Ok(())
                }
                Err(failure) => {
                    eprintln!("{failure}");
                    std::process::exit(1);
                }
            }
        }
        AuditCommand::Export { region, out } => {
            let s = region.resolve()?;
            let db = himmel_db::Db::connect(&s.database).await?;
            let key = himmel_audit::AuditKey::load_or_create(&key_path(&s.data_dir))?;
            let summary = match out {
                Some(path) => {
                    let f = tokio::fs::File::create(&path)
                        .await
                        .with_context(|| format!("creating {}", path.display()))?;
                    himmel_audit::export(&db, &key, f).await?
                }
                None => himmel_audit::export(&db, &key, tokio::io::stdout()).await?,
            };
            eprintln!("exported: {summary:?}");
            Ok(())
        }
    }
}
