//! Domains and projects over HTTP, on SQLite and PostgreSQL.

mod support;

use serde_json::{json, Value};
use support::{Engine, Region};

async fn admin_user_id(region: &Region, token: &str) -> String {
    let (_, body) = region
        .call("GET", "/v3/users?name=admin&domain_id=default", token, None)
        .await;
    match body["users"][0]["id"].as_str() {
        Some(id) => id.to_string(),
        None => {
            let db = region.identity.db();
            himmel_db::sqlx::query_scalar("SELECT id FROM users WHERE name = 'admin'")
                .fetch_one(db.pool())
                .await
                .unwrap()
        }
    }
}

async fn create(region: &Region, token: &str, path: &str, kind: &str, body: Value) -> Value {
    let (status, out) = region
        .call("POST", path, token, Some(json!({ kind: body })))
        .await;
    assert_eq!(status, 201, "create {kind}: {out}");
    out[kind].clone()
}

async fn domain_lifecycle(region: &Region) {
    let admin = region.admin_token().await;
    let d = create(
        region,
        &admin,
        "/v3/domains",
        "domain",
        json!({"name": "Acme", "description": "a tenant", "ou": "4711"}),
    )
    .await;
    let did = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["name"], "Acme");
    assert_eq!(d["enabled"], true);
    assert_eq!(d["ou"], "4711", "unknown attributes are kept");
    assert_eq!(d["links"]["self"], format!("/v3/domains/{did}"));

    // Duplicates, bad types, missing and oversized names.
    let (status, body) = region
        .call(
            "POST",
            "/v3/domains",
            &admin,
            Some(json!({"domain": {"name": "Acme"}})),
        )
        .await;
    assert_eq!(status, 409);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Duplicate entry found with name Acme"));
    for bad in [
        json!({"domain": {"name": 7}}),
        json!({"domain": {"description": "no name"}}),
        json!({"domain": {"name": "x".repeat(65)}}),
        json!({"domain": {"name": "   "}}),
        json!({"domain": {"name": "ok", "enabled": "yes"}}),
        json!({"domain": "Acme"}),
        json!({"name": "Acme"}),
    ] {
        let (status, body) = region
            .call("POST", "/v3/domains", &admin, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad} -> {body}");
        assert_eq!(body["error"]["code"], 400);
    }

    let (status, body) = region
        .call("GET", &format!("/v3/domains/{did}"), &admin, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["domain"]["name"], "Acme");
    let (status, body) = region.call("GET", "/v3/domains/nope", &admin, None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "Could not find domain: nope.");

    let (_, body) = region
        .call("GET", "/v3/domains?name=Acme", &admin, None)
        .await;
    assert_eq!(body["domains"].as_array().unwrap().len(), 1);
    assert!(body["links"]["next"].is_null());
    let (_, body) = region
        .call("GET", "/v3/domains?name__icontains=acm", &admin, None)
        .await;
    assert_eq!(body["domains"][0]["id"], did.as_str());
    let (_, body) = region
        .call("GET", "/v3/domains?enabled=false", &admin, None)
        .await;
    assert_eq!(body["domains"].as_array().unwrap().len(), 0);

    // A project in it, with a user holding a role there and a token on it.
    let p = create(
        region,
        &admin,
        "/v3/projects",
        "project",
        json!({"name": "web", "domain_id": did}),
    )
    .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let admin_id = admin_user_id(region, &admin).await;
    region
        .grant_direct(&admin_id, "project", &pid, "member")
        .await;
    let (scoped, _) = region
        .token(support::password_auth(
            "admin",
            "Default",
            &region.admin_password,
            json!({"project": {"id": pid}}),
        ))
        .await;
    let (status, _) = region.call("GET", "/v3/auth/catalog", &scoped, None).await;
    assert_eq!(status, 200);

    // Enabled domains cannot be deleted; disabling revokes tokens scoped in it.
    let (status, body) = region
        .call("DELETE", &format!("/v3/domains/{did}"), &admin, None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["message"],
        "Cannot delete a domain that is enabled, please disable it first."
    );
    let (status, body) = region
        .call(
            "PATCH",
            &format!("/v3/domains/{did}"),
            &admin,
            Some(json!({"domain": {"enabled": false, "description": "gone soon", "ou": null}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["domain"]["enabled"], false);
    assert_eq!(body["domain"]["description"], "gone soon");
    assert!(
        body["domain"].get("ou").is_none(),
        "null removes an attribute"
    );
    let (status, _) = region.call("GET", "/v3/auth/catalog", &scoped, None).await;
    assert_eq!(status, 401);

    // Deletion takes the projects and their assignments along.
    let (status, _) = region
        .call("DELETE", &format!("/v3/domains/{did}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("GET", &format!("/v3/projects/{pid}"), &admin, None)
        .await;
    assert_eq!(status, 404);
    let left: i64 =
        himmel_db::sqlx::query_scalar("SELECT COUNT(*) FROM role_assignments WHERE target_id = $1")
            .bind(&pid)
            .fetch_one(region.identity.db().pool())
            .await
            .unwrap();
    assert_eq!(left, 0);
    let (status, _) = region
        .call("GET", &format!("/v3/domains/{did}"), &admin, None)
        .await;
    assert_eq!(status, 404);

    // The default domain holds the administrator: it stays enabled.
    let (status, _) = region
        .call(
            "PATCH",
            "/v3/domains/default",
            &admin,
            Some(json!({"domain": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 403);
}

async fn project_hierarchy(region: &Region) {
    let admin = region.admin_token().await;
    let d = create(
        region,
        &admin,
        "/v3/domains",
        "domain",
        json!({"name": "Tree"}),
    )
    .await;
    let did = d["id"].as_str().unwrap().to_string();
    let top = create(
        region,
        &admin,
        "/v3/projects",
        "project",
        json!({"name": "top", "domain_id": did, "tags": ["prod", "eu"], "cost_center": 12}),
    )
    .await;
    let top_id = top["id"].as_str().unwrap().to_string();
    assert_eq!(
        top["parent_id"],
        did.as_str(),
        "a top-level project's parent is its domain"
    );
    assert_eq!(top["is_domain"], false);
    assert_eq!(top["cost_center"], 12);
    assert_eq!(top["tags"], json!(["prod", "eu"]));
    let child = create(
        region,
        &admin,
        "/v3/projects",
        "project",
        json!({"name": "child", "parent_id": top_id, "tags": ["dev"]}),
    )
    .await;
    let child_id = child["id"].as_str().unwrap().to_string();
    assert_eq!(
        child["domain_id"],
        did.as_str(),
        "the domain comes from the parent"
    );
    assert_eq!(child["parent_id"], top_id.as_str());

    let (status, body) = region
        .call(
            "GET",
            &format!("/v3/projects/{child_id}?parents_as_ids"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["project"]["parents"],
        json!({ &top_id: { &did: null } })
    );
    let (_, body) = region
        .call(
            "GET",
            &format!("/v3/projects/{top_id}?subtree_as_ids"),
            &admin,
            None,
        )
        .await;
    assert_eq!(body["project"]["subtree"], json!({ &child_id: null }));
    let (status, _) = region
        .call(
            "GET",
            &format!("/v3/projects/{top_id}?subtree_as_ids&subtree_as_list"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 400);

    // Hierarchy rules.
    let (status, body) = region
        .call(
            "POST",
            "/v3/projects",
            &admin,
            Some(json!({"project": {"name": "x", "parent_id": top_id, "domain_id": "default"}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = region
        .call(
            "POST",
            "/v3/projects",
            &admin,
            Some(json!({"project": {"name": "x", "parent_id": "nosuchproject"}})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = region
        .call(
            "POST",
            "/v3/projects",
            &admin,
            Some(json!({"project": {"name": "x", "is_domain": true}})),
        )
        .await;
    assert_eq!(status, 501);
    let (status, body) = region
        .call(
            "POST",
            "/v3/projects",
            &admin,
            Some(json!({"project": {"name": "child", "parent_id": top_id}})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = region
        .call("DELETE", &format!("/v3/projects/{top_id}"), &admin, None)
        .await;
    assert_eq!(status, 403);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a leaf"));
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/projects/{top_id}"),
            &admin,
            Some(json!({"project": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 403, "a parent with enabled children stays enabled");
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/projects/{child_id}"),
            &admin,
            Some(json!({"project": {"parent_id": "default"}})),
        )
        .await;
    assert_eq!(status, 403, "parent_id cannot change");
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/projects/{child_id}"),
            &admin,
            Some(json!({"project": {"domain_id": "default"}})),
        )
        .await;
    assert_eq!(status, 400, "domain_id cannot change");

    // A disabled branch takes no new projects.
    for id in [&child_id, &top_id] {
        let (status, body) = region
            .call(
                "PATCH",
                &format!("/v3/projects/{id}"),
                &admin,
                Some(json!({"project": {"enabled": false}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = region
        .call(
            "POST",
            "/v3/projects",
            &admin,
            Some(json!({"project": {"name": "late", "parent_id": top_id}})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/projects/{child_id}"),
            &admin,
            Some(json!({"project": {"enabled": true}})),
        )
        .await;
    assert_eq!(
        status, 403,
        "a child of a disabled parent cannot be enabled"
    );

    // Leaves delete; then the parent.
    let (status, _) = region
        .call("DELETE", &format!("/v3/projects/{child_id}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("DELETE", &format!("/v3/projects/{top_id}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = region
        .call("GET", &format!("/v3/projects/{top_id}"), &admin, None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        format!("Could not find project: {top_id}.")
    );
}

async fn project_tags_and_filters(region: &Region) {
    let admin = region.admin_token().await;
    let mk = |name: &str, tags: Value| json!({"name": name, "tags": tags});
    let a = create(
        region,
        &admin,
        "/v3/projects",
        "project",
        mk("a", json!(["red", "big"])),
    )
    .await;
    create(
        region,
        &admin,
        "/v3/projects",
        "project",
        mk("b", json!(["red"])),
    )
    .await;
    create(
        region,
        &admin,
        "/v3/projects",
        "project",
        mk("c", json!([])),
    )
    .await;
    let aid = a["id"].as_str().unwrap().to_string();
    let names = |body: &Value| -> Vec<String> {
        let mut v: Vec<String> = body["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .filter(|n| n.len() == 1)
            .collect();
        v.sort();
        v
    };
    for (query, want) in [
        ("tags=red,big", vec!["a"]),
        ("tags-any=big,red", vec!["a", "b"]),
        ("not-tags=red,big", vec!["b", "c"]),
        ("not-tags-any=red", vec!["c"]),
        ("name=b", vec!["b"]),
        ("name__startswith=c", vec!["c"]),
        ("domain_id=default&enabled=true&tags=red", vec!["a", "b"]),
    ] {
        let (status, body) = region
            .call("GET", &format!("/v3/projects?{query}"), &admin, None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(names(&body), want, "{query}");
    }

    let tags = format!("/v3/projects/{aid}/tags");
    let (status, body) = region.call("GET", &tags, &admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["tags"], json!(["big", "red"]));
    let (status, _) = region
        .call("GET", &format!("{tags}/red"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("GET", &format!("{tags}/blue"), &admin, None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = region
        .call("PUT", &format!("{tags}/blue"), &admin, None)
        .await;
    assert_eq!(status, 201);
    assert_eq!(body, serde_json::Value::Null, "no body, as in Keystone");
    let (_, body) = region.call("GET", &tags, &admin, None).await;
    assert_eq!(body["tags"], json!(["big", "blue", "red"]));
    let (status, _) = region
        .call("PUT", &format!("{tags}/a%2Cb"), &admin, None)
        .await;
    assert_eq!(status, 400, "commas are not allowed in tags");
    let (status, _) = region
        .call("DELETE", &format!("{tags}/big"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("DELETE", &format!("{tags}/big"), &admin, None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = region
        .call("PUT", &tags, &admin, Some(json!({"tags": ["one", "two"]})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["tags"], json!(["one", "two"]));
    let too_many: Vec<String> = (0..81).map(|i| format!("t{i}")).collect();
    for bad in [
        json!({"tags": too_many}),
        json!({"tags": ["a/b"]}),
        json!({"tags": ["x".repeat(256)]}),
        json!({"tags": [1]}),
        json!({"tags": "one"}),
        json!({"tags": ["dup", "dup"]}),
    ] {
        let (status, _) = region.call("PUT", &tags, &admin, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = region.call("DELETE", &tags, &admin, None).await;
    assert_eq!(status, 204);
    let (_, body) = region
        .call("GET", &format!("/v3/projects/{aid}"), &admin, None)
        .await;
    assert_eq!(body["project"]["tags"], json!([]));

    // Tags through PATCH, and bad project bodies.
    let (status, body) = region
        .call(
            "PATCH",
            &format!("/v3/projects/{aid}"),
            &admin,
            Some(json!({"project": {"tags": ["z"], "description": null}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["project"]["tags"], json!(["z"]));
    assert_eq!(body["project"]["description"], "");
    for bad in [
        json!({"project": {"name": ["a"]}}),
        json!({"project": {"name": "y".repeat(65)}}),
        json!({"project": {"name": "ok", "enabled": 1}}),
        json!({"project": {"name": "ok", "domain_id": 5}}),
        json!({"project": {"name": "ok", "options": {"immutable": "x"}}}),
        json!({"project": {}}),
    ] {
        let (status, body) = region
            .call("POST", "/v3/projects", &admin, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    let (status, _) = region
        .call(
            "POST",
            "/v3/projects",
            &admin,
            Some(json!({"project": {"name": "ok", "domain_id": "nosuchdomain"}})),
        )
        .await;
    assert_eq!(status, 404);
}

/// Disabling a project revokes the tokens scoped to it, and the user's
/// project list shows where the user has roles.
async fn project_tokens(region: &Region) {
    let admin = region.admin_token().await;
    let p = create(
        region,
        &admin,
        "/v3/projects",
        "project",
        json!({"name": "scoped"}),
    )
    .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let admin_id = admin_user_id(region, &admin).await;
    region
        .grant_direct(&admin_id, "project", &pid, "reader")
        .await;
    let (status, body) = region
        .call(
            "GET",
            &format!("/v3/users/{admin_id}/projects"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&pid.as_str()), "{body}");
    let (status, _) = region
        .call("GET", "/v3/users/nosuchuser/projects", &admin, None)
        .await;
    assert_eq!(status, 404);

    let (scoped, _) = region
        .token(support::password_auth(
            "admin",
            "Default",
            &region.admin_password,
            json!({"project": {"id": pid}}),
        ))
        .await;
    // A reader of this project may read it, but not another one.
    let (status, _) = region
        .call("GET", &format!("/v3/projects/{pid}"), &scoped, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = region
        .call(
            "PATCH",
            &format!("/v3/projects/{pid}"),
            &admin,
            Some(json!({"project": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = region
        .call("GET", &format!("/v3/projects/{pid}"), &scoped, None)
        .await;
    assert_eq!(status, 401);
}

async fn all(region: &Region) {
    domain_lifecycle(region).await;
    project_hierarchy(region).await;
    project_tags_and_filters(region).await;
    project_tokens(region).await;
}

#[tokio::test]
async fn domains_and_projects_sqlite() {
    all(&Region::start().await).await;
}

#[tokio::test]
async fn domains_and_projects_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => all(&region).await,
        None => eprintln!(
            "skipped: HIMMEL_TEST_POSTGRES is not set (the project's test command sets it)"
        ),
    }
}

#[tokio::test]
async fn project_reader_is_confined_to_its_project() {
    let region = Region::start().await;
    let admin = region.admin_token().await;
    let mine = create(
        &region,
        &admin,
        "/v3/projects",
        "project",
        json!({"name": "mine"}),
    )
    .await;
    let other = create(
        &region,
        &admin,
        "/v3/projects",
        "project",
        json!({"name": "other"}),
    )
    .await;
    let admin_id = admin_user_id(&region, &admin).await;
    // A token scoped to "mine" where the admin user only reads.
    region
        .grant_direct(&admin_id, "project", mine["id"].as_str().unwrap(), "reader")
        .await;
    let (reader, _) = region
        .token(support::password_auth(
            "admin",
            "Default",
            &region.admin_password,
            json!({"project": {"id": mine["id"]}}),
        ))
        .await;
    let (status, _) = region
        .call(
            "GET",
            &format!("/v3/projects/{}", other["id"].as_str().unwrap()),
            &reader,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = region.call("GET", "/v3/projects", &reader, None).await;
    assert_eq!(
        status, 403,
        "listing projects needs a domain or system reader"
    );
    let (status, _) = region
        .call(
            "PUT",
            &format!("/v3/projects/{}/tags/x", mine["id"].as_str().unwrap()),
            &reader,
            None,
        )
        .await;
    assert_eq!(status, 403, "a reader does not tag");
}
