//! `himmel admin keys …`: root and project key operations. With a region
//! running on the data dir they run inside it (control socket); otherwise
//! this process opens the store, the root key and the audit trail itself.

use std::sync::Arc;

use clap::Subcommand;

use crate::config::ServeArgs;
use crate::control;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a new root key current and re-wrap every project key under it.
    RotateRoot {
        #[command(flatten)]
        region: ServeArgs,
    },
    /// Start a new key version for a project (old versions still decrypt).
    RotateProjectKey {
        project_id: String,
        #[command(flatten)]
        region: ServeArgs,
    },
    /// Crypto-shred a project: destroy every version of its key, which makes
    /// all of its encrypted data unrecoverable. Cannot be undone.
    DestroyProjectKeys {
        project_id: String,
        #[command(flatten)]
        region: ServeArgs,
    },
}

pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let (request, region) = match cmd {
        KeysCommand::RotateRoot { region } => ("rotate-root".to_string(), region),
        KeysCommand::RotateProjectKey { project_id, region } => {
            (format!("rotate-project-key {project_id}"), region)
        }
        KeysCommand::DestroyProjectKeys { project_id, region } => {
            (format!("destroy-project-keys {project_id}"), region)
        }
    };
    let s = region.resolve()?;
    if let Some(reply) = control::send(&s.data_dir, &request).await? {
        println!("{reply}");
        return Ok(());
    }
    // No region running: do it here, with this process as the trail's writer.
    let db = himmel_db::Db::connect(&s.database).await?;
    let retention = std::time::Duration::from_secs(u64::from(s.audit_retention_days) * 86_400);
    let audit =
        himmel_audit::admin::start_for_region(db.clone(), &s.data_dir, &s.region, retention)
            .await?;
    let keyring = himmel_kms::Keyring::new(
        db,
        s.root_key.open()?,
        s.root_key.cache_ttl(),
        Some(Arc::new(audit.clone())),
    );
    let result = control::execute(&keyring, &request).await;
    audit.shutdown().await?;
    println!("{}", result?);
    Ok(())
}
