//! Users and groups over HTTP, on SQLite and PostgreSQL: CRUD, passwords
//! and the security-compliance rules, group membership, and a domain
//! manager's confinement to its domain.

mod support;

use himmel_identity::SecurityCompliance;
use serde_json::{json, Value};
use support::{password_auth, Engine, Region};

async fn post(region: &Region, token: &str, path: &str, kind: &str, body: Value) -> Value {
    let (status, out) = region
        .call("POST", path, token, Some(json!({ kind: body })))
        .await;
    assert_eq!(status, 201, "create {kind}: {out}");
    out[kind].clone()
}

/// Status of a password login (201 or an error status).
async fn login_status(region: &Region, name: &str, domain: &str, password: &str) -> u16 {
    region
        .http
        .post(format!("{}/v3/auth/tokens", region.url))
        .json(&password_auth(name, domain, password, Value::Null))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn unscoped(region: &Region, name: &str, password: &str) -> String {
    region
        .token(password_auth(name, "Default", password, Value::Null))
        .await
        .0
}

async fn change_password(
    region: &Region,
    user_id: &str,
    original: &str,
    new: &str,
) -> (u16, Value) {
    // No token: a user with an expired password has none.
    let r = region
        .http
        .post(format!("{}/v3/users/{user_id}/password", region.url))
        .json(&json!({"user": {"original_password": original, "password": new}}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn user_lifecycle(region: &Region) {
    let admin = region.admin_token().await;
    let u = post(
        region,
        &admin,
        "/v3/users",
        "user",
        json!({
            "name": "alice", "password": "first-secret", "email": "alice@example.org",
            "description": "ops", "options": {"ignore_password_expiry": true},
            "department": "IT"
        }),
    )
    .await;
    let uid = u["id"].as_str().unwrap().to_string();
    assert_eq!(u["domain_id"], "default");
    assert_eq!(u["enabled"], true);
    assert_eq!(u["email"], "alice@example.org");
    assert_eq!(u["department"], "IT");
    assert_eq!(u["options"], json!({"ignore_password_expiry": true}));
    assert!(u["password_expires_at"].is_null());
    assert_eq!(u["links"]["self"], format!("/v3/users/{uid}"));
    let dump = u.to_string();
    assert!(
        !dump.contains("first-secret") && !dump.contains("argon2"),
        "{dump}"
    );

    // Bad bodies are 400s, duplicates 409, unknown ids 404.
    let (status, body) = region
        .call(
            "POST",
            "/v3/users",
            &admin,
            Some(json!({"user": {"name": "alice"}})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"]["message"],
        "Conflict occurred attempting to store user - Duplicate entry found with name alice at domain ID default."
    );
    for bad in [
        json!({"user": {"name": 1}}),
        json!({"user": {"email": "x@y"}}),
        json!({"user": {"name": "n".repeat(256)}}),
        json!({"user": {"name": "b", "enabled": "true"}}),
        json!({"user": {"name": "b", "password": 1234}}),
        json!({"user": {"name": "b", "options": {"no_such_option": true}}}),
        json!({"user": {"name": "b", "options": {"lock_password": "yes"}}}),
        json!({"user": {"name": "b", "options": {"multi_factor_auth_rules": [["password", "password"]]}}}),
        json!({"user": {"name": "b", "options": {"multi_factor_auth_rules": "totp"}}}),
        json!({"user": {"name": "b", "default_project_id": 3}}),
        json!({"user": {"name": "b", "password_expires_at": "2030-01-01T00:00:00Z"}}),
        json!({"user": ["b"]}),
    ] {
        let (status, body) = region
            .call("POST", "/v3/users", &admin, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert_eq!(body["error"]["code"], 400);
    }
    let (status, _) = region
        .call(
            "POST",
            "/v3/users",
            &admin,
            Some(json!({"user": {"name": "b", "domain_id": "nosuchdomain"}})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = region
        .call("GET", "/v3/users/nosuchuser", &admin, None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "Could not find user: nosuchuser.");

    // Lists and filters.
    post(
        region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "bob", "enabled": false}),
    )
    .await;
    let names = |body: &Value| -> Vec<String> {
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, body) = region
        .call("GET", "/v3/users?domain_id=default", &admin, None)
        .await;
    assert_eq!(names(&body), vec!["admin", "alice", "bob"]);
    let (_, body) = region
        .call("GET", "/v3/users?enabled=false", &admin, None)
        .await;
    assert_eq!(names(&body), vec!["bob"]);
    let (_, body) = region
        .call("GET", "/v3/users?name=alice", &admin, None)
        .await;
    assert_eq!(names(&body), vec!["alice"]);
    let (_, body) = region
        .call("GET", "/v3/users?name__startswith=b", &admin, None)
        .await;
    assert_eq!(names(&body), vec!["bob"]);
    assert!(!body.to_string().contains("argon2"));

    // The user's own token reads itself; an update keeps what it does not name.
    let alice = unscoped(region, "alice", "first-secret").await;
    let (status, body) = region
        .call("GET", &format!("/v3/users/{uid}"), &alice, None)
        .await;
    assert_eq!(status, 200, "the owner reads itself");
    assert_eq!(body["user"]["name"], "alice");
    let (status, body) = region
        .call(
            "PATCH",
            &format!("/v3/users/{uid}"),
            &admin,
            Some(json!({"user": {"description": "sre", "department": null,
                                 "options": {"ignore_password_expiry": null, "lock_password": false}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["description"], "sre");
    assert_eq!(body["user"]["email"], "alice@example.org");
    assert!(body["user"].get("department").is_none());
    assert_eq!(body["user"]["options"], json!({"lock_password": false}));
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/users/{uid}"),
            &admin,
            Some(json!({"user": {"domain_id": "other"}})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = region
        .call(
            "PATCH",
            "/v3/users/nosuchuser",
            &admin,
            Some(json!({"user": {}})),
        )
        .await;
    assert_eq!(status, 404);

    // The owner changes its password: wrong original 401, then the old
    // password and the old token stop working.
    let (status, body) = change_password(region, &uid, "wrong", "second-secret").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 401);
    let (status, _) = change_password(region, "nosuchuser", "x", "second-secret").await;
    assert_eq!(status, 401, "unknown users look like wrong passwords");
    let (status, _) = change_password(region, &uid, "first-secret", "second-secret").await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("GET", &format!("/v3/users/{uid}"), &alice, None)
        .await;
    assert_eq!(status, 401, "tokens from before the change are revoked");
    assert_eq!(
        login_status(region, "alice", "Default", "first-secret").await,
        401
    );
    let alice = unscoped(region, "alice", "second-secret").await;

    // An administrator's reset revokes tokens too.
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/users/{uid}"),
            &admin,
            Some(json!({"user": {"password": "third-secret"}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = region
        .call("GET", &format!("/v3/users/{uid}"), &alice, None)
        .await;
    assert_eq!(status, 401);
    let alice = unscoped(region, "alice", "third-secret").await;

    // Disabling revokes; so does deletion.
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/users/{uid}"),
            &admin,
            Some(json!({"user": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = region
        .call("GET", &format!("/v3/users/{uid}"), &alice, None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        login_status(region, "alice", "Default", "third-secret").await,
        401
    );
    let (status, _) = region
        .call("DELETE", &format!("/v3/users/{uid}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("GET", &format!("/v3/users/{uid}"), &admin, None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = region
        .call("DELETE", &format!("/v3/users/{uid}"), &admin, None)
        .await;
    assert_eq!(status, 404);
}

/// A domain manager creates and changes users in its own domain only.
async fn domain_manager_confinement(region: &Region) {
    let admin = region.admin_token().await;
    let a = post(
        region,
        &admin,
        "/v3/domains",
        "domain",
        json!({"name": "DomA"}),
    )
    .await;
    let b = post(
        region,
        &admin,
        "/v3/domains",
        "domain",
        json!({"name": "DomB"}),
    )
    .await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let mgr = post(
        region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "mgr", "domain_id": a_id, "password": "manage-it"}),
    )
    .await;
    region
        .grant_direct(mgr["id"].as_str().unwrap(), "domain", a_id, "manager")
        .await;
    let in_b = post(
        region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "bea", "domain_id": b_id}),
    )
    .await;
    let in_b_path = format!("/v3/users/{}", in_b["id"].as_str().unwrap());
    let (token, _) = region
        .token(password_auth(
            "mgr",
            "DomA",
            "manage-it",
            json!({"domain": {"id": a_id}}),
        ))
        .await;

    // In A: create (the domain defaults to the token's), update, read.
    let (status, body) = region
        .call(
            "POST",
            "/v3/users",
            &token,
            Some(json!({"user": {"name": "amy"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["domain_id"], a_id);
    let amy = format!("/v3/users/{}", body["user"]["id"].as_str().unwrap());
    let (status, _) = region
        .call(
            "PATCH",
            &amy,
            &token,
            Some(json!({"user": {"description": "new"}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = region.call("GET", "/v3/users", &token, None).await;
    assert_eq!(status, 200);
    let mut names: Vec<&str> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["amy", "mgr"],
        "a domain reader lists its domain only"
    );

    // In B: refused.
    let (status, body) = region
        .call(
            "POST",
            "/v3/users",
            &token,
            Some(json!({"user": {"name": "eve", "domain_id": b_id}})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], 403);
    let (status, _) = region
        .call(
            "PATCH",
            &in_b_path,
            &token,
            Some(json!({"user": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = region.call("GET", &in_b_path, &token, None).await;
    assert_eq!(status, 403);
    let (status, _) = region.call("DELETE", &in_b_path, &token, None).await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call(
            "POST",
            "/v3/domains",
            &token,
            Some(json!({"domain": {"name": "mine"}})),
        )
        .await;
    assert_eq!(status, 403, "managers do not create domains");
    let (status, _) = region.call("DELETE", &amy, &token, None).await;
    assert_eq!(status, 204);

    // Deleting a domain takes its users along.
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/domains/{b_id}"),
            &admin,
            Some(json!({"domain": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = region
        .call("DELETE", &format!("/v3/domains/{b_id}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = region.call("GET", &in_b_path, &admin, None).await;
    assert_eq!(status, 404);
}

async fn groups_and_membership(region: &Region) {
    let admin = region.admin_token().await;
    let g = post(
        region,
        &admin,
        "/v3/groups",
        "group",
        json!({"name": "ops", "description": "operators", "pager": "yes"}),
    )
    .await;
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(g["domain_id"], "default");
    assert_eq!(g["pager"], "yes");
    assert_eq!(g["links"]["self"], format!("/v3/groups/{gid}"));
    let (status, body) = region
        .call(
            "POST",
            "/v3/groups",
            &admin,
            Some(json!({"group": {"name": "ops"}})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    for bad in [
        json!({"group": {"name": 5}}),
        json!({"group": {"description": "no name"}}),
        json!({"group": {"name": "g".repeat(65)}}),
        json!({"group": {"name": "x", "domain_id": ["default"]}}),
    ] {
        let (status, _) = region
            .call("POST", "/v3/groups", &admin, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = region
        .call("GET", "/v3/groups/nosuchgroup", &admin, None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = region
        .call(
            "PATCH",
            &format!("/v3/groups/{gid}"),
            &admin,
            Some(json!({"group": {"name": "ops-team", "description": null}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["group"]["name"], "ops-team");
    assert_eq!(body["group"]["description"], "");
    let (_, body) = region
        .call("GET", "/v3/groups?name__contains=team", &admin, None)
        .await;
    assert_eq!(body["groups"].as_array().unwrap().len(), 1);

    // A member holds the group's role on a project through it.
    let u = post(
        region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "gina", "password": "gina-pw"}),
    )
    .await;
    let uid = u["id"].as_str().unwrap().to_string();
    let (status, p) = region
        .call(
            "POST",
            "/v3/projects",
            &admin,
            Some(json!({"project": {"name": "grp-proj"}})),
        )
        .await;
    assert_eq!(status, 201);
    let pid = p["project"]["id"].as_str().unwrap().to_string();
    let member = format!("/v3/groups/{gid}/users/{uid}");
    let (status, _) = region.call("HEAD", &member, &admin, None).await;
    assert_eq!(status, 404, "not a member yet");
    let (status, _) = region.call("PUT", &member, &admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = region.call("PUT", &member, &admin, None).await;
    assert_eq!(status, 204, "adding twice is fine");
    let (status, _) = region.call("HEAD", &member, &admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call(
            "PUT",
            &format!("/v3/groups/{gid}/users/nosuchuser"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = region
        .call(
            "PUT",
            &format!("/v3/groups/nosuchgroup/users/{uid}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (_, body) = region
        .call("GET", &format!("/v3/groups/{gid}/users"), &admin, None)
        .await;
    assert_eq!(body["users"][0]["id"], uid.as_str());
    assert!(!body.to_string().contains("argon2"));
    let (_, body) = region
        .call("GET", &format!("/v3/users/{uid}/groups"), &admin, None)
        .await;
    assert_eq!(body["groups"][0]["id"], gid.as_str());

    let db = region.identity.db();
    let role_id: String = himmel_db::sqlx::query_scalar(
        "SELECT id FROM roles WHERE domain_id = '' AND name = 'member'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    himmel_db::sqlx::query(
        "INSERT INTO role_assignments (actor_type, actor_id, target_type, target_id, role_id, inherited)          VALUES ('group', $1, 'project', $2, $3, 0)",
    )
    .bind(&gid)
    .bind(&pid)
    .bind(&role_id)
    .execute(db.pool())
    .await
    .unwrap();
    let (token, _) = region
        .token(password_auth(
            "gina",
            "Default",
            "gina-pw",
            json!({"project": {"id": pid}}),
        ))
        .await;
    let (status, _) = region
        .call("GET", &format!("/v3/projects/{pid}"), &token, None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = region
        .call("GET", &format!("/v3/users/{uid}/groups"), &token, None)
        .await;
    assert_eq!(status, 200, "a user lists its own groups: {body}");

    // Leaving the group takes the role away from the token at once.
    let (status, _) = region.call("DELETE", &member, &admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("GET", &format!("/v3/projects/{pid}"), &token, None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = region.call("DELETE", &member, &admin, None).await;
    assert_eq!(status, 404);

    let (status, _) = region
        .call("DELETE", &format!("/v3/groups/{gid}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("GET", &format!("/v3/groups/{gid}"), &admin, None)
        .await;
    assert_eq!(status, 404);
    let left: i64 =
        himmel_db::sqlx::query_scalar("SELECT COUNT(*) FROM role_assignments WHERE actor_id = $1")
            .bind(&gid)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(left, 0, "a deleted group's assignments go with it");
}

/// A manager of one domain adds users of its domain to its groups only.
async fn group_manager_confinement(region: &Region) {
    let admin = region.admin_token().await;
    let a = post(
        region,
        &admin,
        "/v3/domains",
        "domain",
        json!({"name": "GrpA"}),
    )
    .await;
    let a_id = a["id"].as_str().unwrap();
    let mgr = post(
        region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "gmgr", "domain_id": a_id, "password": "manage-it"}),
    )
    .await;
    region
        .grant_direct(mgr["id"].as_str().unwrap(), "domain", a_id, "manager")
        .await;
    let (token, _) = region
        .token(password_auth(
            "gmgr",
            "GrpA",
            "manage-it",
            json!({"domain": {"id": a_id}}),
        ))
        .await;
    let (status, body) = region
        .call(
            "POST",
            "/v3/groups",
            &token,
            Some(json!({"group": {"name": "team"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["group"]["domain_id"], a_id);
    let gid = body["group"]["id"].as_str().unwrap().to_string();
    let (status, _) = region
        .call(
            "POST",
            "/v3/groups",
            &token,
            Some(json!({"group": {"name": "team", "domain_id": "default"}})),
        )
        .await;
    assert_eq!(status, 403);
    let outsider = post(
        region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "outsider"}),
    )
    .await;
    let (status, _) = region
        .call(
            "PUT",
            &format!(
                "/v3/groups/{gid}/users/{}",
                outsider["id"].as_str().unwrap()
            ),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 403, "a user of another domain");
    let (status, _) = region
        .call(
            "PUT",
            &format!("/v3/groups/{gid}/users/{}", mgr["id"].as_str().unwrap()),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = region.call("GET", "/v3/groups", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["groups"].as_array().unwrap().len(), 1, "{body}");
}

async fn users_all(region: &Region) {
    user_lifecycle(region).await;
    domain_manager_confinement(region).await;
    groups_and_membership(region).await;
    group_manager_confinement(region).await;
}

#[tokio::test]
async fn users_sqlite() {
    users_all(&Region::start().await).await;
}

#[tokio::test]
async fn users_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => users_all(&region).await,
        None => eprintln!(
            "skipped: HIMMEL_TEST_POSTGRES is not set (the project's test command sets it)"
        ),
    }
}

async fn region_with(security: SecurityCompliance) -> Region {
    Region::start_with(Engine::Sqlite, security).await.unwrap()
}

#[tokio::test]
async fn password_rules_regex_and_history() {
    let region = region_with(SecurityCompliance {
        password_regex: Some(r"^(?=.*\d)(?=.*[a-zA-Z]).{7,}$".into()),
        password_regex_description: Some("at least 7 characters with a letter and a digit".into()),
        unique_last_password_count: 3,
        ..Default::default()
    })
    .await;
    let admin = region.admin_token().await;
    let (status, body) = region
        .call(
            "POST",
            "/v3/users",
            &admin,
            Some(json!({"user": {"name": "c", "password": "short"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "The password does not meet the requirements: at least 7 characters with a letter and a digit"
    );
    let u = post(
        &region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "c", "password": "secret01"}),
    )
    .await;
    let uid = u["id"].as_str().unwrap();
    assert_eq!(
        change_password(&region, uid, "secret01", "secret02")
            .await
            .0,
        204
    );
    assert_eq!(
        change_password(&region, uid, "secret02", "secret03")
            .await
            .0,
        204
    );
    let (status, body) = change_password(&region, uid, "secret03", "secret02").await;
    assert_eq!(status, 400, "one of the last 3: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("previous password"));
    let (status, _) = change_password(&region, uid, "secret03", "weak").await;
    assert_eq!(status, 400);
    // secret01 is older than the last three now.
    assert_eq!(
        change_password(&region, uid, "secret03", "secret04")
            .await
            .0,
        204
    );
    assert_eq!(
        change_password(&region, uid, "secret04", "secret01")
            .await
            .0,
        204
    );
    assert_eq!(login_status(&region, "c", "Default", "secret01").await, 201);
}

#[tokio::test]
async fn passwords_set_by_an_admin_expire_on_first_use() {
    let region = region_with(SecurityCompliance {
        change_password_upon_first_use: true,
        password_expires_days: 90,
        ..Default::default()
    })
    .await;
    let admin = region.admin_token().await;
    let u = post(
        &region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "d", "password": "given-pw"}),
    )
    .await;
    let uid = u["id"].as_str().unwrap();
    assert!(u["password_expires_at"].is_string());
    assert_eq!(login_status(&region, "d", "Default", "given-pw").await, 401);
    assert_eq!(
        change_password(&region, uid, "given-pw", "own-pw").await.0,
        204
    );
    assert_eq!(login_status(&region, "d", "Default", "own-pw").await, 201);
    let (_, body) = region
        .call("GET", &format!("/v3/users/{uid}"), &admin, None)
        .await;
    let expires = body["user"]["password_expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    let at = chrono::DateTime::parse_from_rfc3339(&expires).unwrap();
    let days = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days();
    assert!((89..=90).contains(&days), "{expires}");

    // The expiry filter of the user list.
    let soon = (chrono::Utc::now() + chrono::Duration::days(80)).format("%Y-%m-%dT%H:%M:%SZ");
    let (_, body) = region
        .call(
            "GET",
            &format!("/v3/users?password_expires_at=gt:{soon}"),
            &admin,
            None,
        )
        .await;
    let names: Vec<&str> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["d"]);
    let (_, body) = region
        .call(
            "GET",
            &format!("/v3/users?password_expires_at=lt:{soon}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(body["users"].as_array().unwrap().len(), 0);
    let (status, _) = region
        .call(
            "GET",
            "/v3/users?password_expires_at=lt:yesterday",
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 400);

    // Users the option exempts keep their password usable.
    post(
        &region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "e", "password": "given-pw",
               "options": {"ignore_change_password_upon_first_use": true}}),
    )
    .await;
    assert_eq!(login_status(&region, "e", "Default", "given-pw").await, 201);
}

#[tokio::test]
async fn minimum_age_and_locked_passwords() {
    let region = region_with(SecurityCompliance {
        minimum_password_age: 1,
        ..Default::default()
    })
    .await;
    let admin = region.admin_token().await;
    let u = post(
        &region,
        &admin,
        "/v3/users",
        "user",
        json!({"name": "f", "password": "pw-one"}),
    )
    .await;
    let uid = u["id"].as_str().unwrap();
    let (status, body) = change_password(&region, uid, "pw-one", "pw-two").await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("minimum password age"));
    // An administrator may still reset it.
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/users/{uid}"),
            &admin,
            Some(json!({"user": {"password": "pw-two", "options": {"lock_password": true}}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(login_status(&region, "f", "Default", "pw-two").await, 201);
    let (status, body) = change_password(&region, uid, "pw-two", "pw-three").await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disallowing password changes"));
}
