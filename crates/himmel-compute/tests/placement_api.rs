//! The placement API as an administrator and an operator's tools use it,
//! on SQLite and PostgreSQL.

mod support;

use serde_json::{json, Value};
use support::{Engine, Region};

/// A region whose own test host is no resource provider, so that the
/// providers a test registers are the only hosts.
async fn start(engine: Engine) -> Option<Region> {
    let r = Region::start(engine).await?;
    let (_, list) = r
        .raw(
            "GET",
            "/placement/resource_providers?name=testhost",
            &r.admin,
            None,
            &[],
        )
        .await;
    let uuid = list["resource_providers"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = r
        .raw(
            "DELETE",
            &format!("/placement/resource_providers/{uuid}"),
            &r.admin,
            None,
            &[],
        )
        .await;
    assert_eq!(st, 204);
    Some(r)
}

async fn place(
    r: &Region,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    r.raw(method, &format!("/placement{path}"), token, body, &[])
        .await
}

fn inventory(vcpu: i64, ram: i64, ratio: f64) -> Value {
    json!({
        "VCPU": {"total": vcpu, "allocation_ratio": ratio},
        "MEMORY_MB": {"total": ram, "reserved": 512, "max_unit": ram},
    })
}

async fn providers_inventories_and_allocations(engine: Engine) {
    let Some(r) = start(engine).await else {
        return;
    };
    let admin = r.admin.clone();

    let (st, v) = place(&r, "GET", "/", "", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["versions"][0]["min_version"], "1.0");

    let (st, p) = place(
        &r,
        "POST",
        "/resource_providers",
        &admin,
        Some(json!({"name": "host-a"})),
    )
    .await;
    assert_eq!(st, 200, "{p}");
    let uuid = p["uuid"].as_str().unwrap().to_string();
    assert_eq!(p["generation"], 0);
    assert_eq!(p["root_provider_uuid"], uuid.as_str());
    let (st, _) = place(
        &r,
        "POST",
        "/resource_providers",
        &admin,
        Some(json!({"name": "host-a"})),
    )
    .await;
    assert_eq!(st, 409, "provider names are unique");
    let (st, _) = place(
        &r,
        "POST",
        "/resource_providers",
        &admin,
        Some(json!({"name": "x", "bogus": 1})),
    )
    .await;
    assert_eq!(st, 400);

    let (st, list) = place(&r, "GET", "/resource_providers?name=host-a", &admin, None).await;
    assert_eq!(st, 200);
    assert_eq!(list["resource_providers"].as_array().unwrap().len(), 1);

    // Inventory writes name the generation they saw; a stale one is a 409.
    let body = json!({"resource_provider_generation": 0, "inventories": inventory(2, 4096, 2.0)});
    let (st, inv) = place(
        &r,
        "PUT",
        &format!("/resource_providers/{uuid}/inventories"),
        &admin,
        Some(body.clone()),
    )
    .await;
    assert_eq!(st, 200, "{inv}");
    assert_eq!(inv["resource_provider_generation"], 1);
    assert_eq!(inv["inventories"]["VCPU"]["allocation_ratio"], 2.0);
    assert_eq!(inv["inventories"]["MEMORY_MB"]["reserved"], 512);
    let (st, _) = place(
        &r,
        "PUT",
        &format!("/resource_providers/{uuid}/inventories"),
        &admin,
        Some(body),
    )
    .await;
    assert_eq!(st, 409);

    // 2 vCPUs at ratio 2 are 4; 4096 - 512 MiB at ratio 1.
    let consumer = uuid::Uuid::new_v4().to_string();
    let alloc = |vcpu: i64, ram: i64| {
        json!({"allocations": {uuid.as_str(): {"resources": {"VCPU": vcpu, "MEMORY_MB": ram}}},
               "project_id": "p1", "user_id": "u1"})
    };
    let (st, v) = place(
        &r,
        "PUT",
        &format!("/allocations/{consumer}"),
        &admin,
        Some(alloc(3, 2048)),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let other = uuid::Uuid::new_v4().to_string();
    let (st, _) = place(
        &r,
        "PUT",
        &format!("/allocations/{other}"),
        &admin,
        Some(alloc(2, 512)),
    )
    .await;
    assert_eq!(st, 409, "3 + 2 vCPUs exceed the capacity of 4");
    let (st, _) = place(
        &r,
        "PUT",
        &format!("/allocations/{other}"),
        &admin,
        Some(alloc(1, 2048)),
    )
    .await;
    assert_eq!(st, 409, "2048 + 2048 MiB exceed 4096 - 512 reserved");
    let (st, _) = place(
        &r,
        "PUT",
        &format!("/allocations/{other}"),
        &admin,
        Some(alloc(1, 1536)),
    )
    .await;
    assert_eq!(st, 204);

    let (_, usages) = place(
        &r,
        "GET",
        &format!("/resource_providers/{uuid}/usages"),
        &admin,
        None,
    )
    .await;
    assert_eq!(usages["usages"], json!({"VCPU": 4, "MEMORY_MB": 3584}));
    let (_, project) = place(&r, "GET", "/usages?project_id=p1", &admin, None).await;
    assert_eq!(project["usages"], json!({"VCPU": 4, "MEMORY_MB": 3584}));
    let (_, held) = place(&r, "GET", &format!("/allocations/{consumer}"), &admin, None).await;
    assert_eq!(
        held["allocations"][&uuid]["resources"],
        json!({"VCPU": 3, "MEMORY_MB": 2048})
    );
    assert_eq!(held["project_id"], "p1");
    let (_, on_rp) = place(
        &r,
        "GET",
        &format!("/resource_providers/{uuid}/allocations"),
        &admin,
        None,
    )
    .await;
    assert_eq!(on_rp["allocations"].as_object().unwrap().len(), 2);

    // A full provider is no candidate; after a release it is again.
    let (_, c) = place(
        &r,
        "GET",
        "/allocation_candidates?resources=VCPU:1,MEMORY_MB:256",
        &admin,
        None,
    )
    .await;
    assert_eq!(c["allocation_requests"], json!([]));
    let (st, _) = place(
        &r,
        "DELETE",
        &format!("/resource_providers/{uuid}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(st, 409, "a provider with allocations stays");
    let (st, _) = place(
        &r,
        "DELETE",
        &format!("/resource_providers/{uuid}/inventories"),
        &admin,
        None,
    )
    .await;
    assert_eq!(st, 409, "inventory in use stays");
    let (st, _) = place(
        &r,
        "DELETE",
        &format!("/allocations/{consumer}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = place(
        &r,
        "DELETE",
        &format!("/allocations/{consumer}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (_, c) = place(
        &r,
        "GET",
        "/allocation_candidates?resources=VCPU:1,MEMORY_MB:256",
        &admin,
        None,
    )
    .await;
    assert_eq!(c["allocation_requests"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(
        c["provider_summaries"][&uuid]["resources"]["VCPU"],
        json!({"capacity": 4, "used": 1})
    );
    let (st, _) = place(
        &r,
        "GET",
        "/allocation_candidates?resources=VCPU",
        &admin,
        None,
    )
    .await;
    assert_eq!(st, 400);

    // Renaming bumps the generation.
    let (st, p) = place(
        &r,
        "PUT",
        &format!("/resource_providers/{uuid}"),
        &admin,
        Some(json!({"name": "host-b"})),
    )
    .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["name"], "host-b");

    // Placement is for administrators.
    let m = r.member("placement-member", "member").await;
    let (st, _) = place(&r, "GET", "/resource_providers", &m.token, None).await;
    assert_eq!(st, 403);
    let (st, _) = place(
        &r,
        "GET",
        &format!("/resource_providers/{}", uuid::Uuid::new_v4()),
        &admin,
        None,
    )
    .await;
    assert_eq!(st, 404);

    // The region's host registers itself, idempotently, with this machine's sizes.
    let inv = himmel_compute::placement::host_inventory(std::path::Path::new("."));
    let first = himmel_compute::placement::register_host(r.compute.db(), "testhost", &inv)
        .await
        .unwrap();
    let again = himmel_compute::placement::register_host(r.compute.db(), "testhost", &inv)
        .await
        .unwrap();
    assert_eq!(first, again);
    let (_, rp) = place(
        &r,
        "GET",
        &format!("/resource_providers/{first}/inventories"),
        &admin,
        None,
    )
    .await;
    assert_eq!(rp["inventories"]["VCPU"]["total"], inv["VCPU"].total);
    assert_eq!(rp["resource_provider_generation"], 1);
}

#[tokio::test]
async fn placement_on_sqlite() {
    providers_inventories_and_allocations(Engine::Sqlite).await;
}

#[tokio::test]
async fn placement_on_postgres() {
    providers_inventories_and_allocations(Engine::Postgres).await;
}
