//! `os-aggregates` as an administrator uses it, and that the scheduler
//! follows an aggregate's zone. SQLite and PostgreSQL.

mod support;

use serde_json::json;
use support::{Engine, Region};

async fn aggregates(engine: Engine) {
    let Some(r) = Region::start(engine).await else {
        return;
    };
    let a = &r.admin;
    let (st, v) = r
        .call(
            "POST",
            "/os-aggregates",
            a,
            Some(json!({"aggregate": {"name": "rack1", "availability_zone": "az1"}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id = v["aggregate"]["id"].as_i64().unwrap();
    assert_eq!(v["aggregate"]["availability_zone"], "az1");
    let (st, _) = r
        .call(
            "POST",
            "/os-aggregates",
            a,
            Some(json!({"aggregate": {"name": "rack1"}})),
        )
        .await;
    assert_eq!(st, 409);
    let path = format!("/os-aggregates/{id}/action");
    let action = |body| r.call("POST", &path, a, Some(body));
    let (st, v) = action(json!({"add_host": {"host": "testhost"}})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["aggregate"]["hosts"], json!(["testhost"]));
    let (st, _) = action(json!({"add_host": {"host": "nosuchhost"}})).await;
    assert_eq!(st, 404);
    let (st, v) = action(json!({"set_metadata": {"metadata": {"ssd": "true"}}})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["aggregate"]["metadata"],
        json!({"availability_zone": "az1", "ssd": "true"})
    );

    // The zone exists now and holds the test host.
    assert!(
        himmel_compute::scheduler::zone_exists(r.compute.db(), "az1")
            .await
            .unwrap()
    );
    let mut req = himmel_compute::scheduler::Request {
        consumer: uuid::Uuid::new_v4().to_string(),
        project_id: "p".into(),
        user_id: "u".into(),
        zone: Some("az1".into()),
        ..Default::default()
    };
    req.resources.insert("VCPU".into(), 1);
    let host = himmel_compute::scheduler::schedule(r.compute.db(), &req)
        .await
        .unwrap();
    assert_eq!(host, "testhost");

    let (_, list) = r.call("GET", "/os-aggregates", a, None).await;
    assert_eq!(list["aggregates"].as_array().unwrap().len(), 1);
    let (st, _) = r
        .call("DELETE", &format!("/os-aggregates/{id}"), a, None)
        .await;
    assert_eq!(st, 400, "an aggregate with hosts stays");
    let (st, _) = action(json!({"remove_host": {"host": "testhost"}})).await;
    assert_eq!(st, 200);
    let (st, _) = r
        .call("DELETE", &format!("/os-aggregates/{id}"), a, None)
        .await;
    assert_eq!(st, 200);
    let (st, _) = r
        .call("GET", &format!("/os-aggregates/{id}"), a, None)
        .await;
    assert_eq!(st, 404);

    let m = r.member("agg-member", "member").await;
    let (st, _) = r.call("GET", "/os-aggregates", &m.token, None).await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn sched_aggregates_on_sqlite() {
    aggregates(Engine::Sqlite).await;
}

#[tokio::test]
async fn sched_aggregates_on_postgres() {
    aggregates(Engine::Postgres).await;
}
