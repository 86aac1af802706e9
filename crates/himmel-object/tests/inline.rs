//! Small objects stored inline in their metadata row, seen through the S3
//! API as a client sees them: byte-identical reads (whole, ranges, parts,
//! conditions), the size limit's edges, copies, versions and deletes,
//! SSE-C, a restart, no plaintext anywhere on disk or in the database, and
//! sealed data that refuses to open in another row.

mod support;

use base64::Engine as _;
use s3s::crypto::{Checksum as _, Md5};

/// The largest object stored inline (as the store defines it).
const LIMIT: usize = 64 * 1024;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + seed as usize) % 251) as u8)
        .collect()
}

fn md5_hex(b: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(b);
    hex::encode(h.finalize())
}

/// Sealed data of every version row, base64-decoded, by row id.
async fn inline_rows(db: &himmel_db::Db) -> Vec<(String, Vec<u8>)> {
    use himmel_db::Row;
    himmel_db::sqlx::query("SELECT id, inline_data FROM s3_objects ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let id: String = r.try_get("id").unwrap();
            let b64: String = r.try_get("inline_data").unwrap();
            let sealed = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            (id, sealed)
        })
        .collect()
}

async fn round_trip(r: support::Region) {
    r.s3("PUT", "/small", &[], vec![]).await.expect(200);
    let body = data(4096, 1);
    let put = r.put("/small/k", &body).await;
    let etag = format!("\"{}\"", md5_hex(&body));
    assert_eq!(put.header("etag"), etag);
    assert!(r.object_files().is_empty(), "a small PUT wrote a file");
    assert_eq!(r.get("/small/k").await, body);

    for (range, want) in [
        ("bytes=0-0", &body[..1]),
        ("bytes=100-1099", &body[100..1100]),
        ("bytes=4000-", &body[4000..]),
        ("bytes=-10", &body[4086..]),
        ("bytes=4095-9999", &body[4095..]),
    ] {
        let got = r
            .s3("GET", "/small/k", &[("range", range)], vec![])
            .await
            .expect(206);
        assert_eq!(got.body, want, "{range}");
        assert_eq!(got.header("content-length"), want.len().to_string());
    }
    r.s3("GET", "/small/k", &[("range", "bytes=5000-")], vec![])
        .await
        .expect(416);
    let part = r.s3("GET", "/small/k?partNumber=1", &[], vec![]).await;
    assert!(part.status == 200 || part.status == 206, "{}", part.text());
    assert_eq!(part.body, body);
    r.s3("GET", "/small/k?partNumber=2", &[], vec![])
        .await
        .expect(416);

    let head = r.s3("HEAD", "/small/k", &[], vec![]).await.expect(200);
    assert_eq!(head.header("content-length"), "4096");
    assert_eq!(head.header("etag"), etag);
    r.s3("GET", "/small/k", &[("if-none-match", &etag)], vec![])
        .await
        .expect(304);
    r.s3("GET", "/small/k", &[("if-match", "\"0000\"")], vec![])
        .await
        .expect(412);
    let typed = r
        .s3(
            "GET",
            "/small/k?response-content-type=text%2Fplain",
            &[],
            vec![],
        )
        .await
        .expect(200);
    assert_eq!(typed.header("content-type"), "text/plain");
    assert_eq!(typed.body, body);

    // An empty object is inline too, and reads back empty.
    r.put("/small/empty", b"").await;
    assert_eq!(r.get("/small/empty").await, b"");

    // At the limit: inline; one byte more: a file; both read back.
    let at = data(LIMIT, 2);
    let over = data(LIMIT + 1, 3);
    r.put("/small/at", &at).await;
    assert!(
        r.object_files().is_empty(),
        "an object at the limit wrote a file"
    );
    r.put("/small/over", &over).await;
    assert_eq!(
        r.object_files().len(),
        1,
        "one byte over the limit goes to a file"
    );
    assert_eq!(r.get("/small/at").await, at);
    assert_eq!(r.get("/small/over").await, over);
    let tail = r
        .s3("GET", "/small/at", &[("range", "bytes=65530-")], vec![])
        .await
        .expect(206);
    assert_eq!(tail.body, &at[65530..]);

    // Listings show sizes and ETags of inline objects like any other.
    let list = r
        .s3("GET", "/small?list-type=2", &[], vec![])
        .await
        .expect(200);
    let xml = list.text();
    assert!(xml.contains("<Size>4096</Size>"), "{xml}");
    assert!(xml.contains(&md5_hex(&body)), "{xml}");
    assert!(xml.contains(&format!("<Size>{LIMIT}</Size>")), "{xml}");

    // Overwriting an inline object with a large one and back.
    r.put("/small/k", &over).await;
    assert_eq!(r.get("/small/k").await, over);
    r.put("/small/k", &body).await;
    assert_eq!(r.get("/small/k").await, body);
    assert_eq!(r.object_files().len(), 1, "the replaced file is removed");

    // A restart (and its orphan sweep) keeps every object readable.
    let mut r = r;
    r.restart_s3().await;
    assert_eq!(r.get("/small/k").await, body);
    assert_eq!(r.get("/small/at").await, at);
    assert_eq!(r.get("/small/over").await, over);
}
on_both_engines!(inline_round_trip, round_trip);

async fn copies(r: support::Region) {
    r.s3("PUT", "/src", &[], vec![]).await.expect(200);
    r.s3("PUT", "/dst", &[], vec![]).await.expect(200);
    let body = data(3000, 4);
    r.s3(
        "PUT",
        "/src/a",
        &[
            ("content-type", "text/x-small"),
            ("x-amz-meta-note", "kept"),
        ],
        body.clone(),
    )
    .await
    .expect(200);
    let copied = r
        .s3("PUT", "/dst/b", &[("x-amz-copy-source", "/src/a")], vec![])
        .await
        .expect(200);
    assert!(copied.text().contains(&md5_hex(&body)), "{}", copied.text());
    let got = r.s3("GET", "/dst/b", &[], vec![]).await.expect(200);
    assert_eq!(got.body, body);
    assert_eq!(got.header("content-type"), "text/x-small");
    assert_eq!(got.header("x-amz-meta-note"), "kept");
    // Onto itself with new metadata.
    r.s3(
        "PUT",
        "/src/a",
        &[
            ("x-amz-copy-source", "/src/a"),
            ("x-amz-metadata-directive", "REPLACE"),
            ("x-amz-meta-note", "new"),
        ],
        vec![],
    )
    .await
    .expect(200);
    let got = r.s3("GET", "/src/a", &[], vec![]).await.expect(200);
    assert_eq!(
        (got.body.as_slice(), got.header("x-amz-meta-note")),
        (&body[..], "new")
    );

    assert!(
        r.object_files().is_empty(),
        "a copy of a small object wrote a file"
    );

    // A multipart upload: an uploaded 5 MiB part, then a part copied from
    // a range of the inline source.
    let created = r
        .s3("POST", "/dst/mp?uploads", &[], vec![])
        .await
        .expect(200);
    let xml = created.text();
    let upload = between(&xml, "<UploadId>", "</UploadId>");
    let first = data(5 << 20, 11);
    let uploaded = r
        .s3(
            "PUT",
            &format!("/dst/mp?partNumber=1&uploadId={upload}"),
            &[],
            first.clone(),
        )
        .await
        .expect(200);
    let copied = r
        .s3(
            "PUT",
            &format!("/dst/mp?partNumber=2&uploadId={upload}"),
            &[
                ("x-amz-copy-source", "/src/a"),
                ("x-amz-copy-source-range", "bytes=500-2999"),
            ],
            vec![],
        )
        .await
        .expect(200);
    let copied_etag = between(&copied.text(), "<ETag>", "</ETag>").replace("&quot;", "\"");
    assert_eq!(copied_etag, format!("\"{}\"", md5_hex(&body[500..])));
    let parts = format!(
        "<Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part>\
         <Part><PartNumber>2</PartNumber><ETag>{copied_etag}</ETag></Part>",
        uploaded.header("etag")
    );
    r.s3(
        "POST",
        &format!("/dst/mp?uploadId={upload}"),
        &[],
        format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>").into_bytes(),
    )
    .await
    .expect(200);
    let whole: Vec<u8> = first.iter().chain(&body[500..]).copied().collect();
    assert_eq!(r.get("/dst/mp").await, whole);

    // A copy of a large source stays a file and reads back.
    let large = data(LIMIT * 3, 5);
    r.put("/src/large", &large).await;
    r.s3(
        "PUT",
        "/dst/large",
        &[("x-amz-copy-source", "/src/large")],
        vec![],
    )
    .await
    .expect(200);
    assert_eq!(r.get("/dst/large").await, large);
}
on_both_engines!(inline_copies, copies);

fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
    let start = s.find(open).unwrap_or_else(|| panic!("{open} in {s}")) + open.len();
    let end = start + s[start..].find(close).unwrap();
    &s[start..end]
}

async fn versions(r: support::Region) {
    r.s3("PUT", "/ver", &[], vec![]).await.expect(200);
    r.s3(
        "PUT",
        "/ver?versioning",
        &[],
        b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>".to_vec(),
    )
    .await
    .expect(200);
    let one = data(1000, 6);
    let two = data(2000, 7);
    let v1 = r
        .put("/ver/k", &one)
        .await
        .header("x-amz-version-id")
        .to_string();
    let v2 = r
        .put("/ver/k", &two)
        .await
        .header("x-amz-version-id")
        .to_string();
    assert_ne!(v1, v2);
    assert_eq!(r.get("/ver/k").await, two);
    assert_eq!(r.get(&format!("/ver/k?versionId={v1}")).await, one);

    // A delete marker hides the key; the versions stay readable.
    let deleted = r.s3("DELETE", "/ver/k", &[], vec![]).await.expect(204);
    assert_eq!(deleted.header("x-amz-delete-marker"), "true");
    let marker = deleted.header("x-amz-version-id").to_string();
    r.s3("GET", "/ver/k", &[], vec![]).await.expect(404);
    assert_eq!(r.get(&format!("/ver/k?versionId={v2}")).await, two);
    let listed = r
        .s3("GET", "/ver?versions", &[], vec![])
        .await
        .expect(200)
        .text();
    assert!(listed.contains("<Size>1000</Size>") && listed.contains("<Size>2000</Size>"));

    // Removing the marker brings the newest version back; removing a
    // version removes its data with its row.
    r.s3("DELETE", &format!("/ver/k?versionId={marker}"), &[], vec![])
        .await
        .expect(204);
    assert_eq!(r.get("/ver/k").await, two);
    r.s3("DELETE", &format!("/ver/k?versionId={v2}"), &[], vec![])
        .await
        .expect(204);
    assert_eq!(r.get("/ver/k").await, one);
    r.s3("GET", &format!("/ver/k?versionId={v2}"), &[], vec![])
        .await
        .expect(404);
    r.s3("DELETE", &format!("/ver/k?versionId={v1}"), &[], vec![])
        .await
        .expect(204);
    r.s3("GET", "/ver/k", &[], vec![]).await.expect(404);
    assert!(
        inline_rows(&r.db).await.is_empty(),
        "a deleted version kept its row"
    );

    // Unversioned: a delete removes the object and its data.
    r.s3("PUT", "/plain", &[], vec![]).await.expect(200);
    r.put("/plain/k", &one).await;
    r.s3("DELETE", "/plain/k", &[], vec![]).await.expect(204);
    r.s3("GET", "/plain/k", &[], vec![]).await.expect(404);
    assert!(inline_rows(&r.db).await.is_empty());
}
on_both_engines!(inline_versions, versions);

fn customer_headers(key: &[u8; 32]) -> [(&'static str, String); 3] {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut h = Md5::new();
    h.update(key);
    [
        (
            "x-amz-server-side-encryption-customer-algorithm",
            "AES256".into(),
        ),
        ("x-amz-server-side-encryption-customer-key", b64.encode(key)),
        (
            "x-amz-server-side-encryption-customer-key-md5",
            b64.encode(h.finalize()),
        ),
    ]
}

async fn customer_keys(r: support::Region) {
    r.s3("PUT", "/ssec", &[], vec![]).await.expect(200);
    let body = data(5000, 8);
    let key = customer_headers(&[3; 32]);
    let key: Vec<(&str, &str)> = key.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let wrong = customer_headers(&[4; 32]);
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    r.s3("PUT", "/ssec/k", &key, body.clone()).await.expect(200);
    assert!(r.object_files().is_empty());
    assert_eq!(
        r.s3("GET", "/ssec/k", &key, vec![]).await.expect(200).body,
        body
    );
    r.s3("GET", "/ssec/k", &[], vec![]).await.expect(400);
    r.s3("GET", "/ssec/k", &wrong, vec![]).await.expect(403);
    let mut ranged = key.clone();
    ranged.push(("range", "bytes=10-19"));
    assert_eq!(
        r.s3("GET", "/ssec/k", &ranged, vec![])
            .await
            .expect(206)
            .body,
        &body[10..20]
    );
}
on_both_engines!(inline_customer_keys, customer_keys);

async fn no_plaintext(r: support::Region) {
    let marker = b"INLINE-PLAINTEXT-MARKER-7f3a";
    r.s3("PUT", "/scan", &[], vec![]).await.expect(200);
    let body: Vec<u8> = marker
        .iter()
        .copied()
        .cycle()
        .take(marker.len() * 50)
        .collect();
    r.s3(
        "PUT",
        "/scan/small",
        &[("x-amz-meta-note", "INLINE-PLAINTEXT-MARKER-7f3a")],
        body.clone(),
    )
    .await
    .expect(200);
    r.s3(
        "PUT",
        "/scan/copy",
        &[("x-amz-copy-source", "/scan/small")],
        vec![],
    )
    .await
    .expect(200);
    assert_eq!(r.get("/scan/copy").await, body);
    let rows = inline_rows(&r.db).await;
    assert_eq!(rows.len(), 2);
    for (id, sealed) in &rows {
        assert!(!sealed.is_empty(), "{id} is not inline");
        assert!(
            !sealed.windows(marker.len()).any(|w| w == marker),
            "plaintext in the sealed data of {id}"
        );
    }
    // Everything the region wrote: database files (and their logs) and
    // the object directory. The database stores base64, so look for that
    // form of the plaintext too.
    let b64 = base64::engine::general_purpose::STANDARD;
    let needles: Vec<Vec<u8>> = (0..3)
        .map(|shift| b64.encode(&body[shift..shift + 300]).into_bytes()[8..200].to_vec())
        .chain([marker.to_vec()])
        .collect();
    for path in r.all_files() {
        let bytes = std::fs::read(&path).unwrap();
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "plaintext in {}",
                path.display()
            );
        }
    }
}
on_both_engines!(inline_no_plaintext, no_plaintext);

async fn swapped_data(r: support::Region) {
    r.s3("PUT", "/swap", &[], vec![]).await.expect(200);
    let a = data(4096, 9);
    let b = data(4096, 10);
    r.put("/swap/a", &a).await;
    r.put("/swap/b", &b).await;
    let rows: Vec<(String, String)> = {
        use himmel_db::Row;
        himmel_db::sqlx::query("SELECT id, object_key FROM s3_objects ORDER BY object_key")
            .fetch_all(r.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row.try_get("id").unwrap(),
                    row.try_get("object_key").unwrap(),
                )
            })
            .collect()
    };
    let (id_a, id_b) = (&rows[0].0, &rows[1].0);
    // Someone with write access to the database puts a's sealed data
    // into b's row: reading b must fail, not return a's bytes.
    himmel_db::sqlx::query(
        "UPDATE s3_objects SET inline_data = (SELECT inline_data FROM s3_objects WHERE id = $1) \
         WHERE id = $2",
    )
    .bind(id_a)
    .bind(id_b)
    .execute(r.db.pool())
    .await
    .unwrap();
    let got = r.s3("GET", "/swap/b", &[], vec![]).await;
    assert_eq!(got.status, 500, "{}", got.text());
    assert!(!got.body.windows(64).any(|w| w == &a[..64]));
    let ranged = r
        .s3("GET", "/swap/b", &[("range", "bytes=0-99")], vec![])
        .await;
    assert_eq!(ranged.status, 500);
    // A copy of b fails as well instead of copying a's data.
    r.s3(
        "PUT",
        "/swap/c",
        &[("x-amz-copy-source", "/swap/b")],
        vec![],
    )
    .await
    .expect(500);
    assert_eq!(r.get("/swap/a").await, a);
}
on_both_engines!(inline_swapped_data_fails, swapped_data);
