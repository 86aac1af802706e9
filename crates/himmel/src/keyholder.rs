//! `himmel keyholder …`: the external key holder, run by a customer or a
//! data trustee on its own machine. It holds the root key of a region's
//! project keys, answers the region over mutual TLS, logs every key use
//! and can revoke a project.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use himmel_kms::keyholder::{self, AuditLog, Layout};

#[derive(Subcommand)]
pub enum KeyHolderCommand {
    /// Make a key holder directory: its root key, a CA, a server
    /// certificate and the region's client certificate.
    Init {
        #[arg(long, env = "HIMMEL_KEYHOLDER_DIR")]
        dir: PathBuf,
        /// Host name or IP address the region reaches the key holder by
        /// (repeatable; default localhost and 127.0.0.1).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Answer the region's wrap and unwrap requests (HTTPS, mutual TLS).
    Serve {
        #[arg(long, env = "HIMMEL_KEYHOLDER_DIR")]
        dir: PathBuf,
        #[arg(
            long,
            env = "HIMMEL_KEYHOLDER_LISTEN",
            default_value = "127.0.0.1:8500"
        )]
        listen: SocketAddr,
    },
    /// Refuse the region every use of a project's keys; its data stops
    /// opening once the region's key cache expires.
    Revoke {
        project_id: String,
        #[arg(long, env = "HIMMEL_KEYHOLDER_DIR")]
        dir: PathBuf,
    },
    /// Give the region back the use of a project's keys.
    Unrevoke {
        project_id: String,
        #[arg(long, env = "HIMMEL_KEYHOLDER_DIR")]
        dir: PathBuf,
    },
    /// Print the key holder's log: every wrap, unwrap, rotation and
    /// revocation, oldest first.
    Log {
        #[arg(long, env = "HIMMEL_KEYHOLDER_DIR")]
        dir: PathBuf,
        /// One JSON object a line instead of columns.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: KeyHolderCommand) -> anyhow::Result<()> {
    match cmd {
        KeyHolderCommand::Init { dir, hosts } => {
            let layout = keyholder::init(&dir, &hosts)?;
            let host = hosts
                .first()
                .map_or(keyholder::init::DEFAULT_HOSTS[0], String::as_str);
            println!("key holder directory {} is ready", dir.display());
            println!(
                "hand {} (ca.pem, client.pem, client.key) to the region's operator; \
                 the region's config file then says:",
                layout.region_dir().display()
            );
            println!("  [root_key]");
            println!("  provider = \"keyholder\"");
            println!("  keyholder_url = \"https://{host}:<port of keyholder serve --listen>\"");
            println!("  keyholder_dir = \"<where those files are on the region's machine>\"");
            Ok(())
        }
        KeyHolderCommand::Serve { dir, listen } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            tracing::info!(
                "key holder for {} listening on https://{listen}",
                dir.display()
            );
            tokio::select! {
                served = keyholder::serve(&dir, listener) => Ok(served?),
                () = shutdown_signal() => {
                    tracing::info!("key holder stopped");
                    Ok(())
                }
            }
        }
        KeyHolderCommand::Revoke { project_id, dir } => {
            keyholder::set_revoked(&dir, &project_id, true)?;
            println!(
                "revoked project {project_id}: the region can no longer open its data once its key cache expires (60 s unless configured otherwise)"
            );
            Ok(())
        }
        KeyHolderCommand::Unrevoke { project_id, dir } => {
            keyholder::set_revoked(&dir, &project_id, false)?;
            println!("project {project_id}: the region may use its keys again");
            Ok(())
        }
        KeyHolderCommand::Log { dir, json } => {
            for entry in AuditLog::new(&Layout::new(&dir).audit_log()).read()? {
                if json {
                    println!("{}", serde_json::to_string(&entry)?);
                } else {
                    println!(
                        "{}  {:<8}  {:<32}  {}  {}",
                        entry.time, entry.operation, entry.project, entry.client, entry.outcome
                    );
                }
            }
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
