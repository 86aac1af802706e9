//! Servers over HTTP with an in-memory hypervisor: create to ACTIVE, the
//! lifecycle actions, metadata and interfaces, and that bad input and
//! failed builds leave nothing behind. SQLite and PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{
    flavor, nova_error, tenant_network, wait_status, Region, BIG_IMAGE, DISK_IMAGE, KERNEL_IMAGE,
    QUEUED_IMAGE, RAMDISK_IMAGE,
};

async fn create(r: &Region, token: &str, body: Value) -> (u16, Value) {
    r.call("POST", "/servers", token, Some(json!({ "server": body })))
        .await
}

async fn wait_gone(r: &Region, token: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = r.call("GET", &format!("/servers/{id}"), token, None).await;
        if status == 404 {
            return;
        }
        assert!(Instant::now() < deadline, "server {id} was never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ports_of(r: &Region, device_id: &str) -> Vec<Value> {
    let (status, v) = r.net("GET", "/ports", &r.admin, None).await;
    assert_eq!(status, 200);
    v["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["device_id"] == device_id)
        .cloned()
        .collect()
}

async fn action(r: &Region, token: &str, id: &str, body: Value) -> (u16, Value) {
    r.call("POST", &format!("/servers/{id}/action"), token, Some(body))
        .await
}

on_both_engines!(server_lifecycle, |r: Region| async move {
    let m = r.member("life", "member").await;
    let net = tenant_network(&r, &m.token, "life-net", "10.20.0.0/24").await;
    let small = flavor(&r, "life-small", 1, 256).await;
    let big = flavor(&r, "life-big", 2, 512).await;
    let (status, created) = create(
        &r,
        &m.token,
        json!({"name": "web-1", "imageRef": DISK_IMAGE, "flavorRef": small,
               "networks": [{"uuid": net}], "metadata": {"role": "web"},
               "user_data": "IyEvYmluL3NoCmVjaG8gaGk="}),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let id = created["server"]["id"].as_str().unwrap().to_string();
    assert!(created["server"]["adminPass"].is_string());
    assert_eq!(created["server"]["security_groups"][0]["name"], "default");

    let server = wait_status(&r, &m.token, &id, "ACTIVE").await;
    assert_eq!(server["OS-EXT-STS:vm_state"], "active");
    assert_eq!(server["OS-EXT-STS:power_state"], 1);
    assert_eq!(server["metadata"]["role"], "web");
    assert_eq!(server["flavor"]["id"], small.as_str());
    assert_eq!(server["image"]["id"], DISK_IMAGE);
    assert_eq!(server["OS-EXT-AZ:availability_zone"], "nova");
    assert!(server["OS-SRV-USG:launched_at"].is_string());
    assert!(
        server.get("OS-EXT-SRV-ATTR:host").is_none(),
        "host is for admins"
    );
    let addr = server["addresses"]["life-net"][0]["addr"].as_str().unwrap();
    assert!(addr.starts_with("10.20.0."), "{addr}");
    let (_, as_admin) = r
        .call("GET", &format!("/servers/{id}"), &r.admin, None)
        .await;
    assert_eq!(as_admin["server"]["OS-EXT-SRV-ATTR:host"], "testhost");

    // The port: made by compute, bound to this host, in the default group.
    let ports = ports_of(&r, &id).await;
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["device_owner"], "compute:nova");
    assert_eq!(ports[0]["binding:host_id"], "testhost");
    assert_eq!(ports[0]["fixed_ips"][0]["ip_address"], addr);
    // The hypervisor runs it with that port's MAC on a raw disk copy.
    let inst = r.host.instance(&id).unwrap();
    let plan = inst.plan.unwrap();
    assert!(inst.running);
    assert_eq!(plan.nics[0].1, ports[0]["mac_address"].as_str().unwrap());
    assert_eq!(plan.memory_mib, 256);
    match &plan.boot {
        himmel_compute::host::BootPlan::Disk { path, format } => {
            assert_eq!(format, "raw");
            assert!(path.is_file());
        }
        other => panic!("unexpected boot {other:?}"),
    }

    // Lists, filters, paging.
    let (status, v) = r.call("GET", "/servers", &m.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["servers"][0]["id"], id.as_str());
    let (_, v) = r
        .call("GET", "/servers/detail?name=^web", &m.token, None)
        .await;
    assert_eq!(v["servers"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["servers"][0]["addresses"], server["addresses"],
        "the list reads ports in bulk and shows what show shows"
    );
    let (_, v) = r
        .call("GET", "/servers/detail?name=nomatch", &m.token, None)
        .await;
    assert_eq!(v["servers"].as_array().unwrap().len(), 0);
    let (_, v) = r
        .call("GET", "/servers?status=SHUTOFF", &m.token, None)
        .await;
    assert_eq!(v["servers"].as_array().unwrap().len(), 0);
    let (_, v) = r
        .call("GET", &format!("/servers?flavor={small}"), &m.token, None)
        .await;
    assert_eq!(v["servers"].as_array().unwrap().len(), 1);
    let (status, _) = r.call("GET", "/servers?marker=nope", &m.token, None).await;
    assert_eq!(status, 400);
    let (status, _) = r
        .call("GET", "/servers?all_tenants=1", &m.token, None)
        .await;
    assert_eq!(status, 403);
    let (_, v) = r
        .call("GET", "/servers?all_tenants=1", &r.admin, None)
        .await;
    assert!(v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == id.as_str()));
    // Another project does not see it.
    let other = r.member("life-other", "member").await;
    let (status, v) = r
        .call("GET", &format!("/servers/{id}"), &other.token, None)
        .await;
    assert_eq!(status, 404);
    assert!(v["itemNotFound"]["message"].is_string());
    let (_, v) = r.call("GET", "/servers", &other.token, None).await;
    assert_eq!(v["servers"].as_array().unwrap().len(), 0);
    let (status, _) = r
        .call("DELETE", &format!("/servers/{id}"), &other.token, None)
        .await;
    assert_eq!(status, 404);
    // Readers read but do not act.
    let reader = r.user_in("life-reader", &m.project_id, "reader").await;
    let (status, _) = r
        .call("GET", &format!("/servers/{id}"), &reader.token, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = action(&r, &reader.token, &id, json!({"os-stop": null})).await;
    assert_eq!(status, 403);

    // Rename.
    let (status, v) = r
        .call(
            "PUT",
            &format!("/servers/{id}"),
            &m.token,
            Some(json!({"server": {"name": "web-2",
                "accessIPv6": "0000:0000:0000:0000:0000:babe:220.12.22.2"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["server"]["name"], "web-2");
    assert_eq!(
        v["server"]["accessIPv6"], "::babe:dc0c:1602",
        "as Nova shows it"
    );
    assert_eq!(
        v["server"]["addresses"]["life-net"],
        json!([{"version": 4, "addr": addr}]),
        "an update's addresses have neither type nor MAC"
    );
    assert!(
        v["server"].get("OS-EXT-STS:vm_state").is_none() && v["server"].get("key_name").is_none(),
        "an update answers the shorter body: {v}"
    );

    // Addresses by network, and the list filtered by address.
    let (status, v) = r
        .call("GET", &format!("/servers/{id}/ips"), &reader.token, None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["addresses"]["life-net"],
        json!([{"version": 4, "addr": addr}])
    );
    let (status, v) = r
        .call(
            "GET",
            &format!("/servers/{id}/ips/life-net"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"life-net": [{"version": 4, "addr": addr}]}));
    let (status, v) = r
        .call(
            "GET",
            &format!("/servers/{id}/ips/no-such-net"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert!(v["itemNotFound"]["message"]
        .as_str()
        .unwrap()
        .contains("network"));
    let (_, v) = r
        .call("GET", &format!("/servers?ip={addr}"), &m.token, None)
        .await;
    assert_eq!(v["servers"][0]["id"], id.as_str());
    let (_, v) = r.call("GET", "/servers?ip=^192%5C.", &m.token, None).await;
    assert_eq!(v["servers"].as_array().unwrap().len(), 0);

    // Without any security group the server shows no `security_groups`, as in Nova.
    let (status, v) = action(
        &r,
        &m.token,
        &id,
        json!({"removeSecurityGroup": {"name": "default"}}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let (_, v) = r
        .call("GET", &format!("/servers/{id}"), &m.token, None)
        .await;
    assert!(v["server"].get("security_groups").is_none(), "{v}");
    let (status, v) = action(
        &r,
        &m.token,
        &id,
        json!({"addSecurityGroup": {"name": "default"}}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let (_, v) = r
        .call("GET", &format!("/servers/{id}"), &m.token, None)
        .await;
    assert_eq!(v["server"]["security_groups"][0]["name"], "default");

    // Stop, start, reboot, pause, unpause.
    let (status, _) = action(&r, &m.token, &id, json!({"os-stop": null})).await;
    assert_eq!(status, 202);
    let s = wait_status(&r, &m.token, &id, "SHUTOFF").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4);
    assert!(s.get("progress").is_none(), "no progress while SHUTOFF");
    assert!(!r.host.instance(&id).unwrap().running);
    let (status, v) = action(&r, &m.token, &id, json!({"os-stop": null})).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["conflictingRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("vm_state stopped"));
    let (status, _) = action(&r, &m.token, &id, json!({"os-start": null})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &id, "ACTIVE").await;
    assert!(r.host.instance(&id).unwrap().running);
    let starts = r.host.instance(&id).unwrap().starts;
    let (status, _) = action(&r, &m.token, &id, json!({"reboot": {"type": "HARD"}})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &id, "ACTIVE").await;
    assert_eq!(r.host.instance(&id).unwrap().starts, starts + 1);
    let (status, _) = action(&r, &m.token, &id, json!({"reboot": {"type": "GENTLY"}})).await;
    assert_eq!(status, 400);
    let (status, _) = action(&r, &m.token, &id, json!({"pause": null})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &id, "PAUSED").await;
    assert!(r.host.instance(&id).unwrap().paused);
    let (status, _) = action(&r, &m.token, &id, json!({"unpause": null})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &id, "ACTIVE").await;
    assert!(!r.host.instance(&id).unwrap().paused);

    // Console output, the last lines when asked.
    let (status, v) = action(
        &r,
        &m.token,
        &id,
        json!({"os-getConsoleOutput": {"length": 2}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let out = v["output"].as_str().unwrap();
    assert_eq!(out.lines().count(), 2);
    assert!(out.ends_with("line 5"));

    // Resize and confirm; resize and revert.
    let (status, v) = action(&r, &m.token, &id, json!({"resize": {"flavorRef": small}})).await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = action(&r, &m.token, &id, json!({"resize": {"flavorRef": big}})).await;
    assert_eq!(status, 202);
    let s = wait_status(&r, &m.token, &id, "VERIFY_RESIZE").await;
    assert_eq!(s["flavor"]["id"], big.as_str());
    assert_eq!(r.host.instance(&id).unwrap().plan.unwrap().vcpus, 2);
    let (status, _) = action(&r, &m.token, &id, json!({"confirmResize": null})).await;
    assert_eq!(status, 204);
    wait_status(&r, &m.token, &id, "ACTIVE").await;
    let (status, _) = action(&r, &m.token, &id, json!({"resize": {"flavorRef": small}})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &id, "VERIFY_RESIZE").await;
    let (status, _) = action(&r, &m.token, &id, json!({"revertResize": null})).await;
    assert_eq!(status, 202);
    let s = wait_status(&r, &m.token, &id, "ACTIVE").await;
    assert_eq!(s["flavor"]["id"], big.as_str());
    assert_eq!(r.host.instance(&id).unwrap().plan.unwrap().vcpus, 2);

    // A locked server refuses state changes and its delete until it is unlocked; an
    // administrator's lock is lifted only by an administrator.
    let (status, _) = action(&r, &m.token, &id, json!({"lock": null})).await;
    assert_eq!(status, 202);
    let (status, v) = action(&r, &m.token, &id, json!({"os-stop": null})).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["conflictingRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("locked"));
    let (status, _) = r
        .call("DELETE", &format!("/servers/{id}"), &m.token, None)
        .await;
    assert_eq!(status, 409);
    let (status, _) = action(&r, &reader.token, &id, json!({"unlock": null})).await;
    assert_eq!(status, 403, "readers do not unlock");
    let (status, _) = action(&r, &m.token, &id, json!({"unlock": null})).await;
    assert_eq!(status, 202);
    let (status, _) = action(&r, &r.admin, &id, json!({"lock": null})).await;
    assert_eq!(status, 202);
    let (status, _) = action(&r, &m.token, &id, json!({"unlock": null})).await;
    assert_eq!(status, 403, "the owner cannot lift an administrator's lock");
    let (status, _) = action(&r, &r.admin, &id, json!({"unlock": null})).await;
    assert_eq!(status, 202);

    // A stopped server is resized without being started, and stays stopped after the confirm.
    let (status, _) = action(&r, &m.token, &id, json!({"os-stop": null})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &id, "SHUTOFF").await;
    let (status, v) = action(&r, &m.token, &id, json!({"resize": {"flavorRef": small}})).await;
    assert_eq!(status, 202, "{v}");
    let s = wait_status(&r, &m.token, &id, "VERIFY_RESIZE").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4, "still shut down");
    assert!(!r.host.instance(&id).unwrap().running);
    let (status, _) = action(&r, &m.token, &id, json!({"confirmResize": null})).await;
    assert_eq!(status, 204);
    let s = wait_status(&r, &m.token, &id, "SHUTOFF").await;
    assert_eq!(s["flavor"]["id"], small.as_str());
    assert!(!r.host.instance(&id).unwrap().running);
    let (status, _) = action(&r, &m.token, &id, json!({"os-start": null})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &id, "ACTIVE").await;
    assert_eq!(r.host.instance(&id).unwrap().plan.unwrap().vcpus, 1);

    // Rebuild onto a kernel image: the qemu driver boots it directly. A
    // stopped server is rebuilt without being started, as in Nova.
    let (status, _) = action(&r, &m.token, &id, json!({"os-stop": null})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &id, "SHUTOFF").await;
    let (status, v) = action(
        &r,
        &m.token,
        &id,
        json!({"rebuild": {"imageRef": KERNEL_IMAGE, "name": "web-3"}}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["server"]["name"], "web-3");
    let s = wait_status(&r, &m.token, &id, "SHUTOFF").await;
    assert_eq!(s["image"]["id"], KERNEL_IMAGE);
    assert!(!r.host.instance(&id).unwrap().running, "still stopped");
    let (status, _) = action(&r, &m.token, &id, json!({"os-start": null})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &id, "ACTIVE").await;
    match r.host.instance(&id).unwrap().plan.unwrap().boot {
        himmel_compute::host::BootPlan::Kernel { initrd, .. } => assert!(initrd.is_some()),
        other => panic!("unexpected boot {other:?}"),
    }

    // Metadata.
    let meta = format!("/servers/{id}/metadata");
    let (status, v) = r
        .call(
            "POST",
            &meta,
            &m.token,
            Some(json!({"metadata": {"tier": "1"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["metadata"], json!({"role": "web", "tier": "1"}));
    let (status, v) = r.call("GET", &format!("{meta}/tier"), &m.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["meta"]["tier"], "1");
    let (status, _) = r
        .call("DELETE", &format!("{meta}/tier"), &m.token, None)
        .await;
    assert_eq!(status, 204);
    let (status, v) = r
        .call(
            "PUT",
            &meta,
            &m.token,
            Some(json!({"metadata": {"only": "x"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["metadata"], json!({"only": "x"}));

    // Interfaces: attach another network, detach it again.
    let net2 = tenant_network(&r, &m.token, "life-net2", "10.21.0.0/24").await;
    let (status, v) = r
        .call(
            "POST",
            &format!("/servers/{id}/os-interface"),
            &m.token,
            Some(json!({"interfaceAttachment": {"net_id": net2}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let port2 = v["interfaceAttachment"]["port_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, v) = r
        .call(
            "GET",
            &format!("/servers/{id}/os-interface"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(v["interfaceAttachments"].as_array().unwrap().len(), 2);
    let (status, _) = r
        .call(
            "DELETE",
            &format!("/servers/{id}/os-interface/{port2}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(ports_of(&r, &id).await.len(), 1);

    // Instance actions, newest first.
    let (status, v) = r
        .call(
            "GET",
            &format!("/servers/{id}/os-instance-actions"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = v["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.last(), Some(&"create"));
    assert!(
        actions.contains(&"resize") && actions.contains(&"rebuild") && actions.contains(&"stop")
    );
    let request_id = v["instanceActions"][0]["request_id"].as_str().unwrap();
    let (status, _) = r
        .call(
            "GET",
            &format!("/servers/{id}/os-instance-actions/{request_id}"),
            &m.token,
            None,
        )
        .await;
    assert_eq!(status, 200);

    // Delete: the instance, its files and its port go.
    let (status, _) = r
        .call("DELETE", &format!("/servers/{id}"), &m.token, None)
        .await;
    assert_eq!(status, 204);
    wait_gone(&r, &m.token, &id).await;
    assert!(r.host.instance(&id).is_none());
    assert!(ports_of(&r, &id).await.is_empty());
    assert!(!r
        .compute
        .config()
        .state_dir
        .join("instances")
        .join(&id)
        .exists());
});

on_both_engines!(bad_requests_leave_nothing_behind, |r: Region| async move {
    let m = r.member("bad", "member").await;
    let net = tenant_network(&r, &m.token, "bad-net", "10.30.0.0/29").await;
    let small = flavor(&r, "bad-small", 1, 128).await;
    let base = json!({"name": "x", "imageRef": DISK_IMAGE, "flavorRef": small, "networks": [{"uuid": net}]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, want) in [
        (with("flavorRef", json!("no-such-flavor")), 400),
        (with("imageRef", json!("no-such-image")), 400),
        (with("imageRef", json!(QUEUED_IMAGE)), 400),
        (with("imageRef", json!(BIG_IMAGE)), 400),
        (with("networks", json!([{"uuid": "no-such-net"}])), 400),
        (with("networks", json!([{"port": "no-such-port"}])), 400),
        (with("networks", json!("auto")), 400),
        (with("key_name", json!("nokey")), 400),
        (with("user_data", json!("%%% not base64")), 400),
        (with("availability_zone", json!("elsewhere")), 400),
        (with("name", json!("")), 400),
        (with("min_count", json!(0)), 400),
        (with("metadata", json!({"k": 1})), 400),
        (
            with("security_groups", json!([{"name": "no-such-group"}])),
            400,
        ),
        (
            with(
                "block_device_mapping_v2",
                json!([{"source_type": "volume", "destination_type": "volume", "uuid": "v"}]),
            ),
            400,
        ),
        (with("colour", json!("red")), 400),
        (with("availability_zone", json!("nova:testhost")), 403),
    ] {
        let (status, v) = create(&r, &m.token, body.clone()).await;
        assert_eq!(status, want, "{body} -> {v}");
        let key = if want == 400 {
            "badRequest"
        } else {
            "forbidden"
        };
        assert!(v[key]["message"].is_string(), "{v}");
    }
    // Another project's network is not found.
    let other = r.member("bad-other", "member").await;
    let (status, _) = create(&r, &other.token, base.clone()).await;
    assert_eq!(status, 400);

    // A /29 has 5 usable addresses after the gateway and DHCP: the sixth
    // server finds none, and what its request made is gone again.
    let mut made = Vec::new();
    loop {
        let (status, v) = create(&r, &m.token, base.clone()).await;
        if status != 202 {
            assert_eq!(status, 409, "{v}");
            assert!(v["conflictingRequest"]["message"]
                .as_str()
                .unwrap()
                .contains("No more IP addresses"));
            break;
        }
        made.push(v["server"]["id"].as_str().unwrap().to_string());
        assert!(made.len() < 10, "the subnet never ran out");
    }
    let (_, v) = r.call("GET", "/servers", &m.token, None).await;
    assert_eq!(v["servers"].as_array().unwrap().len(), made.len());
    let (_, ports) = r.net("GET", "/ports", &m.token, None).await;
    let compute_ports = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["device_owner"] == "compute:nova")
        .count();
    assert_eq!(compute_ports, made.len());

    // Quota: instances, then cores.
    let (status, _) = r
        .call(
            "PUT",
            &format!("/os-quota-sets/{}", m.project_id),
            &r.admin,
            Some(json!({"quota_set": {"instances": made.len()}})),
        )
        .await;
    assert_eq!(status, 200);
    for id in &made {
        let (status, _) = r
            .call("DELETE", &format!("/servers/{id}"), &m.token, None)
            .await;
        assert_eq!(status, 204);
    }
    for id in &made {
        wait_gone(&r, &m.token, id).await;
    }
    let (status, v) = create(&r, &m.token, with("max_count", json!(made.len() + 1))).await;
    assert_eq!(status, 202, "{v}");
    let (_, v) = r.call("GET", "/servers", &m.token, None).await;
    assert_eq!(
        v["servers"].as_array().unwrap().len(),
        made.len(),
        "max_count is cut to the quota"
    );
    let (status, v) = create(&r, &m.token, base.clone()).await;
    assert_eq!(status, 403, "{v}");
    assert!(v["forbidden"]["message"]
        .as_str()
        .unwrap()
        .contains("Quota exceeded for instances"));
    let (_, limits) = r.call("GET", "/limits", &m.token, None).await;
    assert_eq!(
        limits["limits"]["absolute"]["totalInstancesUsed"],
        made.len()
    );
});

on_both_engines!(
    failed_builds_say_why_and_leak_nothing,
    |r: Region| async move {
        let m = r.member("fail", "member").await;
        let net = tenant_network(&r, &m.token, "fail-net", "10.40.0.0/24").await;
        let small = flavor(&r, "fail-small", 1, 128).await;
        r.host
            .fail_start
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (status, v) = create(
        &r,
        &m.token,
        json!({"name": "doomed", "imageRef": DISK_IMAGE, "flavorRef": small, "networks": [{"uuid": net}]}),
    )
    .await;
        assert_eq!(status, 202, "{v}");
        let id = v["server"]["id"].as_str().unwrap().to_string();
        let s = wait_status(&r, &m.token, &id, "ERROR").await;
        assert!(
            s["fault"]["message"]
                .as_str()
                .unwrap()
                .contains("could not boot"),
            "{s}"
        );
        assert_eq!(s["fault"]["code"], 500);
        assert!(
            ports_of(&r, &id).await.is_empty(),
            "the ports of a failed build are gone"
        );
        assert!(r.host.instance(&id).is_none());
        r.host
            .fail_start
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let (status, _) = action(&r, &m.token, &id, json!({"os-start": null})).await;
        assert_eq!(status, 409);
        let (status, _) = r
            .call("DELETE", &format!("/servers/{id}"), &m.token, None)
            .await;
        assert_eq!(status, 204);
        wait_gone(&r, &m.token, &id).await;

        // An instance the host runs but nobody wants is removed; a wanted one
        // the host lost (a restart) is started again.
        use himmel_compute::host::Host;
        r.host.prepare("stray").unwrap();
        let (status, v) = create(
        &r,
        &m.token,
        json!({"name": "keeper", "imageRef": DISK_IMAGE, "flavorRef": small, "networks": [{"uuid": net}]}),
    )
    .await;
        assert_eq!(status, 202);
        let keeper = v["server"]["id"].as_str().unwrap().to_string();
        wait_status(&r, &m.token, &keeper, "ACTIVE").await;
        r.host.stop(&keeper, Duration::ZERO).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.host.instance("stray").is_some() || !r.host.instance(&keeper).unwrap().running {
            assert!(Instant::now() < deadline, "the reconciler did not converge");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
);

on_both_engines!(guest_metadata, |r: Region| async move {
    use himmel_network::metadata::InstanceMetadata;
    let m = r.member("meta", "member").await;
    let net = tenant_network(&r, &m.token, "meta-net", "10.50.0.0/24").await;
    let small = flavor(&r, "meta-small", 1, 128).await;
    let (status, key) = r
        .call(
            "POST",
            "/os-keypairs",
            &m.token,
            Some(json!({"keypair": {"name": "mykey"}})),
        )
        .await;
    assert_eq!(status, 200);
    let public_key = key["keypair"]["public_key"].as_str().unwrap().to_string();
    let (status, v) = create(
        &r,
        &m.token,
        json!({"name": "Meta Server", "imageRef": DISK_IMAGE, "flavorRef": small,
               "networks": [{"uuid": net}], "key_name": "mykey", "metadata": {"a": "b"},
               "user_data": "aGVsbG8gZ3Vlc3QK"}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let id = v["server"]["id"].as_str().unwrap().to_string();
    let s = wait_status(&r, &m.token, &id, "ACTIVE").await;
    let ip = s["addresses"]["meta-net"][0]["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let port = ports_of(&r, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let md = himmel_compute::metadata::GuestMetadata::new(r.compute.clone());
    let get = |path: &'static str| {
        let (md, id, port) = (&md, id.clone(), port.clone());
        async move { md.answer(&id, &port, path).await }
    };
    let meta = get("/openstack/latest/meta_data.json").await.unwrap();
    let meta: Value = serde_json::from_slice(&meta.body).unwrap();
    assert_eq!(meta["uuid"], id.as_str());
    assert_eq!(meta["name"], "Meta Server");
    assert_eq!(meta["hostname"], "meta-server");
    assert_eq!(meta["project_id"], m.project_id.as_str());
    assert_eq!(meta["public_keys"]["mykey"], public_key.as_str());
    assert_eq!(meta["meta"]["a"], "b");
    assert_eq!(meta["availability_zone"], "nova");
    let nd = get("/openstack/latest/network_data.json").await.unwrap();
    let nd: Value = serde_json::from_slice(&nd.body).unwrap();
    assert_eq!(nd["networks"][0]["ip_address"], ip.as_str());
    assert_eq!(nd["networks"][0]["type"], "ipv4_dhcp");
    assert_eq!(
        get("/openstack/latest/user_data").await.unwrap().body,
        b"hello guest\n"
    );
    assert!(String::from_utf8(get("/openstack").await.unwrap().body)
        .unwrap()
        .contains("latest"));
    assert_eq!(
        get("/latest/meta-data/instance-id").await.unwrap().body,
        id.as_bytes()
    );
    assert_eq!(
        get("/latest/meta-data/local-ipv4").await.unwrap().body,
        ip.as_bytes()
    );
    assert_eq!(
        get("/latest/meta-data/public-keys/").await.unwrap().body,
        b"0=mykey"
    );
    assert_eq!(
        get("/latest/meta-data/public-keys/0/openssh-key")
            .await
            .unwrap()
            .body,
        public_key.as_bytes()
    );
    assert!(get("/latest/meta-data/nothing-here").await.is_none());
    // Another port does not speak for this server.
    assert!(md
        .answer(&id, "some-other-port", "/openstack/latest/meta_data.json")
        .await
        .is_none());

    // The guest posts its password once; the owner reads and clears it.
    let listing = String::from_utf8(get("/openstack/latest").await.unwrap().body).unwrap();
    assert!(listing.lines().any(|l| l == "password"), "{listing}");
    assert!(get("/openstack/2012-08-10/password").await.is_none());
    assert_eq!(get("/openstack/latest/password").await.unwrap().body, b"");
    let api = format!("/servers/{id}/os-server-password");
    let (status, v) = r.call("GET", &api, &m.token, None).await;
    assert_eq!((status, v), (200, json!({"password": ""})));
    let post = |path: &'static str, body: &'static [u8]| {
        let (md, id, port) = (&md, id.clone(), port.clone());
        async move { md.post(&id, &port, path, body).await.as_u16() }
    };
    assert_eq!(post("/openstack/latest/password", &[b'x'; 257]).await, 400);
    assert_eq!(post("/openstack/2012-08-10/password", b"secret").await, 404);
    assert_eq!(
        post("/openstack/latest/meta_data.json", b"secret").await,
        404
    );
    assert_eq!(
        md.post(&id, "some-other-port", "/openstack/latest/password", b"x")
            .await
            .as_u16(),
        404
    );
    assert_eq!(
        post("/openstack/2013-04-04/password", b"c2VjcmV0").await,
        200
    );
    assert_eq!(post("/openstack/latest/password", b"again").await, 409);
    assert_eq!(
        get("/openstack/latest/password").await.unwrap().body,
        b"c2VjcmV0"
    );
    let reader = r.user_in("meta", &m.project_id, "reader").await;
    let (status, v) = r.call("GET", &api, &reader.token, None).await;
    assert_eq!((status, v), (200, json!({"password": "c2VjcmV0"})));
    let (status, _) = r.call("DELETE", &api, &reader.token, None).await;
    assert_eq!(status, 403, "readers do not clear the password");
    let other = r.member("meta-other", "member").await;
    let (status, _) = r.call("GET", &api, &other.token, None).await;
    assert_eq!(status, 404, "another project does not see the server");
    let (status, _) = r.call("DELETE", &api, &m.token, None).await;
    assert_eq!(status, 204);
    let (_, v) = r.call("GET", &api, &m.token, None).await;
    assert_eq!(v, json!({"password": ""}));
    assert_eq!(post("/openstack/latest/password", b"new").await, 200);
});

/// Waits until the server has no task (its snapshot is stored and rotated).
async fn wait_task_done(r: &Region, token: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = r.call("GET", &format!("/servers/{id}"), token, None).await;
        if v["server"]["OS-EXT-STS:task_state"].is_null() {
            return;
        }
        assert!(Instant::now() < deadline, "server {id} kept its task: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The request and data of the snapshot `name` once it is stored, or None
/// when its image was deleted because the snapshot failed.
async fn snapshot_stored(
    r: &Region,
    name: &str,
) -> Option<(himmel_compute::images::NewImage, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        {
            let created = r.images.created.lock().unwrap();
            let (id, req, data) = created
                .iter()
                .find(|(_, req, _)| req.name == name)
                .expect("the image was queued");
            if let Some(data) = data {
                return Some((req.clone(), data.clone()));
            }
            // A failed snapshot's image is deleted.
            r.images.get(id)?;
        }
        assert!(Instant::now() < deadline, "snapshot {name} never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// createImage stores what the server's root is now: a VM's disk, a running
// namespace instance's packed root filesystem, a stopped one's image (its
// next start begins from that again). A VM booting a kernel has no disk.
on_both_engines!(create_image_snapshots_the_root, |r: Region| async move {
    let m = r.member("snap", "member").await;
    let net = tenant_network(&r, &m.token, "snap-net", "10.23.0.0/24").await;
    let vm_flavor = flavor(&r, "snap-vm", 1, 256).await;
    let ns_flavor = flavor(&r, "snap-ns", 1, 64).await;
    let (status, _) = r
        .call(
            "POST",
            &format!("/flavors/{ns_flavor}/os-extra_specs"),
            &r.admin,
            Some(json!({"extra_specs": {"himmel:driver": "namespace"}})),
        )
        .await;
    assert_eq!(status, 200);
    let boot = |image: &str, flavor: &str, name: &str| {
        json!({"name": name, "imageRef": image, "flavorRef": flavor,
               "networks": [{"uuid": net}]})
    };
    let snapshot = |id: String, name: &'static str| {
        let (r, token) = (&r, m.token.clone());
        async move {
            let body = json!({"createImage": {"name": name, "metadata": {"purpose": "test"}}});
            let (status, v) = action(r, &token, &id, body).await;
            (status, v)
        }
    };
    let stored = |name: &'static str| {
        let r = &r;
        async move {
            let (req, data) = snapshot_stored(r, name)
                .await
                .expect("the snapshot is stored");
            (req, String::from_utf8(data).unwrap())
        }
    };

    let (_, v) = create(&r, &m.token, boot(DISK_IMAGE, &vm_flavor, "vm")).await;
    let vm = v["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &vm, "ACTIVE").await;
    let (status, v) = snapshot(vm.clone(), "vm-snap").await;
    assert_eq!(status, 202, "{v}");
    let (req, data) = stored("vm-snap").await;
    assert_eq!(data, format!("data of {DISK_IMAGE}"));
    assert_eq!(
        (req.disk_format.as_str(), req.container_format.as_str()),
        ("raw", "bare")
    );
    assert_eq!(req.properties["image_type"], "snapshot");
    assert_eq!(req.properties["instance_uuid"], vm);
    assert_eq!(req.properties["base_image_ref"], DISK_IMAGE);
    assert_eq!(req.properties["purpose"], "test");

    let (_, v) = create(&r, &m.token, boot(KERNEL_IMAGE, &ns_flavor, "ns")).await;
    let ns = v["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &ns, "ACTIVE").await;
    let (status, v) = snapshot(ns.clone(), "ns-running").await;
    assert_eq!(status, 202, "{v}");
    let (req, data) = stored("ns-running").await;
    wait_task_done(&r, &m.token, &ns).await;
    assert_eq!(data, format!("rootfs of {ns} within {}", 64u64 << 20));
    assert_eq!(
        (req.disk_format.as_str(), req.container_format.as_str()),
        ("ari", "ari")
    );
    assert_eq!(req.properties["instance_uuid"], ns);

    let (status, _) = action(&r, &m.token, &ns, json!({"os-stop": null})).await;
    assert_eq!(status, 202);
    wait_status(&r, &m.token, &ns, "SHUTOFF").await;
    let (status, v) = snapshot(ns.clone(), "ns-stopped").await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        stored("ns-stopped").await.1,
        format!("data of {RAMDISK_IMAGE}")
    );

    // A root filesystem that cannot be packed leaves no image behind.
    let tiny_flavor = flavor(&r, "snap-tiny", 1, 16).await;
    let (status, _) = r
        .call(
            "POST",
            &format!("/flavors/{tiny_flavor}/os-extra_specs"),
            &r.admin,
            Some(json!({"extra_specs": {"himmel:driver": "namespace"}})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, v) = create(&r, &m.token, boot(KERNEL_IMAGE, &tiny_flavor, "tiny")).await;
    let tiny = v["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &tiny, "ACTIVE").await;
    let (status, v) = snapshot(tiny.clone(), "tiny-snap").await;
    assert_eq!(status, 202, "{v}");
    assert!(
        snapshot_stored(&r, "tiny-snap").await.is_none(),
        "an image that could not be taken is deleted"
    );
    wait_status(&r, &m.token, &tiny, "ACTIVE").await;

    let (_, v) = create(&r, &m.token, boot(KERNEL_IMAGE, &vm_flavor, "kernel-vm")).await;
    let kernel_vm = v["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &kernel_vm, "ACTIVE").await;
    let (status, v) = snapshot(kernel_vm, "kernel-snap").await;
    nova_error(&v, "conflictingRequest", 409, "no root disk");
    assert_eq!(status, 409);
    assert!(r
        .images
        .created
        .lock()
        .unwrap()
        .iter()
        .all(|(_, req, _)| req.name != "kernel-snap"));
});

// createBackup keeps the newest `rotation` backups of its type of the
// server; rotation 0 keeps none and names no image.
on_both_engines!(create_backup_rotates, |r: Region| async move {
    let m = r.member("backup", "member").await;
    let net = tenant_network(&r, &m.token, "backup-net", "10.24.0.0/24").await;
    let small = flavor(&r, "backup-small", 1, 256).await;
    let (_, v) = create(
        &r,
        &m.token,
        json!({"name": "db", "imageRef": DISK_IMAGE, "flavorRef": small,
               "networks": [{"uuid": net}]}),
    )
    .await;
    let id = v["server"]["id"].as_str().unwrap().to_string();
    wait_status(&r, &m.token, &id, "ACTIVE").await;
    let backup = |name: &'static str, kind: &'static str, rotation: Value| {
        let (r, token, id) = (&r, m.token.clone(), id.clone());
        async move {
            let body =
                json!({"createBackup": {"name": name, "backup_type": kind, "rotation": rotation}});
            let resp = r
                .http
                .post(format!("{}/compute/v2.1/servers/{id}/action", r.url))
                .header("x-auth-token", &token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let location = resp.headers().get("location").map(|l| {
                let l = l.to_str().unwrap();
                l.rsplit('/').next().unwrap().to_string()
            });
            if status == 202 {
                wait_task_done(r, &token, &id).await;
            }
            (status, location)
        }
    };
    // The server's backups in the image service, oldest first.
    let backups = || {
        let stored = r.images.stored.lock().unwrap();
        stored
            .iter()
            .filter(|i| i.info.properties.get("image_type").map(String::as_str) == Some("backup"))
            .map(|i| {
                let p = &i.info.properties;
                assert_eq!(p["instance_uuid"], id);
                (i.info.name.clone().unwrap(), p["backup_type"].clone())
            })
            .collect::<Vec<_>>()
    };
    let named = |names: &[(&str, &str)]| {
        names
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect::<Vec<_>>()
    };

    let (status, first) = backup("daily-1", "daily", json!(2)).await;
    assert_eq!(status, 202);
    assert!(
        r.images.get(&first.unwrap()).is_some(),
        "Location names the backup"
    );
    assert_eq!(backup("weekly-1", "weekly", json!("2")).await.0, 202);
    assert_eq!(backup("daily-2", "daily", json!(2)).await.0, 202);
    assert_eq!(
        backups(),
        named(&[
            ("daily-1", "daily"),
            ("weekly-1", "weekly"),
            ("daily-2", "daily")
        ])
    );
    assert_eq!(backup("daily-3", "daily", json!(2)).await.0, 202);
    assert_eq!(
        backups(),
        named(&[
            ("weekly-1", "weekly"),
            ("daily-2", "daily"),
            ("daily-3", "daily")
        ]),
        "the oldest daily backup is rotated out; other types stay"
    );
    let (status, location) = backup("weekly-2", "weekly", json!(0)).await;
    assert_eq!((status, location), (202, None));
    assert_eq!(
        backups(),
        named(&[("daily-2", "daily"), ("daily-3", "daily")]),
        "rotation 0 keeps no backup of the type"
    );

    for bad in [json!(-1), json!("two"), json!(1.5), Value::Null] {
        let (status, v) = action(
            &r,
            &m.token,
            &id,
            json!({"createBackup": {"name": "x", "backup_type": "daily", "rotation": bad}}),
        )
        .await;
        assert_eq!(status, 400, "rotation {bad}: {v}");
    }
    let (status, v) = action(
        &r,
        &m.token,
        &id,
        json!({"createBackup": {"name": "x", "rotation": 1}}),
    )
    .await;
    nova_error(&v, "badRequest", 400, "backup_type");
    assert_eq!(status, 400);
});
