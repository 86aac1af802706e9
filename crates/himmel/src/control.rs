//! The region's control socket (`DATA_DIR/control.sock`, mode 0600): key
//! operations an operator starts with `himmel admin keys …` run inside the
//! running region, so they happen without downtime and are recorded by the
//! region's own audit writer (the trail has exactly one writer). Access is
//! the file system's: whoever may read the data dir may use it.
//!
//! Protocol: one request line (`rotate-root`, `rotate-project-key ID`,
//! `destroy-project-keys ID`), one JSON response line.

use std::path::{Path, PathBuf};

use himmel_kms::Keyring;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Serves the control socket until the process ends.
pub fn spawn(data_dir: &Path, keyring: Keyring) -> anyhow::Result<()> {
    let path = socket_path(data_dir);
    // A socket left by a region that was killed.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    crate::serve::restrict(&path, 0o600)?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let keyring = keyring.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &keyring).await {
                            tracing::warn!(error = %e, "control socket request");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "control socket accept"),
            }
        }
    });
    Ok(())
}

async fn answer(stream: UnixStream, keyring: &Keyring) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(4096)).read_line(&mut line).await?;
    let reply = match execute(keyring, line.trim()).await {
        Ok(v) => json!({"ok": v}),
        Err(e) => json!({"error": e.to_string()}),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    Ok(())
}

/// Runs one key operation; the same code serves the socket and the offline
/// path of `himmel admin keys` (no region running).
pub async fn execute(keyring: &Keyring, request: &str) -> anyhow::Result<Value> {
    let mut words = request.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("rotate-root"), None, None) => {
            let r = keyring.rotate_root().await?;
            Ok(json!({
                "root": r.new_root,
                "rewrapped_project_keys": r.rewrapped,
                "skipped_revoked_projects": r.skipped_revoked,
            }))
        }
        (Some("rotate-project-key"), Some(project), None) => {
            let version = keyring.rotate_project_key(project).await?;
            Ok(json!({"project_id": project, "version": version}))
        }
        (Some("destroy-project-keys"), Some(project), None) => {
            let destroyed = keyring.destroy_project_keys(project).await?;
            Ok(json!({"project_id": project, "destroyed_key_versions": destroyed}))
        }
        _ => anyhow::bail!("unknown control request {request:?}"),
    }
}

/// Sends `request` to the region running on `data_dir`; `None` when no
/// region is running there.
pub async fn send(data_dir: &Path, request: &str) -> anyhow::Result<Option<Value>> {
    let Ok(stream) = UnixStream::connect(socket_path(data_dir)).await else {
        return Ok(None);
    };
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{request}\n").as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let reply: Value = serde_json::from_str(&line)?;
    match reply.get("error") {
        Some(e) => anyhow::bail!("{}", e.as_str().unwrap_or("the region refused the request")),
        None => Ok(Some(reply["ok"].clone())),
    }
}
