//! What survives a region restart: which process is the instance (pid and start time, so a
//! recycled pid is never mistaken for it) and which driver runs it.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::process;
use super::Driver;
use crate::error::{Error, Result};

const RECORD: &str = "instance.json";
/// The console log in the instance's state directory.
pub const CONSOLE_LOG: &str = "console.log";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub driver: Driver,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start_ticks: u64,
}

impl Record {
    /// A record for a process that is running now.
    pub fn for_process(driver: Driver, pid: u32) -> Result<Record> {
        let start_ticks = process::start_ticks(pid).ok_or_else(|| Error::Command {
            command: format!("{driver:?} instance"),
            detail: format!("process {pid} exited right after it started"),
        })?;
        Ok(Record {
            driver,
            pid,
            start_ticks,
        })
    }

    pub fn load(dir: &Path) -> Result<Option<Record>> {
        let path = dir.join(RECORD);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::invalid(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Written to a temporary file and renamed, so a crash never leaves half a record.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(RECORD);
        let tmp = dir.join(format!("{RECORD}.tmp"));
        let bytes = serde_json::to_vec(self).map_err(|e| Error::invalid(e.to_string()))?;
        fs::write(&tmp, bytes).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// The pid, while this very process is still alive.
    pub fn live_pid(&self) -> Option<u32> {
        process::is_alive(self.pid, self.start_ticks).then_some(self.pid)
    }
}
