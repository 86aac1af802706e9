//! A minimal QMP client: one command per connection on the instance's QMP socket.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `command` (e.g. "system_powerdown") and returns its `return` value.
pub fn execute(socket: &Path, command: &str) -> Result<Value> {
    let fail = |detail: String| Error::Command {
        command: format!("QMP {command} on {}", socket.display()),
        detail,
    };
    let stream = connect(socket).map_err(|e| fail(format!("connect: {e}")))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| fail(e.to_string()))?;
    let mut writer = stream.try_clone().map_err(|e| fail(e.to_string()))?;
    let mut reader = BufReader::new(stream);
    let greeting = read_message(&mut reader).map_err(fail)?;
    if greeting.get("QMP").is_none() {
        return Err(fail(format!("unexpected greeting {greeting}")));
    }
    for request in ["qmp_capabilities", command] {
        let line = serde_json::json!({ "execute": request }).to_string() + "\n";
        writer
            .write_all(line.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        let reply = loop {
            let message = read_message(&mut reader).map_err(fail)?;
            // Events (e.g. POWERDOWN) may come before the reply.
            if message.get("event").is_none() {
                break message;
            }
        };
        if let Some(error) = reply.get("error") {
            return Err(fail(error.to_string()));
        }
        if request == command {
            return Ok(reply.get("return").cloned().unwrap_or(Value::Null));
        }
    }
    unreachable!("the loop returns after the command's reply")
}

/// Connects through the socket's directory opened as a file descriptor: a socket address holds
/// at most 108 bytes, and `/proc/self/fd/N/qmp.sock` is short whatever the directory's path.
fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return UnixStream::connect(socket);
    };
    let dir = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    UnixStream::connect(short)
}

fn read_message(reader: &mut impl BufRead) -> std::result::Result<Value, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Err("connection closed".into()),
        Ok(_) => serde_json::from_str(&line).map_err(|e| format!("bad reply {line:?}: {e}")),
        Err(e) => Err(e.to_string()),
    }
}
