//! `/os-security-groups` and `/os-security-group-rules` over HTTP: Nova's
//! 2.1 shapes, its checks and error bodies, and that the groups and rules
//! are the network service's own (a rule made here is a Neutron rule).
//! SQLite and PostgreSQL.

mod support;

use serde_json::{json, Value};
use support::{flavor, nova_error, tenant_network, wait_status, Member, Region, DISK_IMAGE};

const MISSING: &str = "8f2b7c4e-0d55-4a8e-9a51-3c1f0b6de001";

async fn create_group(r: &Region, token: &str, name: &str, description: &str) -> (u16, Value) {
    r.call(
        "POST",
        "/os-security-groups",
        token,
        Some(json!({"security_group": {"name": name, "description": description}})),
    )
    .await
}

async fn group(r: &Region, m: &Member, name: &str) -> Value {
    let (st, v) = create_group(r, &m.token, name, "d").await;
    assert_eq!(st, 200, "{v}");
    v["security_group"].clone()
}

async fn rule(r: &Region, token: &str, body: Value) -> (u16, Value) {
    r.call(
        "POST",
        "/os-security-group-rules",
        token,
        Some(json!({ "security_group_rule": body })),
    )
    .await
}

/// Exactly Nova's keys: a group and its rules (Tempest's schema allows no
/// others).
fn check_shape(g: &Value) {
    let mut keys: Vec<&str> = g.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["description", "id", "name", "rules", "tenant_id"],
        "{g}"
    );
    for r in g["rules"].as_array().unwrap() {
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "from_port",
                "group",
                "id",
                "ip_protocol",
                "ip_range",
                "parent_group_id",
                "to_port"
            ],
            "{r}"
        );
    }
}

on_both_engines!(groups_round_trip, |r: Region| async move {
    let m = r.member("sgp", "member").await;

    // The project's default group is there on first look.
    let (st, v) = r.call("GET", "/os-security-groups", &m.token, None).await;
    assert_eq!(st, 200, "{v}");
    let list = v["security_groups"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["name"], "default");
    assert_eq!(list[0]["tenant_id"], m.project_id.as_str());
    check_shape(&list[0]);
    // Only its ingress rules show (from the group itself, IPv4 and IPv6).
    assert_eq!(list[0]["rules"].as_array().unwrap().len(), 2, "{v}");
    for rule in list[0]["rules"].as_array().unwrap() {
        assert_eq!(rule["group"]["name"], "default", "{rule}");
        assert_eq!(rule["ip_range"], json!({}));
        assert!(rule["ip_protocol"].is_null());
    }

    // Created with the name as given (spaces kept), shown alike.
    let (st, v) = create_group(&r, &m.token, " web servers ", "for the web").await;
    assert_eq!(st, 200, "{v}");
    let web = v["security_group"].clone();
    check_shape(&web);
    assert_eq!(web["name"], " web servers ");
    assert_eq!(web["description"], "for the web");
    assert_eq!(web["tenant_id"], m.project_id.as_str());
    // A new group's template rules are egress, which Nova does not show.
    assert_eq!(web["rules"], json!([]));
    let id = web["id"].as_str().unwrap().to_string();
    let (st, v) = r
        .call("GET", &format!("/os-security-groups/{id}"), &m.token, None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["security_group"], web);

    // It is the network service's group.
    let (st, v) = r
        .net("GET", &format!("/security-groups/{id}"), &m.token, None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["security_group"]["name"], " web servers ");

    // Updated (Nova sends both fields).
    let (st, v) = r
        .call(
            "PUT",
            &format!("/os-security-groups/{id}"),
            &m.token,
            Some(json!({"security_group": {"name": "web", "description": "new"}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["security_group"]["name"], "web");
    assert_eq!(v["security_group"]["description"], "new");
    let (st, v) = r
        .call(
            "PUT",
            &format!("/os-security-groups/{id}"),
            &m.token,
            Some(json!({"security_group": {"name": "web2"}})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    nova_error(&v, "badRequest", 400, "description is not a string");

    // Listed sorted by name; limit and offset.
    group(&r, &m, "app").await;
    let (_, v) = r.call("GET", "/os-security-groups", &m.token, None).await;
    let names: Vec<&str> = v["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "default", "web"]);
    let (_, v) = r
        .call(
            "GET",
            "/os-security-groups?limit=1&offset=1",
            &m.token,
            None,
        )
        .await;
    assert_eq!(v["security_groups"].as_array().unwrap().len(), 1);
    assert_eq!(v["security_groups"][0]["name"], "default");
    let (st, _) = r
        .call("GET", "/os-security-groups?limit=x", &m.token, None)
        .await;
    assert_eq!(st, 400);

    // Deleted: 202, then not found.
    let (st, v) = r
        .call(
            "DELETE",
            &format!("/os-security-groups/{id}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let (st, v) = r
        .call("GET", &format!("/os-security-groups/{id}"), &m.token, None)
        .await;
    assert_eq!(st, 404, "{v}");
    nova_error(&v, "itemNotFound", 404, id.as_str());
    let (st, _) = r
        .net("GET", &format!("/security-groups/{id}"), &m.token, None)
        .await;
    assert_eq!(st, 404);
});

on_both_engines!(group_errors, |r: Region| async move {
    let m = r.member("sgp-err", "member").await;
    let other = r.member("sgp-other", "member").await;
    let reader = r.user_in("sgp-err", &m.project_id, "reader").await;

    for (body, text) in [
        (
            json!({"name": "", "description": "d"}),
            "name has 0 characters",
        ),
        (
            json!({"name": "  ", "description": "d"}),
            "name has 0 characters",
        ),
        (
            json!({"name": "x".repeat(256), "description": "d"}),
            "name has 256 characters, more than 255.",
        ),
        (
            json!({"name": "n", "description": "d".repeat(260)}),
            "description has 260 characters",
        ),
        (
            json!({"name": 5, "description": "d"}),
            "name is not a string",
        ),
        (json!({"description": "d"}), "name is not a string"),
        (json!({"name": "n"}), "description is not a string"),
    ] {
        let (st, v) = r
            .call(
                "POST",
                "/os-security-groups",
                &m.token,
                Some(json!({ "security_group": body })),
            )
            .await;
        assert_eq!(st, 400, "{body}: {v}");
        nova_error(&v, "badRequest", 400, text);
    }
    let (st, v) = r
        .call(
            "POST",
            "/os-security-groups",
            &m.token,
            Some(json!({"x": 1})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    nova_error(&v, "badRequest", 400, "Missing parameter security_group");

    // A second `default` is the network service's conflict: Nova's 403.
    let (st, v) = create_group(&r, &m.token, "default", "d").await;
    assert_eq!(st, 403, "{v}");
    nova_error(
        &v,
        "forbidden",
        403,
        "Default security group already exists.",
    );

    // Unknown ids: 404; ids that are no UUID: 400.
    for method in ["GET", "DELETE"] {
        let (st, v) = r
            .call(
                method,
                &format!("/os-security-groups/{MISSING}"),
                &m.token,
                None,
            )
            .await;
        assert_eq!(st, 404, "{method}: {v}");
        nova_error(&v, "itemNotFound", 404, MISSING);
        let (st, v) = r
            .call(method, "/os-security-groups/not-a-uuid", &m.token, None)
            .await;
        assert_eq!(st, 400, "{method}: {v}");
        nova_error(&v, "badRequest", 400, "Security group id should be uuid");
    }
    let (st, v) = r
        .call(
            "PUT",
            &format!("/os-security-groups/{MISSING}"),
            &m.token,
            Some(json!({"security_group": {"name": "a", "description": "b"}})),
        )
        .await;
    assert_eq!(st, 404, "{v}");
    let (st, _) = r
        .call("DELETE", "/os-security-groups/", &m.token, None)
        .await;
    assert_eq!(st, 404);

    // Another project's group is not found, to show, change or delete.
    let theirs = group(&r, &other, "theirs").await;
    let tid = theirs["id"].as_str().unwrap();
    for (method, body) in [
        ("GET", None),
        (
            "PUT",
            Some(json!({"security_group": {"name": "a", "description": "b"}})),
        ),
        ("DELETE", None),
    ] {
        let (st, v) = r
            .call(
                method,
                &format!("/os-security-groups/{tid}"),
                &m.token,
                body,
            )
            .await;
        assert_eq!(st, 404, "{method}: {v}");
        nova_error(&v, "itemNotFound", 404, tid);
    }
    // Nor listed; the administrator lists it with all_tenants.
    let (_, v) = r.call("GET", "/os-security-groups", &m.token, None).await;
    assert!(!v.to_string().contains(tid), "{v}");
    let (st, v) = r
        .call("GET", "/os-security-groups?all_tenants=1", &r.admin, None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v.to_string().contains(tid), "{v}");

    // The default group may not be deleted: Nova's 400.
    let (_, v) = r.call("GET", "/os-security-groups", &m.token, None).await;
    let default = v["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "default")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = r
        .call(
            "DELETE",
            &format!("/os-security-groups/{default}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(st, 400, "{v}");
    nova_error(&v, "badRequest", 400, "default security group");
    // Nor renamed.
    let (st, v) = r
        .call(
            "PUT",
            &format!("/os-security-groups/{default}"),
            &m.token,
            Some(json!({"security_group": {"name": "other", "description": "d"}})),
        )
        .await;
    assert_eq!(st, 400, "{v}");

    // A reader lists and shows, but changes nothing.
    let (st, _) = r
        .call("GET", "/os-security-groups", &reader.token, None)
        .await;
    assert_eq!(st, 200);
    let (st, _) = r
        .call(
            "GET",
            &format!("/os-security-groups/{default}"),
            &reader.token,
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = create_group(&r, &reader.token, "r", "d").await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = rule(
        &r,
        &reader.token,
        json!({"parent_group_id": default, "ip_protocol": "tcp", "from_port": 1, "to_port": 2}),
    )
    .await;
    assert_eq!(st, 403, "{v}");
});

on_both_engines!(rules, |r: Region| async move {
    let m = r.member("sgp-rules", "member").await;
    let other = r.member("sgp-rules-other", "member").await;
    let web = group(&r, &m, "web").await;
    let wid = web["id"].as_str().unwrap().to_string();
    let peer = group(&r, &m, "peer").await;
    let pid = peer["id"].as_str().unwrap().to_string();

    // A TCP rule without a CIDR is from anywhere.
    let (st, v) = rule(
        &r,
        &m.token,
        json!({"parent_group_id": wid, "ip_protocol": "tcp", "from_port": 22, "to_port": 22}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let ssh = v["security_group_rule"].clone();
    assert_eq!(
        ssh,
        json!({"id": ssh["id"], "parent_group_id": wid, "ip_protocol": "tcp",
               "from_port": 22, "to_port": 22, "ip_range": {"cidr": "0.0.0.0/0"}, "group": {}})
    );
    let ssh_id = ssh["id"].as_str().unwrap().to_string();

    // It is a Neutron rule: ingress IPv4, the same ports.
    let (st, v) = r.net("GET", "/security-group-rules", &m.token, None).await;
    assert_eq!(st, 200, "{v}");
    let n = v["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == ssh_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("rule not in {v}"));
    assert_eq!(n["security_group_id"], wid.as_str());
    assert_eq!(n["direction"], "ingress");
    assert_eq!(n["ethertype"], "IPv4");
    assert_eq!(n["protocol"], "tcp");
    assert_eq!(n["port_range_min"], 22);
    assert_eq!(n["port_range_max"], 22);
    assert_eq!(n["remote_ip_prefix"], "0.0.0.0/0");

    // A CIDR as given; ICMP -1/-1 is any type and code.
    let (st, v) = rule(
        &r,
        &m.token,
        json!({"parent_group_id": wid, "ip_protocol": "tcp", "from_port": "80", "to_port": 81,
               "cidr": "10.2.3.124/24"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["security_group_rule"]["ip_range"]["cidr"],
        "10.2.3.124/24"
    );
    assert_eq!(v["security_group_rule"]["from_port"], 80);
    let (st, v) = rule(
        &r,
        &m.token,
        json!({"parent_group_id": wid, "ip_protocol": "icmp", "from_port": -1, "to_port": -1}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let icmp = v["security_group_rule"].clone();
    assert_eq!(
        (icmp["from_port"].clone(), icmp["to_port"].clone()),
        (json!(-1), json!(-1))
    );
    let (_, n) = r
        .net(
            "GET",
            &format!("/security-group-rules/{}", icmp["id"].as_str().unwrap()),
            &m.token,
            None,
        )
        .await;
    assert!(n["security_group_rule"]["port_range_min"].is_null(), "{n}");
    assert_eq!(n["security_group_rule"]["protocol"], "icmp");

    // From another group: its name and project, no CIDR.
    let (st, v) = rule(
        &r,
        &m.token,
        json!({"parent_group_id": wid, "ip_protocol": "tcp", "from_port": 443, "to_port": 443,
               "group_id": pid}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["security_group_rule"]["group"],
        json!({"name": "peer", "tenant_id": m.project_id})
    );
    assert_eq!(v["security_group_rule"]["ip_range"], json!({}));

    // The group shows its four rules in Nova's shape.
    let (_, v) = r
        .call("GET", &format!("/os-security-groups/{wid}"), &m.token, None)
        .await;
    check_shape(&v["security_group"]);
    assert_eq!(
        v["security_group"]["rules"].as_array().unwrap().len(),
        4,
        "{v}"
    );

    // Refusals, each a Nova 400 or 404 with its message.
    let base = |extra: Value| {
        let mut b =
            json!({"parent_group_id": wid, "ip_protocol": "tcp", "from_port": 22, "to_port": 22});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (body, status, kind, text) in [
        (
            base(json!({})),
            400,
            "badRequest",
            format!("This rule already exists in group {wid}"),
        ),
        (
            base(json!({"ip_protocol": "gre"})),
            400,
            "badRequest",
            "Invalid IP protocol gre.".to_string(),
        ),
        (
            base(json!({"from_port": 65536, "to_port": 65536})),
            400,
            "badRequest",
            "Valid TCP ports should be between 1-65535".to_string(),
        ),
        (
            base(json!({"to_port": 70000})),
            400,
            "badRequest",
            "Invalid port range 22:70000.".to_string(),
        ),
        (
            base(json!({"from_port": 23})),
            400,
            "badRequest",
            "Invalid port range 23:22. Former value cannot be greater than the later".to_string(),
        ),
        (
            base(json!({"from_port": "ssh"})),
            400,
            "badRequest",
            "To and From ports must be integers".to_string(),
        ),
        (
            base(json!({"ip_protocol": "icmp", "from_port": 256, "to_port": 0})),
            400,
            "badRequest",
            "For ICMP, the type:code must be valid".to_string(),
        ),
        (
            base(json!({"ip_protocol": "icmp", "from_port": "x"})),
            400,
            "badRequest",
            "Type and Code must be integers for ICMP protocol type".to_string(),
        ),
        (
            base(json!({"ip_protocol": null})),
            400,
            "badRequest",
            "Not enough parameters to build a valid rule.".to_string(),
        ),
        (
            base(json!({"cidr": "10.0.0.0/0"})),
            400,
            "badRequest",
            "Bad prefix for network in cidr 10.0.0.0/0".to_string(),
        ),
        (
            base(json!({"cidr": "nowhere"})),
            400,
            "badRequest",
            "nowhere is not a valid IP network.".to_string(),
        ),
        (
            base(json!({"parent_group_id": "not-a-uuid"})),
            400,
            "badRequest",
            "Security group id should be uuid".to_string(),
        ),
        (
            base(json!({"parent_group_id": MISSING})),
            404,
            "itemNotFound",
            MISSING.to_string(),
        ),
        (
            base(json!({"group_id": MISSING})),
            404,
            "itemNotFound",
            MISSING.to_string(),
        ),
        (
            base(json!({"group_id": "nope"})),
            400,
            "badRequest",
            "Security group id should be uuid".to_string(),
        ),
    ] {
        let (st, v) = rule(&r, &m.token, body.clone()).await;
        assert_eq!(st, status, "{body}: {v}");
        nova_error(&v, kind, status, &text);
    }

    // Another project's group, as parent or source, is not found.
    let theirs = group(&r, &other, "theirs").await;
    let tid = theirs["id"].as_str().unwrap();
    let (st, v) = rule(&r, &m.token, base(json!({"parent_group_id": tid}))).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = rule(
        &r,
        &m.token,
        base(json!({"group_id": tid, "from_port": 5, "to_port": 5})),
    )
    .await;
    assert_eq!(st, 404, "{v}");

    // A deleted rule is gone from both APIs; deleting it again is a 404.
    let (st, v) = r
        .call(
            "DELETE",
            &format!("/os-security-group-rules/{ssh_id}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let (st, _) = r
        .net(
            "GET",
            &format!("/security-group-rules/{ssh_id}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, v) = r
        .call(
            "DELETE",
            &format!("/os-security-group-rules/{ssh_id}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(st, 404, "{v}");
    nova_error(&v, "itemNotFound", 404, &ssh_id);
    let (st, v) = r
        .call("DELETE", "/os-security-group-rules/zzz", &m.token, None)
        .await;
    assert_eq!(st, 400, "{v}");

    // Deleting the peer group takes the rules admitting it along.
    let (st, _) = r
        .call(
            "DELETE",
            &format!("/os-security-groups/{pid}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(st, 202);
    let (_, v) = r
        .call("GET", &format!("/os-security-groups/{wid}"), &m.token, None)
        .await;
    assert_eq!(
        v["security_group"]["rules"].as_array().unwrap().len(),
        2,
        "{v}"
    );
});

on_both_engines!(group_in_use_and_by_server, |r: Region| async move {
    let m = r.member("sgp-srv", "member").await;
    let net_id = tenant_network(&r, &m.token, "n", "10.9.0.0/24").await;
    let fl = flavor(&r, "sgp-tiny", 1, 64).await;
    let sg = group(&r, &m, "in-use").await;
    let sg_id = sg["id"].as_str().unwrap().to_string();
    let (st, v) = rule(
        &r,
        &m.token,
        json!({"parent_group_id": sg_id, "ip_protocol": "udp", "from_port": 53, "to_port": 53,
               "cidr": "192.0.2.0/24"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");

    let (st, v) = r
        .call(
            "POST",
            "/servers",
            &m.token,
            Some(json!({"server": {"name": "s", "imageRef": DISK_IMAGE,
                        "flavorRef": fl, "networks": [{"uuid": net_id}],
                        "security_groups": [{"name": "in-use"}]}})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let server = v["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &server, "ACTIVE").await;

    // Its groups, in the shape of /os-security-groups.
    let (st, v) = r
        .call(
            "GET",
            &format!("/servers/{server}/os-security-groups"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, shown) = r
        .call(
            "GET",
            &format!("/os-security-groups/{sg_id}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(v["security_groups"], json!([shown["security_group"]]));
    check_shape(&v["security_groups"][0]);

    // A group a port uses is not deleted: Nova's 400.
    let (st, v) = r
        .call(
            "DELETE",
            &format!("/os-security-groups/{sg_id}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(st, 400, "{v}");
    nova_error(
        &v,
        "badRequest",
        400,
        &format!("Security Group {sg_id} in use."),
    );
});
