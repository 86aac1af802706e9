//! `/os-tenant-networks` over HTTP: the networks a project sees in the
//! network service, in Nova's shape, and nothing of another project's.
//! SQLite and PostgreSQL.

mod support;

use serde_json::{json, Value};
use support::Region;

async fn network(r: &Region, token: &str, body: Value) -> String {
    let (st, v) = r.net("POST", "/networks", token, Some(body)).await;
    assert_eq!(st, 201, "{v}");
    v["network"]["id"].as_str().unwrap().to_string()
}

fn ids(v: &Value) -> Vec<&str> {
    v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect()
}

on_both_engines!(
    list_and_show_follow_network_visibility,
    |r: Region| async move {
        let m = r.member("tn", "member").await;
        let reader = r.user_in("tn", &m.project_id, "reader").await;
        let other = r.member("tn-other", "member").await;
        let own = network(&r, &m.token, json!({"network": {"name": "own"}})).await;
        let theirs = network(&r, &other.token, json!({"network": {"name": "theirs"}})).await;
        let shared = network(
            &r,
            &r.admin,
            json!({"network": {"name": "common", "shared": true}}),
        )
        .await;
        let external = network(
            &r,
            &r.admin,
            json!({"network": {"name": "public", "router:external": true}}),
        )
        .await;

        let (st, v) = r
            .call("GET", "/os-tenant-networks", &reader.token, None)
            .await;
        assert_eq!(st, 200, "{v}");
        let seen = ids(&v);
        for id in [&own, &shared, &external] {
            assert!(seen.contains(&id.as_str()), "{id} missing from {v}");
        }
        assert!(
            !seen.contains(&theirs.as_str()),
            "another project's network listed: {v}"
        );
        let mine = v["networks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == own.as_str())
            .unwrap();
        assert_eq!(mine, &json!({"id": own, "cidr": "None", "label": "own"}));

        let (st, v) = r
            .call(
                "GET",
                &format!("/os-tenant-networks/{shared}"),
                &m.token,
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v,
            json!({"network": {"id": shared, "cidr": "None", "label": "common"}})
        );
        for missing in [theirs.as_str(), "not-a-network"] {
            let (st, v) = r
                .call(
                    "GET",
                    &format!("/os-tenant-networks/{missing}"),
                    &m.token,
                    None,
                )
                .await;
            assert_eq!(st, 404, "{v}");
            assert_eq!(v["itemNotFound"]["message"], "Network not found", "{v}");
        }
        // The administrator sees every project's networks.
        let (_, v) = r.call("GET", "/os-tenant-networks", &r.admin, None).await;
        assert!(ids(&v).contains(&theirs.as_str()), "{v}");
    }
);
