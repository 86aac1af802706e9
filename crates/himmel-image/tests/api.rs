//! The Glance v2 API end to end over HTTP, on SQLite and PostgreSQL:
//! lifecycle, data round trips, sharing, listing, import, and the errors
//! clients see for bad input (in Glance's format, never a 500).

mod support;

use serde_json::{json, Value};
use sha2::{Digest, Sha512};
use support::Region;

fn glance_error(v: &Value, status: u16) -> &str {
    let code = v["code"].as_str().unwrap_or_default();
    assert!(
        code.starts_with(&status.to_string()),
        "Glance error body with code {status}: {v}"
    );
    assert!(v["title"].is_string(), "{v}");
    v["message"].as_str().unwrap_or_default()
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v["images"]
        .as_array()
        .unwrap_or_else(|| panic!("no images in {v}"))
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_string())
        .collect();
    n.sort();
    n
}

async fn versions_answer_without_a_token(r: Region) {
    for path in ["", "/"] {
        let resp = r
            .http
            .get(format!("{}/image{path}", r.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 300, "GET /image{path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["versions"][0]["status"], "CURRENT");
        assert!(v["versions"][0]["links"][0]["href"]
            .as_str()
            .unwrap()
            .ends_with("/image/v2/"));
    }
    let resp = r
        .http
        .get(format!("{}/image/versions", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, v) = r.call("GET", "/v2/images", "not-a-token", None).await;
    assert_eq!(status, 401);
    glance_error(&v, 401);
}

on_both_engines!(versions, versions_answer_without_a_token);

async fn image_lifecycle_with_data_round_trip(r: Region) {
    let alice = r.member("alice", "member").await;
    let image = r
        .create_image(
            &alice.token,
            json!({"name": "debian-12", "disk_format": "qcow2", "container_format": "bare",
                   "tags": ["base"], "os_distro": "debian", "os_version": "12",
                   "architecture": "x86_64", "hw_disk_bus": "virtio"}),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    assert_eq!(image["status"], "queued");
    assert_eq!(image["visibility"], "shared");
    assert_eq!(image["owner"], alice.project_id.as_str());
    assert_eq!(image["protected"], false);
    assert_eq!(image["os_hidden"], false);
    assert_eq!(image["tags"], json!(["base"]));
    assert_eq!(image["os_distro"], "debian");
    assert_eq!(image["size"], Value::Null);
    assert_eq!(image["file"], format!("/v2/images/{id}/file"));

    // No data yet: 204.
    let got = r
        .send("GET", &format!("/v2/images/{id}/file"), &alice.token, None)
        .await;
    assert_eq!(got.status, 204);

    let data: Vec<u8> = (0..5 * 1024 * 1024 + 3).map(|i| (i % 253) as u8).collect();
    // Wrong content type: 415, and nothing changed.
    let resp = r
        .send(
            "PUT",
            &format!("/v2/images/{id}/file"),
            &alice.token,
            Some(("application/json", b"{}".to_vec())),
        )
        .await;
    assert_eq!(resp.status, 415);
    glance_error(&resp.json(), 415);
    r.upload(&id, &alice.token, data.clone()).await;
    let (_, v) = r
        .call("GET", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["size"], data.len() as u64);
    assert_eq!(v["checksum"].as_str().unwrap().len(), 32);
    assert_eq!(v["os_hash_algo"], "sha512");
    assert_eq!(v["os_hash_value"], hex::encode(Sha512::digest(&data)));

    let got = r
        .send("GET", &format!("/v2/images/{id}/file"), &alice.token, None)
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "application/octet-stream");
    assert_eq!(got.headers["content-md5"], v["checksum"].as_str().unwrap());
    assert_eq!(Sha512::digest(&got.body), Sha512::digest(&data));

    // Uploading again to an active image: 409.
    let resp = r
        .send(
            "PUT",
            &format!("/v2/images/{id}/file"),
            &alice.token,
            Some(("application/octet-stream", b"more".to_vec())),
        )
        .await;
    assert_eq!(resp.status, 409);
    glance_error(&resp.json(), 409);

    // The data at rest is ciphertext: no plaintext run of it is on disk.
    let needle = &data[1024 * 1024..1024 * 1024 + 64];
    let mut scanned = 0;
    for entry in walk(&r.dir.path().join("images")) {
        let bytes = std::fs::read(&entry).unwrap();
        scanned += bytes.len();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "plaintext in {}",
            entry.display()
        );
    }
    assert!(scanned > data.len(), "the encrypted data file was scanned");

    // JSON patch: properties and core attributes.
    let (status, v) = r
        .patch(
            &id,
            &alice.token,
            json!([
                {"op": "replace", "path": "/name", "value": "debian-12-genericcloud"},
                {"op": "add", "path": "/image_build_date", "value": "2026-11-01"},
                {"op": "add", "path": "/replace_frequency", "value": "monthly"},
                {"op": "replace", "path": "/os_version", "value": "12.8"},
                {"op": "remove", "path": "/hw_disk_bus"},
                {"op": "replace", "path": "/min_ram", "value": 512},
                {"op": "replace", "path": "/protected", "value": true},
            ]),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], "debian-12-genericcloud");
    assert_eq!(v["image_build_date"], "2026-11-01");
    assert_eq!(v["os_version"], "12.8");
    assert!(v.get("hw_disk_bus").is_none());
    assert_eq!(v["min_ram"], 512);

    // Bad patches.
    for (ops, status) in [
        (
            json!([{"op": "replace", "path": "/status", "value": "queued"}]),
            403,
        ),
        (json!([{"op": "replace", "path": "/size", "value": 1}]), 403),
        (
            json!([{"op": "replace", "path": "/nope", "value": "x"}]),
            409,
        ),
        (json!([{"op": "remove", "path": "/nope"}]), 409),
        (json!([{"op": "copy", "path": "/name", "from": "/x"}]), 400),
        (json!({"op": "add"}), 400),
        (
            json!([{"op": "add", "path": "/min_disk", "value": "big"}]),
            400,
        ),
        (
            json!([{"op": "add", "path": "/os_distro", "value": 12}]),
            400,
        ),
        (
            json!([{"op": "add", "path": "/visibility", "value": "everyone"}]),
            400,
        ),
        (
            json!([{"op": "replace", "path": "/disk_format", "value": "raw"}]),
            403,
        ),
    ] {
        let (s, v) = r.patch(&id, &alice.token, ops.clone()).await;
        assert_eq!(s, status, "{ops}: {v}");
        glance_error(&v, status);
    }
    let resp = r
        .send(
            "PATCH",
            &format!("/v2/images/{id}"),
            &alice.token,
            Some((
                "application/openstack-images-v2.1-json-patch",
                b"[{".to_vec(),
            )),
        )
        .await;
    assert_eq!(resp.status, 400);
    let resp = r
        .send(
            "PATCH",
            &format!("/v2/images/{id}"),
            &alice.token,
            Some(("application/json", b"[]".to_vec())),
        )
        .await;
    assert_eq!(resp.status, 415);

    // Tags.
    let resp = r
        .send(
            "PUT",
            &format!("/v2/images/{id}/tags/gold"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(resp.status, 204);
    let resp = r
        .send(
            "DELETE",
            &format!("/v2/images/{id}/tags/base"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(resp.status, 204);
    let resp = r
        .send(
            "DELETE",
            &format!("/v2/images/{id}/tags/base"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(resp.status, 404);
    let (_, v) = r
        .call("GET", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(v["tags"], json!(["gold"]));

    // Protected images cannot be deleted.
    let (status, v) = r
        .call("DELETE", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(status, 403);
    glance_error(&v, 403);
    r.patch(
        &id,
        &alice.token,
        json!([{"op": "replace", "path": "/protected", "value": false}]),
    )
    .await;
    let (status, _) = r
        .call("DELETE", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(status, 204);
    let (status, v) = r
        .call("GET", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(status, 404);
    assert!(glance_error(&v, 404).contains(&id));
    assert!(
        walk(&r.dir.path().join("images")).is_empty(),
        "deleting the image removed its data"
    );
}

on_both_engines!(lifecycle, image_lifecycle_with_data_round_trip);

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn bad_input_gets_glance_errors(r: Region) {
    let alice = r.member("alice", "member").await;
    for path in [
        "/v2/images/not-a-uuid",
        "/v2/images/7f4c7a1e-1111-4222-8333-944445555666",
        "/v2/images/7f4c7a1e-1111-4222-8333-944445555666/file",
        "/v2/nothing",
    ] {
        let (status, v) = r.call("GET", path, &alice.token, None).await;
        assert_eq!(status, 404, "{path}: {v}");
        glance_error(&v, 404);
    }
    for (body, status) in [
        (json!({"id": "not-a-uuid"}), 400),
        (json!({"disk_format": "floppy"}), 400),
        (json!({"container_format": "tarball"}), 400),
        (json!({"min_ram": -5}), 400),
        (json!({"protected": "yes"}), 400),
        (json!({"status": "active"}), 403),
        (json!({"checksum": "abc"}), 403),
        (json!({"deleted": true}), 403),
        (json!({"visibility": "public"}), 403),
        (json!({"owner": "someone-else"}), 403),
        (json!({"kernel_id": "vmlinuz"}), 400),
        (json!(["not", "an", "object"]), 400),
    ] {
        let (s, v) = r
            .call("POST", "/v2/images", &alice.token, Some(body.clone()))
            .await;
        assert_eq!(s, status, "{body}: {v}");
        glance_error(&v, status);
    }
    let resp = r
        .send(
            "POST",
            "/v2/images",
            &alice.token,
            Some(("application/json", b"{".to_vec())),
        )
        .await;
    assert_eq!(resp.status, 400);
    glance_error(&resp.json(), 400);

    // Upload without formats: 400; oversized: 413 and the image stays queued.
    let bare = r.create_image(&alice.token, json!({"name": "bare"})).await;
    let id = bare["id"].as_str().unwrap();
    let resp = r
        .send(
            "PUT",
            &format!("/v2/images/{id}/file"),
            &alice.token,
            Some(("application/octet-stream", vec![1u8; 10])),
        )
        .await;
    assert_eq!(resp.status, 400);
    r.patch(
        id,
        &alice.token,
        json!([{"op": "add", "path": "/disk_format", "value": "raw"},
               {"op": "add", "path": "/container_format", "value": "bare"}]),
    )
    .await;
    let resp = r
        .http
        .put(format!("{}/image/v2/images/{id}/file", r.url))
        .header("x-auth-token", &alice.token)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; support::MAX_IMAGE_SIZE as usize + 1])
        .send()
        .await;
    if let Ok(resp) = resp {
        // The server may close the connection before the client sent it all.
        assert_eq!(resp.status(), 413);
        let v: Value = resp.json().await.unwrap();
        glance_error(&v, 413);
    }
    let (_, v) = r
        .call("GET", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(v["status"], "queued");
    assert_eq!(v["size"], Value::Null);
    // The image can still take data of the right size.
    r.upload(id, &alice.token, vec![3u8; 1000]).await;

    // A reader may not create or upload.
    let reader = r.user_in("alice", &alice.project_id, "reader").await;
    let (status, v) = r
        .call(
            "POST",
            "/v2/images",
            &reader.token,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 403);
    glance_error(&v, 403);
    let (status, _) = r
        .call("GET", &format!("/v2/images/{id}"), &reader.token, None)
        .await;
    assert_eq!(status, 200);
    let got = r
        .send("GET", &format!("/v2/images/{id}/file"), &reader.token, None)
        .await;
    assert_eq!(got.body, vec![3u8; 1000]);
}

on_both_engines!(bad_input, bad_input_gets_glance_errors);

async fn visibility_and_members_between_projects(r: Region) {
    let alice = r.member("alice", "member").await;
    let bob = r.member("bob", "member").await;
    let private = r
        .create_image(
            &alice.token,
            json!({"name": "private", "visibility": "private"}),
        )
        .await;
    let shared = r
        .create_image(
            &alice.token,
            json!({"name": "shared", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let community = r
        .create_image(
            &alice.token,
            json!({"name": "community", "visibility": "community"}),
        )
        .await;
    let public = r
        .create_image(&r.admin, json!({"name": "public", "visibility": "public"}))
        .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let (private_id, shared_id) = (id(&private), id(&shared));

    let (_, v) = r.call("GET", "/v2/images", &bob.token, None).await;
    assert_eq!(names(&v), vec!["public"]);
    let (_, v) = r
        .call("GET", "/v2/images?visibility=community", &bob.token, None)
        .await;
    assert_eq!(names(&v), vec!["community"]);
    let (status, _) = r
        .call(
            "GET",
            &format!("/v2/images/{}", id(&community)),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    for hidden in [&private_id, &shared_id] {
        let (status, _) = r
            .call("GET", &format!("/v2/images/{hidden}"), &bob.token, None)
            .await;
        assert_eq!(status, 404);
    }
    // Bob cannot change or delete what he can see but does not own.
    let (status, _) = r
        .patch(
            &id(&public),
            &bob.token,
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = r
        .call(
            "DELETE",
            &format!("/v2/images/{}", id(&community)),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(status, 403);
    // Members only on shared images.
    let (status, v) = r
        .call(
            "POST",
            &format!("/v2/images/{private_id}/members"),
            &alice.token,
            Some(json!({"member": bob.project_id})),
        )
        .await;
    assert_eq!(status, 403, "{v}");

    let (status, m) = r
        .call(
            "POST",
            &format!("/v2/images/{shared_id}/members"),
            &alice.token,
            Some(json!({"member": bob.project_id})),
        )
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["status"], "pending");
    assert_eq!(m["member_id"], bob.project_id.as_str());
    let (status, _) = r
        .call(
            "POST",
            &format!("/v2/images/{shared_id}/members"),
            &alice.token,
            Some(json!({"member": bob.project_id})),
        )
        .await;
    assert_eq!(status, 409);
    // Pending: visible by id, not in Bob's default list.
    let (status, _) = r
        .call("GET", &format!("/v2/images/{shared_id}"), &bob.token, None)
        .await;
    assert_eq!(status, 200);
    let (_, v) = r.call("GET", "/v2/images", &bob.token, None).await;
    assert_eq!(names(&v), vec!["public"]);
    let (_, v) = r
        .call("GET", "/v2/images?member_status=pending", &bob.token, None)
        .await;
    assert_eq!(names(&v), vec!["public", "shared"]);
    // Only the member accepts; the owner cannot do it for him.
    let member_path = format!("/v2/images/{shared_id}/members/{}", bob.project_id);
    let (status, _) = r
        .call(
            "PUT",
            &member_path,
            &alice.token,
            Some(json!({"status": "accepted"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = r
        .call(
            "PUT",
            &member_path,
            &bob.token,
            Some(json!({"status": "maybe"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, v) = r
        .call(
            "PUT",
            &member_path,
            &bob.token,
            Some(json!({"status": "accepted"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "accepted");
    let (_, v) = r.call("GET", "/v2/images", &bob.token, None).await;
    assert_eq!(names(&v), vec!["public", "shared"]);
    // Bob sees only his own membership; Alice sees all.
    let carol = r.member("carol", "member").await;
    r.call(
        "POST",
        &format!("/v2/images/{shared_id}/members"),
        &alice.token,
        Some(json!({"member": carol.project_id})),
    )
    .await;
    let (_, v) = r
        .call(
            "GET",
            &format!("/v2/images/{shared_id}/members"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(v["members"].as_array().unwrap().len(), 2, "{v}");
    let (_, v) = r
        .call(
            "GET",
            &format!("/v2/images/{shared_id}/members"),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(v["members"].as_array().unwrap().len(), 1, "{v}");
    let (status, _) = r
        .call(
            "GET",
            &format!("/v2/images/{shared_id}/members/{}", carol.project_id),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Bob may boot-read the data of the shared image.
    r.upload(&shared_id, &alice.token, b"shared bytes".to_vec())
        .await;
    let got = r
        .send(
            "GET",
            &format!("/v2/images/{shared_id}/file"),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(got.body, b"shared bytes");
    // Removing the member hides the image again.
    let (status, _) = r.call("DELETE", &member_path, &alice.token, None).await;
    assert_eq!(status, 204);
    let (status, _) = r
        .call("GET", &format!("/v2/images/{shared_id}"), &bob.token, None)
        .await;
    assert_eq!(status, 404);

    // Publicizing needs the administrator.
    let (status, _) = r
        .patch(
            &shared_id,
            &alice.token,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = r
        .patch(
            &shared_id,
            &r.admin,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .await;
    assert_eq!(status, 200);
    // The administrator sees everything.
    let (_, v) = r
        .call("GET", "/v2/images?visibility=all", &r.admin, None)
        .await;
    assert_eq!(names(&v), vec!["community", "private", "public", "shared"]);
}

on_both_engines!(sharing, visibility_and_members_between_projects);

async fn lists_filter_sort_and_page(r: Region) {
    let alice = r.member("alice", "member").await;
    for i in 0..7 {
        let mut body = json!({"name": format!("img-{i}"), "disk_format": if i % 2 == 0 { "raw" } else { "qcow2" },
                              "container_format": "bare", "os_distro": if i < 3 { "debian" } else { "ubuntu" }});
        if i == 6 {
            body["os_hidden"] = json!(true);
        }
        if i < 2 {
            body["tags"] = json!(["gold", "lts"]);
        }
        r.create_image(&alice.token, body).await;
    }
    let (_, v) = r
        .call("GET", "/v2/images?disk_format=raw", &alice.token, None)
        .await;
    assert_eq!(names(&v), vec!["img-0", "img-2", "img-4"]);
    let (_, v) = r
        .call("GET", "/v2/images?os_hidden=true", &alice.token, None)
        .await;
    assert_eq!(names(&v), vec!["img-6"]);
    let (_, v) = r
        .call("GET", "/v2/images?tag=gold&tag=lts", &alice.token, None)
        .await;
    assert_eq!(names(&v), vec!["img-0", "img-1"]);
    let (_, v) = r
        .call("GET", "/v2/images?os_distro=debian", &alice.token, None)
        .await;
    assert_eq!(names(&v), vec!["img-0", "img-1", "img-2"]);
    let (_, v) = r
        .call("GET", "/v2/images?name=in:img-1,img-5", &alice.token, None)
        .await;
    assert_eq!(names(&v), vec!["img-1", "img-5"]);

    // Pages of two, sorted by name, following `next`.
    let mut seen = vec![];
    let mut next = "/v2/images?sort_key=name&sort_dir=asc&limit=2".to_string();
    loop {
        let (status, v) = r.call("GET", &next, &alice.token, None).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["schema"], "/v2/schemas/images");
        for i in v["images"].as_array().unwrap() {
            seen.push(i["name"].as_str().unwrap().to_string());
        }
        match v["next"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["img-0", "img-1", "img-2", "img-3", "img-4", "img-5"]
    );
    let (_, v) = r
        .call(
            "GET",
            "/v2/images?sort=name:desc&limit=1",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(v["images"][0]["name"], "img-5");

    for bad in [
        "/v2/images?limit=-1",
        "/v2/images?limit=x",
        "/v2/images?sort_key=nope",
        "/v2/images?sort_dir=sideways",
        "/v2/images?marker=7f4c7a1e-1111-4222-8333-944445555666",
        "/v2/images?visibility=everyone",
        "/v2/images?os_hidden=perhaps",
    ] {
        let (status, v) = r.call("GET", bad, &alice.token, None).await;
        assert_eq!(status, 400, "{bad}: {v}");
        glance_error(&v, 400);
    }
}

on_both_engines!(lists, lists_filter_sort_and_page);

async fn stage_import_deactivate_and_schemas(r: Region) {
    let alice = r.member("alice", "member").await;
    let (status, v) = r.call("GET", "/v2/info/import", &alice.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["import-methods"]["value"], json!(["glance-direct"]));
    let image = r
        .create_image(
            &alice.token,
            json!({"name": "imported", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap();
    let import = json!({"method": {"name": "glance-direct"}});
    // Nothing staged yet.
    let (status, v) = r
        .call(
            "POST",
            &format!("/v2/images/{id}/import"),
            &alice.token,
            Some(import.clone()),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let resp = r
        .send(
            "PUT",
            &format!("/v2/images/{id}/stage"),
            &alice.token,
            Some(("application/octet-stream", data.clone())),
        )
        .await;
    assert_eq!(resp.status, 204);
    let (_, v) = r
        .call("GET", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(v["status"], "uploading");
    let (status, _) = r
        .call(
            "POST",
            &format!("/v2/images/{id}/import"),
            &alice.token,
            Some(json!({"method": {"name": "web-download"}})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, v) = r
        .call(
            "POST",
            &format!("/v2/images/{id}/import"),
            &alice.token,
            Some(import),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let (_, v) = r
        .call("GET", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["size"], data.len() as u64);
    let got = r
        .send("GET", &format!("/v2/images/{id}/file"), &alice.token, None)
        .await;
    assert_eq!(got.body, data);
    assert_eq!(
        walk(&r.dir.path().join("images"))
            .iter()
            .filter(|p| !p.starts_with(r.dir.path().join("images/tmp")))
            .count(),
        1,
        "the staged copy is gone"
    );

    // The import finished within its request: the image has no task left,
    // and another project does not see the image's tasks at all.
    let tasks = format!("/v2/images/{id}/tasks");
    let (status, v) = r.call("GET", &tasks, &alice.token, None).await;
    assert_eq!((status, v), (200, json!({"tasks": []})));

    // The owner's members (de)activate; downloads stop for all but the
    // administrator; other projects cannot deactivate.
    let bob = r.member("bob", "member").await;
    assert_eq!(r.send("GET", &tasks, &bob.token, None).await.status, 404);
    let path = format!("/v2/images/{id}/actions/deactivate");
    assert_eq!(r.send("POST", &path, &bob.token, None).await.status, 404);
    assert_eq!(r.send("POST", &path, &alice.token, None).await.status, 204);
    let (_, v) = r
        .call("GET", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(v["status"], "deactivated");
    let got = r
        .send("GET", &format!("/v2/images/{id}/file"), &alice.token, None)
        .await;
    assert_eq!(got.status, 403);
    let got = r
        .send("GET", &format!("/v2/images/{id}/file"), &r.admin, None)
        .await;
    assert_eq!(got.status, 200);
    let path = format!("/v2/images/{id}/actions/reactivate");
    assert_eq!(r.send("POST", &path, &alice.token, None).await.status, 204);
    let (_, v) = r
        .call("GET", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["stores"], "local");
    let got = r
        .send("GET", &format!("/v2/images/{id}/file"), &alice.token, None)
        .await;
    assert_eq!(got.status, 200);

    for schema in ["image", "images", "member", "members"] {
        let (status, v) = r
            .call("GET", &format!("/v2/schemas/{schema}"), &alice.token, None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(v["name"], schema);
    }
    let (_, v) = r.call("GET", "/v2/schemas/image", &alice.token, None).await;
    assert_eq!(v["additionalProperties"]["type"], "string");
    assert_eq!(v["properties"]["status"]["readOnly"], true);
}

on_both_engines!(import, stage_import_deactivate_and_schemas);
