//! The Key Manager (Barbican v1) API over HTTP, on SQLite and PostgreSQL:
//! secrets one- and two-step, payload retrieval, listing, metadata,
//! expiration, ACLs and the policy, and every kind of bad input.

mod barbican_support;

use barbican_support::{id_of, send, Region};
use base64::Engine;
use serde_json::json;

on_both_engines!(
    one_step_text_secret_round_trips,
    binary_secret_round_trips_through_base64,
    two_step_create_stores_the_payload_once,
    listing_filters_sorts_and_pages,
    expired_secrets_are_gone_but_can_be_deleted,
    user_metadata_is_kept_per_key,
    readers_list_and_read_metadata_but_not_payloads,
    other_projects_cannot_read,
    acl_users_read_and_private_secrets_keep_members_out,
    bad_input_is_refused_clearly,
    payloads_are_stored_only_sealed,
    tampered_ciphertext_is_reported_never_returned,
    version_discovery_and_unknown_paths,
    containers_group_a_projects_secrets,
    key_orders_generate_aes_keys,
    secret_operations_are_audited_without_payloads,
);

async fn one_step_text_secret_round_trips(r: Region) {
    let created = r
        .call(
            &r.alice,
            "POST",
            "/v1/secrets/",
            Some(json!({
                "name": "db-password", "payload": "s3cr3t value", "payload_content_type": "text/plain",
                "algorithm": "aes", "bit_length": 256, "mode": "cbc", "secret_type": "passphrase"
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let secret_ref = created.json()["secret_ref"].as_str().unwrap().to_owned();
    assert!(secret_ref.starts_with(&format!("{}/key-manager/v1/secrets/", r.url)));
    assert_eq!(created.headers["location"].to_str().unwrap(), secret_ref);
    let id = id_of(&json!(secret_ref));

    let meta = r.call(&r.alice, "GET", &secret_ref, None).await;
    assert_eq!(meta.status, 200);
    let m = meta.json();
    assert_eq!(m["name"], "db-password");
    assert_eq!(m["secret_ref"], json!(secret_ref));
    assert_eq!(m["status"], "ACTIVE");
    assert_eq!(m["secret_type"], "passphrase");
    assert_eq!(m["algorithm"], "aes");
    assert_eq!(m["bit_length"], 256);
    assert_eq!(m["mode"], "cbc");
    assert_eq!(m["creator_id"], json!(r.alice.id));
    assert_eq!(m["content_types"], json!({"default": "text/plain"}));
    assert!(
        m.get("payload").is_none(),
        "metadata must not carry the payload"
    );

    assert_eq!(r.payload(&r.alice, &id).await.unwrap(), "s3cr3t value");
    // The payload by Accept on the secret's own URL.
    let by_accept = send(
        r.request(&r.alice, "GET", &secret_ref)
            .header("accept", "text/plain"),
    )
    .await;
    assert_eq!(by_accept.status, 200);
    assert_eq!(by_accept.text, "s3cr3t value");
    assert!(by_accept.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    // No Accept: the stored type.
    let plain = send(r.request(&r.alice, "GET", &format!("/v1/secrets/{id}/payload"))).await;
    assert_eq!(plain.text, "s3cr3t value");

    let deleted = r.call(&r.alice, "DELETE", &secret_ref, None).await;
    assert_eq!(deleted.status, 204);
    r.call(&r.alice, "GET", &secret_ref, None)
        .await
        .assert_error(404);
    assert_eq!(r.payload(&r.alice, &id).await, Err(404));
    r.call(&r.alice, "DELETE", &secret_ref, None)
        .await
        .assert_error(404);
}

async fn binary_secret_round_trips_through_base64(r: Region) {
    let key: Vec<u8> = (0u8..=255).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
    let created = r
        .call(
            &r.alice,
            "POST",
            "/v1/secrets",
            Some(json!({"name": "raw", "payload": b64, "secret_type": "symmetric",
                "payload_content_type": "application/octet-stream", "payload_content_encoding": "base64"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = id_of(&created.json()["secret_ref"]);
    let got = r
        .request(&r.alice, "GET", &format!("/v1/secrets/{id}/payload"))
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), key);
    // Bytes that are not UTF-8 cannot be served as text.
    let as_text = send(
        r.request(&r.alice, "GET", &format!("/v1/secrets/{id}/payload"))
            .header("accept", "text/plain"),
    )
    .await;
    as_text.assert_error(406);
}

async fn two_step_create_stores_the_payload_once(r: Region) {
    let created = r
        .call(
            &r.alice,
            "POST",
            "/v1/secrets",
            Some(json!({"name": "later"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = id_of(&created.json()["secret_ref"]);
    let meta = r
        .call(&r.alice, "GET", &format!("/v1/secrets/{id}"), None)
        .await
        .json();
    assert!(
        meta.get("content_types").is_none(),
        "no payload yet: {meta}"
    );
    assert_eq!(meta["secret_type"], "opaque");
    let none = r
        .call(&r.alice, "GET", &format!("/v1/secrets/{id}/payload"), None)
        .await;
    assert!(none.assert_error(404).contains("no payload"));

    let put = send(
        r.request(&r.alice, "PUT", &format!("/v1/secrets/{id}"))
            .header("content-type", "text/plain")
            .body("two-step payload"),
    )
    .await;
    assert_eq!(put.status, 204, "{}", put.text);
    assert_eq!(r.payload(&r.alice, &id).await.unwrap(), "two-step payload");
    let meta = r
        .call(&r.alice, "GET", &format!("/v1/secrets/{id}"), None)
        .await
        .json();
    assert_eq!(meta["content_types"], json!({"default": "text/plain"}));

    let again = send(
        r.request(&r.alice, "PUT", &format!("/v1/secrets/{id}"))
            .header("content-type", "text/plain")
            .body("overwrite"),
    )
    .await;
    again.assert_error(409);
    assert_eq!(r.payload(&r.alice, &id).await.unwrap(), "two-step payload");

    // Binary, base64-encoded on the wire.
    let created = r
        .call(&r.alice, "POST", "/v1/secrets", Some(json!({})))
        .await;
    let id = id_of(&created.json()["secret_ref"]);
    let put = send(
        r.request(&r.alice, "PUT", &format!("/v1/secrets/{id}"))
            .header("content-type", "application/octet-stream")
            .header("content-encoding", "base64")
            .body("AAEC/w=="),
    )
    .await;
    assert_eq!(put.status, 204, "{}", put.text);
    let got = r
        .request(&r.alice, "GET", &format!("/v1/secrets/{id}/payload"))
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().to_vec(), vec![0u8, 1, 2, 255]);
}

async fn listing_filters_sorts_and_pages(r: Region) {
    let r = &r;
    for (name, alg, bits, kind) in [
        ("alpha", "aes", 128, "symmetric"),
        ("beta", "aes", 256, "symmetric"),
        ("gamma", "rsa", 2048, "private"),
        ("delta", "aes", 256, "opaque"),
        ("epsilon", "des", 64, "opaque"),
    ] {
        let c = r
            .call(
                &r.alice,
                "POST",
                "/v1/secrets",
                Some(
                    json!({"name": name, "algorithm": alg, "bit_length": bits, "secret_type": kind,
                    "payload": name, "payload_content_type": "text/plain"}),
                ),
            )
            .await;
        assert_eq!(c.status, 201);
    }
    // Another project's secret never shows up.
    r.store_text(&r.carol, "alpha", "theirs").await;

    let all = r.call(&r.alice, "GET", "/v1/secrets", None).await.json();
    assert_eq!(all["total"], 5);
    assert_eq!(all["secrets"].as_array().unwrap().len(), 5);
    assert!(all.get("next").is_none() && all.get("previous").is_none());
    assert!(all["secrets"][0].get("payload").is_none());

    let names = |v: &serde_json::Value| -> Vec<String> {
        v["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let page1 = r
        .call(&r.alice, "GET", "/v1/secrets?limit=2&sort=name:asc", None)
        .await
        .json();
    assert_eq!(names(&page1), ["alpha", "beta"]);
    assert_eq!(page1["total"], 5);
    assert!(page1.get("previous").is_none());
    let next = page1["next"].as_str().unwrap().to_owned();
    assert!(
        next.contains("offset=2") && next.contains("limit=2") && next.contains("sort=name"),
        "{next}"
    );
    let page2 = r.call(&r.alice, "GET", &next, None).await.json();
    assert_eq!(names(&page2), ["delta", "epsilon"]);
    assert!(page2["previous"].as_str().unwrap().contains("offset=0"));
    let page3 = r
        .call(&r.alice, "GET", page2["next"].as_str().unwrap(), None)
        .await
        .json();
    assert_eq!(names(&page3), ["gamma"]);
    assert!(page3.get("next").is_none());

    let by = |q: &'static str| async move {
        r.call(&r.alice, "GET", &format!("/v1/secrets?{q}"), None)
            .await
            .json()
    };
    assert_eq!(names(&by("name=gamma").await), ["gamma"]);
    assert_eq!(by("alg=aes").await["total"], 3);
    assert_eq!(by("alg=aes&bits=256&sort=name").await["total"], 2);
    assert_eq!(
        names(&by("secret_type=opaque&sort=name:desc").await),
        ["epsilon", "delta"]
    );
    assert_eq!(
        names(&by("sort=bit_length:desc,name:asc&limit=1").await),
        ["gamma"]
    );
    assert_eq!(by("created=gt:2000-01-01T00:00:00").await["total"], 5);
    assert_eq!(by("created=lt:2000-01-01T00:00:00").await["total"], 0);
    // Barbican's lenient paging: nonsense falls back to defaults.
    let lenient = by("limit=abc&offset=-3").await;
    assert_eq!(lenient["total"], 5);
    assert_eq!(lenient["secrets"].as_array().unwrap().len(), 5);
    assert_eq!(by("limit=0").await["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(
        by("limit=1000").await["secrets"].as_array().unwrap().len(),
        5
    );
}

async fn expired_secrets_are_gone_but_can_be_deleted(r: Region) {
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let c = r
        .call(
            &r.alice,
            "POST",
            "/v1/secrets",
            Some(json!({"name": "short-lived", "payload": "gone soon",
                "payload_content_type": "text/plain", "expiration": soon})),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let id = id_of(&c.json()["secret_ref"]);
    let meta = r
        .call(&r.alice, "GET", &format!("/v1/secrets/{id}"), None)
        .await
        .json();
    assert!(meta["expiration"]
        .as_str()
        .unwrap()
        .starts_with(&soon[..19]));
    assert_eq!(r.payload(&r.alice, &id).await.unwrap(), "gone soon");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(r.payload(&r.alice, &id).await, Err(404));
    r.call(&r.alice, "GET", &format!("/v1/secrets/{id}"), None)
        .await
        .assert_error(404);
    let list = r.call(&r.alice, "GET", "/v1/secrets", None).await.json();
    assert_eq!(list["total"], 0);
    assert_eq!(
        r.call(&r.alice, "DELETE", &format!("/v1/secrets/{id}"), None)
            .await
            .status,
        204
    );
}

async fn user_metadata_is_kept_per_key(r: Region) {
    let id = r.store_text(&r.alice, "with-meta", "x").await;
    let base = format!("/v1/secrets/{id}/metadata");
    let empty = r.call(&r.alice, "GET", &base, None).await;
    assert_eq!(empty.json(), json!({"metadata": {}}));

    let put = r
        .call(
            &r.alice,
            "PUT",
            &base,
            Some(json!({"metadata": {"Owner": "team-a", "env": "prod"}})),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text);
    assert!(put.json()["metadata_ref"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{id}/metadata")));
    assert_eq!(
        r.call(&r.alice, "GET", &base, None).await.json(),
        json!({"metadata": {"owner": "team-a", "env": "prod"}})
    );

    let post = r
        .call(
            &r.alice,
            "POST",
            &format!("{base}/"),
            Some(json!({"key": "tier", "value": "gold"})),
        )
        .await;
    assert_eq!(post.status, 201, "{}", post.text);
    assert_eq!(post.json(), json!({"key": "tier", "value": "gold"}));
    r.call(
        &r.alice,
        "POST",
        &base,
        Some(json!({"key": "tier", "value": "again"})),
    )
    .await
    .assert_error(409);

    let one = r.call(&r.alice, "GET", &format!("{base}/tier"), None).await;
    assert_eq!(one.json(), json!({"key": "tier", "value": "gold"}));
    let upd = r
        .call(
            &r.alice,
            "PUT",
            &format!("{base}/tier"),
            Some(json!({"key": "tier", "value": "silver"})),
        )
        .await;
    assert_eq!(upd.status, 200);
    assert_eq!(upd.json(), json!({"key": "tier", "value": "silver"}));
    r.call(
        &r.alice,
        "PUT",
        &format!("{base}/tier"),
        Some(json!({"key": "other", "value": "v"})),
    )
    .await
    .assert_error(400);
    r.call(
        &r.alice,
        "PUT",
        &format!("{base}/nope"),
        Some(json!({"key": "nope", "value": "v"})),
    )
    .await
    .assert_error(404);
    assert_eq!(
        r.call(&r.alice, "DELETE", &format!("{base}/tier"), None)
            .await
            .status,
        204
    );
    r.call(&r.alice, "GET", &format!("{base}/tier"), None)
        .await
        .assert_error(404);
    r.call(
        &r.alice,
        "PUT",
        &base,
        Some(json!({"metadata": {"bad key!": "v"}})),
    )
    .await
    .assert_error(400);
    r.call(&r.alice, "PUT", &base, Some(json!({"metadata": {"k": 5}})))
        .await
        .assert_error(400);
    // Another project cannot read or change it.
    r.call(&r.carol, "GET", &base, None).await.assert_error(403);
    r.call(&r.bob, "PUT", &base, Some(json!({"metadata": {}})))
        .await
        .assert_error(403);
}

async fn readers_list_and_read_metadata_but_not_payloads(r: Region) {
    let id = r.store_text(&r.alice, "team", "member-only").await;
    let list = r.call(&r.bob, "GET", "/v1/secrets", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["total"], 1);
    assert_eq!(
        r.call(&r.bob, "GET", &format!("/v1/secrets/{id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(r.payload(&r.bob, &id).await, Err(403));
    let store = r
        .call(
            &r.bob,
            "POST",
            "/v1/secrets",
            Some(json!({"payload": "x", "payload_content_type": "text/plain"})),
        )
        .await;
    store.assert_error(403);
    r.call(&r.bob, "DELETE", &format!("/v1/secrets/{id}"), None)
        .await
        .assert_error(403);
    // Another member of the project shares the (not private) secret.
    assert_eq!(r.payload(&r.dave, &id).await.unwrap(), "member-only");
}

async fn other_projects_cannot_read(r: Region) {
    let id = r.store_text(&r.alice, "ours", "not for p2").await;
    r.call(&r.carol, "GET", &format!("/v1/secrets/{id}"), None)
        .await
        .assert_error(403);
    assert_eq!(r.payload(&r.carol, &id).await, Err(403));
    r.call(&r.carol, "DELETE", &format!("/v1/secrets/{id}"), None)
        .await
        .assert_error(403);
    r.call(&r.carol, "GET", &format!("/v1/secrets/{id}/acl"), None)
        .await
        .assert_error(403);
    let theirs = r.call(&r.carol, "GET", "/v1/secrets", None).await.json();
    assert_eq!(theirs["total"], 0);
    assert_eq!(r.payload(&r.alice, &id).await.unwrap(), "not for p2");
}

async fn acl_users_read_and_private_secrets_keep_members_out(r: Region) {
    let id = r.store_text(&r.alice, "shared", "for carol too").await;
    let acl_path = format!("/v1/secrets/{id}/acl");
    assert_eq!(
        r.call(&r.alice, "GET", &acl_path, None).await.json(),
        json!({"read": {"project-access": true}})
    );
    let put = r
        .call(
            &r.alice,
            "PUT",
            &acl_path,
            Some(json!({"read": {"users": [r.carol.id], "project-access": false}})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert!(put.json()["acl_ref"].as_str().unwrap().ends_with(&acl_path));
    let acl = r.call(&r.alice, "GET", &acl_path, None).await.json();
    assert_eq!(acl["read"]["users"], json!([r.carol.id]));
    assert_eq!(acl["read"]["project-access"], false);
    assert!(acl["read"]["created"].is_string());

    // The ACL user of another project reads; the creator still does.
    assert_eq!(r.payload(&r.carol, &id).await.unwrap(), "for carol too");
    assert_eq!(
        r.call(&r.carol, "GET", &format!("/v1/secrets/{id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(r.payload(&r.alice, &id).await.unwrap(), "for carol too");
    // Private: other members and readers of the project are out.
    assert_eq!(r.payload(&r.dave, &id).await, Err(403));
    r.call(&r.bob, "GET", &format!("/v1/secrets/{id}"), None)
        .await
        .assert_error(403);
    // An ACL user may read but not delete or change the ACL.
    r.call(&r.carol, "DELETE", &format!("/v1/secrets/{id}"), None)
        .await
        .assert_error(403);
    r.call(
        &r.carol,
        "PUT",
        &acl_path,
        Some(json!({"read": {"users": []}})),
    )
    .await
    .assert_error(403);
    // acl_only lists what the caller's ACL entries give.
    let mine = r
        .call(&r.carol, "GET", "/v1/secrets?acl_only=true", None)
        .await
        .json();
    assert_eq!(mine["total"], 1);

    // PATCH changes only what is given.
    let patch = r
        .call(
            &r.alice,
            "PATCH",
            &acl_path,
            Some(json!({"read": {"project-access": true}})),
        )
        .await;
    assert_eq!(patch.status, 200);
    let acl = r.call(&r.alice, "GET", &acl_path, None).await.json();
    assert_eq!(acl["read"]["users"], json!([r.carol.id]));
    assert_eq!(acl["read"]["project-access"], true);
    assert_eq!(r.payload(&r.dave, &id).await.unwrap(), "for carol too");

    // DELETE returns to the implicit ACL: carol is out again.
    assert_eq!(
        r.call(&r.alice, "DELETE", &acl_path, None).await.status,
        200
    );
    assert_eq!(
        r.call(&r.alice, "GET", &acl_path, None).await.json(),
        json!({"read": {"project-access": true}})
    );
    assert_eq!(r.payload(&r.carol, &id).await, Err(403));

    r.call(
        &r.alice,
        "PUT",
        &acl_path,
        Some(json!({"write": {"users": []}})),
    )
    .await
    .assert_error(400);
    r.call(
        &r.alice,
        "PUT",
        &acl_path,
        Some(json!({"read": {"project-access": "no"}})),
    )
    .await
    .assert_error(400);
    r.call(
        &r.alice,
        "PUT",
        &acl_path,
        Some(json!({"read": {"users": "carol"}})),
    )
    .await
    .assert_error(400);
}

async fn bad_input_is_refused_clearly(r: Region) {
    let r = &r;
    let post = |body: serde_json::Value| async move {
        r.call(&r.alice, "POST", "/v1/secrets", Some(body)).await
    };
    let text = |p: &str| json!({"payload": p, "payload_content_type": "text/plain"});

    let d = post(
        json!({"payload": "!!!not base64", "payload_content_type": "application/octet-stream",
        "payload_content_encoding": "base64"}),
    )
    .await
    .assert_error(400);
    assert!(
        d.contains("Invalid payload for payload_content_encoding"),
        "{d}"
    );
    let d = post(json!({"payload": "x", "payload_content_type": "image/png"}))
        .await
        .assert_error(400);
    assert!(d.contains("payload_content_type is not one of"), "{d}");
    let d = post(json!({"payload": "x", "payload_content_type": "text/plain; charset=latin-1"}))
        .await
        .assert_error(400);
    assert!(d.contains("payload_content_type"), "{d}");
    let d = post(json!({"payload": "eA==", "payload_content_type": "application/octet-stream"}))
        .await
        .assert_error(400);
    assert!(d.contains("payload_content_encoding"), "{d}");
    let d = post(json!({"payload": "x", "payload_content_type": "text/plain", "payload_content_encoding": "base64"}))
        .await
        .assert_error(400);
    assert!(d.contains("payload_content_encoding"), "{d}");
    post(json!({"payload": "x", "payload_content_type": "text/plain", "payload_content_encoding": "gzip"}))
        .await
        .assert_error(400);
    let d = post(json!({"payload": "x"})).await.assert_error(400);
    assert!(
        d.contains("'payload_content_type' must also be supplied"),
        "{d}"
    );
    let d = post(json!({"payload_content_type": "text/plain"}))
        .await
        .assert_error(400);
    assert!(d.contains("payload must be provided"), "{d}");
    let d = post(text("   ")).await.assert_error(400);
    assert!(d.contains("must be non empty"), "{d}");
    post(json!({"payload": 42, "payload_content_type": "text/plain"}))
        .await
        .assert_error(400);
    let d = post(text(&"x".repeat(10_001))).await.assert_error(413);
    assert!(d.contains("too large"), "{d}");
    assert_eq!(post(text(&"x".repeat(10_000))).await.status, 201);
    post(json!({"name": 5})).await.assert_error(400);
    post(json!({"name": "n".repeat(256)}))
        .await
        .assert_error(400);
    post(json!({"bit_length": "256"})).await.assert_error(400);
    post(json!({"bit_length": 0})).await.assert_error(400);
    post(json!({"secret_type": "banana"}))
        .await
        .assert_error(400);
    let d = post(json!({"expiration": "yesterday"}))
        .await
        .assert_error(400);
    assert!(d.contains("Invalid date for 'expiration'"), "{d}");
    let d = post(json!({"expiration": "2001-01-01T00:00:00Z"}))
        .await
        .assert_error(400);
    assert!(d.contains("before current time"), "{d}");
    post(json!(["not", "an", "object"])).await.assert_error(400);
    let malformed = send(
        r.request(&r.alice, "POST", "/v1/secrets")
            .header("content-type", "application/json")
            .body("{\"payload\": "),
    )
    .await;
    malformed.assert_error(400);
    // Whole requests beyond Barbican's request size limit.
    let huge = send(
        r.request(&r.alice, "POST", "/v1/secrets")
            .header("content-type", "application/json")
            .body(format!("{{\"name\": \"{}\"}}", "n".repeat(30_000))),
    )
    .await;
    huge.assert_error(413);

    // Two-step PUT.
    let c = r
        .call(&r.alice, "POST", "/v1/secrets", Some(json!({})))
        .await;
    let id = id_of(&c.json()["secret_ref"]);
    let put = |ct: &'static str, enc: Option<&'static str>, body: Vec<u8>| {
        let mut req = r
            .request(&r.alice, "PUT", &format!("/v1/secrets/{id}"))
            .header("content-type", ct)
            .body(body);
        if let Some(e) = enc {
            req = req.header("content-encoding", e);
        }
        send(req)
    };
    put("application/json", None, b"{}".to_vec())
        .await
        .assert_error(415);
    put("image/png", None, b"x".to_vec())
        .await
        .assert_error(415);
    put("text/plain", None, vec![]).await.assert_error(400);
    put("text/plain", None, vec![b'x'; 10_001])
        .await
        .assert_error(413);
    put("application/octet-stream", Some("base64"), b"%%%".to_vec())
        .await
        .assert_error(400);
    put("text/plain", None, vec![0xff, 0xfe])
        .await
        .assert_error(400);
    // None of that stored anything.
    let none = r
        .call(&r.alice, "GET", &format!("/v1/secrets/{id}/payload"), None)
        .await;
    none.assert_error(404);

    // Retrieval and lookup.
    let id = r.store_text(&r.alice, "t", "text").await;
    let d = send(
        r.request(&r.alice, "GET", &format!("/v1/secrets/{id}/payload"))
            .header("accept", "image/png"),
    )
    .await
    .assert_error(406);
    assert!(d.contains("image/png"), "{d}");
    r.call(&r.alice, "GET", "/v1/secrets/not-a-uuid", None)
        .await
        .assert_error(404);
    r.call(
        &r.alice,
        "GET",
        "/v1/secrets/00000000-0000-4000-8000-000000000000",
        None,
    )
    .await
    .assert_error(404);
    r.call(&r.alice, "GET", "/v1/secrets?sort=payload", None)
        .await
        .assert_error(400);
    r.call(&r.alice, "GET", "/v1/secrets?sort=name:sideways", None)
        .await
        .assert_error(400);
    r.call(&r.alice, "GET", "/v1/secrets?created=gt:not-a-date", None)
        .await
        .assert_error(400);
    r.call(
        &r.alice,
        "GET",
        "/v1/secrets?created=gt:2020-01-01T00:00:00,gte:2020-01-01T00:00:00",
        None,
    )
    .await
    .assert_error(400);
    // No token: 401 in Barbican's body.
    let anon = send(r.http.get(format!("{}/key-manager/v1/secrets", r.url))).await;
    anon.assert_error(401);
}

async fn payloads_are_stored_only_sealed(r: Region) {
    let marker = "MARKER-8f3e1c-plaintext-must-not-be-stored";
    r.store_text(&r.alice, "marked", marker).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(marker);
    let c = r
        .call(
            &r.alice,
            "POST",
            "/v1/secrets",
            Some(
                json!({"payload": b64, "payload_content_type": "application/octet-stream",
                "payload_content_encoding": "base64"}),
            ),
        )
        .await;
    assert_eq!(c.status, 201);
    // Everything the store holds about secrets, as text.
    let rows: Vec<(String, Option<String>)> = sqlx::query_as("SELECT id, sealed FROM kms_secrets")
        .fetch_all(r.db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (id, sealed) in rows {
        let sealed = sealed.expect("sealed payload");
        assert!(
            !sealed.contains(marker) && !sealed.contains(&b64),
            "{id} stored in the clear"
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        assert!(
            !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{id}'s sealed payload holds the plaintext"
        );
    }
    // And nothing in the data dir (the SQLite file and its WAL) holds it.
    for entry in std::fs::read_dir(r.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{} holds the plaintext marker",
                path.display()
            );
        }
    }
}

async fn tampered_ciphertext_is_reported_never_returned(r: Region) {
    let a = r.store_text(&r.alice, "a", "payload of a").await;
    let b = r.store_text(&r.alice, "b", "payload of b").await;
    let sealed = |id: String| {
        let db = r.db.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT sealed FROM kms_secrets WHERE id = $1")
                .bind(id)
                .fetch_one(db.pool())
                .await
                .unwrap()
        }
    };
    let set = |id: String, value: String| {
        let db = r.db.clone();
        async move {
            sqlx::query("UPDATE kms_secrets SET sealed = $1 WHERE id = $2")
                .bind(value)
                .bind(id)
                .execute(db.pool())
                .await
                .unwrap();
        }
    };
    let sealed_a = sealed(a.clone()).await;
    let sealed_b = sealed(b.clone()).await;

    // b's ciphertext moved onto a: it is bound to b, so a reports corruption.
    set(a.clone(), sealed_b.clone()).await;
    let moved = r
        .call(&r.alice, "GET", &format!("/v1/secrets/{a}/payload"), None)
        .await;
    let d = moved.assert_error(500);
    assert!(d.contains("integrity"), "{d}");
    assert!(
        !moved.text.contains("payload of"),
        "plaintext leaked: {}",
        moved.text
    );

    // A flipped bit near the end (in the envelope's ciphertext).
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(&sealed_a)
        .unwrap();
    let last = raw.len() - 3;
    raw[last] ^= 0x01;
    set(
        a.clone(),
        base64::engine::general_purpose::STANDARD.encode(&raw),
    )
    .await;
    let flipped = r
        .call(&r.alice, "GET", &format!("/v1/secrets/{a}/payload"), None)
        .await;
    assert!(flipped.assert_error(500).contains("integrity"));

    // Truncated, and not even base64.
    set(a.clone(), sealed_a[..sealed_a.len() / 2].to_owned()).await;
    r.call(&r.alice, "GET", &format!("/v1/secrets/{a}/payload"), None)
        .await
        .assert_error(500);
    set(a.clone(), "%%%".into()).await;
    r.call(&r.alice, "GET", &format!("/v1/secrets/{a}/payload"), None)
        .await
        .assert_error(500);

    // Put back, it opens again; b was never affected.
    set(a.clone(), sealed_a).await;
    assert_eq!(r.payload(&r.alice, &a).await.unwrap(), "payload of a");
    assert_eq!(r.payload(&r.alice, &b).await.unwrap(), "payload of b");
}

async fn version_discovery_and_unknown_paths(r: Region) {
    let root = send(r.http.get(format!("{}/key-manager/", r.url))).await;
    assert_eq!(root.status, 300);
    let v = root.json();
    assert_eq!(v["versions"]["values"][0]["id"], "v1");
    assert_eq!(
        v["versions"]["values"][0]["links"][0]["href"],
        json!(format!("{}/key-manager/v1/", r.url))
    );
    let v1 = send(r.http.get(format!("{}/key-manager/v1", r.url))).await;
    assert_eq!(v1.status, 200);
    assert_eq!(v1.json()["version"]["status"], "stable");
    let unknown = r.call(&r.alice, "GET", "/v1/nothing-here", None).await;
    unknown.assert_error(404);
    let id = r.store_text(&r.alice, "m", "x").await;
    r.call(
        &r.alice,
        "PATCH",
        &format!("/v1/secrets/{id}"),
        Some(json!({})),
    )
    .await
    .assert_error(405);
    r.call(&r.alice, "POST", &format!("/v1/secrets/{id}/payload"), None)
        .await
        .assert_error(405);
}

async fn containers_group_a_projects_secrets(r: Region) {
    let r = &r;
    let a = r.store_text(&r.alice, "a", "1").await;
    let b = r.store_text(&r.alice, "b", "2").await;
    let c = r.store_text(&r.alice, "c", "3").await;
    let theirs = r.store_text(&r.carol, "theirs", "4").await;
    let href = |id: &str| format!("{}/key-manager/v1/secrets/{id}", r.url);

    let created = r
        .call(
            &r.alice,
            "POST",
            "/v1/containers/",
            Some(json!({"type": "generic", "name": "bundle", "secret_refs": [
                {"name": "first", "secret_ref": href(&a)}, {"name": "second", "secret_ref": href(&b)}]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let cref = created.json()["container_ref"].as_str().unwrap().to_owned();
    assert!(cref.starts_with(&format!("{}/key-manager/v1/containers/", r.url)));
    let shown = r.call(&r.alice, "GET", &cref, None).await.json();
    assert_eq!(shown["name"], "bundle");
    assert_eq!(shown["type"], "generic");
    assert_eq!(shown["status"], "ACTIVE");
    assert_eq!(
        shown["secret_refs"],
        json!([{"name": "first", "secret_ref": href(&a)}, {"name": "second", "secret_ref": href(&b)}])
    );
    let list = r.call(&r.alice, "GET", "/v1/containers", None).await.json();
    assert_eq!(list["total"], 1);

    let add = r
        .call(
            &r.alice,
            "POST",
            &format!("{cref}/secrets/"),
            Some(json!({"name": "third", "secret_ref": href(&c)})),
        )
        .await;
    assert_eq!(add.status, 201, "{}", add.text);
    r.call(
        &r.alice,
        "POST",
        &format!("{cref}/secrets"),
        Some(json!({"name": "again", "secret_ref": href(&c)})),
    )
    .await
    .assert_error(409);
    r.call(
        &r.alice,
        "POST",
        &format!("{cref}/secrets"),
        Some(json!({"name": "third", "secret_ref": href(&a)})),
    )
    .await
    .assert_error(400);
    let del = r
        .call(
            &r.alice,
            "DELETE",
            &format!("{cref}/secrets"),
            Some(json!({"name": "first", "secret_ref": href(&a)})),
        )
        .await;
    assert_eq!(del.status, 204, "{}", del.text);
    r.call(
        &r.alice,
        "DELETE",
        &format!("{cref}/secrets"),
        Some(json!({"name": "first", "secret_ref": href(&a)})),
    )
    .await
    .assert_error(404);
    let names: Vec<_> = r.call(&r.alice, "GET", &cref, None).await.json()["secret_refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["second", "third"]);

    // Who may see it.
    assert_eq!(r.call(&r.bob, "GET", &cref, None).await.status, 200);
    r.call(
        &r.bob,
        "POST",
        "/v1/containers",
        Some(json!({"type": "generic"})),
    )
    .await
    .assert_error(403);
    r.call(&r.bob, "DELETE", &cref, None)
        .await
        .assert_error(403);
    r.call(&r.carol, "GET", &cref, None).await.assert_error(403);
    let acl = r
        .call(
            &r.alice,
            "PUT",
            &format!("{cref}/acl"),
            Some(json!({"read": {"users": [r.carol.id]}})),
        )
        .await;
    assert_eq!(acl.status, 200, "{}", acl.text);
    assert!(acl.json()["acl_ref"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{}/acl", id_of(&json!(cref)))));
    assert_eq!(r.call(&r.carol, "GET", &cref, None).await.status, 200);

    // Bad input.
    let post = |body: serde_json::Value| async move {
        r.call(&r.alice, "POST", "/v1/containers", Some(body)).await
    };
    post(json!({"name": "no type"})).await.assert_error(400);
    post(json!({"type": "bucket"})).await.assert_error(400);
    let d = post(
        json!({"type": "generic", "secret_refs": [{"name": "x", "secret_ref": href(&theirs)}]}),
    )
    .await
    .assert_error(404);
    assert!(d.contains("doesn't exist"), "{d}");
    post(json!({"type": "generic", "secret_refs": [{"name": "x", "secret_ref": format!("http://elsewhere.example/key-manager/v1/secrets/{a}")}]}))
        .await
        .assert_error(400);
    post(json!({"type": "generic", "secret_refs": [{"name": "x", "secret_ref": href(&a)}, {"name": "x", "secret_ref": href(&b)}]}))
        .await
        .assert_error(400);
    post(json!({"type": "generic", "secret_refs": [{"name": "x", "secret_ref": href(&a)}, {"name": "y", "secret_ref": href(&a)}]}))
        .await
        .assert_error(400);
    post(json!({"type": "rsa", "secret_refs": [{"name": "public_key", "secret_ref": href(&a)}]}))
        .await
        .assert_error(400);
    post(json!({"type": "generic", "secret_refs": "nope"}))
        .await
        .assert_error(400);
    let rsa = post(json!({"type": "rsa", "secret_refs": [
        {"name": "public_key", "secret_ref": href(&a)}, {"name": "private_key", "secret_ref": href(&b)}]}))
    .await;
    assert_eq!(rsa.status, 201, "{}", rsa.text);
    let rsa_ref = rsa.json()["container_ref"].as_str().unwrap().to_owned();
    r.call(
        &r.alice,
        "POST",
        &format!("{rsa_ref}/secrets"),
        Some(json!({"name": "extra", "secret_ref": href(&c)})),
    )
    .await
    .assert_error(400);

    assert_eq!(r.call(&r.alice, "DELETE", &cref, None).await.status, 204);
    r.call(&r.alice, "GET", &cref, None).await.assert_error(404);
    // The secrets outlive their container.
    assert_eq!(r.payload(&r.alice, &b).await.unwrap(), "2");
    r.call(&r.alice, "GET", "/v1/containers/not-a-uuid", None)
        .await
        .assert_error(404);
}

async fn key_orders_generate_aes_keys(r: Region) {
    let r = &r;
    let order = |bits: i64, mode: &str| {
        json!({"type": "key", "meta": {"name": format!("gen-{bits}"), "algorithm": "aes",
            "bit_length": bits, "mode": mode, "payload_content_type": "application/octet-stream"}})
    };
    let created = r
        .call(&r.alice, "POST", "/v1/orders/", Some(order(256, "cbc")))
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let oref = created.json()["order_ref"].as_str().unwrap().to_owned();
    let shown = r.call(&r.alice, "GET", &oref, None).await.json();
    assert_eq!(shown["status"], "ACTIVE");
    assert_eq!(shown["type"], "key");
    assert_eq!(shown["meta"]["bit_length"], 256);
    assert_eq!(shown["creator_id"], json!(r.alice.id));
    let sref = shown["secret_ref"].as_str().unwrap().to_owned();
    let meta = r.call(&r.alice, "GET", &sref, None).await.json();
    assert_eq!(meta["secret_type"], "symmetric");
    assert_eq!(meta["algorithm"], "aes");
    assert_eq!(meta["bit_length"], 256);
    assert_eq!(meta["mode"], "cbc");
    assert_eq!(meta["name"], "gen-256");
    assert_eq!(
        meta["content_types"],
        json!({"default": "application/octet-stream"})
    );
    let key = r
        .request(&r.alice, "GET", &format!("{sref}/payload"))
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(key.len(), 32);
    assert!(key.iter().any(|b| *b != 0), "an all-zero key");

    let small = r
        .call(&r.alice, "POST", "/v1/orders", Some(order(128, "gcm")))
        .await;
    let sref2 = r
        .call(
            &r.alice,
            "GET",
            small.json()["order_ref"].as_str().unwrap(),
            None,
        )
        .await
        .json()["secret_ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let key2 = r
        .request(&r.alice, "GET", &format!("{sref2}/payload"))
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(key2.len(), 16);
    assert_ne!(key[..16], key2[..], "two orders gave the same key");

    let list = r.call(&r.bob, "GET", "/v1/orders", None).await.json();
    assert_eq!(list["total"], 2);
    assert_eq!(r.call(&r.bob, "GET", &oref, None).await.status, 200);
    r.call(&r.bob, "POST", "/v1/orders", Some(order(256, "cbc")))
        .await
        .assert_error(403);
    r.call(&r.bob, "DELETE", &oref, None)
        .await
        .assert_error(403);
    r.call(&r.carol, "GET", &oref, None).await.assert_error(403);
    assert_eq!(
        r.call(&r.carol, "GET", "/v1/orders", None).await.json()["total"],
        0
    );

    let post = |body: serde_json::Value| async move {
        r.call(&r.alice, "POST", "/v1/orders", Some(body)).await
    };
    let d = post(json!({"type": "key", "meta": {"algorithm": "rsa", "bit_length": 2048}}))
        .await
        .assert_error(400);
    assert!(d.contains("Unsupported algorithm"), "{d}");
    let d = post(json!({"type": "key", "meta": {"algorithm": "aes", "bit_length": 512}}))
        .await
        .assert_error(400);
    assert!(d.contains("bit_length"), "{d}");
    post(json!({"type": "key", "meta": {"algorithm": "aes", "bit_length": 100}}))
        .await
        .assert_error(400);
    post(json!({"type": "key", "meta": {"bit_length": 256}}))
        .await
        .assert_error(400);
    post(json!({"type": "key", "meta": {"algorithm": "aes"}}))
        .await
        .assert_error(400);
    post(json!({"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "mode": "rot13"}}))
        .await
        .assert_error(400);
    post(json!({"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "payload": "x"}}))
        .await
        .assert_error(400);
    post(json!({"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "payload_content_type": "text/plain"}}))
        .await
        .assert_error(400);
    post(json!({"type": "asymmetric", "meta": {"algorithm": "rsa", "bit_length": 2048}}))
        .await
        .assert_error(400);
    post(json!({"type": "certificate", "meta": {}}))
        .await
        .assert_error(400);
    post(json!({"type": "key"})).await.assert_error(400);
    assert_eq!(
        r.call(&r.alice, "GET", "/v1/orders", None).await.json()["total"],
        2
    );

    assert_eq!(r.call(&r.alice, "DELETE", &oref, None).await.status, 204);
    r.call(&r.alice, "GET", &oref, None).await.assert_error(404);
    // The generated secret stays.
    assert_eq!(r.call(&r.alice, "GET", &sref, None).await.status, 200);
}

async fn secret_operations_are_audited_without_payloads(r: Region) {
    let marker = "AUDIT-MARKER-the-trail-must-not-see-this";
    let id = r.store_text(&r.alice, "audited", marker).await;
    assert_eq!(r.payload(&r.alice, &id).await.unwrap(), marker);
    assert_eq!(r.payload(&r.carol, &id).await, Err(403));
    assert_eq!(
        r.call(&r.alice, "DELETE", &format!("/v1/secrets/{id}"), None)
            .await
            .status,
        204
    );

    let records = r.audit.0.lock().unwrap().clone();
    let find = |action: &str, status: u16| {
        records
            .iter()
            .find(|x| x.action == action && x.status == status)
            .unwrap_or_else(|| panic!("no {action} {status} in the trail"))
    };
    let stored = find("secrets:post", 201);
    assert_eq!(stored.target_id.as_deref(), Some(id.as_str()));
    assert_eq!(stored.service, "key-manager");
    assert_eq!(stored.initiator.as_ref().unwrap().user_id, r.alice.id);
    assert_eq!(
        find("secret:decrypt", 200).target_id.as_deref(),
        Some(id.as_str())
    );
    let denied = find("secret:decrypt", 403);
    assert_eq!(denied.initiator.as_ref().unwrap().user_id, r.carol.id);
    assert_eq!(
        find("secret:delete", 204).target_id.as_deref(),
        Some(id.as_str())
    );
    for record in &records {
        assert!(
            !format!("{record:?}").contains(marker),
            "a payload reached the trail: {record:?}"
        );
    }
}
