//! The scheduler against providers registered through the placement API,
//! standing in for further compute hosts, on SQLite and PostgreSQL.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use himmel_compute::scheduler::model::{Aggregate, GroupPolicy, ServerGroup};
use himmel_compute::scheduler::{self, Request, ScheduleError};
use serde_json::{json, Value};
use support::{Engine, Region};

/// Registers a host with `vcpus` (ratio 1) and `ram` MiB.
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

async fn host(r: &Region, name: &str, vcpus: i64, ram: i64) -> String {
    let (st, p) = r
        .raw(
            "POST",
            "/placement/resource_providers",
            &r.admin,
            Some(json!({"name": name})),
            &[],
        )
        .await;
    assert_eq!(st, 200, "{p}");
    let uuid = p["uuid"].as_str().unwrap().to_string();
    let inv = json!({"resource_provider_generation": 0, "inventories": {
        "VCPU": {"total": vcpus, "allocation_ratio": 1.0},
        "MEMORY_MB": {"total": ram, "allocation_ratio": 1.0},
        "DISK_GB": {"total": 100},
    }});
    let path = format!("/placement/resource_providers/{uuid}/inventories");
    let (st, v) = r.raw("PUT", &path, &r.admin, Some(inv), &[]).await;
    assert_eq!(st, 200, "{v}");
    uuid
}

fn request(project: &str, vcpus: i64, ram: i64) -> Request {
    Request {
        consumer: uuid::Uuid::new_v4().to_string(),
        project_id: project.into(),
        user_id: "u".into(),
        resources: BTreeMap::from([("VCPU".into(), vcpus), ("MEMORY_MB".into(), ram)]),
        ..Default::default()
    }
}

async fn group(r: &Region, policy: GroupPolicy) -> String {
    let g = ServerGroup {
        id: uuid::Uuid::new_v4().to_string(),
        name: "g".into(),
        policy,
        max_server_per_host: None,
        members: vec![],
        project_id: "p".into(),
        user_id: "u".into(),
        created_at: String::new(),
    };
    let mut tx = r.compute.db().begin_write().await.unwrap();
    himmel_compute::store::insert(&mut tx, &g, String::new)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    g.id
}

async fn aggregate(r: &Region, name: &str, hosts: &[&str], meta: &[(&str, &str)]) {
    let a = Aggregate {
        id: name.into(),
        number: 1,
        uuid: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        metadata: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        created_at: String::new(),
        updated_at: None,
    };
    let mut tx = r.compute.db().begin_write().await.unwrap();
    himmel_compute::store::insert(&mut tx, &a, String::new)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn place(r: &Region, req: &Request) -> String {
    match scheduler::schedule(r.compute.db(), req).await {
        Ok(h) => h,
        Err(e) => panic!("{}", e.message()),
    }
}

async fn groups_spread_and_pack(engine: Engine) {
    let Some(r) = start(engine).await else {
        return;
    };
    for h in ["h1", "h2", "h3"] {
        host(&r, h, 8, 8192).await;
    }
    // Anti-affinity: three members on three hosts; a fourth has no host.
    let anti = group(&r, GroupPolicy::AntiAffinity).await;
    let mut hosts = BTreeSet::new();
    for _ in 0..3 {
        let req = Request {
            group: Some(anti.clone()),
            ..request("p", 1, 512)
        };
        hosts.insert(place(&r, &req).await);
    }
    assert_eq!(hosts.len(), 3, "anti-affinity spreads: {hosts:?}");
    let fourth = Request {
        group: Some(anti.clone()),
        ..request("p", 1, 512)
    };
    match scheduler::schedule(r.compute.db(), &fourth).await {
        Err(e @ ScheduleError::NoValidHost(_)) => {
            assert!(
                e.message().starts_with("No valid host was found."),
                "{}",
                e.message()
            )
        }
        other => panic!("expected no valid host, got {other:?}"),
    }

    // Affinity: every member lands on the first member's host.
    let aff = group(&r, GroupPolicy::Affinity).await;
    let mut hosts = BTreeSet::new();
    for _ in 0..3 {
        let req = Request {
            group: Some(aff.clone()),
            ..request("p", 1, 512)
        };
        hosts.insert(place(&r, &req).await);
    }
    assert_eq!(hosts.len(), 1, "affinity packs: {hosts:?}");

    // Soft anti-affinity prefers empty hosts but does not fail.
    let soft = group(&r, GroupPolicy::SoftAntiAffinity).await;
    let mut placed = vec![];
    for _ in 0..4 {
        let req = Request {
            group: Some(soft.clone()),
            ..request("p", 1, 512)
        };
        placed.push(place(&r, &req).await);
    }
    assert_eq!(
        placed.iter().collect::<BTreeSet<_>>().len(),
        3,
        "{placed:?}"
    );

    // A released member frees its host for the anti-affinity group.
    let mut conn = r.compute.db().pool().acquire().await.unwrap();
    let anti_group: ServerGroup = himmel_compute::store::get(&mut conn, &anti)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert_eq!(
        anti_group.members.len(),
        3,
        "failed schedules do not join the group"
    );
    scheduler::release(r.compute.db(), &anti_group.members[0])
        .await
        .unwrap();
    let again = Request {
        group: Some(anti.clone()),
        ..request("p", 1, 512)
    };
    place(&r, &again).await;
}

async fn weighing_zones_and_dedicated_hosts(engine: Engine) {
    let Some(r) = start(engine).await else {
        return;
    };
    host(&r, "small", 8, 2048).await;
    host(&r, "big", 8, 16384).await;
    host(&r, "dedicated", 8, 65536).await;
    aggregate(
        &r,
        "tenant-agg",
        &["dedicated"],
        &[("filter_tenant_id", "vip"), ("filter_tenant_id_2", "vip2")],
    )
    .await;
    aggregate(
        &r,
        "zone-agg",
        &["small"],
        &[("availability_zone", "az-small")],
    )
    .await;

    // Spread by free RAM: the biggest host other projects may use.
    assert_eq!(place(&r, &request("other", 1, 512)).await, "big");
    // Dedicated hosts keep other projects off and their projects on.
    for _ in 0..3 {
        assert_eq!(place(&r, &request("vip", 1, 512)).await, "dedicated");
        assert_eq!(place(&r, &request("vip2", 1, 512)).await, "dedicated");
    }
    // 6 of the dedicated host's 8 vCPUs are used; "big" would have room.
    let too_big = request("vip", 4, 512);
    assert!(
        matches!(
            scheduler::schedule(r.compute.db(), &too_big).await,
            Err(ScheduleError::NoValidHost(_))
        ),
        "a confined project does not spill onto shared hosts"
    );
    // Zones.
    let zoned = Request {
        zone: Some("az-small".into()),
        ..request("other", 1, 512)
    };
    assert_eq!(place(&r, &zoned).await, "small");
    let default_zone = Request {
        zone: Some("nova".into()),
        ..request("other", 1, 512)
    };
    assert_eq!(place(&r, &default_zone).await, "big");
    let nowhere = Request {
        zone: Some("az-none".into()),
        ..request("other", 1, 512)
    };
    assert!(scheduler::schedule(r.compute.db(), &nowhere).await.is_err());

    // Capacity exhaustion: 8 vCPUs of "big" and "small" for other projects.
    let mut placed = 0;
    loop {
        match scheduler::schedule(r.compute.db(), &request("other", 4, 256)).await {
            Ok(_) => placed += 1,
            Err(ScheduleError::NoValidHost(why)) => {
                assert!(why.contains("capacity"), "{why}");
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    // big had 6 vCPUs free, small 7: one 4-vCPU server fits on each.
    assert_eq!(placed, 2);

    // Resize claims the new flavor on the same host beside the old one (held
    // by the migration until confirmed or reverted), or fails and changes nothing.
    let req = request("vip", 1, 1024);
    assert_eq!(place(&r, &req).await, "dedicated");
    let held = |consumer: String| {
        let r = &r;
        async move {
            let (_, v) = r
                .raw(
                    "GET",
                    &format!("/placement/allocations/{consumer}"),
                    &r.admin,
                    None,
                    &[],
                )
                .await;
            v["allocations"]
                .as_object()
                .unwrap()
                .values()
                .next()
                .map(|a| a["resources"].clone())
                .unwrap_or(Value::Null)
        }
    };
    let bigger = BTreeMap::from([("VCPU".to_string(), 1), ("MEMORY_MB".to_string(), 2048)]);
    scheduler::claim_resize(r.compute.db(), &req.consumer, "migration-1", &bigger)
        .await
        .unwrap();
    assert_eq!(
        held(req.consumer.clone()).await,
        json!({"VCPU": 1, "MEMORY_MB": 2048})
    );
    assert_eq!(
        held("migration-1".into()).await,
        json!({"VCPU": 1, "MEMORY_MB": 1024})
    );
    let huge = BTreeMap::from([("VCPU".to_string(), 64)]);
    assert!(matches!(
        scheduler::claim_resize(r.compute.db(), &req.consumer, "migration-2", &huge).await,
        Err(ScheduleError::NoValidHost(_))
    ));
    assert_eq!(
        held(req.consumer.clone()).await,
        json!({"VCPU": 1, "MEMORY_MB": 2048})
    );
    assert_eq!(held("migration-2".into()).await, Value::Null);
    // Confirming frees the old flavor.
    let mut tx = r.compute.db().begin_write().await.unwrap();
    scheduler::confirm_resize_in(&mut tx, "migration-1")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(held("migration-1".into()).await, Value::Null);
    // Reverting frees the new one.
    let smaller = BTreeMap::from([("VCPU".to_string(), 1), ("MEMORY_MB".to_string(), 512)]);
    scheduler::claim_resize(r.compute.db(), &req.consumer, "migration-3", &smaller)
        .await
        .unwrap();
    scheduler::revert_resize(r.compute.db(), &req.consumer, "migration-3")
        .await
        .unwrap();
    assert_eq!(
        held(req.consumer.clone()).await,
        json!({"VCPU": 1, "MEMORY_MB": 2048})
    );
    assert_eq!(held("migration-3".into()).await, Value::Null);
}

async fn concurrent_creates_never_overcommit(engine: Engine) {
    let Some(r) = start(engine).await else {
        return;
    };
    let uuid = host(&r, "only", 5, 100_000).await;
    let mut tasks = vec![];
    for _ in 0..20 {
        let db = r.compute.db().clone();
        tasks.push(tokio::spawn(async move {
            scheduler::schedule(&db, &request("p", 1, 100)).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(ScheduleError::NoValidHost(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 5);
    let (_, usages) = r
        .raw(
            "GET",
            &format!("/placement/resource_providers/{uuid}/usages"),
            &r.admin,
            None,
            &[],
        )
        .await;
    assert_eq!(usages["usages"]["VCPU"], 5);
}

#[tokio::test]
async fn sched_groups_on_sqlite() {
    groups_spread_and_pack(Engine::Sqlite).await;
}

#[tokio::test]
async fn sched_groups_on_postgres() {
    groups_spread_and_pack(Engine::Postgres).await;
}

#[tokio::test]
async fn sched_filters_on_sqlite() {
    weighing_zones_and_dedicated_hosts(Engine::Sqlite).await;
}

#[tokio::test]
async fn sched_filters_on_postgres() {
    weighing_zones_and_dedicated_hosts(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sched_concurrency_on_sqlite() {
    concurrent_creates_never_overcommit(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sched_concurrency_on_postgres() {
    concurrent_creates_never_overcommit(Engine::Postgres).await;
}
