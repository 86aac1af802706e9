//! `/os-server-groups` over HTTP: the 2.1 shapes, validation, visibility,
//! the server_groups and server_group_members quotas, and the scheduler
//! hint `group` (anti-affinity on the one test host takes one member; a
//! deleted server leaves its group). SQLite and PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{tenant_network, wait_status, Member, Region, DISK_IMAGE};

async fn group(r: &Region, token: &str, name: &str, policy: &str) -> (u16, Value) {
    r.call(
        "POST",
        "/os-server-groups",
        token,
        Some(json!({"server_group": {"name": name, "policies": [policy]}})),
    )
    .await
}

/// The flavor of the servers here (made by `hint_places_members`).
const TINY: &str = "group-tiny";

async fn server_in(r: &Region, m: &Member, net: &str, group: &str) -> (u16, Value) {
    r.call(
        "POST",
        "/servers",
        &m.token,
        Some(json!({
            "server": {"name": "g", "imageRef": DISK_IMAGE, "flavorRef": TINY,
                       "networks": [{"uuid": net}]},
            "os:scheduler_hints": {"group": group},
        })),
    )
    .await
}

async fn groups_crud_and_quota(r: Region) {
    let m = r.member("groups", "member").await;

    let (st, g) = group(&r, &m.token, "spread", "anti-affinity").await;
    assert_eq!(st, 200, "{g}");
    let g = g["server_group"].clone();
    assert_eq!(g["name"], "spread");
    assert_eq!(g["policies"], json!(["anti-affinity"]));
    assert_eq!(g["members"], json!([]));
    assert_eq!(g["metadata"], json!({}));
    let id = g["id"].as_str().unwrap().to_string();

    let (st, list) = r.call("GET", "/os-server-groups", &m.token, None).await;
    assert_eq!(st, 200);
    assert_eq!(list["server_groups"], json!([g.clone()]));
    let (st, shown) = r
        .call("GET", &format!("/os-server-groups/{id}"), &m.token, None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(shown["server_group"], g);

    for bad in [
        json!({"server_group": {"name": "x", "policies": ["spread"]}}),
        json!({"server_group": {"name": "x", "policies": ["soft-anti-affinity"]}}),
        json!({"server_group": {"name": "x", "policies": []}}),
        json!({"server_group": {"name": "x", "policies": ["affinity", "anti-affinity"]}}),
        json!({"server_group": {"name": "", "policies": ["affinity"]}}),
        json!({"server_group": {"policies": ["affinity"]}}),
        json!({"server_group": {"name": "x", "policies": ["affinity"], "rules": {}}}),
    ] {
        let (st, v) = r
            .call("POST", "/os-server-groups", &m.token, Some(bad.clone()))
            .await;
        assert_eq!(st, 400, "{bad} -> {v}");
        assert!(v["badRequest"]["message"].is_string(), "{v}");
    }

    // Another project neither sees nor deletes it; the administrator sees all.
    let other = r.member("groups-other", "member").await;
    let (st, _) = r
        .call(
            "GET",
            &format!("/os-server-groups/{id}"),
            &other.token,
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = r
        .call(
            "DELETE",
            &format!("/os-server-groups/{id}"),
            &other.token,
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (_, theirs) = r.call("GET", "/os-server-groups", &other.token, None).await;
    assert_eq!(theirs["server_groups"], json!([]));
    let (_, all) = r
        .call("GET", "/os-server-groups?all_projects=True", &r.admin, None)
        .await;
    assert!(
        all["server_groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str()),
        "{all}"
    );

    // The server_groups quota, and its usage in /limits.
    let (st, _) = r
        .call(
            "PUT",
            &format!("/os-quota-sets/{}", m.project_id),
            &r.admin,
            Some(json!({"quota_set": {"server_groups": 1}})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = group(&r, &m.token, "second", "affinity").await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(
        v["forbidden"]["message"],
        "Quota exceeded, too many server groups."
    );
    let (_, limits) = r.call("GET", "/limits", &m.token, None).await;
    assert_eq!(limits["limits"]["absolute"]["totalServerGroupsUsed"], 1);
    assert_eq!(limits["limits"]["absolute"]["maxServerGroups"], 1);

    let (st, _) = r
        .call("DELETE", &format!("/os-server-groups/{id}"), &m.token, None)
        .await;
    assert_eq!(st, 204);
    let (st, v) = r
        .call("GET", &format!("/os-server-groups/{id}"), &m.token, None)
        .await;
    assert_eq!(st, 404);
    assert_eq!(
        v["itemNotFound"]["message"],
        format!("Instance group {id} could not be found.")
    );
    let (st, _) = group(&r, &m.token, "second", "affinity").await;
    assert_eq!(st, 200);
}

async fn hint_places_members(r: Region) {
    let (st, v) = r
        .call(
            "POST",
            "/flavors",
            &r.admin,
            Some(json!({"flavor": {"name": TINY, "id": TINY, "ram": 64, "vcpus": 1, "disk": 1}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let m = r.member("hinted", "member").await;
    let net = tenant_network(&r, &m.token, "n", "10.7.0.0/24").await;
    let (_, g) = group(&r, &m.token, "apart", "anti-affinity").await;
    let gid = g["server_group"]["id"].as_str().unwrap().to_string();

    let (st, first) = server_in(&r, &m, &net, &gid).await;
    assert_eq!(st, 202, "{first}");
    let first = first["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &first, "ACTIVE").await;
    let (_, shown) = r
        .call("GET", &format!("/os-server-groups/{gid}"), &m.token, None)
        .await;
    assert_eq!(shown["server_group"]["members"], json!([first]));

    // The one test host already holds a member: no valid host.
    let (st, second) = server_in(&r, &m, &net, &gid).await;
    assert_eq!(st, 202, "{second}");
    let second = second["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&r, &m.token, &second, "ERROR").await;
    assert_eq!(s["fault"]["message"], "No valid host was found.", "{s}");
    assert!(
        s["fault"]["details"]
            .as_str()
            .unwrap()
            .contains("ServerGroupFilter"),
        "{s}"
    );

    // An unknown group, or another project's, is a bad request.
    let (st, v) = server_in(&r, &m, &net, "no-such-group").await;
    assert_eq!(st, 400, "{v}");
    // The SDK sends the hints under their extension name.
    let (st, v) = r
        .call(
            "POST",
            "/servers",
            &m.token,
            Some(json!({
                "server": {"name": "g", "imageRef": DISK_IMAGE, "flavorRef": TINY,
                           "networks": [{"uuid": net}]},
                "OS-SCH-HNT:scheduler_hints": {"group": "no-such-group"},
            })),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let other = r.member("hinted-other", "member").await;
    let (_, og) = group(&r, &other.token, "theirs", "affinity").await;
    let (st, _) = server_in(&r, &m, &net, og["server_group"]["id"].as_str().unwrap()).await;
    assert_eq!(st, 400);

    // server_group_members: a group of at most one.
    let (_, aff) = group(&r, &m.token, "together", "affinity").await;
    let aff = aff["server_group"]["id"].as_str().unwrap().to_string();
    let (st, _) = r
        .call(
            "PUT",
            &format!("/os-quota-sets/{}", m.project_id),
            &r.admin,
            Some(json!({"quota_set": {"server_group_members": 1}})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, a1) = server_in(&r, &m, &net, &aff).await;
    assert_eq!(st, 202, "{a1}");
    let (st, v) = server_in(&r, &m, &net, &aff).await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(
        v["forbidden"]["message"],
        "Quota exceeded, too many servers in group"
    );

    // Deleting the member takes it out of its group.
    let (st, _) = r
        .call("DELETE", &format!("/servers/{first}"), &m.token, None)
        .await;
    assert_eq!(st, 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, shown) = r
            .call("GET", &format!("/os-server-groups/{gid}"), &m.token, None)
            .await;
        if !shown["server_group"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == first.as_str())
        {
            break;
        }
        assert!(Instant::now() < deadline, "{first} stays in {shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_engines!(crud_and_quota, groups_crud_and_quota);
on_both_engines!(scheduler_hint, hint_places_members);
