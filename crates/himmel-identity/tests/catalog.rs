//! Regions, services and endpoints over HTTP, and their effect on the
//! catalog of tokens.

mod support;

use serde_json::{json, Value};
use support::{Engine, Region};

async fn validate_catalog(region: &Region, token: &str) -> Value {
    let r = region
        .http
        .get(format!("{}/v3/auth/tokens", region.url))
        .header("x-auth-token", token)
        .header("x-subject-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["token"]["catalog"].clone()
}

fn service_of<'a>(catalog: &'a Value, service_type: &str) -> Option<&'a Value> {
    catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == service_type)
}

async fn catalog_admin(region: &Region) {
    let admin = region.admin_token().await;

    // Regions: a child under RegionOne; no cycles.
    let (status, body) = region
        .call(
            "POST",
            "/v3/regions",
            &admin,
            Some(json!({"region": {"id": "north", "description": "North", "parent_region_id": "RegionOne"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["region"]["parent_region_id"], "RegionOne");
    assert_eq!(body["region"]["links"]["self"], "/v3/regions/north");
    let (status, _) = region
        .call(
            "POST",
            "/v3/regions",
            &admin,
            Some(json!({"region": {"id": "north"}})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, body) = region
        .call(
            "PATCH",
            "/v3/regions/RegionOne",
            &admin,
            Some(json!({"region": {"parent_region_id": "north"}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = region
        .call(
            "PATCH",
            "/v3/regions/north",
            &admin,
            Some(json!({"region": {"parent_region_id": "north"}})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = region
        .call(
            "GET",
            "/v3/regions?parent_region_id=RegionOne",
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["regions"].as_array().unwrap().len(), 1);
    let (status, _) = region
        .call(
            "PUT",
            "/v3/regions/south",
            &admin,
            Some(json!({"region": {"description": "South"}})),
        )
        .await;
    assert_eq!(status, 201);

    // A service with endpoints shows in new tokens' catalog.
    let (status, body) = region
        .call(
            "POST",
            "/v3/services",
            &admin,
            Some(json!({"service": {"type": "compute", "name": "nova", "description": "VMs"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["service"]["enabled"], true);
    let service_id = body["service"]["id"].as_str().unwrap().to_string();
    let (status, body) = region
        .call(
            "POST",
            "/v3/endpoints",
            &admin,
            Some(
                json!({"endpoint": {"service_id": service_id, "interface": "public",
                "region_id": "north", "url": "http://nova.example:8774/v2.1/$(project_id)s"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["endpoint"]["region"], "north");
    assert_eq!(body["endpoint"]["enabled"], true);
    let endpoint_id = body["endpoint"]["id"].as_str().unwrap().to_string();

    let token = region.admin_token().await;
    let catalog = validate_catalog(region, &token).await;
    let compute = service_of(&catalog, "compute").expect("compute in the catalog");
    assert_eq!(compute["name"], "nova");
    let url = compute["endpoints"][0]["url"].as_str().unwrap();
    assert!(url.starts_with("http://nova.example:8774/v2.1/"));
    assert!(
        !url.contains("$(project_id)s"),
        "project substituted: {url}"
    );
    assert_eq!(compute["endpoints"][0]["region_id"], "north");

    // Filters.
    let (_, body) = region
        .call(
            "GET",
            &format!("/v3/endpoints?service_id={service_id}&interface=public"),
            &admin,
            None,
        )
        .await;
    assert_eq!(body["endpoints"].as_array().unwrap().len(), 1);
    let (_, body) = region
        .call("GET", "/v3/endpoints?region_id=south", &admin, None)
        .await;
    assert_eq!(body["endpoints"].as_array().unwrap().len(), 0);
    let (_, body) = region
        .call("GET", "/v3/services?type=compute", &admin, None)
        .await;
    assert_eq!(body["services"].as_array().unwrap().len(), 1);

    // A region with endpoints cannot go; nor can its parent.
    assert_eq!(
        region
            .call("DELETE", "/v3/regions/north", &admin, None)
            .await
            .0,
        403
    );
    assert_eq!(
        region
            .call("DELETE", "/v3/regions/RegionOne", &admin, None)
            .await
            .0,
        403
    );

    // Disabling the endpoint removes it from the catalog at once.
    let (status, body) = region
        .call(
            "PATCH",
            &format!("/v3/endpoints/{endpoint_id}"),
            &admin,
            Some(json!({"endpoint": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["endpoint"]["enabled"], false);
    let catalog = validate_catalog(region, &token).await;
    let compute = service_of(&catalog, "compute").unwrap();
    assert_eq!(compute["endpoints"].as_array().unwrap().len(), 0);

    // Disabling the service removes the service; deleting it, its endpoints.
    region
        .call(
            "PATCH",
            &format!("/v3/services/{service_id}"),
            &admin,
            Some(json!({"service": {"enabled": false}})),
        )
        .await;
    assert!(service_of(&validate_catalog(region, &token).await, "compute").is_none());
    assert_eq!(
        region
            .call(
                "DELETE",
                &format!("/v3/services/{service_id}"),
                &admin,
                None
            )
            .await
            .0,
        204
    );
    assert_eq!(
        region
            .call("GET", &format!("/v3/endpoints/{endpoint_id}"), &admin, None)
            .await
            .0,
        404
    );
    assert_eq!(
        region
            .call("DELETE", "/v3/regions/north", &admin, None)
            .await
            .0,
        204
    );
    let (status, body) = region.call("GET", "/v3/regions/north", &admin, None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "Could not find region: north.");
}

#[tokio::test]
async fn catalog_admin_sqlite() {
    catalog_admin(&Region::start().await).await;
}

#[tokio::test]
async fn catalog_admin_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => catalog_admin(&region).await,
        None => eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set"),
    }
}

#[tokio::test]
async fn bad_catalog_input_is_a_400_or_404() {
    let region = Region::start().await;
    let admin = region.admin_token().await;
    let (_, body) = region
        .call(
            "POST",
            "/v3/services",
            &admin,
            Some(json!({"service": {"type": "object-store"}})),
        )
        .await;
    let service_id = body["service"]["id"].as_str().unwrap().to_string();
    let ep = |extra: Value| {
        let mut e =
            json!({"service_id": service_id, "interface": "public", "url": "http://s3.example"});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        json!({"endpoint": e})
    };
    for (body, status) in [
        (ep(json!({"interface": "private"})), 400),
        (ep(json!({"interface": 3})), 400),
        (ep(json!({"url": "not a url"})), 400),
        (ep(json!({"url": null})), 400),
        (ep(json!({"enabled": "True"})), 400),
        (ep(json!({"service_id": "nope"})), 404),
        (
            json!({"endpoint": {"interface": "public", "url": "http://x"}}),
            400,
        ),
        (json!({"endpoint": "x"}), 400),
        (json!([]), 400),
    ] {
        let (got, reply) = region
            .call("POST", "/v3/endpoints", &admin, Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body}: {reply}");
        assert_eq!(reply["error"]["code"], status);
    }
    // An endpoint in a region that does not exist yet creates the region,
    // as Keystone does.
    let (got, reply) = region
        .call(
            "POST",
            "/v3/endpoints",
            &admin,
            Some(ep(json!({"region_id": "atlantis"}))),
        )
        .await;
    assert_eq!(got, 201, "{reply}");
    let (got, reply) = region
        .call("GET", "/v3/regions/atlantis", &admin, None)
        .await;
    assert_eq!(
        (got, reply["region"]["id"].as_str()),
        (200, Some("atlantis"))
    );
    for body in [
        json!({"service": {}}),
        json!({"service": {"type": ""}}),
        json!({"service": {"type": "x", "enabled": 1}}),
    ] {
        let (got, _) = region
            .call("POST", "/v3/services", &admin, Some(body.clone()))
            .await;
        assert_eq!(got, 400, "{body}");
    }
    let (got, _) = region
        .call(
            "POST",
            "/v3/regions",
            &admin,
            Some(json!({"region": {"parent_region_id": "lemuria"}})),
        )
        .await;
    assert_eq!(got, 404, "an unknown parent region");
    let (got, _) = region
        .call(
            "PUT",
            "/v3/regions/a",
            &admin,
            Some(json!({"region": {"id": "b"}})),
        )
        .await;
    assert_eq!(got, 400);
    let (got, _) = region
        .call("GET", "/v3/endpoints?interface=sideways", &admin, None)
        .await;
    assert_eq!(got, 400);

    // Only the cloud admin writes the catalog; any token lists regions.
    let (token, _) = region
        .token(support::password_auth(
            "admin",
            "Default",
            &region.admin_password,
            json!("unscoped"),
        ))
        .await;
    let (got, _) = region.call("GET", "/v3/regions", &token, None).await;
    assert_eq!(got, 200);
    let (got, _) = region
        .call(
            "POST",
            "/v3/services",
            &token,
            Some(json!({"service": {"type": "x"}})),
        )
        .await;
    assert_eq!(got, 403);
}
