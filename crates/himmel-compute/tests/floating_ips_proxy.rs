//! `/os-floating-ips`, `/os-floating-ip-pools` and the `addFloatingIp` and
//! `removeFloatingIp` server actions over HTTP: Nova's 2.1 shapes, its
//! error bodies, and that the addresses are the network service's own (an
//! association made here is the Neutron floating IP's `port_id`, with the
//! router the dataplane translates through). SQLite and PostgreSQL.

mod support;

use serde_json::{json, Value};
use support::{flavor, nova_error, wait_status, Member, Region, DISK_IMAGE};

const MISSING: &str = "8f2b7c4e-0d55-4a8e-9a51-3c1f0b6de002";

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Exactly Nova's keys (Tempest's schema allows no others).
fn check_shape(f: &Value) {
    let mut keys: Vec<&str> = f.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["fixed_ip", "id", "instance_id", "ip", "pool"], "{f}");
}

/// An external network with one subnet, as an administrator sets it up.
async fn external(r: &Region, name: &str, cidr: &str) -> String {
    let (st, net) = r
        .net(
            "POST",
            "/networks",
            &r.admin,
            Some(json!({"network": {"name": name, "router:external": true}})),
        )
        .await;
    assert_eq!(st, 201, "{net}");
    let net_id = id(&net["network"]);
    let (st, sub) = r
        .net(
            "POST",
            "/subnets",
            &r.admin,
            Some(
                json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": cidr,
                        "enable_dhcp": false}}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{sub}");
    net_id
}

async fn allocate(r: &Region, token: &str, body: Option<Value>) -> (u16, Value) {
    r.call("POST", "/os-floating-ips", token, body).await
}

/// A project's private network behind a router to `ext`, as a user sets it
/// up; returns the network's id.
async fn private_network(r: &Region, m: &Member, ext: &str, cidr: &str) -> String {
    let (st, net) = r
        .net(
            "POST",
            "/networks",
            &m.token,
            Some(json!({"network": {"name": "private"}})),
        )
        .await;
    assert_eq!(st, 201, "{net}");
    let net_id = id(&net["network"]);
    let (st, sub) = r
        .net(
            "POST",
            "/subnets",
            &m.token,
            Some(json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": cidr}})),
        )
        .await;
    assert_eq!(st, 201, "{sub}");
    let (st, router) = r
        .net(
            "POST",
            "/routers",
            &m.token,
            Some(json!({"router": {"name": "r", "external_gateway_info": {"network_id": ext}}})),
        )
        .await;
    assert_eq!(st, 201, "{router}");
    let (st, v) = r
        .net(
            "PUT",
            &format!("/routers/{}/add_router_interface", id(&router["router"])),
            &m.token,
            Some(json!({"subnet_id": sub["subnet"]["id"]})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    net_id
}

async fn boot(r: &Region, m: &Member, flavor: &str, net_id: &str, name: &str) -> String {
    let (st, v) = r
        .call(
            "POST",
            "/servers",
            &m.token,
            Some(json!({"server": {"name": name, "imageRef": DISK_IMAGE,
                        "flavorRef": flavor, "networks": [{"uuid": net_id}]}})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let server = v["server"]["id"].as_str().unwrap().to_string();
    wait_status(r, &m.token, &server, "ACTIVE").await;
    server
}

async fn action(r: &Region, token: &str, server: &str, body: Value) -> (u16, Value) {
    r.call(
        "POST",
        &format!("/servers/{server}/action"),
        token,
        Some(body),
    )
    .await
}

/// The server's addresses on `network` (the full body's, with types).
async fn addresses(r: &Region, token: &str, server: &str, network: &str) -> Vec<Value> {
    let (st, v) = r
        .call("GET", &format!("/servers/{server}"), token, None)
        .await;
    assert_eq!(st, 200, "{v}");
    v["server"]["addresses"][network]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

on_both_engines!(allocate_list_show_delete, |r: Region| async move {
    let m = r.member("fip", "member").await;
    let other = r.member("fip-other", "member").await;
    let reader = r.user_in("fip-reader", &m.project_id, "reader").await;
    let public = external(&r, "public", "203.0.113.0/28").await;

    // The pools are the external networks, for any caller.
    let (st, v) = r
        .call("GET", "/os-floating-ip-pools", &reader.token, None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({"floating_ip_pools": [{"name": "public"}]}));

    // With one external network, a request without a pool takes from it,
    // with or without a body.
    let (st, v) = allocate(&r, &m.token, None).await;
    assert_eq!(st, 200, "{v}");
    let first = v["floating_ip"].clone();
    check_shape(&first);
    assert_eq!(first["pool"], "public");
    assert!(first["fixed_ip"].is_null() && first["instance_id"].is_null());
    let (st, v) = allocate(&r, &m.token, Some(json!({"pool": "public"}))).await;
    assert_eq!(st, 200, "{v}");
    let second = v["floating_ip"].clone();
    let (st, v) = allocate(&r, &m.token, Some(json!({"pool": public}))).await;
    assert_eq!(st, 200, "by the network's id: {v}");
    let third = v["floating_ip"].clone();
    assert_ne!(first["ip"], second["ip"]);

    // The id is the network service's floating IP's.
    let fid = id(&first);
    let (st, v) = r
        .net("GET", &format!("/floatingips/{fid}"), &m.token, None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["floatingip"]["floating_ip_address"], first["ip"]);
    assert_eq!(v["floatingip"]["floating_network_id"], public.as_str());
    assert_eq!(v["floatingip"]["project_id"], m.project_id.as_str());

    // Listed (oldest first) and shown, to readers too.
    let (st, v) = r.call("GET", "/os-floating-ips", &reader.token, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["floating_ips"], json!([first, second, third]));
    let (st, v) = r
        .call(
            "GET",
            &format!("/os-floating-ips/{fid}"),
            &reader.token,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["floating_ip"], first);

    // Readers do not allocate or release.
    let (st, v) = allocate(&r, &reader.token, None).await;
    assert_eq!(st, 403, "{v}");
    nova_error(&v, "forbidden", 403, "os-floating-ips:create");
    let (st, _) = r
        .call(
            "DELETE",
            &format!("/os-floating-ips/{fid}"),
            &reader.token,
            None,
        )
        .await;
    assert_eq!(st, 403);

    // Another project neither lists, sees nor releases them.
    let (_, v) = r.call("GET", "/os-floating-ips", &other.token, None).await;
    assert_eq!(v, json!({"floating_ips": []}));
    for method in ["GET", "DELETE"] {
        let (st, v) = r
            .call(
                method,
                &format!("/os-floating-ips/{fid}"),
                &other.token,
                None,
            )
            .await;
        assert_eq!(st, 404, "{method}: {v}");
        nova_error(
            &v,
            "itemNotFound",
            404,
            &format!("Floating IP not found for ID {fid}"),
        );
    }
    // The administrator sees it.
    let (st, _) = r
        .call("GET", &format!("/os-floating-ips/{fid}"), &r.admin, None)
        .await;
    assert_eq!(st, 200);

    // Unknown and malformed ids are not found.
    for bad in [MISSING, "not-a-uuid"] {
        let (st, v) = r
            .call("GET", &format!("/os-floating-ips/{bad}"), &m.token, None)
            .await;
        assert_eq!(st, 404, "{v}");
        nova_error(
            &v,
            "itemNotFound",
            404,
            &format!("Floating IP not found for ID {bad}"),
        );
    }

    // Released: 202, then gone here and in the network service.
    let (st, v) = r
        .call("DELETE", &format!("/os-floating-ips/{fid}"), &m.token, None)
        .await;
    assert_eq!(st, 202, "{v}");
    let (st, _) = r
        .call("GET", &format!("/os-floating-ips/{fid}"), &m.token, None)
        .await;
    assert_eq!(st, 404);
    let (st, _) = r
        .net("GET", &format!("/floatingips/{fid}"), &m.token, None)
        .await;
    assert_eq!(st, 404);
    let (_, v) = r.call("GET", "/os-floating-ips", &m.token, None).await;
    assert_eq!(v["floating_ips"], json!([second, third]));

    // A body Nova's schema refuses.
    let (st, v) = allocate(&r, &m.token, Some(json!({"pool": 5}))).await;
    assert_eq!(st, 400, "{v}");
    nova_error(&v, "badRequest", 400, "pool");
});

on_both_engines!(pools_quota_and_exhaustion, |r: Region| async move {
    let m = r.member("fip-q", "member").await;
    external(&r, "public", "203.0.113.0/28").await;
    // A /30 has one address to give: .1 is the gateway's.
    external(&r, "tiny", "198.51.100.0/30").await;

    let (_, v) = r.call("GET", "/os-floating-ip-pools", &m.token, None).await;
    assert_eq!(
        v,
        json!({"floating_ip_pools": [{"name": "public"}, {"name": "tiny"}]})
    );

    // An unknown pool; and with two pools, no pool named is Nova's default
    // pool, which this region has not.
    for body in [Some(json!({"pool": "nowhere"})), Some(json!({})), None] {
        let (st, v) = allocate(&r, &m.token, body.clone()).await;
        assert_eq!(st, 404, "{body:?}: {v}");
        nova_error(&v, "itemNotFound", 404, "Floating IP pool not found.");
    }

    // An exhausted pool is Nova's 404.
    let (st, v) = allocate(&r, &m.token, Some(json!({"pool": "tiny"}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["floating_ip"]["ip"], "198.51.100.2");
    let (st, v) = allocate(&r, &m.token, Some(json!({"pool": "tiny"}))).await;
    assert_eq!(st, 404, "{v}");
    nova_error(
        &v,
        "itemNotFound",
        404,
        "No more floating IPs in pool tiny.",
    );

    // The network service's quota is Nova's 403.
    let (st, v) = r
        .net(
            "PUT",
            &format!("/quotas/{}", m.project_id),
            &r.admin,
            Some(json!({"quota": {"floatingip": 1}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = allocate(&r, &m.token, Some(json!({"pool": "public"}))).await;
    assert_eq!(st, 403, "{v}");
    nova_error(
        &v,
        "forbidden",
        403,
        "IP allocation over quota in pool public.",
    );
});

on_both_engines!(associate_and_disassociate, |r: Region| async move {
    let m = r.member("fip-a", "member").await;
    let other = r.member("fip-a-other", "member").await;
    let public = external(&r, "public", "203.0.113.0/28").await;
    let net_id = private_network(&r, &m, &public, "10.30.0.0/24").await;
    let fl = flavor(&r, "fip-tiny", 1, 64).await;
    let s1 = boot(&r, &m, &fl, &net_id, "s1").await;
    let s2 = boot(&r, &m, &fl, &net_id, "s2").await;
    let fixed1 = addresses(&r, &m.token, &s1, "private").await[0]["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, v) = allocate(&r, &m.token, None).await;
    let fip = v["floating_ip"].clone();
    let (fid, ip) = (id(&fip), fip["ip"].as_str().unwrap().to_string());

    // Associated with the server's first IPv4 address.
    let (st, v) = action(&r, &m.token, &s1, json!({"addFloatingIp": {"address": ip}})).await;
    assert_eq!(st, 202, "{v}");

    // Nova's view: the fixed address and the server.
    let (_, v) = r
        .call("GET", &format!("/os-floating-ips/{fid}"), &m.token, None)
        .await;
    assert_eq!(v["floating_ip"]["fixed_ip"], fixed1.as_str());
    assert_eq!(v["floating_ip"]["instance_id"], s1.as_str());
    let (_, v) = r.call("GET", "/os-floating-ips", &m.token, None).await;
    assert_eq!(v["floating_ips"][0]["instance_id"], s1.as_str());

    // The network service's view: the server's port, through the router,
    // as the dataplane reads it.
    let (_, ports) = r
        .net("GET", &format!("/ports?device_id={s1}"), &m.token, None)
        .await;
    let port1 = ports["ports"][0]["id"].as_str().unwrap().to_string();
    let (_, v) = r
        .net("GET", &format!("/floatingips/{fid}"), &m.token, None)
        .await;
    assert_eq!(v["floatingip"]["port_id"], port1.as_str(), "{v}");
    assert_eq!(v["floatingip"]["fixed_ip_address"], fixed1.as_str());
    assert_eq!(v["floatingip"]["status"], "ACTIVE");
    assert!(v["floatingip"]["router_id"].is_string(), "{v}");
    let snapshot = himmel_network::store::snapshot(r.network.db())
        .await
        .unwrap();
    let seen = snapshot
        .floating_ips
        .iter()
        .find(|f| f.meta.id == fid)
        .unwrap();
    // The dataplane translates through the router, to the fixed address.
    assert_eq!(seen.port_id.as_deref(), Some(port1.as_str()));
    assert_eq!(seen.fixed_ip_address.as_deref(), Some(fixed1.as_str()));
    assert_eq!(
        seen.router_id.as_ref(),
        v["floatingip"]["router_id"]
            .as_str()
            .map(String::from)
            .as_ref()
    );

    // The server shows it after its fixed address, typed floating.
    let addrs = addresses(&r, &m.token, &s1, "private").await;
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert_eq!(addrs[0]["OS-EXT-IPS:type"], "fixed");
    assert_eq!(addrs[1]["addr"], ip.as_str());
    assert_eq!(addrs[1]["OS-EXT-IPS:type"], "floating");
    assert_eq!(addrs[1]["version"], 4);
    assert_eq!(
        addrs[1]["OS-EXT-IPS-MAC:mac_addr"],
        addrs[0]["OS-EXT-IPS-MAC:mac_addr"]
    );
    let (_, v) = r
        .call("GET", &format!("/servers/{s1}/ips"), &m.token, None)
        .await;
    assert_eq!(
        v["addresses"]["private"][1],
        json!({"version": 4, "addr": ip})
    );

    // Removing it from another server: Nova's 409.
    let (st, v) = action(
        &r,
        &m.token,
        &s2,
        json!({"removeFloatingIp": {"address": ip}}),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    nova_error(
        &v,
        "conflictingRequest",
        409,
        &format!("Floating IP {ip} is not associated with instance {s2}."),
    );

    // Associated again with another server: moved, as Nova lets the
    // network service move it.
    let (st, v) = action(&r, &m.token, &s2, json!({"addFloatingIp": {"address": ip}})).await;
    assert_eq!(st, 202, "{v}");
    let (_, v) = r
        .call("GET", &format!("/os-floating-ips/{fid}"), &m.token, None)
        .await;
    assert_eq!(v["floating_ip"]["instance_id"], s2.as_str());
    assert_eq!(addresses(&r, &m.token, &s1, "private").await.len(), 1);
    assert_eq!(addresses(&r, &m.token, &s2, "private").await.len(), 2);

    // Removed: 202, then it translates to nothing anywhere.
    let (st, v) = action(
        &r,
        &m.token,
        &s2,
        json!({"removeFloatingIp": {"address": ip}}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let (_, v) = r
        .call("GET", &format!("/os-floating-ips/{fid}"), &m.token, None)
        .await;
    assert!(v["floating_ip"]["fixed_ip"].is_null(), "{v}");
    assert!(v["floating_ip"]["instance_id"].is_null(), "{v}");
    let (_, v) = r
        .net("GET", &format!("/floatingips/{fid}"), &m.token, None)
        .await;
    assert!(v["floatingip"]["port_id"].is_null(), "{v}");
    assert!(v["floatingip"]["fixed_ip_address"].is_null(), "{v}");
    assert_eq!(v["floatingip"]["status"], "DOWN");
    assert_eq!(addresses(&r, &m.token, &s2, "private").await.len(), 1);
    // Removing it again: not associated, 409.
    let (st, v) = action(
        &r,
        &m.token,
        &s2,
        json!({"removeFloatingIp": {"address": ip}}),
    )
    .await;
    assert_eq!(st, 409, "{v}");

    // With the fixed address named.
    let (st, v) = action(
        &r,
        &m.token,
        &s1,
        json!({"addFloatingIp": {"address": ip, "fixed_address": fixed1}}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(addresses(&r, &m.token, &s1, "private").await.len(), 2);

    // Released while associated: 202, and the server no longer shows it.
    let (st, _) = r
        .call("DELETE", &format!("/os-floating-ips/{fid}"), &m.token, None)
        .await;
    assert_eq!(st, 202);
    assert_eq!(addresses(&r, &m.token, &s1, "private").await.len(), 1);

    // Another project: neither our server nor, from its own server, our
    // address.
    let (_, v) = allocate(&r, &m.token, None).await;
    let ip = v["floating_ip"]["ip"].as_str().unwrap().to_string();
    let (st, v) = action(
        &r,
        &other.token,
        &s1,
        json!({"addFloatingIp": {"address": ip}}),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    let other_net = private_network(&r, &other, &public, "10.31.0.0/24").await;
    let theirs = boot(&r, &other, &fl, &other_net, "theirs").await;
    let (st, v) = action(
        &r,
        &other.token,
        &theirs,
        json!({"addFloatingIp": {"address": ip}}),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    nova_error(&v, "itemNotFound", 404, "floating IP not found");
    let (st, v) = action(
        &r,
        &other.token,
        &theirs,
        json!({"removeFloatingIp": {"address": ip}}),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    nova_error(
        &v,
        "itemNotFound",
        404,
        &format!("Floating IP not found for address {ip}."),
    );
});

on_both_engines!(action_errors, |r: Region| async move {
    let m = r.member("fip-e", "member").await;
    let reader = r.user_in("fip-e-reader", &m.project_id, "reader").await;
    let public = external(&r, "public", "203.0.113.0/28").await;
    let net_id = private_network(&r, &m, &public, "10.40.0.0/24").await;
    let fl = flavor(&r, "fip-tiny", 1, 64).await;
    let server = boot(&r, &m, &fl, &net_id, "s").await;
    let (_, v) = allocate(&r, &m.token, None).await;
    let ip = v["floating_ip"]["ip"].as_str().unwrap().to_string();

    let cases = [
        (
            json!({"addFloatingIp": {"address": "192.0.2.77"}}),
            404,
            "itemNotFound",
            "floating IP not found".to_string(),
        ),
        (
            json!({"addFloatingIp": {"address": ip, "fixed_address": "10.99.0.5"}}),
            400,
            "badRequest",
            "Specified fixed address not assigned to instance".into(),
        ),
        (
            json!({"addFloatingIp": {"address": "nonsense"}}),
            400,
            "badRequest",
            "is not a 'ip-address'".into(),
        ),
        (
            json!({"addFloatingIp": {}}),
            400,
            "badRequest",
            "address".into(),
        ),
        (
            json!({"addFloatingIp": {"address": ip, "x": 1}}),
            400,
            "badRequest",
            "Additional properties are not allowed ('x' was unexpected)".into(),
        ),
        (
            json!({"removeFloatingIp": {"address": "192.0.2.77"}}),
            404,
            "itemNotFound",
            "Floating IP not found for address 192.0.2.77.".into(),
        ),
        (
            json!({"removeFloatingIp": {"address": ip}}),
            409,
            "conflictingRequest",
            format!("Floating IP {ip} is not associated with instance {server}."),
        ),
    ];
    for (body, status, kind, text) in cases {
        let (st, v) = action(&r, &m.token, &server, body.clone()).await;
        assert_eq!(st, status, "{body}: {v}");
        nova_error(&v, kind, status, &text);
    }

    // Readers may not associate.
    let (st, v) = action(
        &r,
        &reader.token,
        &server,
        json!({"addFloatingIp": {"address": ip}}),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    nova_error(&v, "forbidden", 403, "not authorized");

    // The fixed address already has another floating IP: the network
    // service's conflict, Nova's 400.
    let (st, v) = action(
        &r,
        &m.token,
        &server,
        json!({"addFloatingIp": {"address": ip}}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let (_, v) = allocate(&r, &m.token, None).await;
    let ip2 = v["floating_ip"]["ip"].as_str().unwrap().to_string();
    let (st, v) = action(
        &r,
        &m.token,
        &server,
        json!({"addFloatingIp": {"address": ip2}}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    nova_error(&v, "badRequest", 400, "already has a floating IP");

    // A server on a network no router joins to the pool: Nova's 400.
    let (_, net) = r
        .net(
            "POST",
            "/networks",
            &m.token,
            Some(json!({"network": {"name": "isolated"}})),
        )
        .await;
    let isolated = id(&net["network"]);
    let (st, _) = r
        .net(
            "POST",
            "/subnets",
            &m.token,
            Some(json!({"subnet": {"network_id": isolated, "ip_version": 4,
                        "cidr": "10.41.0.0/24"}})),
        )
        .await;
    assert_eq!(st, 201);
    let lonely = boot(&r, &m, &fl, &isolated, "lonely").await;
    let (st, v) = action(
        &r,
        &m.token,
        &lonely,
        json!({"addFloatingIp": {"address": ip2}}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    nova_error(
        &v,
        "badRequest",
        400,
        &format!("Unable to associate floating IP {ip2} to fixed IP"),
    );
});
