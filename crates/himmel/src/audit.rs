//! `himmel admin audit verify|export`.

use std::path::PathBuf;

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

pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { region, file } => {
            let s = region.resolve()?;
            match himmel_audit::admin::verify_command(&s.data_dir, &s.database, file.as_deref())
                .await
            {
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
            let summary =
                himmel_audit::admin::export_command(&s.data_dir, &s.database, out.as_deref())
                    .await?;
            eprintln!("exported: {summary:?}");
            Ok(())
        }
    }
}
