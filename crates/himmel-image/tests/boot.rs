//! The Rust API compute uses (interfaces: image data for compute), on
//! SQLite and PostgreSQL: what may be booted by whom, data copied out
//! byte-identically, snapshots made from files, and what compute's image
//! proxy may list, show, change and delete for whom.

mod support;

use serde_json::json;
use sha2::{Digest, Sha512};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

async fn boot_image_is_visible_active_and_copied_intact(r: support::Region) {
    let alice = r.member("alice", "member").await;
    let bob = r.member("bob", "member").await;
    let kernel = uuid::Uuid::new_v4().to_string();
    let image = r
        .create_image(
            &alice.token,
            json!({"name": "debian", "disk_format": "qcow2", "container_format": "bare",
                   "min_disk": 2, "min_ram": 256, "kernel_id": kernel, "os_distro": "debian"}),
        )
        .await;
    let id = image["id"].as_str().unwrap();
    let alice_ctx = r.context(&alice.token).await;
    let bob_ctx = r.context(&bob.token).await;

    // Queued: no data yet, not bootable.
    let e = r.images.image_for_boot(&alice_ctx, id).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 409, "{e}");

    let data = pattern(3 * 1024 * 1024 + 17);
    r.upload(id, &alice.token, data.clone()).await;
    let boot = r.images.image_for_boot(&alice_ctx, id).await.unwrap();
    assert_eq!(boot.id, id);
    assert_eq!(boot.name.as_deref(), Some("debian"));
    assert_eq!(boot.disk_format, "qcow2");
    assert_eq!(boot.container_format, "bare");
    assert_eq!(boot.size, data.len() as u64);
    assert_eq!((boot.min_disk_gb, boot.min_ram_mb), (2, 256));
    assert_eq!(boot.kernel_id.as_deref(), Some(kernel.as_str()));
    assert_eq!(boot.ramdisk_id, None);
    assert_eq!(boot.properties["os_distro"], "debian");

    // Bob's project cannot see Alice's (shared, no members) image; nor an
    // id that does not exist or is no id at all.
    for (ctx, id) in [
        (&bob_ctx, id),
        (&alice_ctx, "0e7d1d5c-0000-4000-8000-000000000000"),
        (&alice_ctx, "nope"),
    ] {
        let e = r.images.image_for_boot(ctx, id).await.unwrap_err();
        assert_eq!(e.status().as_u16(), 404, "{e}");
    }

    let dest = r.dir.path().join("disk.qcow2");
    r.images.copy_data_to(id, &dest).await.unwrap();
    let copied = std::fs::read(&dest).unwrap();
    assert_eq!(Sha512::digest(&copied), Sha512::digest(&data));
    assert_eq!(copied, data);
    // It never overwrites a file.
    let e = r.images.copy_data_to(id, &dest).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 400, "{e}");

    // Once the image is public, Bob may boot it.
    let (status, v) = r
        .patch(
            id,
            &r.admin,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    r.images.image_for_boot(&bob_ctx, id).await.unwrap();

    // Deactivated images cannot be booted.
    let resp = r
        .send(
            "POST",
            &format!("/v2/images/{id}/actions/deactivate"),
            &r.admin,
            None,
        )
        .await;
    assert_eq!(resp.status, 204);
    let e = r.images.image_for_boot(&alice_ctx, id).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 409, "{e}");
}

on_both_engines!(boot_image, boot_image_is_visible_active_and_copied_intact);

async fn snapshots_become_active_private_images_of_the_callers_project(r: support::Region) {
    let alice = r.member("alice", "member").await;
    let bob = r.member("bob", "member").await;
    let ctx = r.context(&alice.token).await;
    let src = r.dir.path().join("snapshot.raw");
    let data = pattern(1024 * 1024 + 5);
    std::fs::write(&src, &data).unwrap();
    let req = himmel_image::NewImage {
        name: "snap".into(),
        disk_format: "raw".into(),
        container_format: "bare".into(),
        properties: [("image_type".to_string(), "snapshot".to_string())].into(),
    };
    let id = r.images.create_from_file(&ctx, req, &src).await.unwrap();
    let (status, v) = r
        .call("GET", &format!("/v2/images/{id}"), &alice.token, None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "active");
    assert_eq!(v["visibility"], "private");
    assert_eq!(v["owner"], alice.project_id.as_str());
    assert_eq!(v["image_type"], "snapshot");
    assert_eq!(v["size"], data.len() as u64);
    assert_eq!(v["os_hash_algo"], "sha512");
    assert_eq!(v["os_hash_value"], hex::encode(Sha512::digest(&data)));
    let (status, _) = r
        .call("GET", &format!("/v2/images/{id}"), &bob.token, None)
        .await;
    assert_eq!(status, 404);
    let got = r
        .send("GET", &format!("/v2/images/{id}/file"), &alice.token, None)
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, data);

    // Bad input is refused and leaves no image behind.
    let bad = himmel_image::NewImage {
        name: "bad".into(),
        disk_format: "floppy".into(),
        container_format: "bare".into(),
        properties: Default::default(),
    };
    let e = r
        .images
        .create_from_file(&ctx, bad, &src)
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 400);
    let missing = himmel_image::NewImage {
        name: "missing".into(),
        disk_format: "raw".into(),
        container_format: "bare".into(),
        properties: Default::default(),
    };
    let e = r
        .images
        .create_from_file(&ctx, missing, &r.dir.path().join("nope"))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 400);
    let (_, v) = r.call("GET", "/v2/images", &alice.token, None).await;
    let names: Vec<&str> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["snap"]);
}

on_both_engines!(
    snapshots,
    snapshots_become_active_private_images_of_the_callers_project
);

async fn the_image_proxy_sees_and_changes_what_the_caller_may(r: support::Region) {
    let alice = r.member("alice", "member").await;
    let bob = r.member("bob", "member").await;
    let reader = r.user_in("alice", &alice.project_id, "reader").await;
    let old = r
        .create_image(
            &alice.token,
            json!({"name": "old", "disk_format": "raw", "container_format": "bare",
                   "min_ram": 128, "os_distro": "debian"}),
        )
        .await;
    let old = old["id"].as_str().unwrap().to_string();
    r.upload(&old, &alice.token, b"data".to_vec()).await;
    let new = r
        .create_image(
            &alice.token,
            json!({"name": "new", "disk_format": "raw", "container_format": "bare",
                   "visibility": "private"}),
        )
        .await;
    let new = new["id"].as_str().unwrap().to_string();
    let alice_ctx = r.context(&alice.token).await;
    let bob_ctx = r.context(&bob.token).await;
    let reader_ctx = r.context(&reader.token).await;

    // Alice's list: newest first, with what the proxy shows.
    let list = r.images.list_for(&alice_ctx).await.unwrap();
    let ids: Vec<&str> = list.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [new.as_str(), old.as_str()]);
    let shown = r.images.show_for(&alice_ctx, &old).await.unwrap();
    assert_eq!(shown.status, "active");
    assert_eq!(shown.size, Some(4));
    assert_eq!(shown.min_ram, 128);
    assert_eq!(shown.properties["os_distro"], "debian");
    assert_eq!(r.images.show_for(&reader_ctx, &old).await.unwrap(), shown);

    // Bob sees neither.
    assert!(r.images.list_for(&bob_ctx).await.unwrap().is_empty());
    for id in [old.as_str(), new.as_str(), "nope"] {
        let e = r.images.show_for(&bob_ctx, id).await.unwrap_err();
        assert_eq!(e.status().as_u16(), 404, "{e}");
        let e = r.images.delete_for(&bob_ctx, id).await.unwrap_err();
        assert_eq!(e.status().as_u16(), 404, "{e}");
    }

    // Property changes are Glance's own: visible through its API; its
    // reserved names refused; a reader may not change anything.
    let set = [("os_version".to_string(), "12".to_string())].into();
    let changed = r
        .images
        .update_properties_for(&alice_ctx, &old, &set, &["os_distro".to_string()])
        .await
        .unwrap();
    assert_eq!(changed.properties, set);
    let (_, v) = r
        .call("GET", &format!("/v2/images/{old}"), &alice.token, None)
        .await;
    assert_eq!(v["os_version"], "12");
    assert!(v.get("os_distro").is_none(), "{v}");
    let reserved = [("status".to_string(), "active".to_string())].into();
    let e = r
        .images
        .update_properties_for(&alice_ctx, &old, &reserved, &[])
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 403, "{e}");
    let e = r
        .images
        .update_properties_for(&reader_ctx, &old, &set, &[])
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 403, "{e}");

    // Public: Bob reads it but may neither change nor delete it.
    let (status, v) = r
        .patch(
            &old,
            &r.admin,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    r.images.show_for(&bob_ctx, &old).await.unwrap();
    let ids: Vec<String> = r
        .images
        .list_for(&bob_ctx)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, [old.as_str()]);
    let e = r.images.delete_for(&bob_ctx, &old).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 403, "{e}");
    let e = r
        .images
        .update_properties_for(&bob_ctx, &old, &set, &[])
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 403, "{e}");
    let e = r.images.delete_for(&reader_ctx, &old).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 403, "{e}");

    // A protected image stays; Alice deletes the other one.
    let (status, v) = r
        .patch(
            &new,
            &alice.token,
            json!([{"op": "replace", "path": "/protected", "value": true}]),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let e = r.images.delete_for(&alice_ctx, &new).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 403, "{e}");
    r.images.delete_for(&alice_ctx, &old).await.unwrap();
    let (status, _) = r
        .call("GET", &format!("/v2/images/{old}"), &alice.token, None)
        .await;
    assert_eq!(status, 404);
    let e = r.images.show_for(&alice_ctx, &old).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 404, "{e}");
}

on_both_engines!(
    image_proxy,
    the_image_proxy_sees_and_changes_what_the_caller_may
);

async fn a_restart_removes_orphans_and_reopens_interrupted_uploads(r: support::Region) {
    let alice = r.member("alice", "member").await;
    let kept = r
        .create_image(
            &alice.token,
            json!({"name": "kept", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let kept = kept["id"].as_str().unwrap();
    r.upload(kept, &alice.token, b"kept data".to_vec()).await;
    let interrupted = r
        .create_image(
            &alice.token,
            json!({"name": "interrupted", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let interrupted = interrupted["id"].as_str().unwrap();
    // As left by a crash: an upload in flight, a data file written but
    // never committed, a temporary file.
    himmel_db::sqlx::query("UPDATE images SET status = 'saving' WHERE id = $1")
        .bind(interrupted)
        .execute(r.images.db().pool())
        .await
        .unwrap();
    let images = r.dir.path().join("images");
    std::fs::create_dir_all(images.join("ab")).unwrap();
    std::fs::write(images.join("ab/ab0123"), b"orphan").unwrap();
    std::fs::write(images.join("tmp/cd4567"), b"partial").unwrap();

    let reopened = himmel_image::ImageService::open(
        r.images.db().clone(),
        r.keyring.clone(),
        r.dir.path(),
        support::MAX_IMAGE_SIZE,
    )
    .await
    .unwrap();
    assert!(!images.join("ab/ab0123").exists());
    assert!(!images.join("tmp/cd4567").exists());
    let dest = r.dir.path().join("kept.raw");
    reopened.copy_data_to(kept, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"kept data");
    let (_, v) = r
        .call(
            "GET",
            &format!("/v2/images/{interrupted}"),
            &alice.token,
            None,
        )
        .await;
    assert_eq!(v["status"], "queued", "{v}");
    r.upload(interrupted, &alice.token, b"retried".to_vec())
        .await;
}

on_both_engines!(
    restart,
    a_restart_removes_orphans_and_reopens_interrupted_uploads
);
