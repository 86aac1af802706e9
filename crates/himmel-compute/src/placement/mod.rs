//! Placement: what each compute host offers (inventories of VCPU,
//! MEMORY_MB, DISK_GB per resource provider) and what each server holds
//! (allocations). The scheduler claims through it; operators and tests
//! register further providers through its API, as further hosts.
//!
//! A compute host's provider is named after the host, so that the
//! scheduler's choice of provider is the server's host.

pub mod api;
pub mod policy;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;

use himmel_core::Error;
use himmel_db::Db;
use sqlx::AnyConnection;

use crate::store::db_err;
use store::{Inventory, Resources};

pub use api::{routes, PATH_PREFIX};

/// Whether `wanted` fits a provider's free capacity now.
pub async fn fits(conn: &mut AnyConnection, uuid: &str, wanted: &Resources) -> Result<bool, Error> {
    let inv = store::inventories(conn, uuid).await?;
    let used = store::usages(conn, uuid).await?;
    Ok(wanted.iter().all(|(class, amount)| {
        store::misfit(
            class,
            *amount,
            inv.get(class),
            *used.get(class).unwrap_or(&0),
        )
        .is_none()
    }))
}

/// What this machine offers: its CPUs, its RAM in MiB, and the size of the
/// file system holding `data_dir` in GiB. Nova's default allocation ratios
/// apply (16 × CPU, 1.5 × RAM, 1 × disk), so that small test machines still
/// run a few servers.
pub fn host_inventory(data_dir: &Path) -> BTreeMap<String, Inventory> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let ram_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| meminfo_total_kib(&m))
        .map_or(1024, |kib| kib / 1024);
    let disk_gb = disk_size_gib(data_dir).unwrap_or(1).max(1);
    let inv = |total: i64, ratio: f64| Inventory {
        total,
        reserved: 0,
        min_unit: 1,
        max_unit: total,
        step_size: 1,
        allocation_ratio: ratio,
    };
    BTreeMap::from([
        (store::VCPU.to_string(), inv(cpus, 16.0)),
        (store::MEMORY_MB.to_string(), inv(ram_mb, 1.5)),
        (store::DISK_GB.to_string(), inv(disk_gb, 1.0)),
    ])
}

fn meminfo_total_kib(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn disk_size_gib(dir: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let mut probe = dir;
    // The data directory may not exist yet; its nearest ancestor tells.
    while !probe.exists() {
        probe = probe.parent()?;
    }
    let path = std::ffi::CString::new(probe.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let bytes = st.f_blocks as u128 * st.f_frsize as u128;
    i64::try_from(bytes >> 30).ok()
}

/// Registers (or refreshes) this region's host as a resource provider named
/// `host` with `inventory`, at start. An inventory update that would drop
/// below current usage keeps the old inventory and says so in the log.
pub async fn register_host(
    db: &Db,
    host: &str,
    inventory: &BTreeMap<String, Inventory>,
) -> Result<String, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    store::serialise(&mut tx).await?;
    let provider = match store::provider_named(&mut tx, host).await? {
        Some(p) => p,
        None => {
            let uuid = uuid::Uuid::new_v4().to_string();
            store::create_provider(&mut tx, &uuid, host, None).await?
        }
    };
    if store::inventories(&mut tx, &provider.uuid).await? != *inventory {
        if let Err(e) = store::replace_inventories(&mut tx, &provider.uuid, None, inventory).await {
            tracing::warn!(host, error = %e, "keeping the host's registered inventory");
            return Ok(provider.uuid);
        }
    }
    tx.commit().await.map_err(db_err)?;
    Ok(provider.uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_read_in_kib() {
        let m = "MemTotal:       16318412 kB\nMemFree:         1000 kB\n";
        assert_eq!(meminfo_total_kib(m), Some(16318412));
        assert_eq!(meminfo_total_kib("nothing"), None);
    }

    #[test]
    fn this_machine_offers_something_of_each_class() {
        let inv = host_inventory(Path::new("/nonexistent/data"));
        for class in [store::VCPU, store::MEMORY_MB, store::DISK_GB] {
            assert!(inv[class].total >= 1, "{class}");
        }
        assert_eq!(inv[store::VCPU].capacity(), inv[store::VCPU].total * 16);
    }
}
