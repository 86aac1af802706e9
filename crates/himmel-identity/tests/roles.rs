//! Roles and implied roles over HTTP.

mod support;

use serde_json::{json, Value};
use support::{password_auth, Engine, Region};

async fn create_role(region: &Region, token: &str, role: Value) -> (u16, Value) {
    region
        .call("POST", "/v3/roles", token, Some(json!({ "role": role })))
        .await
}

async fn id_of(region: &Region, token: &str, name: &str) -> String {
    let (_, body) = region
        .call("GET", &format!("/v3/roles?name={name}"), token, None)
        .await;
    body["roles"][0]["id"].as_str().unwrap().to_string()
}

async fn role_lifecycle(region: &Region) {
    let admin = region.admin_token().await;

    // Bootstrap's roles exist.
    let (status, body) = region.call("GET", "/v3/roles", &admin, None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in ["admin", "manager", "member", "reader", "service"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(body["links"]["self"].is_string());

    // Create, with an extra attribute kept; duplicates refused.
    let (status, body) = create_role(
        region,
        &admin,
        json!({"name": "auditor", "description": "Reads the trail", "team": "sec"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let role = &body["role"];
    assert_eq!(role["name"], "auditor");
    assert_eq!(role["domain_id"], Value::Null);
    assert_eq!(role["description"], "Reads the trail");
    assert_eq!(role["team"], "sec");
    assert_eq!(role["options"], json!({}));
    let auditor = role["id"].as_str().unwrap().to_string();
    assert_eq!(role["links"]["self"], format!("/v3/roles/{auditor}"));
    let (status, body) = create_role(region, &admin, json!({"name": "auditor"})).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"]["message"],
        "Conflict occurred attempting to store role - Duplicate entry found with name auditor."
    );

    // A domain-specific role of the same name is another role, listed by domain only.
    let (status, body) = create_role(
        region,
        &admin,
        json!({"name": "auditor", "domain_id": "default"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let domain_auditor = body["role"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["role"]["domain_id"], "default");
    let (_, body) = region
        .call("GET", "/v3/roles?name=auditor", &admin, None)
        .await;
    assert_eq!(body["roles"].as_array().unwrap().len(), 1);
    assert_eq!(body["roles"][0]["id"], auditor.as_str());
    let (_, body) = region
        .call("GET", "/v3/roles?domain_id=default", &admin, None)
        .await;
    assert_eq!(body["roles"].as_array().unwrap().len(), 1);
    assert_eq!(body["roles"][0]["id"], domain_auditor.as_str());

    // Update; domain_id cannot change.
    let path = format!("/v3/roles/{auditor}");
    let (status, body) = region
        .call(
            "PATCH",
            &path,
            &admin,
            Some(json!({"role": {"description": "Audits"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"]["description"], "Audits");
    assert_eq!(body["role"]["name"], "auditor");
    let (status, _) = region
        .call(
            "PATCH",
            &path,
            &admin,
            Some(json!({"role": {"domain_id": "default"}})),
        )
        .await;
    assert_eq!(status, 400);

    // Immutable: no update or delete until the option is cleared.
    let (status, body) = region
        .call(
            "PATCH",
            &path,
            &admin,
            Some(json!({"role": {"options": {"immutable": true}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"]["options"]["immutable"], true);
    let (status, _) = region
        .call("PATCH", &path, &admin, Some(json!({"role": {"name": "x"}})))
        .await;
    assert_eq!(status, 403);
    assert_eq!(region.call("DELETE", &path, &admin, None).await.0, 403);
    let (status, _) = region
        .call(
            "PATCH",
            &path,
            &admin,
            Some(json!({"role": {"options": {"immutable": false}}})),
        )
        .await;
    assert_eq!(status, 200);

    // Implied roles.
    let reader = id_of(region, &admin, "reader").await;
    let admin_role = id_of(region, &admin, "admin").await;
    let implies = format!("/v3/roles/{auditor}/implies/{reader}");
    let (status, body) = region.call("PUT", &implies, &admin, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["role_inference"]["prior_role"]["id"], auditor.as_str());
    assert_eq!(body["role_inference"]["implies"]["name"], "reader");
    assert_eq!(region.call("HEAD", &implies, &admin, None).await.0, 204);
    let (status, body) = region.call("GET", &implies, &admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["role_inference"]["implies"]["id"], reader.as_str());
    let (status, body) = region
        .call("GET", &format!("/v3/roles/{auditor}/implies"), &admin, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["role_inference"]["implies"][0]["id"], reader.as_str());
    let (status, body) = region
        .call("GET", "/v3/role_inferences", &admin, None)
        .await;
    assert_eq!(status, 200);
    let rules = body["role_inferences"].as_array().unwrap();
    assert!(rules
        .iter()
        .any(|r| r["prior_role"]["name"] == "admin" && r["implies"][0]["name"] == "manager"));
    assert!(rules
        .iter()
        .any(|r| r["prior_role"]["id"] == auditor.as_str()));

    // No cycles, nothing implies admin, no global role implies a domain one.
    let (status, _) = region
        .call(
            "PUT",
            &format!("/v3/roles/{reader}/implies/{auditor}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call(
            "PUT",
            &format!("/v3/roles/{auditor}/implies/{auditor}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call(
            "PUT",
            &format!("/v3/roles/{auditor}/implies/{admin_role}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call(
            "PUT",
            &format!("/v3/roles/{auditor}/implies/{domain_auditor}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 403);
    // A domain-specific role may imply a global one.
    let (status, _) = region
        .call(
            "PUT",
            &format!("/v3/roles/{domain_auditor}/implies/{reader}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 201);

    // Deleting the implication, then the role.
    assert_eq!(region.call("DELETE", &implies, &admin, None).await.0, 204);
    let (status, body) = region.call("GET", &implies, &admin, None).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        format!("{auditor} does not imply {reader}.")
    );
    assert_eq!(region.call("DELETE", &path, &admin, None).await.0, 204);
    let (status, body) = region.call("GET", &path, &admin, None).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        format!("Could not find role: {auditor}.")
    );
}

#[tokio::test]
async fn role_lifecycle_sqlite() {
    role_lifecycle(&Region::start().await).await;
}

#[tokio::test]
async fn role_lifecycle_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => role_lifecycle(&region).await,
        None => eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set"),
    }
}

#[tokio::test]
async fn deleting_a_role_removes_its_grants_and_revokes_tokens() {
    let region = Region::start().await;
    let admin = region.admin_token().await;
    let (_, body) = create_role(&region, &admin, json!({"name": "operator"})).await;
    let operator = body["role"]["id"].as_str().unwrap().to_string();
    let (_, tok) = region
        .token(password_auth(
            "admin",
            "Default",
            &region.admin_password,
            json!({"system": {"all": true}}),
        ))
        .await;
    let admin_user = tok["token"]["user"]["id"].as_str().unwrap().to_string();
    let grant = format!("/v3/system/users/{admin_user}/roles/{operator}");
    assert_eq!(region.call("PUT", &grant, &admin, None).await.0, 204);
    let (token, _) = region
        .token(password_auth(
            "admin",
            "Default",
            &region.admin_password,
            json!({"system": {"all": true}}),
        ))
        .await;
    assert_eq!(
        region
            .call("DELETE", &format!("/v3/roles/{operator}"), &admin, None)
            .await
            .0,
        204
    );
    // The holder's tokens are revoked; the grant is gone.
    assert_eq!(
        region.call("GET", "/v3/auth/catalog", &token, None).await.0,
        401
    );
    let admin = region.admin_token().await;
    let (_, body) = region
        .call(
            "GET",
            &format!("/v3/role_assignments?role.id={operator}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(body["role_assignments"], json!([]));
}

#[tokio::test]
async fn bad_role_input_is_a_400() {
    let region = Region::start().await;
    let admin = region.admin_token().await;
    for role in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": 7}),
        json!({"name": "x".repeat(256)}),
        json!({"name": "ok", "description": 1}),
        json!({"name": "ok", "domain_id": 1}),
        json!({"name": "ok", "options": {"immutable": "yes"}}),
        json!({"name": "ok", "options": {"unknown": true}}),
    ] {
        let (status, body) = create_role(&region, &admin, role.clone()).await;
        assert_eq!(status, 400, "{role}: {body}");
        assert_eq!(body["error"]["code"], 400);
    }
    let (status, _) = region
        .call("POST", "/v3/roles", &admin, Some(json!({"role": "admin"})))
        .await;
    assert_eq!(status, 400);
    let (status, _) = create_role(&region, &admin, json!({"name": "x", "domain_id": "nope"})).await;
    assert_eq!(status, 404);
    let (status, _) = region.call("GET", "/v3/roles/nope", &admin, None).await;
    assert_eq!(status, 404);
    let (status, _) = region
        .call("PUT", "/v3/roles/nope/implies/also-nope", &admin, None)
        .await;
    assert_eq!(status, 404);
}
