//! Routers, floating IPs, quotas and IP availability over HTTP, on SQLite
//! and PostgreSQL.

mod support;

use serde_json::{json, Value};
use support::Region;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// An external network with a /29 subnet, as an administrator sets it up.
async fn external_network(r: &Region) -> (String, String) {
    let ext = r
        .create(
            &r.admin,
            "networks",
            "network",
            json!({"name": "public", "router:external": true}),
        )
        .await;
    let sub = r
        .create(
            &r.admin,
            "subnets",
            "subnet",
            json!({"network_id": ext["id"], "cidr": "203.0.113.0/29", "enable_dhcp": false}),
        )
        .await;
    (id(&ext), id(&sub))
}

async fn routers_and_floating_ips(r: Region) {
    let (ext, _) = external_network(&r).await;
    let m = r.member("l3", "member").await;
    let net = r
        .create(&m.token, "networks", "network", json!({"name": "private"}))
        .await;
    let sub = r
        .create(
            &m.token,
            "subnets",
            "subnet",
            json!({"network_id": net["id"], "cidr": "10.1.0.0/24"}),
        )
        .await;
    let router = r
        .create(
            &m.token,
            "routers",
            "router",
            json!({"name": "r1", "external_gateway_info": {"network_id": ext}}),
        )
        .await;
    let rid = id(&router);
    let gw = &router["external_gateway_info"];
    assert_eq!(gw["enable_snat"], true);
    assert_eq!(
        gw["external_fixed_ips"][0]["ip_address"], "203.0.113.2",
        "{router}"
    );
    // SNAT off is for administrators, as in Neutron.
    let (status, _) = r
        .call("PUT", &format!("/v2.0/routers/{rid}"), &m.token,
              Some(json!({"router": {"external_gateway_info": {"network_id": ext, "enable_snat": false}}})))
        .await;
    assert_eq!(status, 403);
    let (status, v) = r
        .call("PUT", &format!("/v2.0/routers/{rid}"), &r.admin,
              Some(json!({"router": {"external_gateway_info": {"network_id": ext, "enable_snat": false}}})))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["router"]["external_gateway_info"]["enable_snat"], false);
    assert_eq!(
        v["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"],
        "203.0.113.2"
    );
    // A gateway on a network that is not external is refused.
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/routers/{rid}"),
            &m.token,
            Some(json!({"router": {"external_gateway_info": {"network_id": net["id"]}}})),
        )
        .await;
    assert_eq!(status, 400);

    // The interface takes the subnet's gateway address.
    let (status, iface) = r
        .call(
            "PUT",
            &format!("/v2.0/routers/{rid}/add_router_interface"),
            &m.token,
            Some(json!({"subnet_id": sub["id"]})),
        )
        .await;
    assert_eq!(status, 200, "{iface}");
    assert_eq!(iface["subnet_id"], sub["id"]);
    let (_, v) = r
        .call(
            "GET",
            &format!("/v2.0/ports/{}", iface["port_id"].as_str().unwrap()),
            &m.token,
            None,
        )
        .await;
    assert_eq!(v["port"]["fixed_ips"][0]["ip_address"], "10.1.0.1");
    assert_eq!(v["port"]["device_owner"], "network:router_interface");
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/routers/{rid}/add_router_interface"),
            &m.token,
            Some(json!({"subnet_id": sub["id"]})),
        )
        .await;
    assert_eq!(status, 400, "same subnet twice");
    let (status, _) = r
        .call(
            "DELETE",
            &format!("/v2.0/ports/{}", iface["port_id"].as_str().unwrap()),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 409, "interface ports go through the router");

    // Static routes must go via an attached subnet.
    let (status, _) = r
        .call("PUT", &format!("/v2.0/routers/{rid}"), &m.token,
              Some(json!({"router": {"routes": [{"destination": "172.16.0.0/16", "nexthop": "192.0.2.1"}]}})))
        .await;
    assert_eq!(status, 400);
    let (status, v) = r
        .call("PUT", &format!("/v2.0/routers/{rid}"), &m.token,
              Some(json!({"router": {"routes": [{"destination": "172.16.0.0/16", "nexthop": "10.1.0.9"}]}})))
        .await;
    assert_eq!(status, 200, "{v}");

    // Floating IPs: from the external network, associated through the router.
    let port = r
        .create(&m.token, "ports", "port", json!({"network_id": net["id"]}))
        .await;
    let fip = r
        .create(
            &m.token,
            "floatingips",
            "floatingip",
            json!({"floating_network_id": ext, "port_id": port["id"]}),
        )
        .await;
    assert_eq!(fip["router_id"], rid.as_str());
    assert_eq!(fip["fixed_ip_address"], port["fixed_ips"][0]["ip_address"]);
    assert_eq!(fip["status"], "ACTIVE");
    let fid = id(&fip);
    let (status, _) = r
        .call(
            "POST",
            "/v2.0/floatingips",
            &m.token,
            Some(json!({"floatingip": {"floating_network_id": net["id"]}})),
        )
        .await;
    assert_eq!(status, 400, "not an external network");
    let (status, _) = r
        .call("POST", "/v2.0/floatingips", &m.token,
              Some(json!({"floatingip": {"floating_network_id": ext, "floating_ip_address": "203.0.113.6"}})))
        .await;
    assert_eq!(status, 403, "choosing the address is for administrators");
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/routers/{rid}/remove_router_interface"),
            &m.token,
            Some(json!({"subnet_id": sub["id"]})),
        )
        .await;
    assert_eq!(
        status, 409,
        "the floating IP and the route need the interface"
    );
    let (status, v) = r
        .call(
            "PUT",
            &format!("/v2.0/floatingips/{fid}"),
            &m.token,
            Some(json!({"floatingip": {"port_id": null}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["floatingip"]["port_id"], Value::Null);
    assert_eq!(v["floatingip"]["status"], "DOWN");
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/routers/{rid}"),
            &m.token,
            Some(json!({"router": {"routes": []}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = r
        .call("DELETE", &format!("/v2.0/routers/{rid}"), &m.token, None)
        .await;
    assert_eq!(status, 409, "a router with interfaces stays");
    let (status, v) = r
        .call(
            "PUT",
            &format!("/v2.0/routers/{rid}/remove_router_interface"),
            &m.token,
            Some(json!({"subnet_id": sub["id"]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // Without the router the port cannot be reached from outside.
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/floatingips/{fid}"),
            &m.token,
            Some(json!({"floatingip": {"port_id": port["id"]}})),
        )
        .await;
    assert_eq!(status, 404);
    // The external network is in use while addresses are taken from it.
    let (status, _) = r
        .call("DELETE", &format!("/v2.0/networks/{ext}"), &r.admin, None)
        .await;
    assert_eq!(status, 409);
    let (status, _) = r
        .call(
            "DELETE",
            &format!("/v2.0/floatingips/{fid}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = r
        .call("DELETE", &format!("/v2.0/routers/{rid}"), &m.token, None)
        .await;
    assert_eq!(status, 204);
    let (status, v) = r
        .call("DELETE", &format!("/v2.0/networks/{ext}"), &r.admin, None)
        .await;
    assert_eq!(status, 204, "{v}");
}
on_both_engines!(l3, routers_and_floating_ips);

async fn quotas_are_enforced(r: Region) {
    let m = r.member("quota", "member").await;
    let p = &m.project_id;
    let (status, v) = r
        .call("GET", &format!("/v2.0/quotas/{p}"), &m.token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["quota"]["network"], 100);
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/quotas/{p}"),
            &m.token,
            Some(json!({"quota": {"network": 1}})),
        )
        .await;
    assert_eq!(status, 403, "members do not set their own quota");
    let (status, v) = r
        .call(
            "PUT",
            &format!("/v2.0/quotas/{p}"),
            &r.admin,
            Some(json!({"quota": {"network": 1, "port": 2}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["quota"]["network"], 1);
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/quotas/{p}"),
            &r.admin,
            Some(json!({"quota": {"network": "lots"}})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/quotas/{p}"),
            &r.admin,
            Some(json!({"quota": {"volumes": 3}})),
        )
        .await;
    assert_eq!(status, 400);
    let net = r.create(&m.token, "networks", "network", json!({})).await;
    let (status, v) = r
        .call(
            "POST",
            "/v2.0/networks",
            &m.token,
            Some(json!({"network": {}})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["NeutronError"]["type"], "Conflict");
    assert!(v["NeutronError"]["message"]
        .as_str()
        .unwrap()
        .contains("Quota exceeded"));
    r.create(&m.token, "ports", "port", json!({"network_id": net["id"]}))
        .await;
    r.create(&m.token, "ports", "port", json!({"network_id": net["id"]}))
        .await;
    let (status, _) = r
        .call(
            "POST",
            "/v2.0/ports",
            &m.token,
            Some(json!({"port": {"network_id": net["id"]}})),
        )
        .await;
    assert_eq!(status, 409);
    let (_, v) = r
        .call("GET", &format!("/v2.0/quotas/{p}/details"), &m.token, None)
        .await;
    assert_eq!(
        v["quota"]["port"],
        json!({"limit": 2, "used": 2, "reserved": 0})
    );
    let other = r.member("quota-other", "member").await;
    let (status, _) = r
        .call("GET", &format!("/v2.0/quotas/{p}"), &other.token, None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = r
        .call("DELETE", &format!("/v2.0/quotas/{p}"), &r.admin, None)
        .await;
    assert_eq!(status, 204);
    let (_, v) = r
        .call("GET", &format!("/v2.0/quotas/{p}"), &m.token, None)
        .await;
    assert_eq!(v["quota"]["network"], 100, "back to the default");
    let (_, v) = r
        .call("GET", &format!("/v2.0/quotas/{p}/default"), &m.token, None)
        .await;
    assert_eq!(v["quota"]["port"], 500);
}
on_both_engines!(quotas, quotas_are_enforced);

/// Creates racing for a project's last places get exactly that many.
async fn concurrent_creates_stay_within_the_quota(r: Region) {
    let m = r.member("quota-race", "member").await;
    let (status, _) = r
        .call(
            "PUT",
            &format!("/v2.0/quotas/{}", m.project_id),
            &r.admin,
            Some(json!({"quota": {"network": 4}})),
        )
        .await;
    assert_eq!(status, 200);
    let creates = (0..12).map(|i| {
        let (r, token) = (&r, m.token.clone());
        async move {
            let body = json!({"network": {"name": format!("race-{i}")}});
            r.call("POST", "/v2.0/networks", &token, Some(body)).await.0
        }
    });
    let mut statuses = futures::future::join_all(creates).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [[201; 4].as_slice(), &[409; 8]].concat());
    let (_, v) = r.call("GET", "/v2.0/networks", &m.token, None).await;
    let owned = v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["project_id"] == m.project_id.as_str())
        .count();
    assert_eq!(owned, 4);
}
on_both_engines!(quota_race, concurrent_creates_stay_within_the_quota);

async fn ip_availability_for_admins(r: Region) {
    let m = r.member("avail", "member").await;
    let net = r
        .create(&m.token, "networks", "network", json!({"name": "counted"}))
        .await;
    r.create(
        &m.token,
        "subnets",
        "subnet",
        json!({"network_id": net["id"], "cidr": "10.2.0.0/28"}),
    )
    .await;
    r.create(&m.token, "ports", "port", json!({"network_id": net["id"]}))
        .await;
    let path = format!("/v2.0/network-ip-availabilities/{}", id(&net));
    let (status, _) = r.call("GET", &path, &m.token, None).await;
    assert_eq!(status, 403);
    let (status, v) = r.call("GET", &path, &r.admin, None).await;
    assert_eq!(status, 200, "{v}");
    let a = &v["network_ip_availability"];
    assert_eq!(a["total_ips"], 13, "14 hosts minus the gateway: {a}");
    assert_eq!(a["used_ips"], 2, "the DHCP port and ours: {a}");
    assert_eq!(a["subnet_ip_availability"][0]["cidr"], "10.2.0.0/28");
    let (_, v) = r
        .call(
            "GET",
            "/v2.0/network-ip-availabilities?network_name=counted",
            &r.admin,
            None,
        )
        .await;
    assert_eq!(v["network_ip_availabilities"].as_array().unwrap().len(), 1);
}
on_both_engines!(ip_availability, ip_availability_for_admins);
