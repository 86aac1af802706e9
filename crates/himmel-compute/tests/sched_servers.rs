//! Server create through the scheduler: the claim on this host, "No valid
//! host" when it is full, and the release on delete. SQLite and PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{wait_status, Engine, Region, DISK_IMAGE};

async fn placement(r: &Region, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    r.raw(method, &format!("/placement{path}"), &r.admin, body, &[])
        .await
}

async fn full_host_fails_with_no_valid_host(engine: Engine) {
    let Some(r) = Region::start(engine).await else {
        return;
    };
    // The test host offers 2 vCPUs only.
    let (_, list) = placement(&r, "GET", "/resource_providers?name=testhost", None).await;
    let rp = list["resource_providers"][0].clone();
    let uuid = rp["uuid"].as_str().unwrap().to_string();
    let inv = json!({"resource_provider_generation": rp["generation"], "inventories": {
        "VCPU": {"total": 2}, "MEMORY_MB": {"total": 65536}, "DISK_GB": {"total": 100}}});
    let (st, v) = placement(
        &r,
        "PUT",
        &format!("/resource_providers/{uuid}/inventories"),
        Some(inv),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, f) = r
        .call(
            "POST",
            "/flavors",
            &r.admin,
            Some(json!({"flavor": {"name": "two", "ram": 512, "vcpus": 2, "disk": 1}})),
        )
        .await;
    assert_eq!(st, 200, "{f}");
    let flavor = f["flavor"]["id"].as_str().unwrap().to_string();
    let m = r.member("sched-member", "member").await;
    let (st, net) = r
        .net(
            "POST",
            "/networks",
            &m.token,
            Some(json!({"network": {"name": "n"}})),
        )
        .await;
    assert_eq!(st, 201);
    let net = net["network"]["id"].as_str().unwrap().to_string();
    let (st, _) = r
        .net(
            "POST",
            "/subnets",
            &m.token,
            Some(json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.9.0.0/24"}})),
        )
        .await;
    assert_eq!(st, 201);
    let body = json!({"server": {"name": "s", "imageRef": DISK_IMAGE, "flavorRef": flavor,
                                  "networks": [{"uuid": net}]}});

    let (st, first) = r
        .call("POST", "/servers", &m.token, Some(body.clone()))
        .await;
    assert_eq!(st, 202, "{first}");
    let first = first["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &first, "ACTIVE").await;
    let (_, held) = placement(&r, "GET", &format!("/allocations/{first}"), None).await;
    assert_eq!(held["allocations"][&uuid]["resources"]["VCPU"], 2, "{held}");

    let (st, second) = r
        .call("POST", "/servers", &m.token, Some(body.clone()))
        .await;
    assert_eq!(st, 202, "{second}");
    let second = second["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&r, &m.token, &second, "ERROR").await;
    assert_eq!(s["fault"]["message"], "No valid host was found.", "{s}");
    let (_, held) = placement(&r, "GET", &format!("/allocations/{second}"), None).await;
    assert_eq!(held["allocations"], json!({}));

    // Deleting the first server gives its vCPUs back.
    let (st, _) = r
        .call("DELETE", &format!("/servers/{first}"), &m.token, None)
        .await;
    assert_eq!(st, 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, held) = placement(&r, "GET", &format!("/allocations/{first}"), None).await;
        if held["allocations"] == json!({}) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "allocations of {first} stay: {held}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, third) = r.call("POST", "/servers", &m.token, Some(body)).await;
    assert_eq!(st, 202, "{third}");
    let third = third["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &third, "ACTIVE").await;
}

/// Sets the test host's vCPUs to `vcpus`; returns its provider uuid.
async fn host_with_vcpus(r: &Region, vcpus: i64) -> String {
    let (_, list) = placement(r, "GET", "/resource_providers?name=testhost", None).await;
    let rp = list["resource_providers"][0].clone();
    let uuid = rp["uuid"].as_str().unwrap().to_string();
    let inv = json!({"resource_provider_generation": rp["generation"], "inventories": {
        "VCPU": {"total": vcpus}, "MEMORY_MB": {"total": 65536}, "DISK_GB": {"total": 100}}});
    let (st, v) = placement(
        r,
        "PUT",
        &format!("/resource_providers/{uuid}/inventories"),
        Some(inv),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    uuid
}

async fn vcpus_used(r: &Region, uuid: &str) -> Value {
    let (_, v) = placement(
        r,
        "GET",
        &format!("/resource_providers/{uuid}/usages"),
        None,
    )
    .await;
    v["usages"]["VCPU"].clone()
}

async fn resize_claims_through_placement(engine: Engine) {
    let Some(r) = Region::start(engine).await else {
        return;
    };
    let uuid = host_with_vcpus(&r, 3).await;
    let mut flavors = vec![];
    for vcpus in 1..=3 {
        let (st, f) = r
            .call(
                "POST",
                "/flavors",
                &r.admin,
                Some(json!({"flavor": {"name": format!("v{vcpus}"), "ram": 64, "vcpus": vcpus, "disk": 1}})),
            )
            .await;
        assert_eq!(st, 200, "{f}");
        flavors.push(f["flavor"]["id"].as_str().unwrap().to_string());
    }
    let m = r.member("resize-member", "member").await;
    let (_, net) = r
        .net(
            "POST",
            "/networks",
            &m.token,
            Some(json!({"network": {"name": "n"}})),
        )
        .await;
    let net = net["network"]["id"].as_str().unwrap().to_string();
    let (st, _) = r
        .net(
            "POST",
            "/subnets",
            &m.token,
            Some(json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.9.1.0/24"}})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, v) = r
        .call(
            "POST",
            "/servers",
            &m.token,
            Some(
                json!({"server": {"name": "s", "imageRef": DISK_IMAGE, "flavorRef": flavors[0],
                                   "networks": [{"uuid": net}]}}),
            ),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &id, "ACTIVE").await;
    let resize = |flavor: &str| json!({"resize": {"flavorRef": flavor}});
    let act = |body: Value| {
        let (r, token, id) = (&r, m.token.clone(), id.clone());
        async move {
            r.call("POST", &format!("/servers/{id}/action"), &token, Some(body))
                .await
        }
    };

    // 1 held + 3 new > 3: refused as Nova refuses it, and nothing changes.
    let (st, v) = act(resize(&flavors[2])).await;
    assert_eq!(st, 400, "{v}");
    let msg = v["badRequest"]["message"].as_str().unwrap();
    assert!(msg.starts_with("No valid host was found."), "{msg}");
    let s = wait_status(&r, &m.token, &id, "ACTIVE").await;
    assert_eq!(s["flavor"]["id"], flavors[0].as_str(), "{s}");
    assert_eq!(vcpus_used(&r, &uuid).await, 1);

    // 1 + 2 fits; until it is settled the host holds both flavors.
    let (st, v) = act(resize(&flavors[1])).await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(vcpus_used(&r, &uuid).await, 3);
    wait_status(&r, &m.token, &id, "VERIFY_RESIZE").await;
    let (st, _) = act(json!({"revertResize": null})).await;
    assert_eq!(st, 202);
    let s = wait_status(&r, &m.token, &id, "ACTIVE").await;
    assert_eq!(s["flavor"]["id"], flavors[0].as_str(), "{s}");
    assert_eq!(
        vcpus_used(&r, &uuid).await,
        1,
        "revert frees the new flavor"
    );

    let (st, _) = act(resize(&flavors[1])).await;
    assert_eq!(st, 202);
    wait_status(&r, &m.token, &id, "VERIFY_RESIZE").await;
    let (st, _) = act(json!({"confirmResize": null})).await;
    assert_eq!(st, 204);
    let s = wait_status(&r, &m.token, &id, "ACTIVE").await;
    assert_eq!(s["flavor"]["id"], flavors[1].as_str(), "{s}");
    assert_eq!(
        vcpus_used(&r, &uuid).await,
        2,
        "confirm frees the old flavor"
    );

    // A server deleted while resized gives back both flavors.
    let (st, _) = act(resize(&flavors[0])).await;
    assert_eq!(st, 202);
    wait_status(&r, &m.token, &id, "VERIFY_RESIZE").await;
    let (st, _) = r
        .call("DELETE", &format!("/servers/{id}"), &m.token, None)
        .await;
    assert_eq!(st, 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    while vcpus_used(&r, &uuid).await != 0 {
        assert!(
            Instant::now() < deadline,
            "the deleted server still holds vCPUs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn resize_on_sqlite() {
    resize_claims_through_placement(Engine::Sqlite).await;
}

#[tokio::test]
async fn resize_on_postgres() {
    resize_claims_through_placement(Engine::Postgres).await;
}

#[tokio::test]
async fn sched_servers_on_sqlite() {
    full_host_fails_with_no_valid_host(Engine::Sqlite).await;
}

#[tokio::test]
async fn sched_servers_on_postgres() {
    full_host_fails_with_no_valid_host(Engine::Postgres).await;
}
