//! The Neutron API end to end over HTTP, on SQLite and PostgreSQL:
//! networks, subnets and IPAM, ports, security groups, list features,
//! revision numbers and the errors clients see for bad input.

mod support;

use serde_json::{json, Value};
use support::Region;

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn neutron_error(v: &Value) -> (&str, &str) {
    let e = &v["NeutronError"];
    assert_eq!(e["detail"], "", "detail is always empty: {v}");
    (
        e["type"].as_str().unwrap_or(""),
        e["message"].as_str().unwrap_or(""),
    )
}

async fn networks_are_private_unless_shared(r: Region) {
    let alice = r.member("alice", "member").await;
    let bob = r.member("bob", "member").await;
    let a = r
        .create(
            &alice.token,
            "networks",
            "network",
            json!({"name": "a-net"}),
        )
        .await;
    assert_eq!(a["project_id"], alice.project_id.as_str());
    assert_eq!(a["tenant_id"], alice.project_id.as_str());
    assert_eq!(a["status"], "ACTIVE");
    assert_eq!(a["mtu"], 1450);
    assert_eq!(a["revision_number"], 0);
    assert!(
        a.get("provider:network_type").is_none(),
        "provider attributes are for admins: {a}"
    );
    let id = a["id"].as_str().unwrap();

    let (status, v) = r
        .call("GET", &format!("/v2.0/networks/{id}"), &bob.token, None)
        .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(neutron_error(&v).0, "NotFound");
    let (_, v) = r.call("GET", "/v2.0/networks", &bob.token, None).await;
    assert!(!ids(&v, "networks").contains(&id.to_string()));
    let (status, _) = r
        .call("DELETE", &format!("/v2.0/networks/{id}"), &bob.token, None)
        .await;
    assert_eq!(status, 404);

    // Admins see provider attributes and distinct VNIs.
    let (_, v) = r
        .call("GET", &format!("/v2.0/networks/{id}"), &r.admin, None)
        .await;
    assert_eq!(v["network"]["provider:network_type"], "vxlan");
    let b = r
        .create(&bob.token, "networks", "network", json!({"name": "b-net"}))
        .await;
    let (_, vb) = r
        .call(
            "GET",
            &format!("/v2.0/networks/{}", b["id"].as_str().unwrap()),
            &r.admin,
            None,
        )
        .await;
    assert_ne!(
        v["network"]["provider:segmentation_id"],
        vb["network"]["provider:segmentation_id"]
    );

    // Members may not create shared or external networks; admins may.
    let (status, v) = r
        .call(
            "POST",
            "/v2.0/networks",
            &alice.token,
            Some(json!({"network": {"shared": true}})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(neutron_error(&v).0, "PolicyNotAuthorized");
    let shared = r
        .create(
            &r.admin,
            "networks",
            "network",
            json!({"name": "public", "shared": true}),
        )
        .await;
    let ext = r
        .create(
            &r.admin,
            "networks",
            "network",
            json!({"name": "ext", "router:external": true}),
        )
        .await;
    let (_, v) = r.call("GET", "/v2.0/networks", &bob.token, None).await;
    let seen = ids(&v, "networks");
    assert!(seen.contains(&shared["id"].as_str().unwrap().to_string()));
    assert!(seen.contains(&ext["id"].as_str().unwrap().to_string()));
    let (_, v) = r
        .call(
            "GET",
            &format!("/v2.0/networks/{}", ext["id"].as_str().unwrap()),
            &r.admin,
            None,
        )
        .await;
    assert_eq!(v["network"]["provider:network_type"], "flat");
    assert_eq!(v["network"]["mtu"], 1500);
    // …but not change someone else's shared network.
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/networks/{}", shared["id"].as_str().unwrap()),
            &bob.token,
            Some(json!({"network": {"name": "mine"}})),
        )
        .await;
    assert_eq!(status, 403);

    // A reader reads but does not write.
    let reader = r.user_in("alice", &alice.project_id, "reader").await;
    let (status, _) = r
        .call("GET", &format!("/v2.0/networks/{id}"), &reader.token, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = r
        .call(
            "POST",
            "/v2.0/networks",
            &reader.token,
            Some(json!({"network": {}})),
        )
        .await;
    assert_eq!(status, 403);
}
on_both_engines!(
    networks_private_unless_shared,
    networks_are_private_unless_shared
);

async fn subnets_and_ipam(r: Region) {
    let m = r.member("ipam", "member").await;
    let net = r
        .create(&m.token, "networks", "network", json!({"name": "n"}))
        .await;
    let nid = net["id"].as_str().unwrap();
    let sub = r
        .create(&m.token, "subnets", "subnet",
                json!({"network_id": nid, "cidr": "10.0.0.0/29", "ip_version": 4, "dns_nameservers": ["192.0.2.53"]}))
        .await;
    assert_eq!(sub["gateway_ip"], "10.0.0.1");
    assert_eq!(
        sub["allocation_pools"],
        json!([{"start": "10.0.0.2", "end": "10.0.0.6"}])
    );
    assert_eq!(sub["enable_dhcp"], true);
    let sid = sub["id"].as_str().unwrap();

    // The DHCP port took the first pool address; ports get the next ones.
    let (_, v) = r
        .call(
            "GET",
            &format!("/v2.0/ports?network_id={nid}&device_owner=network:dhcp"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(
        v["ports"][0]["fixed_ips"][0]["ip_address"], "10.0.0.2",
        "{v}"
    );
    let p1 = r
        .create(&m.token, "ports", "port", json!({"network_id": nid}))
        .await;
    assert_eq!(
        p1["fixed_ips"],
        json!([{"subnet_id": sid, "ip_address": "10.0.0.3"}])
    );
    assert_eq!(p1["status"], "DOWN");
    assert_eq!(
        p1["security_groups"].as_array().unwrap().len(),
        1,
        "the default group: {p1}"
    );
    assert!(p1["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    // A chosen address that is taken is a conflict.
    let (status, v) = r
        .call(
            "POST",
            "/v2.0/ports",
            &m.token,
            Some(json!({"port": {"network_id": nid, "fixed_ips": [{"ip_address": "10.0.0.3"}]}})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    let (status, _) = r
        .call(
            "POST",
            "/v2.0/ports",
            &m.token,
            Some(json!({"port": {"network_id": nid, "fixed_ips": [{"ip_address": "10.0.1.3"}]}})),
        )
        .await;
    assert_eq!(status, 400);
    let p6 = r
        .create(
            &m.token,
            "ports",
            "port",
            json!({"network_id": nid, "fixed_ips": [{"ip_address": "10.0.0.6"}]}),
        )
        .await;
    r.create(&m.token, "ports", "port", json!({"network_id": nid}))
        .await;
    r.create(&m.token, "ports", "port", json!({"network_id": nid}))
        .await;
    // .4 and .5 are gone: the pool is exhausted.
    let (status, v) = r
        .call(
            "POST",
            "/v2.0/ports",
            &m.token,
            Some(json!({"port": {"network_id": nid}})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(neutron_error(&v).1.contains("No more IP addresses"), "{v}");
    // Deleting a port frees its address for the next one.
    let (status, _) = r
        .call(
            "DELETE",
            &format!("/v2.0/ports/{}", p6["id"].as_str().unwrap()),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let again = r
        .create(&m.token, "ports", "port", json!({"network_id": nid}))
        .await;
    assert_eq!(again["fixed_ips"][0]["ip_address"], "10.0.0.6");

    // Overlaps within a network are refused; other networks may reuse it.
    let (status, v) = r
        .call(
            "POST",
            "/v2.0/subnets",
            &m.token,
            Some(json!({"subnet": {"network_id": nid, "cidr": "10.0.0.0/24", "ip_version": 4}})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(neutron_error(&v).1.contains("overlaps"), "{v}");
    let other = r.create(&m.token, "networks", "network", json!({})).await;
    r.create(
        &m.token,
        "subnets",
        "subnet",
        json!({"network_id": other["id"], "cidr": "10.0.0.0/24", "ip_version": 4}),
    )
    .await;

    // IPv6 beside IPv4: a new port gets one address of each.
    let v6 = r
        .create(
            &m.token,
            "subnets",
            "subnet",
            json!({"network_id": other["id"], "cidr": "fd00:1::/64", "ip_version": 6,
                       "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"}),
        )
        .await;
    assert_eq!(v6["gateway_ip"], "fd00:1::1");
    let dual = r
        .create(
            &m.token,
            "ports",
            "port",
            json!({"network_id": other["id"]}),
        )
        .await;
    let versions: Vec<bool> = dual["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ip_address"].as_str().unwrap().contains(':'))
        .collect();
    assert_eq!(versions, [false, true], "{dual}");

    // A network with ports cannot go; a subnet with ports neither.
    let (status, v) = r
        .call("DELETE", &format!("/v2.0/networks/{nid}"), &m.token, None)
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(neutron_error(&v).1.contains("ports still in use"), "{v}");
    let (status, _) = r
        .call("DELETE", &format!("/v2.0/subnets/{sid}"), &m.token, None)
        .await;
    assert_eq!(status, 409);
    let (_, v) = r
        .call(
            "GET",
            &format!("/v2.0/ports?network_id={nid}"),
            &m.token,
            None,
        )
        .await;
    for p in v["ports"].as_array().unwrap() {
        if p["device_owner"] != "network:dhcp" {
            let (status, _) = r
                .call(
                    "DELETE",
                    &format!("/v2.0/ports/{}", p["id"].as_str().unwrap()),
                    &m.token,
                    None,
                )
                .await;
            assert_eq!(status, 204);
        }
    }
    let (status, v) = r
        .call("DELETE", &format!("/v2.0/networks/{nid}"), &m.token, None)
        .await;
    assert_eq!(status, 204, "{v}");
    let (status, _) = r
        .call("GET", &format!("/v2.0/subnets/{sid}"), &m.token, None)
        .await;
    assert_eq!(status, 404, "subnets go with their network");
}
on_both_engines!(subnet_ipam, subnets_and_ipam);

async fn bad_subnets_are_400s(r: Region) {
    let m = r.member("bad", "member").await;
    let net = r.create(&m.token, "networks", "network", json!({})).await;
    let nid = net["id"].as_str().unwrap();
    let cases = [
        json!({"network_id": nid, "cidr": "10.0.0.0/33", "ip_version": 4}),
        json!({"network_id": nid, "cidr": "not-a-cidr", "ip_version": 4}),
        json!({"network_id": nid, "cidr": "10.0.0.7/24", "ip_version": 4}),
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "ip_version": 6}),
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "gateway_ip": "10.9.9.9"}),
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.255"}),
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "allocation_pools": [{"start": "10.0.0.50", "end": "10.0.0.10"}]}),
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "allocation_pools": [{"start": "10.0.0.10", "end": "10.0.1.10"}]}),
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "dns_nameservers": ["nameserver"]}),
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "ipv6_ra_mode": "slaac"}),
        json!({"network_id": nid, "cidr": "2001:db8::/64", "ipv6_ra_mode": "slaac",
               "ipv6_address_mode": "dhcpv6-stateful"}),
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "colour": "blue"}),
        json!({"network_id": nid, "cidr": "10.0.0.0/24", "enable_dhcp": "perhaps"}),
    ];
    for body in cases {
        let (status, v) = r
            .call(
                "POST",
                "/v2.0/subnets",
                &m.token,
                Some(json!({"subnet": body})),
            )
            .await;
        assert_eq!(status, 400, "{body} -> {v}");
        assert_eq!(neutron_error(&v).0, "BadRequest", "{v}");
    }
    let (status, v) = r
        .call("POST", "/v2.0/subnets", &m.token,
              Some(json!({"subnet": {"network_id": nid, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.20",
                                     "allocation_pools": [{"start": "10.0.0.10", "end": "10.0.0.30"}]}})))
        .await;
    assert_eq!(status, 409, "gateway inside a pool: {v}");
    // Malformed JSON and a body without the resource key.
    let resp = r
        .http
        .post(format!("{}/networking/v2.0/networks", r.url))
        .header("x-auth-token", &m.token)
        .header("content-type", "application/json")
        .body("{\"network\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    neutron_error(&v);
    let (status, _) = r
        .call(
            "POST",
            "/v2.0/networks",
            &m.token,
            Some(json!({"netwerk": {}})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, v) = r.call("GET", "/v2.0/nothing-here", &m.token, None).await;
    assert_eq!(status, 404);
    neutron_error(&v);
}
on_both_engines!(bad_subnets, bad_subnets_are_400s);

async fn security_groups_and_rules(r: Region) {
    let m = r.member("sg", "member").await;
    let (status, v) = r.call("GET", "/v2.0/security-groups", &m.token, None).await;
    assert_eq!(status, 200);
    let groups = v["security_groups"].as_array().unwrap();
    assert_eq!(
        groups.len(),
        1,
        "the default group appears on first use: {v}"
    );
    let default = &groups[0];
    assert_eq!(default["name"], "default");
    let gid = default["id"].as_str().unwrap();
    let mut rules: Vec<(String, String, Value)> = default["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().unwrap().into(),
                r["ethertype"].as_str().unwrap().into(),
                r["remote_group_id"].clone(),
            )
        })
        .collect();
    rules.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        rules,
        vec![
            ("egress".into(), "IPv4".into(), Value::Null),
            ("egress".into(), "IPv6".into(), Value::Null),
            ("ingress".into(), "IPv4".into(), json!(gid)),
            ("ingress".into(), "IPv6".into(), json!(gid)),
        ]
    );
    let web = r
        .create(
            &m.token,
            "security-groups",
            "security_group",
            json!({"name": "web"}),
        )
        .await;
    assert_eq!(
        web["security_group_rules"].as_array().unwrap().len(),
        2,
        "egress only: {web}"
    );
    let wid = web["id"].as_str().unwrap();
    let rule = r
        .create(&m.token, "security-group-rules", "security_group_rule",
                json!({"security_group_id": wid, "direction": "ingress", "protocol": "tcp",
                       "port_range_min": 8080, "port_range_max": 8080, "remote_ip_prefix": "192.0.2.0/24"}))
        .await;
    assert_eq!(rule["ethertype"], "IPv4");
    let (status, v) = r
        .call("POST", "/v2.0/security-group-rules", &m.token,
              Some(json!({"security_group_rule": {"security_group_id": wid, "direction": "ingress", "protocol": "tcp",
                       "port_range_min": 8080, "port_range_max": 8080, "remote_ip_prefix": "192.0.2.0/24"}})))
        .await;
    assert_eq!(status, 409, "duplicate rule: {v}");
    let bad = [
        json!({"direction": "sideways"}),
        json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 0, "port_range_max": 10}),
        json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}),
        json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 1, "port_range_max": 70000}),
        json!({"direction": "ingress", "protocol": "icmp", "port_range_max": 3}),
        json!({"direction": "ingress", "protocol": "gre", "port_range_min": 1, "port_range_max": 2}),
        json!({"direction": "ingress", "port_range_min": 1, "port_range_max": 2}),
        json!({"direction": "ingress", "protocol": "banana"}),
        json!({"direction": "ingress", "ethertype": "IPv4", "remote_ip_prefix": "::/0"}),
        json!({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": gid}),
        json!({"direction": "ingress", "protocol": "icmpv6"}),
    ];
    for body in bad {
        let mut body = body.clone();
        body["security_group_id"] = json!(wid);
        let (status, v) = r
            .call(
                "POST",
                "/v2.0/security-group-rules",
                &m.token,
                Some(json!({"security_group_rule": body})),
            )
            .await;
        assert_eq!(status, 400, "{body} -> {v}");
    }
    // In use by a port: cannot go. The default group is not the member's to delete.
    let net = r.create(&m.token, "networks", "network", json!({})).await;
    let port = r
        .create(
            &m.token,
            "ports",
            "port",
            json!({"network_id": net["id"], "security_groups": [wid]}),
        )
        .await;
    let (status, _) = r
        .call(
            "DELETE",
            &format!("/v2.0/security-groups/{wid}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = r
        .call(
            "DELETE",
            &format!("/v2.0/security-groups/{gid}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 409);
    // Port security off with groups is refused; off after clearing them is fine.
    let pid = port["id"].as_str().unwrap();
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/ports/{pid}"),
            &m.token,
            Some(json!({"port": {"port_security_enabled": false}})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, v) = r
        .call(
            "PUT",
            &format!("/v2.0/ports/{pid}"),
            &m.token,
            Some(json!({"port": {"port_security_enabled": false, "security_groups": []}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = r
        .call(
            "DELETE",
            &format!("/v2.0/security-groups/{wid}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    // Default rule templates: admins change what new groups start with.
    let (status, v) = r
        .call("GET", "/v2.0/default-security-group-rules", &m.token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["default_security_group_rules"].as_array().unwrap().len(),
        4
    );
    let (status, _) = r.call("POST", "/v2.0/default-security-group-rules", &m.token,
        Some(json!({"default_security_group_rule": {"direction": "ingress", "protocol": "tcp", "port_range_min": 22}}))).await;
    assert_eq!(status, 403);
    let t = r.create(&r.admin, "default-security-group-rules", "default_security_group_rule",
        json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22})).await;
    assert_eq!(t["used_in_non_default_sg"], true);
    let ssh = r
        .create(
            &m.token,
            "security-groups",
            "security_group",
            json!({"name": "ssh"}),
        )
        .await;
    assert!(
        ssh["security_group_rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["port_range_min"] == 22),
        "{ssh}"
    );
}
on_both_engines!(security_groups, security_groups_and_rules);

async fn list_features_tags_and_revisions(r: Region) {
    let m = r.member("lists", "member").await;
    for (name, tags) in [
        ("n-c", vec!["red"]),
        ("n-a", vec!["red", "blue"]),
        ("n-b", vec![]),
    ] {
        let n = r
            .create(&m.token, "networks", "network", json!({"name": name}))
            .await;
        let id = n["id"].as_str().unwrap();
        let (status, v) = r
            .call(
                "PUT",
                &format!("/v2.0/networks/{id}/tags"),
                &m.token,
                Some(json!({"tags": tags})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    let names = |v: &Value| -> Vec<String> {
        v["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, v) = r
        .call(
            "GET",
            "/v2.0/networks?sort_key=name&sort_dir=desc",
            &m.token,
            None,
        )
        .await;
    assert_eq!(names(&v), ["n-c", "n-b", "n-a"]);
    let (_, v) = r
        .call("GET", "/v2.0/networks?tags=red", &m.token, None)
        .await;
    assert_eq!(names(&v).len(), 2);
    let (_, v) = r
        .call(
            "GET",
            "/v2.0/networks?tags-any=blue&fields=name",
            &m.token,
            None,
        )
        .await;
    assert_eq!(v["networks"], json!([{"name": "n-a"}]));
    let (_, v) = r
        .call(
            "GET",
            "/v2.0/networks?name=n-a&name=n-b&sort_key=name",
            &m.token,
            None,
        )
        .await;
    assert_eq!(names(&v), ["n-a", "n-b"]);
    let (_, page1) = r
        .call(
            "GET",
            "/v2.0/networks?sort_key=name&limit=2",
            &m.token,
            None,
        )
        .await;
    assert_eq!(names(&page1), ["n-a", "n-b"]);
    let next = page1["networks_links"][0]["href"].as_str().unwrap();
    let path = next.split("/networking").nth(1).unwrap();
    let (_, page2) = r.call("GET", path, &m.token, None).await;
    assert_eq!(names(&page2), ["n-c"]);

    // Tags one by one, and revision numbers with If-Match.
    let (_, v) = r
        .call("GET", "/v2.0/networks?name=n-b", &m.token, None)
        .await;
    let net = &v["networks"][0];
    let id = net["id"].as_str().unwrap();
    let rev = net["revision_number"].as_i64().unwrap();
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/networks/{id}/tags/green"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = r
        .call(
            "GET",
            &format!("/v2.0/networks/{id}/tags/green"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = r
        .call(
            "DELETE",
            &format!("/v2.0/networks/{id}/tags/purple"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let stale = format!("revision_number={rev}");
    let (status, v) = r
        .call_with(
            "PUT",
            &format!("/v2.0/networks/{id}"),
            &m.token,
            Some(json!({"network": {"name": "x"}})),
            &[("If-Match", &stale)],
        )
        .await;
    assert_eq!(status, 412, "the tag bumped the revision: {v}");
    assert_eq!(neutron_error(&v).0, "PreconditionFailed");
    let current = format!("revision_number={}", rev + 1);
    let (status, v) = r
        .call_with(
            "PUT",
            &format!("/v2.0/networks/{id}"),
            &m.token,
            Some(json!({"network": {"name": "x"}})),
            &[("If-Match", &current)],
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["network"]["revision_number"], rev + 2);
}
on_both_engines!(list_features, list_features_tags_and_revisions);

async fn concurrent_creates_get_distinct_addresses_and_segments(r: Region) {
    let m = r.member("race", "member").await;
    let net = r.create(&m.token, "networks", "network", json!({})).await;
    r.create(
        &m.token,
        "subnets",
        "subnet",
        json!({"network_id": net["id"], "cidr": "10.3.0.0/24"}),
    )
    .await;
    let r = std::sync::Arc::new(r);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (r, token, nid) = (r.clone(), m.token.clone(), net["id"].clone());
        tasks.push(tokio::spawn(async move {
            let port = r
                .call(
                    "POST",
                    "/v2.0/ports",
                    &token,
                    Some(json!({"port": {"network_id": nid}})),
                )
                .await;
            let network = r
                .call(
                    "POST",
                    "/v2.0/networks",
                    &token,
                    Some(json!({"network": {}})),
                )
                .await;
            (port, network)
        }));
    }
    let (mut ips, mut vnis) = (Vec::new(), Vec::new());
    for t in tasks {
        let ((ps, port), (ns, network)) = t.await.unwrap();
        assert_eq!((ps, ns), (201, 201), "{port} {network}");
        ips.push(
            port["port"]["fixed_ips"][0]["ip_address"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let id = network["network"]["id"].as_str().unwrap();
        let (_, v) = r
            .call("GET", &format!("/v2.0/networks/{id}"), &r.admin, None)
            .await;
        vnis.push(v["network"]["provider:segmentation_id"].as_i64().unwrap());
    }
    ips.sort();
    ips.dedup();
    vnis.sort();
    vnis.dedup();
    assert_eq!((ips.len(), vnis.len()), (16, 16), "{ips:?} {vnis:?}");
}
on_both_engines!(
    concurrency,
    concurrent_creates_get_distinct_addresses_and_segments
);

async fn discovery_documents(r: Region) {
    let m = r.member("disco", "member").await;
    for root in ["", "/"] {
        let (status, v) = r.call("GET", root, "", None).await;
        assert_eq!(status, 200, "versions at {root:?} need no token: {v}");
    }
    let (_, v) = r.call("GET", "/", "", None).await;
    assert_eq!(v["versions"][0]["id"], "v2.0");
    assert!(v["versions"][0]["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with("/networking/v2.0/"));
    let (status, v) = r.call("GET", "/v2.0/extensions", &m.token, None).await;
    assert_eq!(status, 200);
    let aliases: Vec<&str> = v["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    for alias in [
        "router",
        "security-group",
        "quotas",
        "standard-attr-tag",
        "revision-if-match",
        "external-net",
    ] {
        assert!(aliases.contains(&alias), "{alias} missing from {aliases:?}");
    }
    assert!(
        !aliases.contains(&"dvr") && !aliases.contains(&"qos"),
        "only what is implemented: {aliases:?}"
    );
    let (status, _) = r
        .call("GET", "/v2.0/extensions/router", &m.token, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = r.call("GET", "/v2.0/extensions/qos", &m.token, None).await;
    assert_eq!(status, 404);
    let (_, v) = r
        .call("GET", "/v2.0/availability_zones", &m.token, None)
        .await;
    assert_eq!(v["availability_zones"][0]["name"], "nova");
    let (status, _) = r.call("GET", "/v2.0/networks", "", None).await;
    assert_eq!(status, 401, "everything else needs a token");
    // `fields` on a single resource.
    let n = r
        .create(&m.token, "networks", "network", json!({"name": "f"}))
        .await;
    let (_, v) = r
        .call(
            "GET",
            &format!(
                "/v2.0/networks/{}?fields=name&fields=mtu",
                n["id"].as_str().unwrap()
            ),
            &m.token,
            None,
        )
        .await;
    assert_eq!(v["network"], json!({"name": "f", "mtu": 1450}));
}
on_both_engines!(discovery, discovery_documents);

async fn slaac_ports_get_their_autoconfigured_address(r: Region) {
    let m = r.member("slaac", "member").await;
    let net = r.create(&m.token, "networks", "network", json!({})).await;
    let subnet = r
        .create(
            &m.token,
            "subnets",
            "subnet",
            json!({"network_id": net["id"], "cidr": "2001:db8:7::/64", "ip_version": 6,
                        "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}),
        )
        .await;
    let port = r
        .create(
            &m.token,
            "ports",
            "port",
            json!({"network_id": net["id"], "mac_address": "fa:16:3e:00:00:2a"}),
        )
        .await;
    assert_eq!(
        port["fixed_ips"][0]["ip_address"], "2001:db8:7:0:f816:3eff:fe00:2a",
        "{port}"
    );

    // The autoconfigured addresses go with their subnet (the port stays).
    let subnet_path = format!("/v2.0/subnets/{}", subnet["id"].as_str().unwrap());
    let (status, body) = r.call("DELETE", &subnet_path, &m.token, None).await;
    assert_eq!(status, 204, "{body}");
    let port_path = format!("/v2.0/ports/{}", port["id"].as_str().unwrap());
    let (status, body) = r.call("GET", &port_path, &m.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["port"]["fixed_ips"], json!([]), "{body}");
    r.create(
        &m.token,
        "subnets",
        "subnet",
        json!({"network_id": net["id"], "cidr": "2001:db8:7::/64", "ip_version": 6,
                    "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}),
    )
    .await;

    // Beside a stateful subnet (and an IPv4 one), a new port gets an address
    // from each: its autoconfigured one and one of each stateful subnet, as in
    // Neutron.
    let stateful = r
        .create(
            &m.token,
            "subnets",
            "subnet",
            json!({"network_id": net["id"], "cidr": "2001:db8:8::/64", "ip_version": 6,
                        "ipv6_address_mode": "dhcpv6-stateful"}),
        )
        .await;
    let v4 = r
        .create(
            &m.token,
            "subnets",
            "subnet",
            json!({"network_id": net["id"], "cidr": "10.9.0.0/24", "ip_version": 4}),
        )
        .await;
    let port = r
        .create(
            &m.token,
            "ports",
            "port",
            json!({"network_id": net["id"], "mac_address": "fa:16:3e:00:00:2b"}),
        )
        .await;
    let mut subnets: Vec<&str> = port["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["subnet_id"].as_str().unwrap())
        .collect();
    subnets.sort_unstable();
    let slaac_id = port["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ip_address"] == "2001:db8:7:0:f816:3eff:fe00:2b");
    assert!(slaac_id.is_some(), "the autoconfigured address: {port}");
    let mut want = vec![
        slaac_id.unwrap()["subnet_id"].as_str().unwrap(),
        stateful["id"].as_str().unwrap(),
        v4["id"].as_str().unwrap(),
    ];
    want.sort_unstable();
    assert_eq!(subnets, want, "{port}");
}
on_both_engines!(slaac, slaac_ports_get_their_autoconfigured_address);

async fn bulk_creates_are_all_or_nothing(r: Region) {
    let m = r.member("bulk", "member").await;
    let (status, v) = r
        .call(
            "POST",
            "/v2.0/networks",
            &m.token,
            Some(json!({"networks": [{"name": "bulk-1"}, {"name": "bulk-2"}]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let nets = v["networks"].as_array().expect("a list under networks");
    let names: Vec<&str> = nets.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bulk-1", "bulk-2"], "in request order: {v}");
    let net_ids = ids(&v, "networks");

    let (status, v) = r
        .call(
            "POST",
            "/v2.0/subnets",
            &m.token,
            Some(json!({"subnets": [
                {"network_id": net_ids[0], "cidr": "10.21.0.0/24"},
                {"network_id": net_ids[1], "cidr": "10.22.0.0/24"},
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["subnets"][1]["cidr"], "10.22.0.0/24", "{v}");

    let (status, v) = r
        .call(
            "POST",
            "/v2.0/ports",
            &m.token,
            Some(json!({"ports": [
                {"network_id": net_ids[0], "name": "p1"},
                {"network_id": net_ids[1], "name": "p2"},
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(ids(&v, "ports").len(), 2);
    assert!(
        v["ports"][1]["fixed_ips"][0]["ip_address"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.22.0.")),
        "{v}"
    );

    // One bad item: nothing of the request is created.
    let count_ports = || async {
        let (_, v) = r.call("GET", "/v2.0/ports", &m.token, None).await;
        ids(&v, "ports").len()
    };
    let before = count_ports().await;
    let (status, v) = r
        .call(
            "POST",
            "/v2.0/ports",
            &m.token,
            Some(json!({"ports": [
                {"network_id": net_ids[0], "name": "kept?"},
                {"network_id": "no-such-network"},
            ]})),
        )
        .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(
        count_ports().await,
        before,
        "the first port was rolled back"
    );
    let (status, v) = r
        .call(
            "POST",
            "/v2.0/networks",
            &m.token,
            Some(json!({"networks": [{"name": "ok"}, {"bogus": 1}]})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (_, v) = r.call("GET", "/v2.0/networks", &m.token, None).await;
    assert!(
        v["networks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["name"] != "ok"),
        "{v}"
    );
    for body in [json!({"networks": []}), json!({"networks": [1]}), json!({})] {
        let (status, v) = r.call("POST", "/v2.0/networks", &m.token, Some(body)).await;
        assert_eq!(status, 400, "{v}");
    }

    let group = r
        .create(
            &m.token,
            "security-groups",
            "security_group",
            json!({"name": "bulk-sg"}),
        )
        .await;
    let (status, v) = r
        .call(
            "POST",
            "/v2.0/security-group-rules",
            &m.token,
            Some(json!({"security_group_rules": [
                {"security_group_id": group["id"], "direction": "ingress",
                 "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
                {"security_group_id": group["id"], "direction": "ingress",
                 "protocol": "icmp"},
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(ids(&v, "security_group_rules").len(), 2);
}
on_both_engines!(bulk, bulk_creates_are_all_or_nothing);
