//! Objects: put, get, head, delete, delete-multiple, copy, tagging.

use base64::Engine as _;
use bytes::Bytes;
use futures::future::Either;
use futures::{Stream, StreamExt as _};
use s3s::checksum::ChecksumHasher;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::bucket::{check_tags, tag_set};
use super::{db_error, engine_error, timestamp, unix_seconds};
use crate::auth::Caller;
use crate::engine::{Engine, Staged, Written};
use crate::inline;
use crate::lock;
use crate::meta::{format_expires, parse_expires, ObjectMeta};
use crate::policy::{self, Need};
use crate::sse::{self, CustomerKey};
use crate::store::{self, Bucket, ObjectRow};
use crate::store_ext::lock::{self as lock_store, Removal};
use crate::{ObjectStore, MAX_PUT_SIZE};

/// Checksums a client sent (headers or trailers), by algorithm.
#[derive(Default, Clone)]
pub(crate) struct Expected {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub crc64nvme: Option<String>,
}

impl Expected {
    /// A hasher for every checksum sent, and for the announced algorithm
    /// (whose value may arrive in a trailer).
    pub fn hasher(&self, algorithm: Option<&ChecksumAlgorithm>) -> S3Result<ChecksumHasher> {
        let mut h = ChecksumHasher::default();
        let alg = algorithm.map(|a| a.as_str().to_ascii_uppercase());
        if self.crc32.is_some() || alg.as_deref() == Some("CRC32") {
            h.crc32 = Some(Default::default());
        }
        if self.crc32c.is_some() || alg.as_deref() == Some("CRC32C") {
            h.crc32c = Some(Default::default());
        }
        if self.sha1.is_some() || alg.as_deref() == Some("SHA1") {
            h.sha1 = Some(Default::default());
        }
        if self.sha256.is_some() || alg.as_deref() == Some("SHA256") {
            h.sha256 = Some(Default::default());
        }
        if self.crc64nvme.is_some() || alg.as_deref() == Some("CRC64NVME") {
            h.crc64nvme = Some(Default::default());
        }
        if let Some(a) = alg {
            if !["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"].contains(&a.as_str()) {
                return Err(s3_error!(
                    InvalidArgument,
                    "Unsupported checksum algorithm {a}"
                ));
            }
        }
        Ok(h)
    }

    /// Adds values sent as trailers after a streamed body.
    pub fn add_trailers(&mut self, trailers: Option<&s3s::TrailingHeaders>) {
        let Some(map) = trailers.and_then(|t| t.take()) else {
            return;
        };
        let get = |name: &str| {
            map.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        self.crc32 = self.crc32.take().or_else(|| get("x-amz-checksum-crc32"));
        self.crc32c = self.crc32c.take().or_else(|| get("x-amz-checksum-crc32c"));
        self.sha1 = self.sha1.take().or_else(|| get("x-amz-checksum-sha1"));
        self.sha256 = self.sha256.take().or_else(|| get("x-amz-checksum-sha256"));
        self.crc64nvme = self
            .crc64nvme
            .take()
            .or_else(|| get("x-amz-checksum-crc64nvme"));
    }

    /// Compares with what was computed; returns the checksum to keep.
    pub fn verify(&self, got: &Checksum) -> S3Result<Option<(String, String)>> {
        let pairs = [
            ("crc32", &self.crc32, &got.checksum_crc32),
            ("crc32c", &self.crc32c, &got.checksum_crc32c),
            ("sha1", &self.sha1, &got.checksum_sha1),
            ("sha256", &self.sha256, &got.checksum_sha256),
            ("crc64nvme", &self.crc64nvme, &got.checksum_crc64nvme),
        ];
        let mut keep = None;
        for (name, want, got) in pairs {
            if let Some(want) = want {
                if Some(want) != got.as_ref() {
                    return Err(s3_error!(
                        BadDigest,
                        "The {} you specified did not match the calculated checksum.",
                        name.to_uppercase()
                    ));
                }
            }
            if keep.is_none() {
                keep = got.clone().map(|v| (name.to_string(), v));
            }
        }
        Ok(keep)
    }
}

pub(crate) fn check_content_md5(content_md5: Option<&str>, md5: &[u8; 16]) -> S3Result<()> {
    let Some(given) = content_md5 else {
        return Ok(());
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(given)
        .ok()
        .filter(|d| d.len() == 16)
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))?;
    if decoded != md5 {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    Ok(())
}

impl ObjectStore {
    /// Encrypts a body into a new staged segment under a fresh data key.
    pub(crate) async fn ingest<S, E>(
        &self,
        project_id: &str,
        customer: Option<&CustomerKey>,
        body: S,
        max_size: u64,
        hasher: ChecksumHasher,
    ) -> S3Result<(Staged, Written)>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let file_id = Engine::new_file_id();
        let key = self.segment_key(project_id, &file_id, customer).await?;
        self.engine()
            .stage(file_id, key, body, max_size, hasher)
            .await
            .map_err(engine_error)
    }

    /// Encrypts the body of the new version `object_id`: sealed for its
    /// row when it turns out small ([`inline::INLINE_MAX`]), else into a
    /// staged segment file as [`ObjectStore::ingest`] does.
    pub(crate) async fn ingest_object<S, E>(
        &self,
        project_id: &str,
        object_id: &str,
        customer: Option<&CustomerKey>,
        mut body: S,
        max_size: u64,
        hasher: ChecksumHasher,
    ) -> S3Result<(Stored, Written)>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        match inline::gather(&mut body, max_size)
            .await
            .map_err(engine_error)?
        {
            inline::Gathered::Small(plain) => {
                let written = inline::measure(&plain, hasher);
                let key = self
                    .segment_key(project_id, &inline::identity(object_id), customer)
                    .await?;
                let sealed = inline::seal(&key, object_id, &plain);
                Ok((Stored::Inline(sealed), written))
            }
            inline::Gathered::Large(head) => {
                let body = futures::stream::iter(head.into_iter().map(Ok)).chain(body);
                let (staged, written) = self
                    .ingest(project_id, customer, body, max_size, hasher)
                    .await?;
                Ok((Stored::File(staged), written))
            }
        }
    }

    /// The version `version_id` (or the latest) of `key`, not a delete
    /// marker.
    pub(crate) async fn load_object(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<ObjectRow> {
        match version_id {
            Some(v) => {
                let row = store::get_version(self.db(), &bucket.id, key, v)
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| {
                        s3_error!(NoSuchVersion, "The specified version does not exist.")
                    })?;
                if row.delete_marker {
                    return Err(s3_error!(
                        MethodNotAllowed,
                        "The specified method is not allowed against this resource."
                    ));
                }
                Ok(row)
            }
            None => match store::get_latest(self.db(), &bucket.id, key)
                .await
                .map_err(db_error)?
            {
                Some(row) if !row.delete_marker => Ok(row),
                _ => Err(s3_error!(NoSuchKey, "The specified key does not exist.")),
            },
        }
    }

    /// A stream of the plaintext `range` of an object.
    pub(crate) async fn object_stream(
        &self,
        project_id: &str,
        row: &ObjectRow,
        customer: Option<&CustomerKey>,
        range: std::ops::Range<u64>,
    ) -> S3Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static> {
        if row.is_inline() {
            let plain = Bytes::from(self.open_inline(project_id, row, customer).await?);
            let end = (range.end as usize).min(plain.len());
            let piece = plain.slice((range.start as usize).min(end)..end);
            return Ok(Either::Left(futures::stream::iter([Ok(piece)])));
        }
        let mut segments = Vec::new();
        let mut start = 0u64;
        for (file_id, size) in &row.segments {
            let seg = start..start + size;
            start += size;
            let touches = seg.start < range.end && range.start < seg.end;
            let empty_object = row.size == 0;
            if touches || empty_object {
                let key = self.open_segment_key(project_id, file_id, customer).await?;
                segments.push((file_id.clone(), *size, key));
            } else {
                // Keeps offsets right without opening the key.
                segments.push((file_id.clone(), *size, himmel_kms::Key::from_bytes([0; 32])));
            }
        }
        Ok(Either::Right(self.engine().read(segments, range)))
    }

    /// The plaintext of an inline object.
    async fn open_inline(
        &self,
        project_id: &str,
        row: &ObjectRow,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Vec<u8>> {
        let damaged = |e: crate::engine::EngineError| {
            tracing::error!(object = %row.id, error = %e, "opening inline object data");
            s3_error!(InternalError)
        };
        let sealed = inline::parse(&row.inline).map_err(damaged)?;
        let key = self
            .open_data_key(
                project_id,
                &inline::identity(&row.id),
                sealed.kind,
                sealed.wrapped,
                customer,
            )
            .await?;
        sealed.open(&key, &row.id).map_err(damaged)
    }

    /// Makes a new object version live; removes the data it replaced.
    pub(crate) async fn commit_object(&self, row: &ObjectRow) -> S3Result<()> {
        let replaced = match self.commits().put_object(row).await {
            Ok(r) => r,
            Err(e) => {
                self.engine().remove(&row.file_ids()).await;
                return Err(db_error(e));
            }
        };
        for old in replaced {
            self.engine().remove(&old.file_ids()).await;
        }
        Ok(())
    }
}

/// Where a new version's data went.
pub(crate) enum Stored {
    /// A segment file, durable already; the row names it.
    File(Staged),
    /// Sealed bytes that go into the row itself.
    Inline(Vec<u8>),
}

impl Stored {
    /// Keeps the data for the row about to be committed; returns the
    /// row's (segments, inline data).
    pub(crate) async fn keep(
        self,
        s: &ObjectStore,
        size: u64,
    ) -> S3Result<(Vec<(String, u64)>, Vec<u8>)> {
        match self {
            Stored::File(staged) => {
                let file_id = staged.file_id.clone();
                s.engine().publish(staged).await.map_err(engine_error)?;
                Ok((vec![(file_id, size)], Vec::new()))
            }
            Stored::Inline(sealed) => Ok((Vec::new(), sealed)),
        }
    }
}

/// The version id a new object gets in `bucket`.
pub(crate) fn new_version_id(bucket: &Bucket) -> String {
    if bucket.versioning_enabled() {
        hex::encode(rand::random::<[u8; 16]>())
    } else {
        "null".into()
    }
}

/// The version id to report, if the bucket ever had versioning.
pub(crate) fn shown_version(bucket: &Bucket, version_id: &str) -> Option<String> {
    (!bucket.versioning.is_empty()).then(|| version_id.to_string())
}

fn etag_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

/// S3's precedence: a true If-Match beats a false If-Unmodified-Since; a
/// false If-None-Match beats a true If-Modified-Since.
pub(crate) fn preconditions(
    row: &ObjectRow,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
    not_modified: fn() -> s3s::S3Error,
) -> S3Result<()> {
    let modified = row.last_modified / 1_000_000;
    match if_match {
        Some(c) if !etag_matches(c, &row.etag) => {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ))
        }
        Some(_) => {}
        None => {
            if let Some(t) = if_unmodified_since {
                if modified > unix_seconds(t) {
                    return Err(s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    ));
                }
            }
        }
    }
    match if_none_match {
        Some(c) if etag_matches(c, &row.etag) => return Err(not_modified()),
        Some(_) => {}
        None => {
            if let Some(t) = if_modified_since {
                if modified <= unix_seconds(t) {
                    return Err(not_modified());
                }
            }
        }
    }
    Ok(())
}

fn not_modified() -> s3s::S3Error {
    s3_error!(NotModified)
}

pub(crate) fn customer_key_of(
    alg: &Option<String>,
    key: &Option<String>,
    md5: &Option<String>,
) -> S3Result<Option<CustomerKey>> {
    sse::customer_key(alg.as_deref(), key.as_deref(), md5.as_deref())
}

pub async fn put(
    s: &ObjectStore,
    mut req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let bucket = s.bucket(&req, &req.input.bucket, Need::Write).await?;
    let input = &mut req.input;
    if input
        .content_length
        .is_some_and(|l| l as u64 > MAX_PUT_SIZE)
    {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size."
        ));
    }
    let customer = customer_key_of(
        &input.sse_customer_algorithm,
        &input.sse_customer_key,
        &input.sse_customer_key_md5,
    )?;
    let enc = s
        .write_encryption(
            req.extensions.get::<Caller>(),
            &bucket,
            input.server_side_encryption.as_ref(),
            input.ssekms_key_id.as_deref(),
            customer,
        )
        .await?;
    let lock = lock::requested(
        &bucket,
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
        store::now_us(),
    )?;
    // S3 wants an integrity header whenever the new version is locked,
    // whether the lock was asked for or comes from the bucket's default.
    if input.object_lock_mode.is_some()
        || input.object_lock_retain_until_date.is_some()
        || input.object_lock_legal_hold_status.is_some()
        || !lock.is_empty()
    {
        super::require_integrity_header(&req.headers)?;
    }
    if input.if_match.is_some() || input.if_none_match.is_some() {
        let current = store::get_latest(s.db(), &bucket.id, &input.key)
            .await
            .map_err(db_error)?
            .filter(|r| !r.delete_marker);
        let failed = match (&current, &input.if_match, &input.if_none_match) {
            (None, Some(_), _) => true,
            (Some(r), Some(c), _) if !etag_matches(c, &r.etag) => true,
            (Some(r), _, Some(c)) if etag_matches(c, &r.etag) => true,
            _ => false,
        };
        if failed {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
    }
    let mut expected = Expected {
        crc32: input.checksum_crc32.clone(),
        crc32c: input.checksum_crc32c.clone(),
        sha1: input.checksum_sha1.clone(),
        sha256: input.checksum_sha256.clone(),
        crc64nvme: input.checksum_crc64nvme.clone(),
    };
    let hasher = expected.hasher(input.checksum_algorithm.as_ref())?;
    let body = input
        .body
        .take()
        .map(futures::StreamExt::boxed)
        .unwrap_or_else(|| futures::StreamExt::boxed(futures::stream::empty()));
    // The version's id comes first: inline data is sealed bound to it.
    let id = uuid::Uuid::new_v4().to_string();
    let (stored, written) = s
        .ingest_object(
            &bucket.project_id,
            &id,
            enc.key.as_ref(),
            body,
            MAX_PUT_SIZE,
            hasher,
        )
        .await?;
    if let Some(len) = input.content_length {
        if written.size != len as u64 {
            return Err(s3_error!(
                IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP header."
            ));
        }
    }
    check_content_md5(input.content_md5.as_deref(), &written.md5)?;
    expected.add_trailers(req.trailing_headers.as_ref());
    let checksum = expected.verify(&written.checksum)?;
    let (segments, inline) = stored.keep(s, written.size).await?;

    let meta = ObjectMeta {
        user: input
            .metadata
            .take()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        content_type: input.content_type.take(),
        content_encoding: input.content_encoding.take(),
        content_disposition: input.content_disposition.take(),
        content_language: input.content_language.take(),
        cache_control: input.cache_control.take(),
        expires: input.expires.as_ref().and_then(format_expires),
        website_redirect_location: input.website_redirect_location.take(),
        checksum: checksum.clone(),
    };
    let tags = match input.tagging.as_deref() {
        Some(t) => parse_tagging_header(t)?,
        None => Vec::new(),
    };
    let row = ObjectRow {
        meta: s.seal_meta(&bucket.project_id, &id, &meta).await?,
        tags: s.seal_tags(&bucket.project_id, &id, &tags).await?,
        id,
        bucket_id: bucket.id.clone(),
        key: input.key.clone(),
        version_id: new_version_id(&bucket),
        is_latest: true,
        delete_marker: false,
        size: written.size,
        etag: hex::encode(written.md5),
        last_modified: store::now_us(),
        segments,
        sse: enc.sse.clone(),
        sse_key_id: enc.kms_key_id.clone(),
        sse_key_hash: enc.key_hash.clone(),
        lock_mode: lock.mode,
        lock_until: lock.until,
        legal_hold: lock.legal_hold,
        inline,
    };
    s.commit_object(&row).await?;
    let mut out = PutObjectOutput {
        e_tag: Some(ETag::Strong(row.etag.clone())),
        version_id: shown_version(&bucket, &row.version_id),
        ..Default::default()
    };
    crate::report_sse!(out, &row.sse, &row.sse_key_id, enc.key.as_ref());
    if let Some((name, value)) = checksum {
        match name.as_str() {
            "crc32" => out.checksum_crc32 = Some(value),
            "crc32c" => out.checksum_crc32c = Some(value),
            "sha1" => out.checksum_sha1 = Some(value),
            "sha256" => out.checksum_sha256 = Some(value),
            _ => out.checksum_crc64nvme = Some(value),
        }
    }
    Ok(S3Response::new(out))
}

/// `x-amz-tagging: k1=v1&k2=v2` (URL-encoded).
pub(crate) fn parse_tagging_header(h: &str) -> S3Result<Vec<(String, String)>> {
    let tags: Vec<Tag> = url_pairs(h)
        .into_iter()
        .map(|(k, v)| Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect();
    check_tags(&tags)
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%' && i + 2 < b.len())
            .then(|| Some(hex(b[i + 1])? * 16 + hex(b[i + 2])?))
            .flatten();
        match (b[i], escaped) {
            (_, Some(v)) => {
                out.push(v);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (c, None) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Shown {
    meta: ObjectMeta,
    version_id: Option<String>,
}

async fn shown(s: &ObjectStore, bucket: &Bucket, row: &ObjectRow) -> S3Result<Shown> {
    Ok(Shown {
        meta: s.open_meta(&bucket.project_id, &row.id, &row.meta).await?,
        version_id: shown_version(bucket, &row.version_id),
    })
}

fn tag_count(row: &ObjectRow) -> Option<i32> {
    let n = crate::meta::tag_count(&row.tags);
    (n > 0).then_some(n as i32)
}

/// The byte range a request selects (`Range` header or `partNumber`).
fn selected_range(
    row: &ObjectRow,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<Option<std::ops::Range<u64>>> {
    if let Some(n) = part_number {
        if range.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter."
            ));
        }
        let parts = row.part_sizes();
        let idx = usize::try_from(n - 1)
            .ok()
            .filter(|i| *i < parts.len())
            .ok_or_else(|| {
                s3_error!(InvalidRange, "The requested partnumber is not satisfiable")
            })?;
        let start: u64 = parts[..idx].iter().sum();
        return Ok(Some(start..start + parts[idx]));
    }
    match range {
        None => Ok(None),
        Some(r) => r
            .check(row.size)
            .map(Some)
            .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable")),
    }
}

pub async fn get(
    s: &ObjectStore,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let row = s
        .load_object(&bucket, &input.key, input.version_id.as_deref())
        .await?;
    let customer = customer_key_of(
        &input.sse_customer_algorithm,
        &input.sse_customer_key,
        &input.sse_customer_key_md5,
    )?;
    let customer = s
        .read_key(
            req.extensions.get::<Caller>(),
            &row.sse,
            &row.sse_key_id,
            &row.sse_key_hash,
            customer,
        )
        .await?;
    preconditions(
        &row,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
        not_modified,
    )?;
    let selected = selected_range(&row, input.range.as_ref(), input.part_number)?;
    let range = selected.clone().unwrap_or(0..row.size);
    let body = s
        .object_stream(&bucket.project_id, &row, customer.as_ref(), range.clone())
        .await?;
    let shown = shown(s, &bucket, &row).await?;
    let meta = shown.meta;
    let locked = super::lock::shown(&bucket, &row);
    let mut out = GetObjectOutput {
        body: Some(StreamingBlob::wrap(body)),
        content_length: Some((range.end - range.start) as i64),
        content_range: selected
            .as_ref()
            .map(|r| format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), row.size)),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(ETag::Strong(row.etag.clone())),
        last_modified: Some(timestamp(row.last_modified)),
        metadata: (!meta.user.is_empty()).then(|| meta.user.clone().into_iter().collect()),
        content_type: input
            .response_content_type
            .clone()
            .or(meta.content_type.clone()),
        content_encoding: input
            .response_content_encoding
            .clone()
            .or(meta.content_encoding.clone()),
        content_disposition: input
            .response_content_disposition
            .clone()
            .or(meta.content_disposition.clone()),
        content_language: input
            .response_content_language
            .clone()
            .or(meta.content_language.clone()),
        cache_control: input
            .response_cache_control
            .clone()
            .or(meta.cache_control.clone()),
        expires: input
            .response_expires
            .clone()
            .or_else(|| meta.expires.as_deref().and_then(parse_expires)),
        website_redirect_location: meta.website_redirect_location.clone(),
        version_id: shown.version_id,
        object_lock_mode: locked.mode,
        object_lock_retain_until_date: locked.until,
        object_lock_legal_hold_status: locked.legal_hold,
        tag_count: tag_count(&row),
        parts_count: (row.segments.len() > 1 || row.etag.contains('-'))
            .then_some(row.segments.len() as i32),
        ..Default::default()
    };
    crate::report_sse!(out, &row.sse, &row.sse_key_id, customer.as_ref());
    if selected.is_none() {
        set_checksum_out(
            &meta,
            &mut out.checksum_crc32,
            &mut out.checksum_crc32c,
            &mut out.checksum_sha1,
            &mut out.checksum_sha256,
            &mut out.checksum_crc64nvme,
        );
    }
    let status = selected.map(|_| http::StatusCode::PARTIAL_CONTENT);
    let mut resp = S3Response::new(out);
    resp.status = status;
    Ok(resp)
}

fn set_checksum_out(
    meta: &ObjectMeta,
    crc32: &mut Option<String>,
    crc32c: &mut Option<String>,
    sha1: &mut Option<String>,
    sha256: &mut Option<String>,
    crc64: &mut Option<String>,
) {
    if let Some((name, value)) = &meta.checksum {
        let slot = match name.as_str() {
            "crc32" => crc32,
            "crc32c" => crc32c,
            "sha1" => sha1,
            "sha256" => sha256,
            _ => crc64,
        };
        *slot = Some(value.clone());
    }
}

pub async fn head(
    s: &ObjectStore,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let row = s
        .load_object(&bucket, &input.key, input.version_id.as_deref())
        .await?;
    let customer = customer_key_of(
        &input.sse_customer_algorithm,
        &input.sse_customer_key,
        &input.sse_customer_key_md5,
    )?;
    sse::check_customer_key(&row.sse, &row.sse_key_hash, customer.as_ref())?;
    preconditions(
        &row,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
        not_modified,
    )?;
    let selected = selected_range(&row, input.range.as_ref(), input.part_number)?;
    let range = selected.clone().unwrap_or(0..row.size);
    let shown = shown(s, &bucket, &row).await?;
    let meta = shown.meta;
    let locked = super::lock::shown(&bucket, &row);
    let mut out = HeadObjectOutput {
        content_length: Some((range.end - range.start) as i64),
        content_range: selected
            .as_ref()
            .map(|r| format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), row.size)),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(ETag::Strong(row.etag.clone())),
        last_modified: Some(timestamp(row.last_modified)),
        metadata: (!meta.user.is_empty()).then(|| meta.user.clone().into_iter().collect()),
        content_type: input
            .response_content_type
            .clone()
            .or(meta.content_type.clone()),
        content_encoding: meta.content_encoding.clone(),
        content_disposition: meta.content_disposition.clone(),
        content_language: meta.content_language.clone(),
        cache_control: meta.cache_control.clone(),
        expires: meta.expires.as_deref().and_then(parse_expires),
        website_redirect_location: meta.website_redirect_location.clone(),
        version_id: shown.version_id,
        object_lock_mode: locked.mode,
        object_lock_retain_until_date: locked.until,
        object_lock_legal_hold_status: locked.legal_hold,
        parts_count: (row.segments.len() > 1 || row.etag.contains('-'))
            .then_some(row.segments.len() as i32),
        ..Default::default()
    };
    crate::report_sse!(out, &row.sse, &row.sse_key_id, customer.as_ref());
    set_checksum_out(
        &meta,
        &mut out.checksum_crc32,
        &mut out.checksum_crc32c,
        &mut out.checksum_sha1,
        &mut out.checksum_sha256,
        &mut out.checksum_crc64nvme,
    );
    let status = selected.map(|_| http::StatusCode::PARTIAL_CONTENT);
    let mut resp = S3Response::new(out);
    resp.status = status;
    Ok(resp)
}

/// What deleting one key did.
struct Deleted {
    delete_marker: bool,
    version_id: Option<String>,
}

async fn delete_one(
    s: &ObjectStore,
    bucket: &Bucket,
    key: &str,
    version_id: Option<&str>,
    bypass_governance: bool,
) -> S3Result<Deleted> {
    if let (Some(v), true) = (version_id, bucket.object_lock) {
        return delete_locked_version(s, bucket, key, v, bypass_governance).await;
    }
    if let Some(v) = version_id {
        let removed = store::delete_version(s.db(), &bucket.id, key, v)
            .await
            .map_err(db_error)?;
        let marker = removed.as_ref().is_some_and(|r| r.delete_marker);
        if let Some(r) = removed {
            s.engine().remove(&r.file_ids()).await;
        }
        return Ok(Deleted {
            delete_marker: marker,
            version_id: Some(v.to_string()),
        });
    }
    if bucket.versioning.is_empty() {
        if let Some(r) = store::delete_version(s.db(), &bucket.id, key, "null")
            .await
            .map_err(db_error)?
        {
            s.engine().remove(&r.file_ids()).await;
        }
        return Ok(Deleted {
            delete_marker: false,
            version_id: None,
        });
    }
    // Versioned: a delete marker becomes the latest version.
    let marker = ObjectRow {
        id: uuid::Uuid::new_v4().to_string(),
        bucket_id: bucket.id.clone(),
        key: key.to_string(),
        version_id: new_version_id(bucket),
        is_latest: true,
        delete_marker: true,
        last_modified: store::now_us(),
        ..Default::default()
    };
    s.commit_object(&marker).await?;
    Ok(Deleted {
        delete_marker: true,
        version_id: Some(marker.version_id),
    })
}

/// Deletes a version in a bucket with object lock, unless its retention or
/// legal hold forbids it (S3 answers AccessDenied then).
async fn delete_locked_version(
    s: &ObjectStore,
    bucket: &Bucket,
    key: &str,
    version_id: &str,
    bypass_governance: bool,
) -> S3Result<Deleted> {
    let row = store::get_version(s.db(), &bucket.id, key, version_id)
        .await
        .map_err(db_error)?;
    let deleted = Deleted {
        delete_marker: row.as_ref().is_some_and(|r| r.delete_marker),
        version_id: Some(version_id.to_string()),
    };
    let Some(row) = row else {
        return Ok(deleted);
    };
    match lock_store::delete_unlocked_version(s.db(), &row, store::now_us(), bypass_governance)
        .await
        .map_err(db_error)?
    {
        Removal::Removed => s.engine().remove(&row.file_ids()).await,
        Removal::Gone => {}
        Removal::Locked => {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied because object protected by object lock."
            ))
        }
    }
    Ok(deleted)
}

/// Whether a delete request may pass a GOVERNANCE retention.
fn bypass(req_ext: &http::Extensions, bucket: &Bucket, asked: Option<bool>) -> bool {
    asked == Some(true) && policy::may_bypass_governance(req_ext.get(), bucket)
}

pub async fn delete(
    s: &ObjectStore,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    let bypass = bypass(&req.extensions, &bucket, input.bypass_governance_retention);
    let d = delete_one(s, &bucket, &input.key, input.version_id.as_deref(), bypass).await?;
    Ok(S3Response::with_status(
        DeleteObjectOutput {
            delete_marker: d.delete_marker.then_some(true),
            version_id: d.version_id,
            ..Default::default()
        },
        http::StatusCode::NO_CONTENT,
    ))
}

pub async fn delete_many(
    s: &ObjectStore,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    if input.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "At most 1000 keys can be deleted at once."
        ));
    }
    let quiet = input.delete.quiet == Some(true);
    let bypass = bypass(&req.extensions, &bucket, input.bypass_governance_retention);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for o in &input.delete.objects {
        match delete_one(s, &bucket, &o.key, o.version_id.as_deref(), bypass).await {
            Ok(d) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(o.key.clone()),
                        version_id: o.version_id.clone(),
                        delete_marker: d.delete_marker.then_some(true),
                        delete_marker_version_id: if o.version_id.is_none() && d.delete_marker {
                            d.version_id
                        } else {
                            None
                        },
                    })
                }
            }
            Err(e) => errors.push(s3s::dto::Error {
                key: Some(o.key.clone()),
                code: Some(e.code().as_str().to_string()),
                message: e.message().map(str::to_string),
                version_id: o.version_id.clone(),
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub async fn copy(
    s: &ObjectStore,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = &req.input;
    let CopySource::Bucket {
        bucket: src_bucket,
        key: src_key,
        version_id: src_version,
    } = &input.copy_source
    else {
        return Err(s3_error!(
            NotImplemented,
            "Only bucket copy sources are supported."
        ));
    };
    let source_bucket = s
        .bucket_for_key(&req, src_bucket, Need::Read, Some(src_key))
        .await?;
    let dest_bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    let src = s
        .load_object(&source_bucket, src_key, src_version.as_deref())
        .await?;
    let src_customer = customer_key_of(
        &input.copy_source_sse_customer_algorithm,
        &input.copy_source_sse_customer_key,
        &input.copy_source_sse_customer_key_md5,
    )?;
    let src_wrap = s
        .read_key(
            req.extensions.get::<Caller>(),
            &src.sse,
            &src.sse_key_id,
            &src.sse_key_hash,
            src_customer,
        )
        .await?;
    preconditions(
        &src,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
        || {
            s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )
        },
    )?;
    let customer = customer_key_of(
        &input.sse_customer_algorithm,
        &input.sse_customer_key,
        &input.sse_customer_key_md5,
    )?;
    let asks_encryption = customer.is_some()
        || input.server_side_encryption.is_some()
        || input.ssekms_key_id.is_some();
    let enc = s
        .write_encryption(
            req.extensions.get::<Caller>(),
            &dest_bucket,
            input.server_side_encryption.as_ref(),
            input.ssekms_key_id.as_deref(),
            customer,
        )
        .await?;
    let lock = lock::requested(
        &dest_bucket,
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
        store::now_us(),
    )?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let same_object = source_bucket.id == dest_bucket.id && **src_key == *input.key;
    if same_object
        && !replace
        && !asks_encryption
        && src.sse != sse::SSE_C
        && input.storage_class.is_none()
        && input.website_redirect_location.is_none()
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without \
             changing the object's metadata, storage class, website redirect location or encryption \
             attributes."
        ));
    }
    if src.size > MAX_PUT_SIZE {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
        ));
    }
    let src_meta = s
        .open_meta(&source_bucket.project_id, &src.id, &src.meta)
        .await?;
    let body = s
        .object_stream(
            &source_bucket.project_id,
            &src,
            src_wrap.as_ref(),
            0..src.size,
        )
        .await?;
    let id = uuid::Uuid::new_v4().to_string();
    let (stored, written) = s
        .ingest_object(
            &dest_bucket.project_id,
            &id,
            enc.key.as_ref(),
            Box::pin(body),
            MAX_PUT_SIZE,
            ChecksumHasher::default(),
        )
        .await?;
    let (segments, inline) = stored.keep(s, written.size).await?;
    let meta = if replace {
        ObjectMeta {
            user: input
                .metadata
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            content_type: input.content_type.clone(),
            content_encoding: input.content_encoding.clone(),
            content_disposition: input.content_disposition.clone(),
            content_language: input.content_language.clone(),
            cache_control: input.cache_control.clone(),
            expires: input.expires.as_ref().and_then(format_expires),
            website_redirect_location: input.website_redirect_location.clone(),
            checksum: None,
        }
    } else {
        ObjectMeta {
            checksum: None,
            ..src_meta
        }
    };
    let tags = match (
        input.tagging_directive.as_ref().map(|d| d.as_str()),
        input.tagging.as_deref(),
    ) {
        (Some("REPLACE"), Some(t)) => parse_tagging_header(t)?,
        (Some("REPLACE"), None) => Vec::new(),
        _ => {
            s.open_tags(&source_bucket.project_id, &src.id, &src.tags)
                .await?
        }
    };
    let row = ObjectRow {
        meta: s.seal_meta(&dest_bucket.project_id, &id, &meta).await?,
        tags: s.seal_tags(&dest_bucket.project_id, &id, &tags).await?,
        id,
        bucket_id: dest_bucket.id.clone(),
        key: input.key.clone(),
        version_id: new_version_id(&dest_bucket),
        is_latest: true,
        size: written.size,
        etag: hex::encode(written.md5),
        last_modified: store::now_us(),
        segments,
        sse: enc.sse.clone(),
        sse_key_id: enc.kms_key_id.clone(),
        sse_key_hash: enc.key_hash.clone(),
        lock_mode: lock.mode,
        lock_until: lock.until,
        legal_hold: lock.legal_hold,
        inline,
        ..Default::default()
    };
    s.commit_object(&row).await?;
    let mut out = CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(row.etag.clone())),
            last_modified: Some(timestamp(row.last_modified)),
            ..Default::default()
        }),
        version_id: shown_version(&dest_bucket, &row.version_id),
        copy_source_version_id: shown_version(&source_bucket, &src.version_id),
        ..Default::default()
    };
    crate::report_sse!(out, &row.sse, &row.sse_key_id, enc.key.as_ref());
    Ok(S3Response::new(out))
}

pub async fn get_tagging(
    s: &ObjectStore,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let row = s
        .load_object(&bucket, &input.key, input.version_id.as_deref())
        .await?;
    let tags = s.open_tags(&bucket.project_id, &row.id, &row.tags).await?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tag_set(&tags),
        version_id: shown_version(&bucket, &row.version_id),
    }))
}

pub async fn put_tagging(
    s: &ObjectStore,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    let row = s
        .load_object(&bucket, &input.key, input.version_id.as_deref())
        .await?;
    let tags = check_tags(&input.tagging.tag_set)?;
    let sealed = s.seal_tags(&bucket.project_id, &row.id, &tags).await?;
    store::set_object_tags(s.db(), &row.id, &sealed)
        .await
        .map_err(db_error)?;
    Ok(S3Response::new(PutObjectTaggingOutput {
        version_id: shown_version(&bucket, &row.version_id),
    }))
}

pub async fn delete_tagging(
    s: &ObjectStore,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    let row = s
        .load_object(&bucket, &input.key, input.version_id.as_deref())
        .await?;
    store::set_object_tags(s.db(), &row.id, "")
        .await
        .map_err(db_error)?;
    Ok(S3Response::with_status(
        DeleteObjectTaggingOutput {
            version_id: shown_version(&bucket, &row.version_id),
        },
        http::StatusCode::NO_CONTENT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_headers_decode() {
        assert_eq!(
            parse_tagging_header("a=1&b%20c=x%2By&d=").unwrap(),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b c".to_string(), "x+y".to_string()),
                ("d".to_string(), String::new())
            ]
        );
        assert!(parse_tagging_header("a=1&a=2").is_err());
    }

    #[test]
    fn preconditions_follow_s3_precedence() {
        let row = ObjectRow {
            etag: "abc".into(),
            last_modified: 1_000_000_000_000,
            ..Default::default()
        };
        let yes = ETagCondition::ETag(ETag::Strong("abc".into()));
        let no = ETagCondition::ETag(ETag::Strong("zzz".into()));
        let before = timestamp(999_000_000_000);
        let after = timestamp(1_001_000_000_000);
        let code = |r: S3Result<()>| r.err().map(|e| e.code().as_str().to_string());
        assert_eq!(
            code(preconditions(
                &row,
                Some(&yes),
                None,
                None,
                Some(&before),
                not_modified
            )),
            None
        );
        assert_eq!(
            code(preconditions(
                &row,
                Some(&no),
                None,
                None,
                None,
                not_modified
            ))
            .as_deref(),
            Some("PreconditionFailed")
        );
        assert_eq!(
            code(preconditions(
                &row,
                None,
                None,
                None,
                Some(&before),
                not_modified
            ))
            .as_deref(),
            Some("PreconditionFailed")
        );
        assert_eq!(
            code(preconditions(
                &row,
                None,
                Some(&yes),
                None,
                None,
                not_modified
            ))
            .as_deref(),
            Some("NotModified")
        );
        assert_eq!(
            code(preconditions(
                &row,
                None,
                Some(&no),
                Some(&after),
                None,
                not_modified
            )),
            None
        );
        assert_eq!(
            code(preconditions(
                &row,
                None,
                None,
                Some(&after),
                None,
                not_modified
            ))
            .as_deref(),
            Some("NotModified")
        );
        assert_eq!(
            code(preconditions(
                &row,
                None,
                None,
                Some(&before),
                Some(&after),
                not_modified
            )),
            None
        );
    }
}
