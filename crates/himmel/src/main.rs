//! `himmel`: a sovereign cloud region in one binary.

mod audit;
mod config;
mod control;
mod doctor;
mod keyholder;
mod keys;
mod keys_admin;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

// The request path allocates many small, short-lived objects (JSON values,
// CADF events); mimalloc handles that pattern far better than glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "himmel",
    version,
    about = "A sovereign cloud region in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole region (API listener, S3 listener, reconcilers).
    Serve(config::ServeArgs),
    /// Report what this host can run.
    Doctor,
    /// The external key holder that a customer runs to hold the root key.
    Keyholder {
        #[command(subcommand)]
        command: keyholder::KeyHolderCommand,
    },
    /// Operator tasks on a region's data directory.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Rotate the Fernet token keys: promote the staged key, stage a new one.
    FernetRotate {
        #[arg(long, env = "HIMMEL_DATA_DIR", default_value = "himmel-data")]
        data_dir: PathBuf,
        /// Keys kept: staged, primary and the newest secondaries.
        #[arg(long, default_value_t = 3)]
        max_active_keys: usize,
    },
    /// Root and project keys: rotate them, or crypto-shred a project.
    Keys {
        #[command(subcommand)]
        command: keys_admin::KeysCommand,
    },
    /// The audit trail: verify it, or export it for verification elsewhere.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HIMMEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args.resolve()?)),
        Command::Doctor => {
            doctor::report();
            Ok(())
        }
        Command::Keyholder { command } => runtime.block_on(keyholder::run(command)),
        Command::Admin { command } => match command {
            AdminCommand::FernetRotate {
                data_dir,
                max_active_keys,
            } => {
                let repo = himmel_identity::fernet::KeyRepository::new(
                    serve::fernet_dir(&data_dir),
                    max_active_keys,
                );
                repo.setup()?;
                repo.rotate()?;
                println!(
                    "rotated the fernet keys in {}",
                    serve::fernet_dir(&data_dir).display()
                );
                println!("running servers pick the new keys up within a minute");
                Ok(())
            }
            AdminCommand::Audit { command } => runtime.block_on(audit::run(command)),
            AdminCommand::Keys { command } => runtime.block_on(keys_admin::run(command)),
        },
    }
}
