//! Token issue, validation and revocation over HTTP.

mod support;

use serde_json::{json, Value};
use support::{password_auth, Engine, Region};

async fn token_lifecycle(region: &Region) {
    let admin = region.admin_token().await;
    let (status, body) = region.call("GET", "/v3/auth/catalog", &admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["catalog"][0]["type"], "identity");

    // Validate: the body names the admin project and the implied roles.
    let r = region
        .http
        .get(format!("{}/v3/auth/tokens", region.url))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-openstack-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token"]["project"]["name"], "admin");
    let roles: Vec<&str> = body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for role in ["admin", "manager", "member", "reader"] {
        assert!(roles.contains(&role), "{role} missing from {roles:?}");
    }

    // A second token, revoked: refused from then on; the first still works.
    let (other, _) = region
        .token(password_auth(
            "admin",
            "Default",
            &region.admin_password,
            json!({"system": {"all": true}}),
        ))
        .await;
    let r = region
        .http
        .delete(format!("{}/v3/auth/tokens", region.url))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, body) = region.call("GET", "/v3/auth/catalog", &other, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 401);
    let (status, _) = region.call("GET", "/v3/auth/catalog", &admin, None).await;
    assert_eq!(status, 200);

    // Rescoping: a valid token gets a new one; a revoked one is a 404.
    let rescope = |token: &str| {
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
        "scope": {"system": {"all": true}}}})
    };
    let (_, body) = region.token(rescope(&admin)).await;
    assert_eq!(body["token"]["methods"], json!(["token", "password"]));
    let r = region
        .http
        .post(format!("{}/v3/auth/tokens", region.url))
        .json(&rescope(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn token_lifecycle_sqlite() {
    token_lifecycle(&Region::start().await).await;
}

#[tokio::test]
async fn token_lifecycle_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => token_lifecycle(&region).await,
        None => eprintln!(
            "skipped: HIMMEL_TEST_POSTGRES is not set (the project's test command sets it)"
        ),
    }
}

#[tokio::test]
async fn bad_credentials_and_bad_bodies_get_keystone_errors() {
    let region = Region::start().await;
    let url = format!("{}/v3/auth/tokens", region.url);
    let wrong = password_auth("admin", "Default", "wrong", Value::Null);
    let r = region.http.post(&url).json(&wrong).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["title"], "Unauthorized");

    for bad in [
        "{",
        "[]",
        r#"{"auth": 1}"#,
        r#"{"auth": {"identity": {"methods": "password"}}}"#,
    ] {
        let r = region
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "body {bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], 400, "body {bad}");
    }
    let huge = format!(r#"{{"auth": "{}"}}"#, "x".repeat(200_000));
    let r = region
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let (status, body) = region
        .call("GET", "/v3/auth/catalog", "not-a-token", None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 401);
    let (status, _) = region.call("GET", "/v3/no/such/path", "x", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn every_request_reaches_the_audit_sink_without_secrets() {
    let region = Region::start().await;
    let admin = region.admin_token().await;
    region.call("GET", "/v3/auth/catalog", &admin, None).await;
    region.call("GET", "/v3/auth/catalog", "bogus", None).await;
    let records = region.audit.0.lock().unwrap().clone();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].action, "identity:create_token");
    assert_eq!(records[0].status, 201);
    assert_eq!(records[2].status, 401);
    let dump = format!("{records:?}");
    assert!(!dump.contains(&region.admin_password));
    assert!(!dump.contains(&admin));
}
