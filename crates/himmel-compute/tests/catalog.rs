//! Versions, flavors, keypairs, quotas, limits and zones over HTTP, on
//! SQLite and PostgreSQL.

mod support;

use serde_json::{json, Value};

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

on_both_engines!(
    versions_and_microversions,
    |r: support::Region| async move {
        let (status, v) = r.raw("GET", "/compute/", "", None, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            v["versions"][0]["id"], "v2.0",
            "Nova lists the legacy API first"
        );
        assert_eq!(v["versions"][0]["status"], "SUPPORTED");
        assert_eq!(v["versions"][1]["id"], "v2.1");
        assert_eq!(v["versions"][1]["min_version"], "2.1");
        let legacy = v["versions"][0]["links"][0]["href"].as_str().unwrap();
        assert!(legacy.ends_with("/compute/v2/"), "{legacy}");
        let (status, v) = r.raw("GET", "/compute/v2/", "", None, &[]).await;
        assert_eq!((status, &v["version"]["id"]), (200, &json!("v2.0")));
        // The legacy API serves the same resources, ignoring microversions.
        let resp = r
            .http
            .get(format!("{}/compute/v2/flavors", r.url))
            .header("x-auth-token", &r.admin)
            .header("OpenStack-API-Version", "compute 2.99")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("openstack-api-version").is_none());
        let body: Value = resp.json().await.unwrap();
        assert!(!body["flavors"].as_array().unwrap().is_empty(), "{body}");
        let (status, v) = r.call("GET", "/", "", None).await;
        assert_eq!(status, 200);
        assert_eq!(v["version"]["status"], "CURRENT");

        let (status, _) = r
            .call_with(
                "GET",
                "/flavors",
                &r.admin,
                None,
                &[("OpenStack-API-Version", "compute 2.1")],
            )
            .await;
        assert_eq!(status, 200);
        let (status, v) = r
            .call_with(
                "GET",
                "/flavors",
                &r.admin,
                None,
                &[("OpenStack-API-Version", "compute 2.999")],
            )
            .await;
        assert_eq!(status, 406);
        assert!(v["computeFault"]["message"]
            .as_str()
            .unwrap()
            .contains("not supported"));
        let resp = r
            .http
            .get(format!("{}/compute/v2.1/flavors", r.url))
            .header("x-auth-token", &r.admin)
            .header("X-OpenStack-Nova-API-Version", "latest")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["openstack-api-version"], "compute 2.1");
        assert_eq!(resp.headers()["x-openstack-nova-api-version"], "2.1");
        assert_eq!(
            resp.headers()["x-compute-request-id"],
            resp.headers()["x-openstack-request-id"],
            "Nova names the request id twice"
        );

        // Nova's error body for an unknown path and a missing token.
        let (status, v) = r.call("GET", "/no-such-thing", &r.admin, None).await;
        assert_eq!(status, 404);
        assert_eq!(v["itemNotFound"]["code"], 404);
        let (status, _) = r.call("GET", "/flavors", "", None).await;
        assert_eq!(status, 401);
    }
);

on_both_engines!(
    standard_flavors_are_seeded,
    |r: support::Region| async move {
        let m = r.member("scs", "member").await;
        let (status, v) = r.call("GET", "/flavors/detail", &m.token, None).await;
        assert_eq!(status, 200);
        let listed = names(&v, "flavors");
        for name in [
            "SCS-1V-4",
            "SCS-2V-8",
            "SCS-16V-32",
            "SCS-1L-1",
            "SCS-2V-4-20s",
            "SCS-4V-16-100s",
        ] {
            assert!(
                listed.contains(&name.to_string()),
                "{name} missing from {listed:?}"
            );
        }
        let f = v["flavors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "SCS-2V-4-20s")
            .unwrap();
        assert_eq!(f["vcpus"], 2);
        assert_eq!(f["ram"], 4096);
        assert_eq!(f["disk"], 20);
        assert_eq!(f["os-flavor-access:is_public"], true);
        let id = f["id"].as_str().unwrap();
        let (status, specs) = r
            .call(
                "GET",
                &format!("/flavors/{id}/os-extra_specs"),
                &m.token,
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(specs["extra_specs"]["scs:name-v2"], "SCS-2V-4-20s");
        assert_eq!(specs["extra_specs"]["scs:name-v1"], "SCS-2V:4:20s");
        assert_eq!(specs["extra_specs"]["scs:cpu-type"], "shared-core");
        assert_eq!(specs["extra_specs"]["scs:disk0-type"], "ssd");

        // Seeding again adds nothing.
        himmel_compute::bootstrap::seed_flavors(r.compute.db())
            .await
            .unwrap();
        let (_, again) = r.call("GET", "/flavors", &m.token, None).await;
        assert_eq!(names(&again, "flavors").len(), listed.len());

        // Paging: limit and marker, with a next link.
        let (_, page) = r.call("GET", "/flavors?limit=2", &m.token, None).await;
        assert_eq!(page["flavors"].as_array().unwrap().len(), 2);
        let next = page["flavors_links"][0]["href"].as_str().unwrap();
        assert!(next.contains("marker="));
        let marker = page["flavors"][1]["id"].as_str().unwrap();
        let (_, rest) = r
            .call("GET", &format!("/flavors?marker={marker}"), &m.token, None)
            .await;
        assert_eq!(rest["flavors"].as_array().unwrap().len(), listed.len() - 2);
        let (status, _) = r.call("GET", "/flavors?marker=nope", &m.token, None).await;
        assert_eq!(status, 400);
        let (_, big) = r
            .call("GET", "/flavors/detail?minRam=16384", &m.token, None)
            .await;
        assert!(big["flavors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["ram"].as_u64().unwrap() >= 16384));
    }
);

on_both_engines!(
    flavor_management_and_private_access,
    |r: support::Region| async move {
        let m = r.member("flavors", "member").await;
        let other = r.member("flavors-other", "member").await;
        let body = json!({"flavor": {"name": "tiny", "ram": 64, "vcpus": 1, "disk": 1}});
        let (status, _) = r
            .call("POST", "/flavors", &m.token, Some(body.clone()))
            .await;
        assert_eq!(status, 403);
        let (status, v) = r
            .call("POST", "/flavors", &r.admin, Some(body.clone()))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["flavor"]["swap"], "");
        let tiny = v["flavor"]["id"].as_str().unwrap().to_string();
        let (status, v) = r.call("POST", "/flavors", &r.admin, Some(body)).await;
        assert_eq!(status, 409);
        assert!(v["conflictingRequest"]["message"]
            .as_str()
            .unwrap()
            .contains("tiny"));

        // Bad input is a 400 in Nova's body, never a 500.
        for bad in [
            json!({"flavor": {"name": "x", "ram": -1, "vcpus": 1, "disk": 1}}),
            json!({"flavor": {"name": "x", "ram": 64, "vcpus": "many", "disk": 1}}),
            json!({"flavor": {"name": "", "ram": 64, "vcpus": 1, "disk": 1}}),
            json!({"flavor": {"name": "x", "ram": 64, "vcpus": 1}}),
            json!({"flavor": {"name": "x", "ram": 64, "vcpus": 1, "disk": 1, "colour": "red"}}),
            json!({"flavour": {}}),
        ] {
            let (status, v) = r
                .call("POST", "/flavors", &r.admin, Some(bad.clone()))
                .await;
            assert_eq!(status, 400, "{bad} -> {v}");
            assert!(v["badRequest"]["message"].is_string());
        }

        // Extra specs.
        let specs = json!({"extra_specs": {"himmel:driver": "namespace", "hw:cpu_cores": 1}});
        let path = format!("/flavors/{tiny}/os-extra_specs");
        let (status, _) = r.call("POST", &path, &m.token, Some(specs.clone())).await;
        assert_eq!(status, 403);
        let (status, v) = r.call("POST", &path, &r.admin, Some(specs)).await;
        assert_eq!(status, 200);
        assert_eq!(v["extra_specs"]["hw:cpu_cores"], "1");
        let (status, v) = r
            .call("GET", &format!("{path}/himmel:driver"), &m.token, None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(v["himmel:driver"], "namespace");
        let (status, _) = r
            .call(
                "PUT",
                &format!("{path}/himmel:driver"),
                &r.admin,
                Some(json!({"other": "x"})),
            )
            .await;
        assert_eq!(status, 400);
        let (status, _) = r
            .call("DELETE", &format!("{path}/hw:cpu_cores"), &r.admin, None)
            .await;
        assert_eq!(status, 200);
        let (status, _) = r
            .call("GET", &format!("{path}/hw:cpu_cores"), &m.token, None)
            .await;
        assert_eq!(status, 404);

        // A private flavor: invisible until the project is given access.
        let (status, v) = r
            .call(
                "POST",
                "/flavors",
                &r.admin,
                Some(
                    json!({"flavor": {"name": "private", "ram": 128, "vcpus": 1, "disk": 0,
                "os-flavor-access:is_public": false}}),
                ),
            )
            .await;
        assert_eq!(status, 200);
        let private = v["flavor"]["id"].as_str().unwrap().to_string();
        let (status, _) = r
            .call("GET", &format!("/flavors/{private}"), &m.token, None)
            .await;
        assert_eq!(status, 404);
        let action = format!("/flavors/{private}/action");
        let add = json!({"addTenantAccess": {"tenant": m.project_id}});
        let (status, _) = r.call("POST", &action, &m.token, Some(add.clone())).await;
        assert_eq!(status, 403);
        let (status, v) = r.call("POST", &action, &r.admin, Some(add.clone())).await;
        assert_eq!(status, 200);
        assert_eq!(v["flavor_access"][0]["tenant_id"], m.project_id.as_str());
        let (status, _) = r.call("POST", &action, &r.admin, Some(add)).await;
        assert_eq!(status, 409);
        let (status, _) = r
            .call("GET", &format!("/flavors/{private}"), &m.token, None)
            .await;
        assert_eq!(status, 200);
        let (_, listed) = r.call("GET", "/flavors", &m.token, None).await;
        assert!(names(&listed, "flavors").contains(&"private".to_string()));
        let (_, listed) = r.call("GET", "/flavors", &other.token, None).await;
        assert!(!names(&listed, "flavors").contains(&"private".to_string()));
        let (status, _) = r
            .call("GET", &format!("/flavors/{private}"), &other.token, None)
            .await;
        assert_eq!(status, 404);
        // Administrators list private flavors with is_public=false or none.
        let (_, listed) = r
            .call("GET", "/flavors?is_public=none", &r.admin, None)
            .await;
        assert!(names(&listed, "flavors").contains(&"private".to_string()));
        let (status, v) = r
            .call(
                "GET",
                &format!("/flavors/{private}/os-flavor-access"),
                &r.admin,
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(v["flavor_access"].as_array().unwrap().len(), 1);
        let (status, _) = r
            .call(
                "GET",
                &format!("/flavors/{tiny}/os-flavor-access"),
                &r.admin,
                None,
            )
            .await;
        assert_eq!(status, 404);
        let remove = json!({"removeTenantAccess": {"tenant": m.project_id}});
        let (status, _) = r
            .call("POST", &action, &r.admin, Some(remove.clone()))
            .await;
        assert_eq!(status, 200);
        let (status, _) = r.call("POST", &action, &r.admin, Some(remove)).await;
        assert_eq!(status, 404);

        let (status, _) = r
            .call("DELETE", &format!("/flavors/{tiny}"), &m.token, None)
            .await;
        assert_eq!(status, 403);
        let (status, _) = r
            .call("DELETE", &format!("/flavors/{tiny}"), &r.admin, None)
            .await;
        assert_eq!(status, 202);
        let (status, _) = r
            .call("GET", &format!("/flavors/{tiny}"), &r.admin, None)
            .await;
        assert_eq!(status, 404);
    }
);

on_both_engines!(
    keypairs_belong_to_their_user,
    |r: support::Region| async move {
        let m = r.member("keys", "member").await;
        let colleague = r.user_in("keys-colleague", &m.project_id, "member").await;
        // Generated: the private key is returned once.
        let (status, v) = r
            .call(
                "POST",
                "/os-keypairs",
                &m.token,
                Some(json!({"keypair": {"name": "gen"}})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let public = v["keypair"]["public_key"].as_str().unwrap().to_string();
        assert!(public.starts_with("ssh-ed25519 "));
        assert!(v["keypair"]["private_key"]
            .as_str()
            .unwrap()
            .contains("OPENSSH PRIVATE KEY"));
        let fingerprint = v["keypair"]["fingerprint"].as_str().unwrap().to_string();
        // Imported: the same key under another name has the same fingerprint.
        let (status, v) = r
            .call(
                "POST",
                "/os-keypairs",
                &m.token,
                Some(json!({"keypair": {"name": "imported", "public_key": public}})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(v["keypair"]["fingerprint"], fingerprint.as_str());
        assert!(v["keypair"].get("private_key").is_none());
        let (status, v) = r
            .call(
                "POST",
                "/os-keypairs",
                &m.token,
                Some(json!({"keypair": {"name": "gen", "public_key": public}})),
            )
            .await;
        assert_eq!(status, 409, "{v}");
        for bad in [
            json!({"keypair": {"name": "bad", "public_key": "not a key"}}),
            json!({"keypair": {"name": "bad/name", "public_key": public}}),
            json!({"keypair": {"name": "", "public_key": public}}),
            json!({"keypair": {"public_key": public}}),
        ] {
            let (status, v) = r
                .call("POST", "/os-keypairs", &m.token, Some(bad.clone()))
                .await;
            assert_eq!(status, 400, "{bad} -> {v}");
        }
        let (status, v) = r.call("GET", "/os-keypairs", &m.token, None).await;
        assert_eq!(status, 200);
        assert_eq!(v["keypairs"].as_array().unwrap().len(), 2);
        assert_eq!(v["keypairs"][0]["keypair"]["name"], "gen");
        let (status, v) = r.call("GET", "/os-keypairs/gen", &m.token, None).await;
        assert_eq!(status, 200);
        assert_eq!(v["keypair"]["deleted"], false);
        // Another user of the same project sees none of them.
        let (_, v) = r.call("GET", "/os-keypairs", &colleague.token, None).await;
        assert_eq!(v["keypairs"].as_array().unwrap().len(), 0);
        let (status, _) = r
            .call("GET", "/os-keypairs/gen", &colleague.token, None)
            .await;
        assert_eq!(status, 404);
        let (status, _) = r
            .call("DELETE", "/os-keypairs/gen", &colleague.token, None)
            .await;
        assert_eq!(status, 404);

        // Quota on keypairs.
        let (status, _) = r
            .call(
                "PUT",
                &format!("/os-quota-sets/{}", m.project_id),
                &r.admin,
                Some(json!({"quota_set": {"key_pairs": 2}})),
            )
            .await;
        assert_eq!(status, 200);
        let (status, v) = r
            .call(
                "POST",
                "/os-keypairs",
                &m.token,
                Some(json!({"keypair": {"name": "third"}})),
            )
            .await;
        assert_eq!(status, 403, "{v}");
        assert!(v["forbidden"]["message"]
            .as_str()
            .unwrap()
            .contains("Quota exceeded"));

        let (status, _) = r.call("DELETE", "/os-keypairs/gen", &m.token, None).await;
        assert_eq!(status, 202);
        let (status, _) = r.call("GET", "/os-keypairs/gen", &m.token, None).await;
        assert_eq!(status, 404);
    }
);

on_both_engines!(quotas_limits_and_zones, |r: support::Region| async move {
    let m = r.member("quotas", "member").await;
    let other = r.member("quotas-other", "member").await;
    let path = format!("/os-quota-sets/{}", m.project_id);
    let (status, v) = r.call("GET", &path, &m.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["quota_set"]["instances"], 10);
    assert_eq!(v["quota_set"]["id"], m.project_id.as_str());
    let (status, _) = r.call("GET", &path, &other.token, None).await;
    assert_eq!(status, 403);
    let (status, _) = r
        .call(
            "PUT",
            &path,
            &m.token,
            Some(json!({"quota_set": {"instances": 50}})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, v) = r
        .call(
            "PUT",
            &path,
            &r.admin,
            Some(json!({"quota_set": {"instances": 3, "cores": "8"}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["quota_set"]["instances"], 3);
    assert_eq!(v["quota_set"]["cores"], 8);
    for bad in [
        json!({"quota_set": {"instances": -2}}),
        json!({"quota_set": {"instances": "lots"}}),
        json!({"quota_set": {"volumes": 3}}),
    ] {
        let (status, _) = r.call("PUT", &path, &r.admin, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, v) = r
        .call("GET", &format!("{path}/detail"), &m.token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["quota_set"]["instances"]["limit"], 3);
    assert_eq!(v["quota_set"]["instances"]["in_use"], 0);
    let (status, v) = r
        .call("GET", &format!("{path}/defaults"), &m.token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["quota_set"]["instances"], 10);

    let (status, v) = r.call("GET", "/limits", &m.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["limits"]["absolute"]["maxTotalInstances"], 3);
    assert_eq!(v["limits"]["absolute"]["maxTotalCores"], 8);
    assert_eq!(v["limits"]["absolute"]["totalInstancesUsed"], 0);

    let (status, _) = r.call("DELETE", &path, &r.admin, None).await;
    assert_eq!(status, 202);
    let (_, v) = r.call("GET", &path, &m.token, None).await;
    assert_eq!(v["quota_set"]["instances"], 10);

    let (status, v) = r.call("GET", "/os-availability-zone", &m.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["availabilityZoneInfo"][0]["zoneName"], "nova");
    let (status, _) = r
        .call("GET", "/os-availability-zone/detail", &m.token, None)
        .await;
    assert_eq!(status, 403);
    let (status, v) = r
        .call("GET", "/os-availability-zone/detail", &r.admin, None)
        .await;
    assert_eq!(status, 200);
    assert!(
        v["availabilityZoneInfo"][0]["hosts"]["testhost"]["nova-compute"]["available"]
            .as_bool()
            .unwrap()
    );
});

on_both_engines!(
    hypervisors_and_services_for_admins,
    |r: support::Region| async move {
        let m = r.member("hosts", "member").await;
        let (status, _) = r.call("GET", "/os-hypervisors", &m.token, None).await;
        assert_eq!(status, 403);
        let (status, v) = r
            .call("GET", "/os-hypervisors/detail", &r.admin, None)
            .await;
        assert_eq!(status, 200, "{v}");
        let hv = &v["hypervisors"][0];
        assert_eq!(hv["hypervisor_hostname"], "testhost");
        assert_eq!(hv["state"], "up");
        assert!(hv["vcpus"].as_u64().unwrap() >= 1);
        assert!(hv["memory_mb"].as_u64().unwrap() > 0);
        assert_eq!(hv["running_vms"], 0);
        let (status, _) = r.call("GET", "/os-hypervisors/1", &r.admin, None).await;
        assert_eq!(status, 200);
        let (status, _) = r.call("GET", "/os-hypervisors/7", &r.admin, None).await;
        assert_eq!(status, 404);
        let (status, v) = r.call("GET", "/os-services", &r.admin, None).await;
        assert_eq!(status, 200);
        assert_eq!(v["services"][0]["binary"], "nova-compute");
        assert_eq!(v["services"][0]["host"], "testhost");
        let (status, _) = r.call("GET", "/os-services", &m.token, None).await;
        assert_eq!(status, 403);
    }
);
