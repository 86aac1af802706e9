//! `/os-hypervisors` and `/os-services` for administrators: this region's
//! one compute host, its capacity (from the machine) and what its servers
//! use.

use axum::extract::{Path, State};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Json, Pipeline};
use serde_json::{json, Value};

use super::wire;
use crate::model::Server;
use crate::policy::*;
use crate::store::{self, db_err};
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/os-hypervisors",
            p.on(&SERVICE, &LIST_HYPERVISORS, MethodFilter::GET, list),
        )
        .route(
            "/os-hypervisors/detail",
            p.on(&SERVICE, &LIST_HYPERVISORS, MethodFilter::GET, detail),
        )
        .route(
            "/os-hypervisors/{id}",
            p.on(&SERVICE, &LIST_HYPERVISORS, MethodFilter::GET, show),
        )
        .route(
            "/os-services",
            p.on(&SERVICE, &LIST_SERVICES, MethodFilter::GET, services),
        )
}

/// The host's one hypervisor and compute service have id 1.
const HOST_ID: u32 = 1;

fn memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

fn disk_gib(s: &ComputeService) -> u64 {
    let dir = &s.config().state_dir;
    let _ = std::fs::create_dir_all(dir);
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs is plain data; all zeroes is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statvfs to fill.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    st.f_blocks.saturating_mul(st.f_frsize) >> 30
}

async fn hypervisor(s: &ComputeService, detailed: bool) -> Result<Value, Error> {
    let host = &s.config().host;
    let mut v = json!({
        "id": HOST_ID,
        "hypervisor_hostname": host,
        "state": if s.hypervisor().is_some() { "up" } else { "down" },
        "status": "enabled",
    });
    if !detailed {
        return Ok(v);
    }
    let servers: Vec<Server> = {
        let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
        store::on_host(&mut conn, host).await?
    };
    let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let (memory, disk) = (memory_mib(), disk_gib(s));
    let vcpus_used: u64 = servers.iter().map(|sv| sv.flavor.vcpus as u64).sum();
    let memory_used: u64 = servers.iter().map(|sv| sv.flavor.ram).sum();
    let disk_used: u64 = servers.iter().map(|sv| sv.flavor.disk).sum();
    let extra = json!({
        "hypervisor_type": "QEMU",
        "hypervisor_version": 1,
        "host_ip": "127.0.0.1",
        "vcpus": vcpus,
        "vcpus_used": vcpus_used,
        "memory_mb": memory,
        "memory_mb_used": memory_used,
        "free_ram_mb": memory as i64 - memory_used as i64,
        "local_gb": disk,
        "local_gb_used": disk_used,
        "free_disk_gb": disk as i64 - disk_used as i64,
        "disk_available_least": disk as i64 - disk_used as i64,
        "running_vms": servers.len(),
        "current_workload": servers.iter().filter(|sv| sv.task_state.is_some()).count(),
        "cpu_info": "{}",
        "service": {"host": host, "id": HOST_ID, "disabled_reason": null},
    });
    if let (Value::Object(base), Value::Object(more)) = (&mut v, extra) {
        base.extend(more);
    }
    Ok(v)
}

async fn list(State(s): State<ComputeService>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"hypervisors": [hypervisor(&s, false).await?]})))
}

async fn detail(State(s): State<ComputeService>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"hypervisors": [hypervisor(&s, true).await?]})))
}

async fn show(State(s): State<ComputeService>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    if id != HOST_ID.to_string() {
        return Err(
            Error::NotFound(format!("Hypervisor with ID '{id}' could not be found.")).into(),
        );
    }
    Ok(Json(json!({"hypervisor": hypervisor(&s, true).await?})))
}

async fn services(State(s): State<ComputeService>) -> Json<Value> {
    let host = &s.config().host;
    let now = wire::now();
    let compute_state = if s.hypervisor().is_some() {
        "up"
    } else {
        "down"
    };
    let entry = |id: u32, binary: &str, zone: &str, state: &str| {
        json!({"id": id, "binary": binary, "host": host, "zone": zone, "status": "enabled",
               "state": state, "updated_at": now, "disabled_reason": null, "forced_down": false})
    };
    Json(json!({"services": [
        entry(HOST_ID, "nova-compute", crate::model::AVAILABILITY_ZONE, compute_state),
        entry(2, "nova-scheduler", "internal", "up"),
        entry(3, "nova-conductor", "internal", "up"),
    ]}))
}
