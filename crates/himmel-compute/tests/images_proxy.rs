//! `/images` over HTTP, Nova's deprecated image proxy: the list, detail and
//! show shapes (with Nova's status mapping), the name, status, server, type
//! and changes-since filters, limit and marker paging, metadata read and
//! written as the image's properties, delete, and visibility as the image
//! service decides it. SQLite and PostgreSQL.

mod support;

use serde_json::{json, Value};
use support::Region;

fn ids(v: &Value) -> Vec<String> {
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

async fn shapes_and_statuses(r: Region) {
    let alice = r.member("alice", "member").await;
    let server = "0b6c2a0e-7d0e-4e55-9a55-0f5f0c4e8a11";
    let disk = r.images.add(
        &alice.project_id,
        "disk",
        "active",
        false,
        &[("os_distro", "debian")],
    );
    let snap = r.images.add(
        &alice.project_id,
        "snap",
        "saving",
        false,
        &[("instance_uuid", server), ("image_type", "snapshot")],
    );
    let queued = r
        .images
        .add(&alice.project_id, "queued", "queued", false, &[]);
    let killed = r
        .images
        .add(&alice.project_id, "killed", "killed", false, &[]);

    // The brief list: id, name, links (self, bookmark, alternate), newest first.
    let (st, v) = r.call("GET", "/images", &alice.token, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v), ["images"]);
    assert_eq!(
        ids(&v),
        [
            killed.as_str(),
            queued.as_str(),
            snap.as_str(),
            disk.as_str()
        ]
    );
    let first = &v["images"][0];
    assert_eq!(keys(first), ["id", "links", "name"]);
    let rels: Vec<&str> = first["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert_eq!(rels, ["self", "bookmark", "alternate"]);
    let self_href = first["links"][0]["href"].as_str().unwrap();
    assert!(
        self_href.ends_with(&format!("/compute/v2.1/images/{killed}")),
        "{self_href}"
    );
    let alternate = &first["links"][2];
    assert_eq!(alternate["type"], "application/vnd.openstack.image");
    assert!(alternate["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/image/images/{killed}")));

    // The full body, with Nova's statuses and progress.
    let (st, v) = r.call("GET", "/images/detail", &alice.token, None).await;
    assert_eq!(st, 200, "{v}");
    let by_id = |id: &str| {
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()
            .clone()
    };
    let d = by_id(&disk);
    assert_eq!(
        keys(&d),
        [
            "OS-EXT-IMG-SIZE:size",
            "created",
            "id",
            "links",
            "metadata",
            "minDisk",
            "minRam",
            "name",
            "progress",
            "status",
            "updated"
        ]
    );
    assert_eq!(
        (d["status"].clone(), d["progress"].clone()),
        (json!("ACTIVE"), json!(100))
    );
    assert_eq!(d["metadata"], json!({"os_distro": "debian"}));
    assert_eq!(d["OS-EXT-IMG-SIZE:size"], 1024);
    assert_eq!(
        (d["minDisk"].clone(), d["minRam"].clone()),
        (json!(0), json!(0))
    );
    assert!(d["created"].as_str().unwrap().ends_with('Z'));
    for (id, status, progress) in [
        (&snap, "SAVING", 50),
        (&queued, "SAVING", 25),
        (&killed, "ERROR", 0),
    ] {
        let i = by_id(id);
        assert_eq!(i["status"], status, "{i}");
        assert_eq!(i["progress"], progress, "{i}");
    }
    // A snapshot names its server.
    let s = by_id(&snap);
    assert_eq!(s["server"]["id"], server);
    assert!(s["server"]["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/servers/{server}")));
    assert!(d.get("server").is_none());

    // Show: the same body as in the detail list.
    let (st, v) = r
        .call("GET", &format!("/images/{disk}"), &alice.token, None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["image"], d);

    // Unknown and malformed ids are Nova's itemNotFound.
    for id in ["0e7d1d5c-0000-4000-8000-000000000000", "nope"] {
        let (st, v) = r
            .call("GET", &format!("/images/{id}"), &alice.token, None)
            .await;
        assert_eq!(st, 404, "{v}");
        assert_eq!(v["itemNotFound"]["message"], "Image not found.");
        assert_eq!(v["itemNotFound"]["code"], 404);
    }
}

on_both_engines!(shapes, shapes_and_statuses);

async fn filters_and_paging(r: Region) {
    let alice = r.member("alice", "member").await;
    let p = alice.project_id.as_str();
    let server_a = "aaaaaaaa-0000-4000-8000-000000000001";
    let server_b = "bbbbbbbb-0000-4000-8000-000000000002";
    let one = r.images.add(p, "one", "active", false, &[]);
    let two = r.images.add(p, "two", "queued", false, &[]);
    let snap_a = r.images.add(
        p,
        "snap-a",
        "active",
        false,
        &[("instance_uuid", server_a), ("image_type", "snapshot")],
    );
    let snap_b = r.images.add(
        p,
        "snap-b",
        "active",
        false,
        &[("instance_uuid", server_b), ("image_type", "snapshot")],
    );
    let list = |q: &'static str| {
        let r = &r;
        let token = alice.token.clone();
        async move {
            let (st, v) = r.call("GET", &format!("/images{q}"), &token, None).await;
            assert_eq!(st, 200, "{q}: {v}");
            v
        }
    };

    assert_eq!(ids(&list("?name=one").await), [one.as_str()]);
    assert_eq!(ids(&list("/detail?name=two").await), [two.as_str()]);
    assert_eq!(
        ids(&list("?status=ACTIVE").await),
        [snap_b.as_str(), snap_a.as_str(), one.as_str()]
    );
    assert_eq!(ids(&list("?status=SAVING").await), Vec::<String>::new());
    assert_eq!(ids(&list("?status=queued").await), [two.as_str()]);
    assert_eq!(
        ids(&list("?type=snapshot").await),
        [snap_b.as_str(), snap_a.as_str()]
    );
    let q = format!("?server={server_a}");
    let (st, v) = r
        .call("GET", &format!("/images{q}"), &alice.token, None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids(&v), [snap_a.as_str()]);
    // A server's link works as well as its id.
    let q = format!("?server={}/compute/v2.1/servers/{server_b}", r.url);
    let (st, v) = r
        .call("GET", &format!("/images/detail{q}"), &alice.token, None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids(&v), [snap_b.as_str()]);

    // changes-since: the images updated at or after the time.
    let created = r.images.get(&snap_a).unwrap().info.created_at;
    let since = himmel_core::time::from_unix_micros(created)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (st, v) = r
        .call(
            "GET",
            &format!("/images?changes-since={since}"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        ids(&v).contains(&snap_a) && ids(&v).contains(&snap_b),
        "{v}"
    );
    let (st, v) = r
        .call(
            "GET",
            "/images?changes-since=2999-01-01T00:00:00Z",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids(&v), Vec::<String>::new());

    // limit and marker: pages of two, newest first, with a next link while
    // the limit cuts the list.
    let v = list("?limit=2").await;
    assert_eq!(ids(&v), [snap_b.as_str(), snap_a.as_str()]);
    let next = v["images_links"][0]["href"].as_str().unwrap();
    assert_eq!(v["images_links"][0]["rel"], "next");
    assert!(next.contains("/compute/v2.1/images?"), "{next}");
    assert!(next.contains("limit=2") && next.contains(&format!("marker={snap_a}")));
    let (st, v) = r
        .call(
            "GET",
            &format!("/images?limit=2&marker={snap_a}"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids(&v), [two.as_str(), one.as_str()]);
    assert!(v.get("images_links").is_none(), "{v}");
    let v = list("/detail?limit=1").await;
    assert_eq!(ids(&v), [snap_b.as_str()]);
    assert!(v["images_links"][0]["href"]
        .as_str()
        .unwrap()
        .contains("/images/detail?"));
    let (st, v) = r
        .call(
            "GET",
            "/images?marker=0e7d1d5c-0000-4000-8000-000000000000",
            &alice.token,
            None,
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = r.call("GET", "/images?limit=x", &alice.token, None).await;
    assert_eq!(st, 400, "{v}");
}

on_both_engines!(filters, filters_and_paging);

async fn metadata_round_trip_and_delete(r: Region) {
    let alice = r.member("alice", "member").await;
    let id = r.images.add(
        &alice.project_id,
        "img",
        "active",
        false,
        &[("os_distro", "debian")],
    );
    let meta = format!("/images/{id}/metadata");
    let t = alice.token.as_str();

    let (st, v) = r.call("GET", &meta, t, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({"metadata": {"os_distro": "debian"}}));

    // PUT replaces everything and answers with what it set.
    let (st, v) = r
        .call(
            "PUT",
            &meta,
            t,
            Some(json!({"metadata": {"os_version": "1", "os_distro": "2"}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"metadata": {"os_version": "1", "os_distro": "2"}})
    );
    let (_, v) = r
        .call(
            "PUT",
            &meta,
            t,
            Some(json!({"metadata": {"os_version": "2", "architecture": "x86_64"}})),
        )
        .await;
    assert_eq!(
        v,
        json!({"metadata": {"os_version": "2", "architecture": "x86_64"}})
    );
    let (_, v) = r.call("GET", &meta, t, None).await;
    assert_eq!(
        v,
        json!({"metadata": {"os_version": "2", "architecture": "x86_64"}})
    );

    // POST merges and answers with all of it.
    let (st, v) = r
        .call(
            "POST",
            &meta,
            t,
            Some(json!({"metadata": {"os_version": "3", "os_distro": "debian"}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let all =
        json!({"metadata": {"os_version": "3", "os_distro": "debian", "architecture": "x86_64"}});
    assert_eq!(v, all);

    // One item: show, put, delete.
    let (st, v) = r.call("GET", &format!("{meta}/os_distro"), t, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({"meta": {"os_distro": "debian"}}));
    let (st, v) = r
        .call(
            "PUT",
            &format!("{meta}/os_distro"),
            t,
            Some(json!({"meta": {"os_distro": "ubuntu"}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({"meta": {"os_distro": "ubuntu"}}));
    let (st, v) = r
        .call("DELETE", &format!("{meta}/os_version"), t, None)
        .await;
    assert_eq!(st, 204, "{v}");
    let (st, _) = r.call("GET", &format!("{meta}/os_version"), t, None).await;
    assert_eq!(st, 404);
    let (st, _) = r
        .call("DELETE", &format!("{meta}/os_version"), t, None)
        .await;
    assert_eq!(st, 404);

    // The proxy's image shows the same metadata.
    let (_, v) = r.call("GET", &format!("/images/{id}"), t, None).await;
    assert_eq!(
        v["image"]["metadata"],
        json!({"os_distro": "ubuntu", "architecture": "x86_64"})
    );

    // Malformed bodies are Nova's badRequest.
    let long_key = "k".repeat(256);
    for (method, path, body) in [
        (
            "POST",
            meta.clone(),
            json!({"metadata": {long_key.clone(): "v"}}),
        ),
        ("PUT", meta.clone(), json!({"metadata": {"k": 1}})),
        ("PUT", meta.clone(), json!({"metadata": "nope"})),
        ("POST", meta.clone(), json!({"meta": {"k": "v"}})),
        ("PUT", meta.clone(), json!({"metadata": {"k": "v"}, "x": 1})),
        ("PUT", format!("{meta}/a"), json!({"meta": {"b": "v"}})),
        (
            "PUT",
            format!("{meta}/a"),
            json!({"meta": {"a": "v", "b": "v"}}),
        ),
        ("PUT", format!("{meta}/a"), json!({"metadata": {"a": "v"}})),
    ] {
        let (st, v) = r.call(method, &path, t, Some(body.clone())).await;
        assert_eq!(st, 400, "{method} {path} {body}: {v}");
        assert_eq!(v["badRequest"]["code"], 400, "{v}");
        assert!(v["badRequest"]["message"].is_string(), "{v}");
    }
    // Nothing of it was written.
    let (_, v) = r.call("GET", &meta, t, None).await;
    assert_eq!(
        v,
        json!({"metadata": {"os_distro": "ubuntu", "architecture": "x86_64"}})
    );

    // Metadata of an unknown image is 404.
    let unknown = "/images/0e7d1d5c-0000-4000-8000-000000000000/metadata";
    let (st, v) = r.call("GET", unknown, t, None).await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["itemNotFound"]["message"], "Image not found.");
    let (st, _) = r
        .call("POST", unknown, t, Some(json!({"metadata": {"a": "b"}})))
        .await;
    assert_eq!(st, 404);
    let (st, _) = r
        .call(
            "PUT",
            &format!("{unknown}/a"),
            t,
            Some(json!({"meta": {"a": "b"}})),
        )
        .await;
    assert_eq!(st, 404);

    // Delete: 204, then the image is gone for the proxy.
    let (st, v) = r.call("DELETE", &format!("/images/{id}"), t, None).await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = r.call("GET", &format!("/images/{id}"), t, None).await;
    assert_eq!(st, 404, "{v}");
    let (st, _) = r.call("DELETE", &format!("/images/{id}"), t, None).await;
    assert_eq!(st, 404);
    let (_, v) = r.call("GET", "/images", t, None).await;
    assert!(!ids(&v).contains(&id));
}

on_both_engines!(metadata, metadata_round_trip_and_delete);

async fn visibility_is_the_image_services(r: Region) {
    let alice = r.member("alice", "member").await;
    let bob = r.member("bob", "member").await;
    let private = r
        .images
        .add(&alice.project_id, "private", "active", false, &[]);
    let public = r
        .images
        .add(&alice.project_id, "public", "active", true, &[]);

    // Bob lists and sees Alice's public image, not her private one.
    let (st, v) = r.call("GET", "/images", &bob.token, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids(&v), [public.as_str()]);
    for (method, path, body) in [
        ("GET", format!("/images/{private}"), None),
        ("DELETE", format!("/images/{private}"), None),
        ("GET", format!("/images/{private}/metadata"), None),
        (
            "POST",
            format!("/images/{private}/metadata"),
            Some(json!({"metadata": {"a": "b"}})),
        ),
    ] {
        let (st, v) = r.call(method, &path, &bob.token, body).await;
        assert_eq!(st, 404, "{method} {path}: {v}");
    }

    // He may read her public image but not change or delete it (403, as
    // the image service answers).
    let (st, _) = r
        .call("GET", &format!("/images/{public}"), &bob.token, None)
        .await;
    assert_eq!(st, 200);
    let (st, v) = r
        .call("DELETE", &format!("/images/{public}"), &bob.token, None)
        .await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(
        v["forbidden"]["message"],
        "You are not allowed to delete the image."
    );
    let (st, v) = r
        .call(
            "PUT",
            &format!("/images/{public}/metadata/a"),
            &bob.token,
            Some(json!({"meta": {"a": "b"}})),
        )
        .await;
    assert_eq!(st, 403, "{v}");
    assert!(r.images.get(&public).unwrap().info.properties.is_empty());

    // A reader of Alice's project sees both but changes nothing.
    let reader = r.user_in("alice", &alice.project_id, "reader").await;
    let (_, v) = r.call("GET", "/images", &reader.token, None).await;
    assert_eq!(ids(&v), [public.as_str(), private.as_str()]);
    let (st, _) = r
        .call("DELETE", &format!("/images/{private}"), &reader.token, None)
        .await;
    assert_eq!(st, 403);
    assert!(r.images.get(&private).is_some());
}

on_both_engines!(visibility, visibility_is_the_image_services);
