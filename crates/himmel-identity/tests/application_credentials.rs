//! Application credentials and access rules over HTTP, and tokens issued
//! through them.

mod fixtures;
mod support;

use fixtures::{create_project, create_user, grant, project_token, revoke, role_names};
use serde_json::{json, Value};
use support::{password_auth, Engine, Region};

/// POST /v3/auth/tokens; returns status, body and the token when issued.
async fn auth(region: &Region, body: Value) -> (u16, Value, Option<String>) {
    let r = region
        .http
        .post(format!("{}/v3/auth/tokens", region.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let token = r
        .headers()
        .get("x-subject-token")
        .map(|t| t.to_str().unwrap().to_string());
    (status, r.json().await.unwrap_or(Value::Null), token)
}

fn by_id(id: &str, secret: &str) -> Value {
    json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"id": id, "secret": secret}}}})
}

fn by_name(name: &str, user: &str, secret: &str) -> Value {
    json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"name": name, "secret": secret,
            "user": {"name": user, "domain": {"name": "Default"}}}}}})
}

fn app_cred(body: Value) -> Option<Value> {
    Some(json!({ "application_credential": body }))
}

async fn app_credentials(region: &Region) {
    let admin = region.admin_token().await;
    let project = create_project(region, "gamma").await;
    let erin = create_user(region, "erin", json!({})).await;
    let frank = create_user(region, "frank", json!({})).await;
    grant(region, &erin.id, &project, "member").await;
    grant(region, &frank.id, &project, "member").await;
    let erin_token = project_token(region, &erin, "gamma").await;
    let frank_token = project_token(region, &frank, "gamma").await;
    let base = format!("/v3/users/{}/application_credentials", erin.id);

    // A restricted credential with only the reader role; the secret is generated.
    let (status, created) = region
        .call(
            "POST",
            &base,
            &erin_token,
            app_cred(
                json!({"name": "ci", "description": "CI jobs", "roles": [{"name": "reader"}]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let ci = created["application_credential"].clone();
    let ci_id = ci["id"].as_str().unwrap().to_string();
    let ci_secret = ci["secret"].as_str().unwrap().to_string();
    assert!(ci_secret.len() >= 64, "a long generated secret");
    assert_eq!(ci["name"], "ci");
    assert_eq!(ci["description"], "CI jobs");
    assert_eq!(ci["project_id"], project.as_str());
    assert_eq!(ci["user_id"], erin.id.as_str());
    assert_eq!(ci["unrestricted"], false);
    assert_eq!(ci["expires_at"], Value::Null);
    assert_eq!(ci["roles"].as_array().unwrap().len(), 1);
    assert_eq!(ci["roles"][0]["name"], "reader");
    assert!(ci["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{base}/{ci_id}")));

    // An unrestricted one with the caller's roles and its own secret, in
    // the shape openstacksdk sends (empty lists and nulls for defaults).
    let (status, created) = region
        .call(
            "POST",
            &base,
            &erin_token,
            app_cred(
                json!({"name": "full", "secret": "erin-own-secret", "unrestricted": true,
                "roles": [], "access_rules": [], "description": null, "expires_at": null}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let full_id = created["application_credential"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        created["application_credential"]["secret"],
        "erin-own-secret"
    );
    let mut roles: Vec<&str> = created["application_credential"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    roles.sort();
    assert_eq!(roles, ["member", "reader"]);

    // Conflicts and bad input.
    let (status, _) = region
        .call("POST", &base, &erin_token, app_cred(json!({"name": "ci"})))
        .await;
    assert_eq!(status, 409);
    for (body, why) in [
        (json!({"description": "no name"}), "missing name"),
        (json!({"name": "  "}), "blank name"),
        (
            json!({"name": "x", "roles": [{"name": "admin"}]}),
            "role not held",
        ),
        (
            json!({"name": "x", "roles": [{"id": "nope"}]}),
            "unknown role id",
        ),
        (json!({"name": "x", "roles": "member"}), "roles not a list"),
        (
            json!({"name": "x", "roles": [{"id": "a", "name": "b"}]}),
            "role with id and name",
        ),
        (
            json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
            "expired already",
        ),
        (
            json!({"name": "x", "expires_at": "next tuesday"}),
            "bad timestamp",
        ),
        (
            json!({"name": "x", "unrestricted": "yes"}),
            "unrestricted not a boolean",
        ),
        (json!({"name": "x", "secret": 12}), "secret not a string"),
        (
            json!({"name": "x", "access_rules": [{"service": "compute", "path": "servers", "method": "GET"}]}),
            "path without a slash",
        ),
        (
            json!({"name": "x", "access_rules": [{"service": "compute", "path": "/servers", "method": "FETCH"}]}),
            "unknown method",
        ),
        (
            json!({"name": "x", "access_rules": [{"service": "compute", "path": "/s", "method": "GET", "x": 1}]}),
            "unknown attribute",
        ),
    ] {
        let (status, err) = region
            .call("POST", &base, &erin_token, app_cred(body))
            .await;
        assert_eq!(status, 400, "{why}: {err}");
        assert_eq!(err["error"]["code"], 400);
    }
    let (status, _) = region
        .call("POST", &base, &erin_token, Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, 400, "body without the application_credential key");
    let (status, _) = region
        .call("POST", &base, &frank_token, app_cred(json!({"name": "x"})))
        .await;
    assert_eq!(status, 403, "frank cannot create erin's");
    let (status, _) = region
        .call("POST", &base, &admin, app_cred(json!({"name": "x"})))
        .await;
    assert_eq!(status, 403, "nor can the admin");
    let (unscoped, _) = region
        .token(password_auth(
            "erin",
            "Default",
            &erin.password,
            Value::Null,
        ))
        .await;
    let (status, _) = region
        .call("POST", &base, &unscoped, app_cred(json!({"name": "x"})))
        .await;
    assert_eq!(status, 400, "a project-scoped token is required");

    // Reading them back never shows the secret.
    let (status, list) = region.call("GET", &base, &erin_token, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["application_credentials"].as_array().unwrap().len(), 2);
    assert!(list["application_credentials"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c.get("secret").is_none()));
    let (_, list) = region
        .call("GET", &format!("{base}?name=ci"), &erin_token, None)
        .await;
    assert_eq!(list["application_credentials"].as_array().unwrap().len(), 1);
    let (status, one) = region
        .call("GET", &format!("{base}/{ci_id}"), &admin, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["application_credential"]["name"], "ci");
    assert!(one["application_credential"].get("secret").is_none());
    let (status, _) = region
        .call("GET", &format!("{base}/{ci_id}"), &frank_token, None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call("GET", &format!("{base}/nope"), &erin_token, None)
        .await;
    assert_eq!(status, 404);
    let frank_path = format!("/v3/users/{}/application_credentials/{ci_id}", frank.id);
    let (status, _) = region.call("GET", &frank_path, &frank_token, None).await;
    assert_eq!(status, 404, "erin's credential is not under frank");

    // Authenticating: the token is scoped to the project with the subset of roles.
    let (status, body, ci_token) = auth(region, by_id(&ci_id, &ci_secret)).await;
    assert_eq!(status, 201, "{body}");
    let ci_token = ci_token.unwrap();
    assert_eq!(body["token"]["methods"], json!(["application_credential"]));
    assert_eq!(body["token"]["project"]["id"], project.as_str());
    assert_eq!(role_names(&body), ["reader"]);
    assert_eq!(
        body["token"]["application_credential"]["id"],
        ci_id.as_str()
    );
    assert_eq!(body["token"]["application_credential"]["restricted"], true);
    let (status, body, _) = auth(region, by_name("ci", "erin", &ci_secret)).await;
    assert_eq!(status, 201, "by name and user: {body}");
    for (body, want, why) in [
        (by_id(&ci_id, "wrong secret"), 401, "wrong secret"),
        (by_id("no-such-credential", &ci_secret), 401, "unknown id"),
        (
            by_name("ci", "frank", &ci_secret),
            401,
            "another user's name",
        ),
        (
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": ci_id}}}}),
            400,
            "no secret",
        ),
    ] {
        let (status, err, _) = auth(region, body).await;
        assert_eq!(status, want, "{why}: {err}");
    }
    let mut scoped = by_id(&ci_id, &ci_secret);
    scoped["auth"]["scope"] = json!({"project": {"id": project}});
    let (status, _, _) = auth(region, scoped).await;
    assert_eq!(
        status, 401,
        "an application credential cannot ask for a scope"
    );

    // A restricted credential's token cannot manage application credentials.
    let (status, _) = region
        .call(
            "POST",
            &base,
            &ci_token,
            app_cred(json!({"name": "escalate"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call("DELETE", &format!("{base}/{full_id}"), &ci_token, None)
        .await;
    assert_eq!(status, 403);
    // An unrestricted one's token can.
    let (status, _, full_token) = auth(region, by_id(&full_id, "erin-own-secret")).await;
    assert_eq!(status, 201);
    let full_token = full_token.unwrap();
    let (status, child) = region
        .call(
            "POST",
            &base,
            &full_token,
            app_cred(json!({"name": "child"})),
        )
        .await;
    assert_eq!(status, 201, "{child}");

    // Expiry: tokens never outlive the credential; expired ones are refused.
    let expires = (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
    let (status, created) = region
        .call(
            "POST",
            &base,
            &erin_token,
            app_cred(json!({"name": "short", "expires_at": expires})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let short_id = created["application_credential"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let short_secret = created["application_credential"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body, _) = auth(region, by_id(&short_id, &short_secret)).await;
    assert_eq!(status, 201);
    let token_expiry =
        chrono::DateTime::parse_from_rfc3339(body["token"]["expires_at"].as_str().unwrap())
            .unwrap();
    let cred_expiry = chrono::DateTime::parse_from_rfc3339(&expires).unwrap();
    assert!(
        token_expiry <= cred_expiry,
        "{token_expiry} > {cred_expiry}"
    );
    sqlx::query("UPDATE application_credentials SET expires_at = $1 WHERE id = $2")
        .bind(chrono::Utc::now().timestamp_micros() - 1_000_000)
        .bind(&short_id)
        .execute(region.identity.db().pool())
        .await
        .unwrap();
    let (status, _, _) = auth(region, by_id(&short_id, &short_secret)).await;
    assert_eq!(status, 401, "expired");

    // Deleting the credential ends its tokens at once.
    let (status, _) = region
        .call("GET", "/v3/auth/catalog", &ci_token, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = region
        .call("DELETE", &format!("{base}/{ci_id}"), &frank_token, None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call("DELETE", &format!("{base}/{ci_id}"), &erin_token, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("GET", "/v3/auth/catalog", &ci_token, None)
        .await;
    assert_eq!(status, 401);
    let (status, _, _) = auth(region, by_id(&ci_id, &ci_secret)).await;
    assert_eq!(status, 401);

    // Losing the role on the project ends the credential's tokens too.
    revoke(region, &erin.id, &project, "member").await;
    // Role changes made through the API revoke tokens; here the store is
    // changed directly, so wait out the validation cache.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, _) = region
        .call("GET", "/v3/auth/catalog", &full_token, None)
        .await;
    assert_eq!(status, 401);
    let (status, _, _) = auth(region, by_id(&full_id, "erin-own-secret")).await;
    assert_eq!(status, 401);
}

async fn access_rules(region: &Region) {
    let project = create_project(region, "delta").await;
    let gina = create_user(region, "gina", json!({})).await;
    let hank = create_user(region, "hank", json!({})).await;
    grant(region, &gina.id, &project, "member").await;
    grant(region, &hank.id, &project, "member").await;
    let gina_token = project_token(region, &gina, "delta").await;
    let hank_token = project_token(region, &hank, "delta").await;
    let base = format!("/v3/users/{}/application_credentials", gina.id);
    let rules_path = format!("/v3/users/{}/access_rules", gina.id);
    let rule = json!({"service": "compute", "path": "/v2.1/servers", "method": "GET"});

    let (status, created) = region
        .call(
            "POST",
            &base,
            &gina_token,
            app_cred(json!({"name": "servers", "access_rules": [rule]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let first = created["application_credential"].clone();
    let rule_id = first["access_rules"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(first["access_rules"][0]["service"], "compute");

    // The same rule again, by value and by id, is reused, not duplicated.
    let (status, created) = region
        .call(
            "POST",
            &base,
            &gina_token,
            app_cred(json!({"name": "again", "access_rules": [rule, {"id": rule_id}]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let again = created["application_credential"].clone();
    assert_eq!(again["access_rules"].as_array().unwrap().len(), 1);
    assert_eq!(again["access_rules"][0]["id"], rule_id.as_str());
    let (status, _) = region
        .call(
            "POST",
            &base,
            &gina_token,
            app_cred(json!({"name": "x", "access_rules": [{"id": "not-a-rule"}]})),
        )
        .await;
    assert_eq!(status, 404);

    let (status, list) = region.call("GET", &rules_path, &gina_token, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["access_rules"].as_array().unwrap().len(), 1);
    assert!(list["access_rules"][0]["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{rules_path}/{rule_id}")));
    let (status, _) = region.call("GET", &rules_path, &hank_token, None).await;
    assert_eq!(status, 403);
    let (status, one) = region
        .call("GET", &format!("{rules_path}/{rule_id}"), &gina_token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["access_rule"]["path"], "/v2.1/servers");

    // The token of such a credential carries its rules.
    let secret = first["secret"].as_str().unwrap();
    let (status, body, _) = auth(region, by_id(first["id"].as_str().unwrap(), secret)).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["token"]["application_credential"]["access_rules"][0]["id"],
        rule_id.as_str()
    );

    // A rule in use cannot go; once unused it can.
    let rule_path = format!("{rules_path}/{rule_id}");
    let (status, _) = region.call("DELETE", &rule_path, &gina_token, None).await;
    assert_eq!(status, 403);
    for c in [&first, &again] {
        let path = format!("{base}/{}", c["id"].as_str().unwrap());
        let (status, _) = region.call("DELETE", &path, &gina_token, None).await;
        assert_eq!(status, 204);
    }
    let (status, _) = region.call("DELETE", &rule_path, &hank_token, None).await;
    assert_eq!(status, 403);
    let (status, _) = region.call("DELETE", &rule_path, &gina_token, None).await;
    assert_eq!(status, 204);
    let (status, _) = region.call("GET", &rule_path, &gina_token, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn application_credentials_sqlite() {
    let region = Region::start().await;
    app_credentials(&region).await;
    access_rules(&region).await;
}

#[tokio::test]
async fn application_credentials_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => {
            app_credentials(&region).await;
            access_rules(&region).await;
        }
        None => eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set"),
    }
}
