//! ListObjects (v1 and v2) and ListObjectVersions.
//!
//! Keys come from the database in byte order, a batch at a time; when a key
//! falls under a common prefix, the walk jumps past every key under it in
//! one step (`prefix || 'g'` in sort-key space), so a listing with a
//! delimiter costs a query per returned entry at worst, not a scan.

use base64::Engine as _;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::policy::Need;
use crate::s3::{db_error, timestamp};
use crate::store::{self, prefix_bounds, sort_key, Bucket, ObjectRow};
use crate::ObjectStore;

const DEFAULT_MAX_KEYS: i32 = 1000;
const BATCH: i64 = 1000;

enum Entry {
    Object(Box<ObjectRow>),
    Prefix(String),
}

struct Walk {
    entries: Vec<Entry>,
    truncated: bool,
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Object(o) => &o.key,
            Entry::Prefix(p) => p,
        }
    }
}

/// The common prefix `key` rolls up into, if any.
fn common_prefix<'a>(key: &'a str, prefix: &str, delimiter: Option<&str>) -> Option<&'a str> {
    let d = delimiter?;
    let rest = key.get(prefix.len()..)?;
    let pos = rest.find(d)?;
    Some(&key[..prefix.len() + pos + d.len()])
}

async fn walk(
    s: &ObjectStore,
    bucket: &Bucket,
    prefix: &str,
    delimiter: Option<&str>,
    after: &str,
    max_keys: usize,
) -> S3Result<Walk> {
    let (lower, upper) = prefix_bounds(prefix);
    let mut cursor = sort_key(after);
    let mut entries = Vec::new();
    loop {
        let batch = store::list_latest(s.db(), &bucket.id, &cursor, &lower, &upper, BATCH)
            .await
            .map_err(db_error)?;
        let exhausted = (batch.len() as i64) < BATCH;
        let mut jumped = false;
        for row in batch {
            if let Some(cp) = common_prefix(&row.key, prefix, delimiter) {
                let cp = cp.to_string();
                // Past everything under this prefix, whether or not it
                // is returned now (a marker inside it was returned before).
                cursor = format!("{}g", sort_key(&cp));
                if cp.as_str() > after && !after.starts_with(cp.as_str()) {
                    if entries.len() == max_keys {
                        return Ok(Walk {
                            entries,
                            truncated: true,
                        });
                    }
                    entries.push(Entry::Prefix(cp));
                }
                jumped = true;
                break;
            }
            if entries.len() == max_keys {
                return Ok(Walk {
                    entries,
                    truncated: true,
                });
            }
            cursor = sort_key(&row.key);
            entries.push(Entry::Object(Box::new(row)));
        }
        if exhausted && !jumped {
            return Ok(Walk {
                entries,
                truncated: false,
            });
        }
    }
}

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(DEFAULT_MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok(n.min(DEFAULT_MAX_KEYS) as usize),
    }
}

/// An empty delimiter means no delimiter.
fn delimiter(d: &Option<String>) -> Option<&str> {
    d.as_deref().filter(|d| !d.is_empty())
}

fn url_encoding(e: &Option<EncodingType>) -> S3Result<bool> {
    match e.as_ref().map(|e| e.as_str()) {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

/// Percent-encodes all but unreserved characters and '/', as S3 does for
/// `encoding-type=url`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encoder(url: bool) -> impl Fn(&str) -> String {
    move |s: &str| if url { url_encode(s) } else { s.to_string() }
}

fn object_entry(o: &ObjectRow, enc: &impl Fn(&str) -> String) -> Object {
    Object {
        key: Some(enc(&o.key)),
        size: Some(o.size as i64),
        e_tag: Some(ETag::Strong(o.etag.clone())),
        last_modified: Some(timestamp(o.last_modified)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

fn split(entries: &[Entry], enc: &impl Fn(&str) -> String) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for e in entries {
        match e {
            Entry::Object(o) => objects.push(object_entry(o, enc)),
            Entry::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(p)),
            }),
        }
    }
    (objects, prefixes)
}

pub async fn objects_v1(
    s: &ObjectStore,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let url = url_encoding(&input.encoding_type)?;
    let enc = encoder(url);
    let prefix = input.prefix.clone().unwrap_or_default();
    let delim = delimiter(&input.delimiter);
    let max = max_keys(input.max_keys)?;
    let marker = input.marker.clone().unwrap_or_default();
    let w = walk(s, &bucket, &prefix, delim, &marker, max).await?;
    // S3 names the next marker only when a delimiter is given; clients
    // use the last key otherwise.
    let next_marker = (w.truncated && delim.is_some())
        .then(|| w.entries.last().map(|e| enc(e.name())))
        .flatten();
    let (contents, prefixes) = split(&w.entries, &enc);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(bucket.name.clone()),
        prefix: Some(enc(&prefix)),
        marker: Some(enc(&marker)),
        max_keys: Some(max as i32),
        is_truncated: Some(w.truncated),
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        delimiter: input.delimiter.as_deref().map(&enc),
        next_marker,
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}

pub async fn objects_v2(
    s: &ObjectStore,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let url = url_encoding(&input.encoding_type)?;
    let enc = encoder(url);
    let prefix = input.prefix.clone().unwrap_or_default();
    let delim = delimiter(&input.delimiter);
    let max = max_keys(input.max_keys)?;
    let after = match &input.continuation_token {
        Some(t) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "The continuation token provided is incorrect"
                )
            })?,
        None => input.start_after.clone().unwrap_or_default(),
    };
    let w = walk(s, &bucket, &prefix, delim, &after, max).await?;
    let next = w
        .truncated
        .then(|| w.entries.last())
        .flatten()
        .map(|e| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(e.name()));
    let (contents, prefixes) = split(&w.entries, &enc);
    let mut contents = contents;
    if input.fetch_owner == Some(true) {
        for o in &mut contents {
            o.owner = Some(crate::s3::bucket_owner(&bucket.project_id));
        }
    }
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(bucket.name.clone()),
        prefix: Some(enc(&prefix)),
        max_keys: Some(max as i32),
        key_count: Some(w.entries.len() as i32),
        is_truncated: Some(w.truncated),
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        delimiter: input.delimiter.as_deref().map(&enc),
        continuation_token: input.continuation_token.clone(),
        next_continuation_token: next,
        start_after: input.start_after.as_deref().map(&enc),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}

/// Versions are few per key in practice; one query bounded by a generous
/// limit serves a page.
const VERSION_SCAN: i64 = 10_000;

pub async fn versions(
    s: &ObjectStore,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let url = url_encoding(&input.encoding_type)?;
    let enc = encoder(url);
    let prefix = input.prefix.clone().unwrap_or_default();
    let delim = delimiter(&input.delimiter);
    let max = max_keys(input.max_keys)?;
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let (lower, upper) = prefix_bounds(&prefix);
    let rows = store::list_versions(
        s.db(),
        &bucket.id,
        &sort_key(&key_marker),
        &lower,
        &upper,
        VERSION_SCAN,
    )
    .await
    .map_err(db_error)?;
    // Skip up to and including the marker version of the marker key (all
    // of the marker key's versions when no version marker is given).
    let mut skipping = !key_marker.is_empty();
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut count = 0usize;
    let mut truncated = false;
    let mut next: Option<(String, String)> = None;
    for row in rows {
        if skipping {
            if row.key == key_marker {
                if input.version_id_marker.as_deref() == Some(row.version_id.as_str()) {
                    skipping = false;
                }
                continue;
            }
            skipping = false;
        }
        if let Some(cp) = common_prefix(&row.key, &prefix, delim) {
            if prefixes.last().map(String::as_str) == Some(cp) || (cp <= key_marker.as_str()) {
                continue;
            }
            if count == max {
                truncated = true;
                break;
            }
            prefixes.push(cp.to_string());
            next = Some((cp.to_string(), String::new()));
            count += 1;
            continue;
        }
        if count == max {
            truncated = true;
            break;
        }
        next = Some((row.key.clone(), row.version_id.clone()));
        count += 1;
        if row.delete_marker {
            markers.push(DeleteMarkerEntry {
                key: Some(enc(&row.key)),
                version_id: Some(row.version_id.clone()),
                is_latest: Some(row.is_latest),
                last_modified: Some(timestamp(row.last_modified)),
                owner: Some(crate::s3::bucket_owner(&bucket.project_id)),
            });
        } else {
            versions.push(ObjectVersion {
                key: Some(enc(&row.key)),
                version_id: Some(row.version_id.clone()),
                is_latest: Some(row.is_latest),
                last_modified: Some(timestamp(row.last_modified)),
                e_tag: Some(ETag::Strong(row.etag.clone())),
                size: Some(row.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                owner: Some(crate::s3::bucket_owner(&bucket.project_id)),
                ..Default::default()
            });
        }
    }
    let (next_key, next_version) = match (truncated, next) {
        (true, Some((k, v))) => (Some(enc(&k)), (!v.is_empty()).then_some(v)),
        _ => (None, None),
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(bucket.name.clone()),
        prefix: Some(enc(&prefix)),
        key_marker: input.key_marker.clone(),
        version_id_marker: input.version_id_marker.clone(),
        max_keys: Some(max as i32),
        is_truncated: Some(truncated),
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(
            prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc(&p)),
                })
                .collect(),
        ),
        delimiter: input.delimiter.clone(),
        next_key_marker: next_key,
        next_version_id_marker: next_version,
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes_and_url_encoding() {
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", Some("/")), None);
        assert_eq!(common_prefix("a/b", "", None), None);
        assert_eq!(url_encode("a b/ü+&"), "a%20b/%C3%BC%2B%26");
    }
}
