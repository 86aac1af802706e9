//! `/v3/credentials` and the OS-EC2 credentials of a user, over HTTP.

mod fixtures;
mod support;

use fixtures::{create_project, create_user, grant, project_token};
use himmel_identity::store::credentials::{ec2_id, ec2_secret_for_access};
use serde_json::{json, Value};
use support::{Engine, Region};

fn cred(kind: &str, blob: &str, user_id: &str, project_id: Option<&str>) -> Value {
    json!({"credential": {"type": kind, "blob": blob, "user_id": user_id, "project_id": project_id}})
}

async fn credentials_crud(region: &Region) {
    let admin = region.admin_token().await;
    let project = create_project(region, "alpha").await;
    let alice = create_user(region, "alice", json!({})).await;
    let bob = create_user(region, "bob", json!({})).await;
    grant(region, &alice.id, &project, "member").await;
    grant(region, &bob.id, &project, "member").await;
    let alice_token = project_token(region, &alice, "alpha").await;
    let bob_token = project_token(region, &bob, "alpha").await;

    // A cert credential; unknown attributes are kept.
    let mut body = cred("cert", "-----BEGIN CERTIFICATE-----", &alice.id, None);
    body["credential"]["label"] = json!("laptop");
    let (status, created) = region
        .call("POST", "/v3/credentials", &alice_token, Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    let cert = &created["credential"];
    let cert_id = cert["id"].as_str().unwrap().to_string();
    assert_eq!(cert["type"], "cert");
    assert_eq!(cert["blob"], "-----BEGIN CERTIFICATE-----");
    assert_eq!(cert["user_id"], alice.id.as_str());
    assert_eq!(cert["project_id"], Value::Null);
    assert_eq!(cert["label"], "laptop");
    assert!(cert["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v3/credentials/{cert_id}")));

    // An ec2 credential: the id is the SHA-256 of the access key.
    let blob = json!({"access": "alice-access", "secret": "alice-secret"}).to_string();
    let (status, created) = region
        .call(
            "POST",
            "/v3/credentials",
            &alice_token,
            Some(cred("ec2", &blob, &alice.id, Some(&project))),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["credential"]["id"], ec2_id("alice-access").as_str());
    assert_eq!(
        ec2_id("alice-access"),
        "6564f6fd0575a51b40016cc9368181abcb43ca99ebf46572ccf665196c32a4d5"
    );
    let (status, _) = region
        .call(
            "POST",
            "/v3/credentials",
            &alice_token,
            Some(cred("ec2", &blob, &alice.id, Some(&project))),
        )
        .await;
    assert_eq!(status, 409, "the same access key twice");

    // Secrets are encrypted at rest.
    let stored: Vec<String> = sqlx::query_scalar("SELECT blob FROM credentials")
        .fetch_all(region.identity.db().pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for s in &stored {
        assert!(
            !s.contains("alice-secret") && !s.contains("CERTIFICATE"),
            "{s}"
        );
    }
    let secret = ec2_secret_for_access(&region.identity, "alice-access")
        .await
        .unwrap()
        .expect("ec2 credential found by access key");
    assert_eq!(secret.secret, "alice-secret");
    assert_eq!(secret.user_id, alice.id);
    assert_eq!(secret.project_id.as_deref(), Some(project.as_str()));

    // Bad input.
    for (body, why) in [
        (cred("sshkey", "x", &alice.id, None), "unknown type"),
        (
            cred("ec2", "not json", &alice.id, Some(&project)),
            "ec2 blob not JSON",
        ),
        (
            cred("ec2", r#"{"secret": "s"}"#, &alice.id, Some(&project)),
            "ec2 blob without access",
        ),
        (cred("ec2", &blob, &alice.id, None), "ec2 without project"),
        (
            cred("totp", "not base32 at all!", &alice.id, None),
            "bad base32 secret",
        ),
        (
            json!({"credential": {"type": "cert", "user_id": alice.id}}),
            "no blob",
        ),
        (
            json!({"credential": {"type": 7, "blob": "x", "user_id": alice.id}}),
            "type not a string",
        ),
        (json!({"credential": "cert"}), "not an object"),
    ] {
        let (status, err) = region
            .call("POST", "/v3/credentials", &alice_token, Some(body))
            .await;
        assert_eq!(status, 400, "{why}: {err}");
        assert_eq!(err["error"]["code"], 400);
    }
    let (status, _) = region
        .call(
            "POST",
            "/v3/credentials",
            &alice_token,
            Some(cred("cert", "x", &bob.id, None)),
        )
        .await;
    assert_eq!(status, 403, "alice cannot create bob's credentials");
    let (status, _) = region
        .call(
            "POST",
            "/v3/credentials",
            &admin,
            Some(cred("cert", "x", "nobody", None)),
        )
        .await;
    assert_eq!(status, 404, "unknown user");

    // Lists: a user sees their own, the admin filters.
    let (status, list) = region
        .call("GET", "/v3/credentials", &bob_token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["credentials"], json!([]));
    let (_, list) = region
        .call("GET", "/v3/credentials", &alice_token, None)
        .await;
    assert_eq!(list["credentials"].as_array().unwrap().len(), 2);
    let (_, list) = region
        .call(
            "GET",
            &format!("/v3/credentials?user_id={}&type=ec2", alice.id),
            &admin,
            None,
        )
        .await;
    let ids: Vec<&str> = list["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ec2_id("alice-access")]);

    // Get and update.
    let path = format!("/v3/credentials/{cert_id}");
    let (status, _) = region.call("GET", &path, &bob_token, None).await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call("GET", "/v3/credentials/nope", &admin, None)
        .await;
    assert_eq!(status, 404);
    let (status, got) = region.call("GET", &path, &alice_token, None).await;
    assert_eq!(status, 200);
    assert_eq!(got["credential"]["label"], "laptop");
    let (status, updated) = region
        .call(
            "PATCH",
            &path,
            &alice_token,
            Some(json!({"credential": {"blob": "new cert"}})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["credential"]["blob"], "new cert");
    let (_, got) = region.call("GET", &path, &alice_token, None).await;
    assert_eq!(got["credential"]["blob"], "new cert");
    let (status, _) = region
        .call(
            "PATCH",
            &path,
            &alice_token,
            Some(json!({"credential": {"user_id": bob.id}})),
        )
        .await;
    assert_eq!(status, 403, "alice cannot hand her credential to bob");
    let (status, _) = region
        .call(
            "PATCH",
            &path,
            &alice_token,
            Some(json!({"credential": {"type": "ec2"}})),
        )
        .await;
    assert_eq!(status, 400, "a cert cannot become ec2");
    let ec2_path = format!("/v3/credentials/{}", ec2_id("alice-access"));
    let other = json!({"access": "other", "secret": "s"}).to_string();
    let (status, _) = region
        .call(
            "PATCH",
            &ec2_path,
            &alice_token,
            Some(json!({"credential": {"blob": other}})),
        )
        .await;
    // Keystone lets the access key change; the id stays what it was.
    assert_eq!(
        status, 200,
        "the access key of an ec2 credential may change"
    );
    let (status, body) = region.call("GET", &ec2_path, &alice_token, None).await;
    assert_eq!(status, 200);
    let blob: serde_json::Value =
        serde_json::from_str(body["credential"]["blob"].as_str().unwrap()).unwrap();
    assert_eq!(blob["access"], "other");

    // Delete.
    let (status, _) = region.call("DELETE", &path, &bob_token, None).await;
    assert_eq!(status, 403);
    let (status, _) = region.call("DELETE", &path, &alice_token, None).await;
    assert_eq!(status, 204);
    let (status, _) = region.call("GET", &path, &alice_token, None).await;
    assert_eq!(status, 404);
}

async fn ec2_credentials(region: &Region) {
    let admin = region.admin_token().await;
    let project = create_project(region, "beta").await;
    let carol = create_user(region, "carol", json!({})).await;
    let dave = create_user(region, "dave", json!({})).await;
    grant(region, &carol.id, &project, "member").await;
    grant(region, &dave.id, &project, "member").await;
    let carol_token = project_token(region, &carol, "beta").await;
    let dave_token = project_token(region, &dave, "beta").await;
    let base = format!("/v3/users/{}/credentials/OS-EC2", carol.id);

    let (status, created) = region
        .call(
            "POST",
            &base,
            &carol_token,
            Some(json!({"tenant_id": project})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let c = &created["credential"];
    let access = c["access"].as_str().unwrap().to_string();
    let secret = c["secret"].as_str().unwrap().to_string();
    assert_eq!(access.len(), 32);
    assert_eq!(secret.len(), 32);
    assert_ne!(access, secret);
    assert_eq!(c["user_id"], carol.id.as_str());
    assert_eq!(c["tenant_id"], project.as_str());
    assert_eq!(c["trust_id"], Value::Null);
    assert!(c["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{base}/{access}")));

    // The same credential through the generic API, and for S3.
    let (status, generic) = region
        .call(
            "GET",
            &format!("/v3/credentials/{}", ec2_id(&access)),
            &carol_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(generic["credential"]["type"], "ec2");
    let found = ec2_secret_for_access(&region.identity, &access)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.user_id.as_str(), found.secret.as_str()),
        (carol.id.as_str(), secret.as_str())
    );

    let (status, list) = region.call("GET", &base, &carol_token, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1);
    assert_eq!(list["credentials"][0]["access"], access.as_str());
    let (status, list) = region.call("GET", &base, &admin, None).await;
    assert_eq!(status, 200, "the admin may list them");
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1);
    let (status, one) = region
        .call("GET", &format!("{base}/{access}"), &carol_token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["credential"]["secret"], secret.as_str());

    // Someone else's, unknown ones and bad bodies.
    let (status, _) = region.call("GET", &base, &dave_token, None).await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call("GET", &format!("{base}/{access}"), &dave_token, None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call(
            "POST",
            &base,
            &dave_token,
            Some(json!({"tenant_id": project})),
        )
        .await;
    assert_eq!(status, 403, "dave cannot make carol's keys");
    let dave_path = format!("/v3/users/{}/credentials/OS-EC2/{access}", dave.id);
    let (status, _) = region.call("GET", &dave_path, &dave_token, None).await;
    assert_eq!(status, 404, "the access key is not dave's");
    let (status, _) = region
        .call("GET", &format!("{base}/unknown"), &carol_token, None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = region
        .call(
            "POST",
            &base,
            &carol_token,
            Some(json!({"tenant_id": "no-such-project"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, err) = region
        .call("POST", &base, &carol_token, Some(json!({})))
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = region
        .call("POST", &base, &carol_token, Some(json!({"tenant_id": 42})))
        .await;
    assert_eq!(status, 400);

    let (status, _) = region
        .call("DELETE", &format!("{base}/{access}"), &dave_token, None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = region
        .call("DELETE", &format!("{base}/{access}"), &carol_token, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = region
        .call("GET", &format!("{base}/{access}"), &carol_token, None)
        .await;
    assert_eq!(status, 404);
    assert!(ec2_secret_for_access(&region.identity, &access)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn credentials_sqlite() {
    let region = Region::start().await;
    credentials_crud(&region).await;
    ec2_credentials(&region).await;
}

#[tokio::test]
async fn credentials_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => {
            credentials_crud(&region).await;
            ec2_credentials(&region).await;
        }
        None => eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set"),
    }
}
