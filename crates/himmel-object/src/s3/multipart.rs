//! Multipart uploads. Every part is a segment of its own (its own data
//! key); completing an upload makes the chosen parts the object's
//! segments without copying a byte.

use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::object::{
    check_content_md5, customer_key_of, new_version_id, parse_tagging_header, preconditions,
    shown_version, Expected,
};
use super::{db_error, engine_error, timestamp};
use crate::auth::Caller;
use crate::lock;
use crate::meta::{format_expires, ObjectMeta};
use crate::policy::Need;
use crate::sse::CustomerKey;
use crate::sse_kms;
use crate::store::{self, Bucket, ObjectRow, Part, Upload};
use crate::store_ext::lock as lock_store;
use crate::{ObjectStore, MAX_PUT_SIZE};

pub const MAX_PARTS: i32 = 10_000;
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

fn upload_identity(upload_id: &str) -> String {
    format!("upload/{upload_id}")
}

fn check_part_number(n: i32) -> S3Result<()> {
    if !(1..=MAX_PARTS).contains(&n) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    Ok(())
}

async fn load_upload(
    s: &ObjectStore,
    bucket: &Bucket,
    key: &str,
    upload_id: &str,
) -> S3Result<Upload> {
    store::get_upload(s.db(), &bucket.id, key, upload_id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| {
            s3_error!(
                NoSuchUpload,
                "The specified upload does not exist. The upload ID may be invalid, or the upload \
                 may have been aborted or completed."
            )
        })
}

/// The lock the object of an upload will get: what its create asked for, or
/// else the bucket's default retention as of now.
async fn upload_lock(s: &ObjectStore, bucket: &Bucket, upload_id: &str) -> S3Result<lock::Lock> {
    match lock_store::get_upload_lock(s.db(), upload_id)
        .await
        .map_err(db_error)?
    {
        Some(l) => Ok(l),
        None => lock::requested(bucket, None, None, None, store::now_us()),
    }
}

/// Removes the lock row of an ended upload. Left behind (the error is
/// logged), it only takes a little space.
async fn forget_upload_lock(s: &ObjectStore, upload_id: &str) {
    if let Err(e) = lock_store::delete_upload_lock(s.db(), upload_id).await {
        tracing::warn!(upload = %upload_id, error = %e, "removing an upload's object lock");
    }
}

/// The key the upload's parts are wrapped under: the request's SSE-C key
/// (checked against the upload's), the upload's SSE-KMS key, or None.
async fn upload_key<T>(
    s: &ObjectStore,
    req: &S3Request<T>,
    upload: &Upload,
    alg: &Option<String>,
    key: &Option<String>,
    md5: &Option<String>,
) -> S3Result<Option<CustomerKey>> {
    let given = customer_key_of(alg, key, md5)?;
    s.read_key(
        req.extensions.get::<Caller>(),
        &upload.sse,
        &upload.sse_key_id,
        &upload.sse_key_hash,
        given,
    )
    .await
}

pub async fn create(
    s: &ObjectStore,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
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
    let id = hex::encode(rand::random::<[u8; 16]>());
    // Headers given now hold for the object; the bucket's default is
    // applied when the upload completes.
    let lock_asked = input.object_lock_mode.is_some()
        || input.object_lock_retain_until_date.is_some()
        || input.object_lock_legal_hold_status.is_some();
    let lock = lock::requested(
        &bucket,
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
        store::now_us(),
    )?;
    if lock_asked {
        lock_store::put_upload_lock(s.db(), &id, &lock)
            .await
            .map_err(db_error)?;
    }
    let meta = ObjectMeta {
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
    };
    let tags = match input.tagging.as_deref() {
        Some(t) => parse_tagging_header(t)?,
        None => Vec::new(),
    };
    let upload = Upload {
        meta: s
            .seal_meta(&bucket.project_id, &upload_identity(&id), &meta)
            .await?,
        tags: s
            .seal_tags(&bucket.project_id, &upload_identity(&id), &tags)
            .await?,
        id,
        bucket_id: bucket.id.clone(),
        key: input.key.clone(),
        sse: enc.sse.clone(),
        sse_key_id: enc.kms_key_id.clone(),
        sse_key_hash: enc.key_hash.clone(),
        initiator: super::caller(&req)?.context.user_id.clone(),
        created_at: store::now_us(),
    };
    store::create_upload(s.db(), &upload)
        .await
        .map_err(db_error)?;
    let mut out = CreateMultipartUploadOutput {
        bucket: Some(bucket.name.clone()),
        key: Some(upload.key.clone()),
        upload_id: Some(upload.id.clone()),
        ..Default::default()
    };
    crate::report_sse!(out, &upload.sse, &upload.sse_key_id, enc.key.as_ref());
    Ok(S3Response::new(out))
}

pub async fn upload_part(
    s: &ObjectStore,
    mut req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let bucket = s.bucket(&req, &req.input.bucket, Need::Write).await?;
    check_part_number(req.input.part_number)?;
    let upload = load_upload(s, &bucket, &req.input.key, &req.input.upload_id).await?;
    // As for PutObject: parts of an object that will be locked need an
    // integrity header.
    if bucket.object_lock && !upload_lock(s, &bucket, &upload.id).await?.is_empty() {
        super::require_integrity_header(&req.headers)?;
    }
    let customer = upload_key(
        s,
        &req,
        &upload,
        &req.input.sse_customer_algorithm,
        &req.input.sse_customer_key,
        &req.input.sse_customer_key_md5,
    )
    .await?;
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
    let (staged, written) = s
        .ingest(
            &bucket.project_id,
            customer.as_ref(),
            body,
            MAX_PUT_SIZE,
            hasher,
        )
        .await?;
    if input
        .content_length
        .is_some_and(|len| written.size != len as u64)
    {
        return Err(s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ));
    }
    check_content_md5(input.content_md5.as_deref(), &written.md5)?;
    expected.add_trailers(req.trailing_headers.as_ref());
    expected.verify(&written.checksum)?;
    let file_id = staged.file_id.clone();
    s.engine().publish(staged).await.map_err(engine_error)?;
    let etag = hex::encode(written.md5);
    record_part(s, &upload, input.part_number, file_id, written.size, &etag).await?;
    let mut out = UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    };
    crate::report_sse!(out, &upload.sse, &upload.sse_key_id, customer.as_ref());
    Ok(S3Response::new(out))
}

async fn record_part(
    s: &ObjectStore,
    upload: &Upload,
    number: i32,
    file_id: String,
    size: u64,
    etag: &str,
) -> S3Result<()> {
    let part = Part {
        number: i64::from(number),
        file_id: file_id.clone(),
        size,
        etag: etag.to_string(),
        last_modified: store::now_us(),
    };
    match store::put_part(s.db(), &upload.id, &part).await {
        Ok(Some(old)) => s.engine().remove(&[old]).await,
        Ok(None) => {}
        Err(e) => {
            s.engine().remove(&[file_id]).await;
            return Err(db_error(e));
        }
    }
    Ok(())
}

/// `bytes=first-last` of a copy source of `size` bytes.
fn copy_range(header: Option<&str>, size: u64) -> S3Result<std::ops::Range<u64>> {
    let Some(h) = header else {
        return Ok(0..size);
    };
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last."
        )
    };
    let (first, last) = h
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = first.parse().map_err(|_| bad())?;
    let last: u64 = last.parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidRange,
            "The requested range is not satisfiable"
        ));
    }
    Ok(first..last + 1)
}

pub async fn upload_part_copy(
    s: &ObjectStore,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = &req.input;
    check_part_number(input.part_number)?;
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
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    let upload = load_upload(s, &bucket, &input.key, &input.upload_id).await?;
    let customer = upload_key(
        s,
        &req,
        &upload,
        &input.sse_customer_algorithm,
        &input.sse_customer_key,
        &input.sse_customer_key_md5,
    )
    .await?;
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
    let range = copy_range(input.copy_source_range.as_deref(), src.size)?;
    let body = s
        .object_stream(&source_bucket.project_id, &src, src_wrap.as_ref(), range)
        .await?;
    let (staged, written) = s
        .ingest(
            &bucket.project_id,
            customer.as_ref(),
            Box::pin(body),
            MAX_PUT_SIZE,
            Default::default(),
        )
        .await?;
    let file_id = staged.file_id.clone();
    s.engine().publish(staged).await.map_err(engine_error)?;
    let etag = hex::encode(written.md5);
    record_part(s, &upload, input.part_number, file_id, written.size, &etag).await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(etag)),
            last_modified: Some(timestamp(store::now_us())),
            ..Default::default()
        }),
        copy_source_version_id: shown_version(&source_bucket, &src.version_id),
        ..Default::default()
    }))
}

pub async fn complete(
    s: &ObjectStore,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    let upload = load_upload(s, &bucket, &input.key, &input.upload_id).await?;
    upload_key(
        s,
        &req,
        &upload,
        &input.sse_customer_algorithm,
        &input.sse_customer_key,
        &input.sse_customer_key_md5,
    )
    .await?;
    let requested = input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.as_ref())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| s3_error!(MalformedXML, "You must specify at least one part"))?;
    let stored = store::list_parts(s.db(), &upload.id)
        .await
        .map_err(db_error)?;
    let mut chosen: Vec<&Part> = Vec::with_capacity(requested.len());
    let mut last_number = 0;
    for p in requested {
        let n = p.part_number.unwrap_or(0);
        if n <= last_number {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in \
                 order by part number."
            ));
        }
        last_number = n;
        let found = stored
            .iter()
            .find(|s| s.number == i64::from(n))
            .filter(|s| {
                p.e_tag
                    .as_ref()
                    .is_none_or(|e| e.value().trim_matches('"') == s.etag)
            });
        let Some(found) = found else {
            return Err(s3_error!(
                InvalidPart,
                "One or more of the specified parts could not be found. The part may not have been \
                 uploaded, or the specified entity tag may not match the part's entity tag."
            ));
        };
        chosen.push(found);
    }
    if let Some((_, rest)) = chosen.split_last() {
        if rest.iter().any(|p| p.size < MIN_PART_SIZE) {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size."
            ));
        }
    }
    let mut md5 = Md5::new();
    for p in &chosen {
        let raw = hex::decode(&p.etag).map_err(|_| s3_error!(InternalError))?;
        md5.update(&raw);
    }
    let etag = format!("{}-{}", hex::encode(md5.finalize()), chosen.len());
    let meta = s
        .open_meta(
            &bucket.project_id,
            &upload_identity(&upload.id),
            &upload.meta,
        )
        .await?;
    let lock = upload_lock(s, &bucket, &upload.id).await?;
    let tags = s
        .open_tags(
            &bucket.project_id,
            &upload_identity(&upload.id),
            &upload.tags,
        )
        .await?;
    let id = uuid::Uuid::new_v4().to_string();
    let row = ObjectRow {
        meta: s.seal_meta(&bucket.project_id, &id, &meta).await?,
        tags: s.seal_tags(&bucket.project_id, &id, &tags).await?,
        id,
        bucket_id: bucket.id.clone(),
        key: upload.key.clone(),
        version_id: new_version_id(&bucket),
        is_latest: true,
        size: chosen.iter().map(|p| p.size).sum(),
        etag: etag.clone(),
        last_modified: store::now_us(),
        segments: chosen.iter().map(|p| (p.file_id.clone(), p.size)).collect(),
        sse: upload.sse.clone(),
        sse_key_id: upload.sse_key_id.clone(),
        sse_key_hash: upload.sse_key_hash.clone(),
        lock_mode: lock.mode,
        lock_until: lock.until,
        legal_hold: lock.legal_hold,
        ..Default::default()
    };
    let replaced = store::finish_upload(s.db(), &upload.id, Some(&row))
        .await
        .map_err(db_error)?
        .ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))?;
    forget_upload_lock(s, &upload.id).await;
    let unused: Vec<String> = stored
        .iter()
        .filter(|p| !chosen.iter().any(|c| c.number == p.number))
        .map(|p| p.file_id.clone())
        .collect();
    s.engine().remove(&unused).await;
    for old in replaced {
        s.engine().remove(&old.file_ids()).await;
    }
    let mut out = CompleteMultipartUploadOutput {
        bucket: Some(bucket.name.clone()),
        key: Some(row.key.clone()),
        e_tag: Some(ETag::Strong(etag)),
        location: Some(format!("/{}/{}", bucket.name, row.key)),
        version_id: shown_version(&bucket, &row.version_id),
        ..Default::default()
    };
    let reported = sse_kms::reported(&upload.sse, &upload.sse_key_id, None);
    out.server_side_encryption = reported.sse;
    out.ssekms_key_id = reported.kms_key_id;
    Ok(S3Response::new(out))
}

pub async fn abort(
    s: &ObjectStore,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    let upload = load_upload(s, &bucket, &input.key, &input.upload_id).await?;
    let parts = store::list_parts(s.db(), &upload.id)
        .await
        .map_err(db_error)?;
    if store::finish_upload(s.db(), &upload.id, None)
        .await
        .map_err(db_error)?
        .is_none()
    {
        return Err(s3_error!(
            NoSuchUpload,
            "The specified upload does not exist."
        ));
    }
    forget_upload_lock(s, &upload.id).await;
    let files: Vec<String> = parts.into_iter().map(|p| p.file_id).collect();
    s.engine().remove(&files).await;
    Ok(S3Response::with_status(
        AbortMultipartUploadOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub async fn list_parts(
    s: &ObjectStore,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let upload = load_upload(s, &bucket, &input.key, &input.upload_id).await?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = i64::from(input.part_number_marker.unwrap_or(0));
    let all: Vec<Part> = store::list_parts(s.db(), &upload.id)
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|p| p.number > marker)
        .collect();
    let truncated = all.len() > max;
    let page = &all[..all.len().min(max)];
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(bucket.name.clone()),
        key: Some(upload.key.clone()),
        upload_id: Some(upload.id.clone()),
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: page.last().map(|p| p.number as i32),
        owner: Some(super::bucket_owner(&bucket.project_id)),
        initiator: Some(Initiator {
            id: Some(upload.initiator.clone()),
            display_name: Some(upload.initiator.clone()),
        }),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        parts: Some(
            page.iter()
                .map(|p| s3s::dto::Part {
                    part_number: Some(p.number as i32),
                    e_tag: Some(ETag::Strong(p.etag.clone())),
                    size: Some(p.size as i64),
                    last_modified: Some(timestamp(p.last_modified)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

/// One page of a multipart upload listing.
struct UploadPage<'a> {
    uploads: Vec<&'a Upload>,
    /// Keys rolled up at the delimiter, in order.
    prefixes: Vec<String>,
    truncated: bool,
    /// The markers of the next page: the last key (or common prefix) and
    /// upload id listed.
    next: Option<(String, Option<String>)>,
}

/// Rolls keys that contain `delimiter` after `prefix` up into common
/// prefixes (each counts as one entry) and cuts the page at `max`. A
/// common prefix given as the key marker was listed on an earlier page.
fn upload_page<'a>(
    all: &'a [Upload],
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: &str,
    max: usize,
) -> UploadPage<'a> {
    let mut page = UploadPage {
        uploads: vec![],
        prefixes: vec![],
        truncated: false,
        next: None,
    };
    for u in all {
        let rolled_up = delimiter.and_then(|d| {
            let rest = u.key.get(prefix.len()..)?;
            rest.find(d)
                .map(|i| u.key[..prefix.len() + i + d.len()].to_string())
        });
        if let Some(cp) = &rolled_up {
            if page.prefixes.last() == Some(cp) || key_marker == cp.as_str() {
                continue;
            }
        }
        if page.uploads.len() + page.prefixes.len() == max {
            page.truncated = true;
            break;
        }
        match rolled_up {
            Some(cp) => {
                page.next = Some((cp.clone(), None));
                page.prefixes.push(cp);
            }
            None => {
                page.next = Some((u.key.clone(), Some(u.id.clone())));
                page.uploads.push(u);
            }
        }
    }
    page
}

pub async fn list_uploads(
    s: &ObjectStore,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let (lower, upper) = store::prefix_bounds(&prefix);
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let all: Vec<Upload> = store::list_uploads(s.db(), &bucket.id, &lower, &upper)
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|u| {
            u.key > key_marker
                || (u.key == key_marker
                    && input
                        .upload_id_marker
                        .as_deref()
                        .is_some_and(|m| u.id.as_str() > m))
        })
        .collect();
    let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
    let UploadPage {
        uploads: page,
        prefixes,
        truncated,
        next,
    } = upload_page(&all, &prefix, delimiter, &key_marker, max);
    let (next_key, next_id) = match next.filter(|_| truncated) {
        Some((key, id)) => (Some(key), id),
        None => (None, None),
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(bucket.name.clone()),
        prefix: input.prefix.clone(),
        delimiter: input.delimiter.clone(),
        key_marker: input.key_marker.clone(),
        upload_id_marker: input.upload_id_marker.clone(),
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        common_prefixes: (!prefixes.is_empty()).then(|| {
            prefixes
                .iter()
                .map(|p| CommonPrefix {
                    prefix: Some(p.clone()),
                })
                .collect()
        }),
        uploads: Some(
            page.iter()
                .map(|u| MultipartUpload {
                    key: Some(u.key.clone()),
                    upload_id: Some(u.id.clone()),
                    initiated: Some(timestamp(u.created_at)),
                    initiator: Some(Initiator {
                        id: Some(u.initiator.clone()),
                        display_name: Some(u.initiator.clone()),
                    }),
                    owner: Some(super::bucket_owner(&bucket.project_id)),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uploads(keys: &[&str]) -> Vec<Upload> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| Upload {
                id: format!("u{i}"),
                key: k.to_string(),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn upload_listings_roll_up_at_the_delimiter_and_page() {
        let all = uploads(&["a/1", "a/2", "b", "c/x/1", "c/y"]);
        let keys = |p: &UploadPage| p.uploads.iter().map(|u| u.key.clone()).collect::<Vec<_>>();
        let page = upload_page(&all, "", Some("/"), "", 10);
        assert_eq!(page.prefixes, ["a/", "c/"]);
        assert_eq!(keys(&page), ["b"]);
        assert!(!page.truncated);
        let first = upload_page(&all, "", Some("/"), "", 2);
        assert_eq!(
            (first.prefixes.as_slice(), keys(&first)),
            (&["a/".to_string()][..], vec!["b".to_string()])
        );
        assert!(first.truncated);
        assert_eq!(first.next, Some(("b".into(), Some("u2".into()))));
        // the next page starts after the marker (the store filters keys)
        let rest: Vec<Upload> = all
            .iter()
            .filter(|u| u.key.as_str() > "b")
            .cloned()
            .collect();
        let second = upload_page(&rest, "", Some("/"), "b", 2);
        assert_eq!(second.prefixes, ["c/"]);
        assert!(!second.truncated);
        // the store lists only keys under the prefix
        let under_c: Vec<Upload> = all
            .iter()
            .filter(|u| u.key.starts_with("c/"))
            .cloned()
            .collect();
        let nested = upload_page(&under_c, "c/", Some("/"), "", 10);
        assert_eq!(nested.prefixes, ["c/x/"]);
        assert_eq!(keys(&nested), ["c/y"]);
        let after_prefix: Vec<Upload> = all
            .iter()
            .filter(|u| u.key.as_str() > "a/")
            .cloned()
            .collect();
        let skip = upload_page(&after_prefix, "", Some("/"), "a/", 10);
        assert_eq!(skip.prefixes, ["c/"]);
        assert_eq!(upload_page(&all, "", None, "", 10).uploads.len(), 5);
    }
}
