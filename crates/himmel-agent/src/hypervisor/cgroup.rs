//! The cgroup of a namespace instance: memory and CPU limits, the freezer for pause, and the
//! list of its processes (so that stopping it leaves none behind).
//!
//! On a cgroup v2 host it is `/sys/fs/cgroup/himmel-<prefix>/<id>`; on a v1 (or hybrid) host
//! the same path under each of the memory, cpu, freezer and pids hierarchies.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process;
use crate::error::{Error, Result};

const ROOT: &str = "/sys/fs/cgroup";
/// v1 hierarchies an instance joins.
const V1_CONTROLLERS: [&str; 4] = ["memory", "cpu", "freezer", "pids"];
/// The CFS period; a vCPU is one period's worth of quota.
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug)]
pub struct Cgroup {
    unified: bool,
    /// (controller, directory); the controller is "" on a v2 host.
    dirs: Vec<(&'static str, PathBuf)>,
}

impl Cgroup {
    pub fn locate(prefix: &str, id: &str) -> Cgroup {
        let group = format!("himmel-{prefix}");
        let id = id.to_ascii_lowercase();
        let root = Path::new(ROOT);
        if root.join("cgroup.controllers").exists() {
            return Cgroup {
                unified: true,
                dirs: vec![("", root.join(group).join(id))],
            };
        }
        let dirs = V1_CONTROLLERS
            .into_iter()
            .filter(|c| root.join(c).join("cgroup.procs").exists())
            .map(|c| (c, root.join(c).join(&group).join(&id)))
            .collect();
        Cgroup {
            unified: false,
            dirs,
        }
    }

    /// Creates the cgroup with its limits (idempotent).
    pub fn create(&self, memory_bytes: u64, vcpus: u32) -> Result<()> {
        if self.dirs.is_empty() {
            return Err(Error::invalid(
                "no cgroup hierarchy is mounted on this host",
            ));
        }
        let quota = u64::from(vcpus) * CPU_PERIOD_US;
        for (controller, dir) in &self.dirs {
            if self.unified {
                let parent = dir.parent().unwrap_or(dir);
                mkdir(parent)?;
                enable_controllers(Path::new(ROOT))?;
                enable_controllers(parent)?;
                mkdir(dir)?;
                write(dir, "memory.max", &memory_bytes.to_string())?;
                write(dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
            } else {
                mkdir(dir.parent().unwrap_or(dir))?;
                mkdir(dir)?;
                match *controller {
                    "memory" => write(dir, "memory.limit_in_bytes", &memory_bytes.to_string())?,
                    "cpu" => {
                        write(dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                        write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a new process writes itself into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    /// Every process in the cgroup.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .dirs
            .iter()
            .filter_map(|(_, d)| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Kills every process in the cgroup and waits until they are gone.
    pub fn kill_all(&self) -> Result<()> {
        // A frozen process only dies once thawed.
        let _ = self.freeze(false);
        let gone = process::wait_until(Duration::from_secs(10), || {
            let pids = self.pids();
            for pid in &pids {
                process::signal(*pid, libc::SIGKILL);
                process::reap(*pid);
            }
            pids.is_empty()
        });
        if gone {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "processes {:?} of an instance survive SIGKILL",
                self.pids()
            )))
        }
    }

    pub fn freeze(&self, frozen: bool) -> Result<()> {
        for (controller, dir) in &self.dirs {
            if !dir.exists() {
                continue;
            }
            if self.unified {
                write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
            } else if *controller == "freezer" {
                write(
                    dir,
                    "freezer.state",
                    if frozen { "FROZEN" } else { "THAWED" },
                )?;
            }
        }
        Ok(())
    }

    /// Whether the group is frozen now (paused, or frozen for a snapshot).
    pub fn frozen(&self) -> bool {
        self.dirs.iter().any(|(controller, dir)| {
            if self.unified {
                fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|v| v.trim() == "1")
            } else {
                *controller == "freezer"
                    && fs::read_to_string(dir.join("freezer.state"))
                        .is_ok_and(|v| v.trim() != "THAWED")
            }
        })
    }

    /// Whether pausing is possible (a freezer exists).
    pub fn can_freeze(&self) -> bool {
        self.unified || self.dirs.iter().any(|(c, _)| *c == "freezer")
    }

    /// Kills what is left and removes the cgroup (and the per-prefix group when it is empty).
    pub fn remove(&self) -> Result<()> {
        if self.dirs.iter().all(|(_, d)| !d.exists()) {
            return Ok(());
        }
        self.kill_all()?;
        for (_, dir) in &self.dirs {
            match fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing cgroup {}", dir.display()), e)),
            }
            // Other instances may still use the group: then it is not empty and stays.
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }
}

/// Which cgroup setup instances get here (for doctor), or why none.
pub fn host_support() -> std::result::Result<String, String> {
    let root = Path::new(ROOT);
    if let Ok(controllers) = fs::read_to_string(root.join("cgroup.controllers")) {
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        return if has("memory") && has("cpu") {
            Ok("cgroup v2: memory, cpu, freezer".into())
        } else {
            Err("cgroup v2 without the memory and cpu controllers".into())
        };
    }
    let mounted: Vec<&str> = V1_CONTROLLERS
        .into_iter()
        .filter(|c| root.join(c).join("cgroup.procs").exists())
        .collect();
    if mounted.contains(&"memory") && mounted.contains(&"cpu") {
        let pause = if mounted.contains(&"freezer") {
            ""
        } else {
            "; no freezer: no pause"
        };
        Ok(format!("cgroup v1: {}{pause}", mounted.join(", ")))
    } else {
        Err("no cgroup memory and cpu controllers".into())
    }
}

fn mkdir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(format!("creating cgroup {}", dir.display()), e)),
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, value)
        .map_err(|e| Error::io(format!("writing {value:?} to {}", path.display()), e))
}

/// Lets the children of `dir` limit memory and CPU (v2).
fn enable_controllers(dir: &Path) -> Result<()> {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for controller in ["memory", "cpu"] {
        if !available.split_whitespace().any(|c| c == controller) {
            return Err(Error::invalid(format!(
                "the cgroup v2 controller {controller} is not available in {}",
                dir.display()
            )));
        }
        write(dir, "cgroup.subtree_control", &format!("+{controller}"))?;
    }
    Ok(())
}
