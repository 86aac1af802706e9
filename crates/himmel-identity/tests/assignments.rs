//! Grants, their token effects, the domain manager's confinement and
//! `GET /v3/role_assignments`, over HTTP.

mod support;

use serde_json::{json, Value};
use support::{password_auth, Engine, Region};

const PASSWORD: &str = "correct horse battery staple";

/// Domains, projects, users and groups the tests act on, written straight
/// into the store (their own APIs are tested elsewhere).
struct World {
    domain_a: String,
    domain_b: String,
    project_a: String,
    child_a: String,
    project_b: String,
    /// Manager of domain A.
    manager: String,
    /// An ordinary user of domain A.
    bob: String,
    /// A user of domain B.
    carol: String,
    group_a: String,
}

async fn exec(region: &Region, sql: &str, args: &[&str]) {
    let mut q = himmel_db::sqlx::query(sql);
    for a in args {
        q = q.bind(*a);
    }
    q.execute(region.identity.db().pool()).await.unwrap();
}

fn new_id() -> String {
    himmel_core::ids::new_id()
}

async fn domain(region: &Region, name: &str) -> String {
    let id = new_id();
    exec(
        region,
        "INSERT INTO domains (id, name, created_at, updated_at) VALUES ($1, $2, 0, 0)",
        &[&id, name],
    )
    .await;
    id
}

async fn project(region: &Region, name: &str, domain: &str, parent: Option<&str>) -> String {
    let id = new_id();
    exec(
        region,
        "INSERT INTO projects (id, name, domain_id, parent_id, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, 0)",
        &[&id, name, domain, parent.unwrap_or(domain)],
    )
    .await;
    id
}

async fn user(region: &Region, name: &str, domain: &str) -> String {
    let id = new_id();
    let hash = himmel_identity::password::hash(PASSWORD).unwrap();
    exec(
        region,
        "INSERT INTO users (id, name, domain_id, password_hash, password_created_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 0, 0, 0)",
        &[&id, name, domain, &hash],
    )
    .await;
    id
}

async fn group(region: &Region, name: &str, domain: &str, members: &[&str]) -> String {
    let id = new_id();
    exec(
        region,
        "INSERT INTO groups (id, name, domain_id, created_at, updated_at) VALUES ($1, $2, $3, 0, 0)",
        &[&id, name, domain],
    )
    .await;
    for m in members {
        exec(
            region,
            "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)",
            &[&id, m],
        )
        .await;
    }
    id
}

async fn world(region: &Region) -> World {
    let domain_a = domain(region, "alpha").await;
    let domain_b = domain(region, "beta").await;
    let project_a = project(region, "pa", &domain_a, None).await;
    let child_a = project(region, "pa-child", &domain_a, Some(&project_a)).await;
    let project_b = project(region, "pb", &domain_b, None).await;
    let manager = user(region, "manager", &domain_a).await;
    let bob = user(region, "bob", &domain_a).await;
    let carol = user(region, "carol", &domain_b).await;
    let group_a = group(region, "team", &domain_a, &[&bob]).await;
    World {
        domain_a,
        domain_b,
        project_a,
        child_a,
        project_b,
        manager,
        bob,
        carol,
        group_a,
    }
}

async fn role_id(region: &Region, token: &str, name: &str) -> String {
    let (status, body) = region
        .call("GET", &format!("/v3/roles?name={name}"), token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["roles"][0]["id"].as_str().unwrap().to_string()
}

async fn login(region: &Region, user: &str, domain: &str, scope: Value) -> (u16, Value, String) {
    let r = region
        .http
        .post(format!("{}/v3/auth/tokens", region.url))
        .json(&password_auth(user, domain, PASSWORD, scope))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let token = r
        .headers()
        .get("x-subject-token")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, r.json().await.unwrap_or(Value::Null), token)
}

fn role_names(token_body: &Value) -> Vec<String> {
    let mut v: Vec<String> = token_body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

async fn grant_member_then_login(region: &Region) {
    let admin = region.admin_token().await;
    let w = world(region).await;
    let member = role_id(region, &admin, "member").await;
    let path = format!(
        "/v3/projects/{}/users/{}/roles/{member}",
        w.project_a, w.bob
    );

    // Not granted yet: no project token, check says 404.
    let (status, _, _) = login(
        region,
        "bob",
        "alpha",
        json!({"project": {"id": w.project_a}}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = region.call("HEAD", &path, &admin, None).await;
    assert_eq!(status, 404, "{body}");

    let (status, _) = region.call("PUT", &path, &admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = region.call("PUT", &path, &admin, None).await;
    assert_eq!(status, 204, "granting twice is fine");
    let (status, _) = region.call("HEAD", &path, &admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = region.call("GET", &path, &admin, None).await;
    assert_eq!(status, 204);
    let (status, body) = region
        .call(
            "GET",
            &format!("/v3/projects/{}/users/{}/roles", w.project_a, w.bob),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["roles"][0]["name"], "member");
    assert!(body["links"]["self"].is_string());

    // The user logs in scoped to the project, with member and what it implies.
    let (status, body, token) = login(
        region,
        "bob",
        "alpha",
        json!({"project": {"id": w.project_a}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token"]["project"]["id"], w.project_a.as_str());
    assert_eq!(role_names(&body), ["member", "reader"]);
    let (status, _) = region.call("GET", "/v3/auth/catalog", &token, None).await;
    assert_eq!(status, 200);
    let (status, body) = region.call("GET", "/v3/auth/projects", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["projects"][0]["id"], w.project_a.as_str());

    // Revoking the grant revokes the token and the login.
    let (status, _) = region.call("DELETE", &path, &admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = region.call("GET", "/v3/auth/catalog", &token, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = login(
        region,
        "bob",
        "alpha",
        json!({"project": {"id": w.project_a}}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = region.call("DELETE", &path, &admin, None).await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Could not find role assignment"));
}

#[tokio::test]
async fn grant_member_then_login_sqlite() {
    grant_member_then_login(&Region::start().await).await;
}

#[tokio::test]
async fn grant_member_then_login_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => grant_member_then_login(&region).await,
        None => eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set"),
    }
}

async fn group_and_inherited_grants(region: &Region) {
    let admin = region.admin_token().await;
    let w = world(region).await;
    let member = role_id(region, &admin, "member").await;
    let reader = role_id(region, &admin, "reader").await;

    // Group grant on the project: bob (a member) gets it.
    let group_path = format!(
        "/v3/projects/{}/groups/{}/roles/{member}",
        w.project_a, w.group_a
    );
    assert_eq!(region.call("PUT", &group_path, &admin, None).await.0, 204);
    let (status, body, token) = login(
        region,
        "bob",
        "alpha",
        json!({"project": {"id": w.project_a}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(role_names(&body), ["member", "reader"]);

    // Inherited domain grant: reader on every project of the domain, not on the domain.
    let inherit = format!(
        "/v3/OS-INHERIT/domains/{}/users/{}/roles/{reader}/inherited_to_projects",
        w.domain_a, w.bob
    );
    assert_eq!(region.call("PUT", &inherit, &admin, None).await.0, 204);
    assert_eq!(region.call("HEAD", &inherit, &admin, None).await.0, 204);
    let (status, body) = region
        .call(
            "GET",
            &format!(
                "/v3/OS-INHERIT/domains/{}/users/{}/roles/inherited_to_projects",
                w.domain_a, w.bob
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["roles"][0]["name"], "reader");
    let (status, body, _) = login(
        region,
        "bob",
        "alpha",
        json!({"project": {"id": w.child_a}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(role_names(&body), ["reader"]);
    let (status, _, _) = login(
        region,
        "bob",
        "alpha",
        json!({"domain": {"id": w.domain_a}}),
    )
    .await;
    assert_eq!(status, 401);

    // role_assignments: raw, then effective.
    let (status, body) = region
        .call(
            "GET",
            &format!("/v3/role_assignments?user.id={}", w.bob),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let list = body["role_assignments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only the direct user grant: {body}");
    assert_eq!(
        list[0],
        json!({
            "role": {"id": reader},
            "user": {"id": w.bob},
            "scope": {"domain": {"id": w.domain_a}, "OS-INHERIT:inherited_to": "projects"},
            "links": {"assignment": inherit},
        })
    );
    let (status, body) = region
        .call(
            "GET",
            &format!("/v3/role_assignments?group.id={}", w.group_a),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["role_assignments"],
        json!([{
            "role": {"id": member},
            "group": {"id": w.group_a},
            "scope": {"project": {"id": w.project_a}},
            "links": {"assignment": group_path},
        }])
    );

    let (status, body) = region
        .call(
            "GET",
            &format!(
                "/v3/role_assignments?effective&user.id={}&scope.project.id={}",
                w.bob, w.project_a
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let list = body["role_assignments"].as_array().unwrap();
    // member via the group, reader implied by it, reader inherited from the domain.
    assert_eq!(list.len(), 3, "{body}");
    assert!(list.iter().all(|e| e["user"]["id"] == w.bob.as_str()));
    assert!(list.iter().all(|e| e.get("group").is_none()));
    let via_group = list
        .iter()
        .find(|e| e["role"]["id"] == member.as_str())
        .unwrap();
    assert_eq!(
        via_group["links"]["membership"],
        format!("/v3/groups/{}/users/{}", w.group_a, w.bob)
    );
    assert!(list
        .iter()
        .any(|e| e["links"]["prior_role"].is_string() && e["role"]["id"] == reader.as_str()));
    assert!(list
        .iter()
        .any(|e| e["scope"]["OS-INHERIT:inherited_to"] == "projects"
            && e["scope"]["project"]["id"] == w.project_a.as_str()));

    // include_names and include_subtree.
    let (status, body) = region
        .call(
            "GET",
            &format!(
                "/v3/role_assignments?effective&include_names&scope.project.id={}&include_subtree=true&role.id={reader}",
                w.project_a
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let list = body["role_assignments"].as_array().unwrap();
    assert!(list
        .iter()
        .any(|e| e["scope"]["project"]["id"] == w.child_a.as_str()));
    let e = &list[0];
    assert_eq!(e["user"]["name"], "bob");
    assert_eq!(e["user"]["domain"]["name"], "alpha");
    assert_eq!(e["role"]["name"], "reader");
    assert_eq!(e["scope"]["project"]["domain"]["id"], w.domain_a.as_str());
    assert!(e["scope"]["project"]["name"].is_string());

    // Removing bob's group grant revokes his project token.
    assert_eq!(
        region.call("DELETE", &group_path, &admin, None).await.0,
        204
    );
    let (status, _) = region.call("GET", "/v3/auth/catalog", &token, None).await;
    assert_eq!(status, 401);

    // System grants.
    let sys = format!("/v3/system/users/{}/roles/{reader}", w.carol);
    assert_eq!(region.call("PUT", &sys, &admin, None).await.0, 204);
    assert_eq!(region.call("HEAD", &sys, &admin, None).await.0, 204);
    let (status, body) = region
        .call(
            "GET",
            &format!("/v3/system/users/{}/roles", w.carol),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["roles"][0]["name"], "reader");
    let (status, body) = region
        .call("GET", "/v3/role_assignments?scope.system=all", &admin, None)
        .await;
    assert_eq!(status, 200);
    assert!(body["role_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["user"]["id"] == w.carol.as_str()
            && e["scope"] == json!({"system": {"all": true}})));
    let (status, body, _) = login(region, "carol", "beta", json!({"system": {"all": true}})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(region.call("DELETE", &sys, &admin, None).await.0, 204);
    assert_eq!(region.call("HEAD", &sys, &admin, None).await.0, 404);
}

#[tokio::test]
async fn group_and_inherited_grants_sqlite() {
    group_and_inherited_grants(&Region::start().await).await;
}

#[tokio::test]
async fn group_and_inherited_grants_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => group_and_inherited_grants(&region).await,
        None => eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set"),
    }
}

async fn manager_is_confined_to_its_domain(region: &Region) {
    let admin = region.admin_token().await;
    let w = world(region).await;
    let member = role_id(region, &admin, "member").await;
    let manager_role = role_id(region, &admin, "manager").await;
    let admin_role = role_id(region, &admin, "admin").await;
    let make_manager = format!(
        "/v3/domains/{}/users/{}/roles/{manager_role}",
        w.domain_a, w.manager
    );
    assert_eq!(region.call("PUT", &make_manager, &admin, None).await.0, 204);
    let (status, body, mgr) = login(
        region,
        "manager",
        "alpha",
        json!({"domain": {"id": w.domain_a}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Member on a project of its domain: allowed, and visible to it.
    let in_a = format!(
        "/v3/projects/{}/users/{}/roles/{member}",
        w.project_a, w.bob
    );
    assert_eq!(region.call("PUT", &in_a, &mgr, None).await.0, 204);
    assert_eq!(region.call("HEAD", &in_a, &mgr, None).await.0, 204);
    // On a project of another domain: forbidden.
    let in_b = format!(
        "/v3/projects/{}/users/{}/roles/{member}",
        w.project_b, w.bob
    );
    let (status, body) = region.call("PUT", &in_b, &mgr, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], 403);
    // To a user of another domain: forbidden.
    let carol_in_a = format!(
        "/v3/projects/{}/users/{}/roles/{member}",
        w.project_a, w.carol
    );
    assert_eq!(region.call("PUT", &carol_in_a, &mgr, None).await.0, 403);
    // The admin role, even in its own domain: forbidden, both ways.
    let admin_in_a = format!(
        "/v3/projects/{}/users/{}/roles/{admin_role}",
        w.project_a, w.bob
    );
    assert_eq!(region.call("PUT", &admin_in_a, &mgr, None).await.0, 403);
    assert_eq!(region.call("PUT", &admin_in_a, &admin, None).await.0, 204);
    assert_eq!(region.call("DELETE", &admin_in_a, &mgr, None).await.0, 403);
    let admin_on_domain = format!(
        "/v3/domains/{}/users/{}/roles/{admin_role}",
        w.domain_a, w.bob
    );
    assert_eq!(
        region.call("PUT", &admin_on_domain, &mgr, None).await.0,
        403
    );
    // Nor the service role, nor a custom global role that implies admin.
    let service_role = role_id(region, &admin, "service").await;
    let service_in_a = format!(
        "/v3/projects/{}/users/{}/roles/{service_role}",
        w.project_a, w.bob
    );
    assert_eq!(region.call("PUT", &service_in_a, &mgr, None).await.0, 403);
    let (status, body) = region
        .call(
            "POST",
            "/v3/roles",
            &admin,
            Some(json!({"role": {"name": "boss"}})),
        )
        .await;
    assert_eq!(status, 201);
    let boss = body["role"]["id"].as_str().unwrap().to_string();
    let boss_in_a = format!("/v3/projects/{}/users/{}/roles/{boss}", w.project_a, w.bob);
    assert_eq!(region.call("PUT", &boss_in_a, &mgr, None).await.0, 403);
    // A role of its own domain, implying member: allowed.
    let (status, body) = region
        .call(
            "POST",
            "/v3/roles",
            &admin,
            Some(json!({"role": {"name": "alpha-dev", "domain_id": w.domain_a}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let dev = body["role"]["id"].as_str().unwrap().to_string();
    let implies = format!("/v3/roles/{dev}/implies/{member}");
    assert_eq!(region.call("PUT", &implies, &admin, None).await.0, 201);
    let dev_in_a = format!("/v3/projects/{}/users/{}/roles/{dev}", w.project_a, w.bob);
    assert_eq!(region.call("PUT", &dev_in_a, &mgr, None).await.0, 204);
    // ... but not on another domain's project, even by the cloud admin.
    let dev_in_b = format!("/v3/projects/{}/users/{}/roles/{dev}", w.project_b, w.carol);
    assert_eq!(region.call("PUT", &dev_in_b, &admin, None).await.0, 403);

    // System grants are for the cloud admin.
    let sys = format!("/v3/system/users/{}/roles/{member}", w.bob);
    assert_eq!(region.call("PUT", &sys, &mgr, None).await.0, 403);

    // Its listing of role assignments stays inside its domain.
    let grant_b = format!(
        "/v3/projects/{}/users/{}/roles/{member}",
        w.project_b, w.carol
    );
    assert_eq!(region.call("PUT", &grant_b, &admin, None).await.0, 204);
    let (status, body) = region.call("GET", "/v3/role_assignments", &mgr, None).await;
    assert_eq!(status, 200);
    let list = body["role_assignments"].as_array().unwrap();
    assert!(!list.is_empty());
    for e in list {
        let in_domain = e["scope"]["domain"]["id"] == w.domain_a.as_str()
            || e["scope"]["project"]["id"] == w.project_a.as_str()
            || e["scope"]["project"]["id"] == w.child_a.as_str();
        assert!(in_domain, "outside domain A: {e}");
    }
    let (status, body) = region
        .call("GET", "/v3/role_assignments", &admin, None)
        .await;
    assert_eq!(status, 200);
    assert!(body["role_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["scope"]["project"]["id"] == w.project_b.as_str()));

    // And it revokes inside its domain.
    assert_eq!(region.call("DELETE", &in_a, &mgr, None).await.0, 204);
    assert_eq!(region.call("DELETE", &grant_b, &mgr, None).await.0, 403);
    let _ = w.domain_b;
}

#[tokio::test]
async fn manager_is_confined_to_its_domain_sqlite() {
    manager_is_confined_to_its_domain(&Region::start().await).await;
}

#[tokio::test]
async fn manager_is_confined_to_its_domain_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => manager_is_confined_to_its_domain(&region).await,
        None => eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set"),
    }
}

#[tokio::test]
async fn bad_grants_and_bad_filters() {
    let region = Region::start().await;
    let admin = region.admin_token().await;
    let w = world(&region).await;
    let member = role_id(&region, &admin, "member").await;
    for (path, missing) in [
        (
            format!("/v3/projects/nope/users/{}/roles/{member}", w.bob),
            "project: nope",
        ),
        (
            format!("/v3/projects/{}/users/nope/roles/{member}", w.project_a),
            "user: nope",
        ),
        (
            format!("/v3/projects/{}/groups/nope/roles/{member}", w.project_a),
            "group: nope",
        ),
        (
            format!("/v3/domains/nope/users/{}/roles/{member}", w.bob),
            "domain: nope",
        ),
        (
            format!("/v3/projects/{}/users/{}/roles/nope", w.project_a, w.bob),
            "role: nope",
        ),
    ] {
        let (status, body) = region.call("PUT", &path, &admin, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(
            body["error"]["message"],
            format!("Could not find {missing}.")
        );
    }
    for query in [
        "effective&group.id=x",
        "scope.project.id=a&scope.domain.id=b",
        "user.id=a&group.id=b",
        "include_subtree=true",
        "scope.system=all&scope.project.id=a",
        "scope.system=some",
    ] {
        let (status, body) = region
            .call(
                "GET",
                &format!("/v3/role_assignments?{query}"),
                &admin,
                None,
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], 400);
    }
    let (status, _) = region
        .call(
            "GET",
            "/v3/role_assignments?scope.project.id=nope&include_subtree=true",
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 404);
    // A token without roles cannot list or grant.
    let (status, _) = region
        .call("GET", "/v3/role_assignments", "garbage", None)
        .await;
    assert_eq!(status, 401);
    let (_, _, unscoped) = login(&region, "bob", "alpha", Value::Null).await;
    let (status, _) = region
        .call("GET", "/v3/role_assignments", &unscoped, None)
        .await;
    assert_eq!(status, 403);
    let path = format!(
        "/v3/projects/{}/users/{}/roles/{member}",
        w.project_a, w.bob
    );
    assert_eq!(region.call("PUT", &path, &unscoped, None).await.0, 403);
}
