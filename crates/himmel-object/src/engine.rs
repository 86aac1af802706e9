//! Object data on local disk: one chunk-encrypted file per segment (a
//! single upload or one multipart part) under `<data_dir>/objects/`.
//!
//! ```text
//! file = "HMOB" | key kind (1) | wrapped key length (u16 BE) | wrapped data key | envelope
//! ```
//!
//! The data key is stored wrapped beside the data: under the project KEK
//! (kind 1) or under the customer's SSE-C key (kind 2). The envelope binds
//! the segment's file id as its identity, so chunks cannot move between
//! segments.
//!
//! A segment is written at its final path under a fresh random file id,
//! and the file and its directory are fsync'd; the caller checks the
//! digests, commits the metadata row naming the file, and acknowledges
//! last. Until a row names it the file is invisible: a rejected upload
//! removes it at once, and files no row names (a crash before the commit)
//! are removed at start, as are temporary files of older versions.
//! Encryption and disk I/O run on blocking threads fed through bounded
//! channels, so a multi-gigabyte upload holds a few chunks in memory.
//!
//! Speed: a small body (up to [`SMALL_BODY`]) is gathered first and written
//! in one blocking call; a larger one is hashed (MD5 and the client's
//! checksums) on one thread while another encrypts and writes it, and the
//! kernel is told to start writing back every few MiB so that the final
//! fsync waits for the tail only. Reads decrypt each chunk in place in the
//! buffer that goes out to the network.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use himmel_kms::envelope::{self, Header, HEADER_LEN, TAG_LEN};
use himmel_kms::{Decryptor, Encryptor, Key};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::Checksum;
use tokio::sync::mpsc;

const MAGIC: &[u8; 4] = b"HMOB";
const PREFIX_FIXED: usize = 4 + 1 + 2;
/// Plaintext bytes per encrypted chunk.
const CHUNK_SIZE: u32 = 256 * 1024;
/// Body pieces in flight between the network and the writer thread.
const WRITE_QUEUE: usize = 8;
/// Decrypted pieces in flight between the reader thread and the network.
const READ_QUEUE: usize = 8;
/// A body up to this size is gathered in memory and written in one go.
pub const SMALL_BODY: u64 = 256 * 1024;
/// Bytes written between two writeback kicks while a segment is staged.
const WRITEBACK_STEP: u64 = 8 << 20;
/// Segment key prefixes remembered (segments never change once written).
const KEY_CACHE: usize = 65_536;

/// How a segment's data key is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Under the project key-encryption key (SSE-S3 and SSE-KMS).
    Project = 1,
    /// Under the customer-provided key (SSE-C).
    Customer = 2,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the request body ended early or failed: {0}")]
    Body(String),
    #[error("the object is larger than allowed")]
    TooLarge,
    #[error("the disk is full")]
    DiskFull,
    #[error("stored object data is damaged: {0}")]
    Corrupted(String),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl From<envelope::EnvelopeError> for EngineError {
    fn from(e: envelope::EnvelopeError) -> Self {
        match e {
            envelope::EnvelopeError::Io(e) => io_error(e),
            envelope::EnvelopeError::TooLarge => EngineError::TooLarge,
            other => EngineError::Corrupted(other.to_string()),
        }
    }
}

fn io_error(e: io::Error) -> EngineError {
    if e.raw_os_error() == Some(28) {
        EngineError::DiskFull
    } else {
        EngineError::Io(e)
    }
}

/// A segment's data key and how it is stored beside the data.
pub struct SegmentKey {
    pub key: Key,
    pub kind: KeyKind,
    pub wrapped: Vec<u8>,
}

/// What a finished segment write measured.
#[derive(Debug)]
pub struct Written {
    pub size: u64,
    pub md5: [u8; 16],
    pub checksum: Checksum,
}

/// File id -> (kind, wrapped data key) stored at the head of the segment.
type KeyPrefixes = HashMap<String, (KeyKind, Vec<u8>)>;

#[derive(Clone)]
pub struct Engine {
    root: PathBuf,
    /// The stored (kind, wrapped data key) of recently written or read
    /// segments, so that a GET does not open the file twice.
    keys: Arc<Mutex<KeyPrefixes>>,
}

/// A written, fsync'd segment no metadata names yet. Dropping it without
/// [`Engine::publish`] removes the file.
pub struct Staged {
    path: PathBuf,
    pub file_id: String,
    published: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Engine {
    pub fn open(data_dir: &Path) -> io::Result<Engine> {
        let root = data_dir.join("objects");
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Engine {
            root,
            keys: Default::default(),
        })
    }

    fn remember_key(&self, file_id: &str, kind: KeyKind, wrapped: &[u8]) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= KEY_CACHE {
            keys.clear();
        }
        keys.insert(file_id.to_string(), (kind, wrapped.to_vec()));
    }

    pub fn new_file_id() -> String {
        hex::encode(rand::random::<[u8; 16]>())
    }

    fn path(&self, file_id: &str) -> PathBuf {
        let shard = file_id.get(..2).unwrap_or("00");
        self.root.join(shard).join(file_id)
    }

    /// Encrypts `body` into a temporary segment file with `key` (whose
    /// wrapped form is stored in the file), hashing the plaintext as it
    /// goes. Fails with [`EngineError::TooLarge`] past `max_size` bytes.
    pub async fn stage<S, E>(
        &self,
        file_id: String,
        key: SegmentKey,
        mut body: S,
        max_size: u64,
        checksum: ChecksumHasher,
    ) -> Result<(Staged, Written), EngineError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.path(&file_id);
        let staged = Staged {
            path: path.clone(),
            file_id: file_id.clone(),
            published: false,
        };
        self.remember_key(&file_id, key.kind, &key.wrapped);
        let target = SegmentFile { path, file_id, key };
        let mut hashes = Hashes {
            md5: Md5::new(),
            checksum,
        };
        let mut size = 0u64;
        // Gather a small body whole: one blocking call writes it.
        let mut head = Vec::new();
        let mut more = false;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| EngineError::Body(e.to_string()))?;
            size += piece.len() as u64;
            if size > max_size {
                return Err(EngineError::TooLarge);
            }
            hashes.update(&piece);
            head.push(piece);
            if size > SMALL_BODY {
                more = true;
                break;
            }
        }
        if !more {
            tokio::task::spawn_blocking(move || target.write(head.into_iter().map(Ok)))
                .await
                .map_err(|e| EngineError::Io(io::Error::other(e.to_string())))??;
            return Ok((staged, hashes.finish(size)));
        }

        // A large body: hashing on one thread, encryption and disk I/O on
        // another, the network on this task.
        let (to_writer, mut writer_rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let (to_hasher, mut hasher_rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let complete = complete.clone();
            tokio::task::spawn_blocking(move || {
                let rest = std::iter::from_fn(|| match writer_rx.blocking_recv() {
                    Some(piece) => Some(Ok(piece)),
                    None if complete.load(std::sync::atomic::Ordering::Acquire) => None,
                    // The request went away mid-body.
                    None => Some(Err(EngineError::Body("connection closed".into()))),
                });
                target.write(head.into_iter().map(Ok).chain(rest))
            })
        };
        let hasher = tokio::task::spawn_blocking(move || {
            while let Some(piece) = hasher_rx.blocking_recv() {
                hashes.update(&piece);
            }
            hashes
        });
        let mut failed = None;
        while let Some(piece) = body.next().await {
            let piece = match piece {
                Ok(p) => p,
                Err(e) => {
                    failed = Some(EngineError::Body(e.to_string()));
                    break;
                }
            };
            size += piece.len() as u64;
            if size > max_size {
                failed = Some(EngineError::TooLarge);
                break;
            }
            // A closed queue means its thread stopped; its result says why.
            if to_hasher.send(piece.clone()).await.is_err() || to_writer.send(piece).await.is_err()
            {
                break;
            }
        }
        if failed.is_none() {
            complete.store(true, std::sync::atomic::Ordering::Release);
        }
        drop((to_writer, to_hasher));
        let written = writer
            .await
            .map_err(|e| EngineError::Io(io::Error::other(e.to_string())))?;
        let hashes = hasher
            .await
            .map_err(|e| EngineError::Io(io::Error::other(e.to_string())))?;
        if let Some(e) = failed {
            return Err(e);
        }
        written?;
        Ok((staged, hashes.finish(size)))
    }

    /// Keeps a staged segment: the caller is about to commit metadata
    /// naming it. (It is durable in place already.)
    pub async fn publish(&self, mut staged: Staged) -> Result<(), EngineError> {
        staged.published = true;
        Ok(())
    }

    /// The kind and wrapped data key stored at the head of a segment.
    pub async fn read_key(&self, file_id: &str) -> Result<(KeyKind, Vec<u8>), EngineError> {
        let cached = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(file_id)
            .cloned();
        if let Some(found) = cached {
            return Ok(found);
        }
        let path = self.path(file_id);
        let (kind, wrapped) = tokio::task::spawn_blocking(move || {
            let mut f = File::open(path)?;
            read_prefix(&mut f)
        })
        .await
        .map_err(|e| EngineError::Io(io::Error::other(e.to_string())))??;
        self.remember_key(file_id, kind, &wrapped);
        Ok((kind, wrapped))
    }

    /// Streams the plaintext bytes `range` of the object made of
    /// `segments` (file id, plaintext size, opened data key), decrypting
    /// only the chunks the range touches.
    pub fn read(
        &self,
        segments: Vec<(String, u64, Key)>,
        range: Range<u64>,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + Sync + 'static {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(READ_QUEUE);
        let paths: Vec<(PathBuf, String, u64, Key)> = segments
            .into_iter()
            .map(|(id, size, key)| (self.path(&id), id, size, key))
            .collect();
        tokio::task::spawn_blocking(move || {
            let mut start = 0u64;
            for (path, id, size, key) in paths {
                let seg = start..start + size;
                start += size;
                let from = range.start.max(seg.start);
                let to = range.end.min(seg.end);
                if from >= to {
                    continue;
                }
                if let Err(e) =
                    read_segment(&path, &id, &key, from - seg.start..to - seg.start, &tx)
                {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        });
        ReceiverStream { rx }
    }

    pub async fn remove(&self, file_ids: &[String]) {
        {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            for id in file_ids {
                keys.remove(id);
            }
        }
        for id in file_ids {
            if let Err(e) = tokio::fs::remove_file(self.path(id)).await {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(file = %id, error = %e, "removing object segment");
                }
            }
        }
    }

    /// Removes every temporary file and every segment not in `referenced`.
    pub fn remove_orphans(&self, referenced: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(self.root.join("tmp"))? {
            std::fs::remove_file(entry?.path())?;
            removed += 1;
        }
        for shard in std::fs::read_dir(&self.root)? {
            let shard = shard?;
            if shard.file_name() == "tmp" || !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(shard.path())? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !referenced.contains(&name) {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Where a staged segment goes and what it is encrypted with.
struct SegmentFile {
    path: PathBuf,
    file_id: String,
    key: SegmentKey,
}

impl SegmentFile {
    /// Writes the key prefix and the encrypted `pieces`, then fsyncs the
    /// file and its directory.
    fn write(
        self,
        pieces: impl Iterator<Item = Result<Bytes, EngineError>>,
    ) -> Result<(), EngineError> {
        let SegmentFile { path, file_id, key } = self;
        let dir = path.parent().expect("sharded path has a parent");
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let mut file = File::create(&path).map_err(io_error)?;
        let mut prefix = MAGIC.to_vec();
        prefix.push(key.kind as u8);
        prefix.extend_from_slice(&(key.wrapped.len() as u16).to_be_bytes());
        prefix.extend_from_slice(&key.wrapped);
        file.write_all(&prefix).map_err(io_error)?;
        let out = io::BufWriter::with_capacity(1 << 20, Writeback::new(file));
        let mut enc = Encryptor::new(
            &key.key,
            file_id.as_bytes(),
            Header::new(CHUNK_SIZE, 1),
            out,
        )?;
        for piece in pieces {
            enc.write(&piece?)?;
        }
        let out = enc.finish()?;
        let file = out.into_inner().map_err(|e| io_error(e.into_error()))?.file;
        file.sync_all().map_err(io_error)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_error)
    }
}

/// MD5 (the ETag) and the client's checksums of a body.
struct Hashes {
    md5: Md5,
    checksum: ChecksumHasher,
}

impl Hashes {
    fn update(&mut self, piece: &[u8]) {
        self.md5.update(piece);
        self.checksum.update(piece);
    }

    fn finish(self, size: u64) -> Written {
        Written {
            size,
            md5: self.md5.finalize(),
            checksum: self.checksum.finalize(),
        }
    }
}

/// A file being written that asks the kernel to start writing back each
/// [`WRITEBACK_STEP`] as soon as it is written, so that disk writes
/// overlap encryption instead of all waiting for the final fsync.
struct Writeback {
    file: File,
    written: u64,
    kicked: u64,
}

impl Writeback {
    fn new(file: File) -> Writeback {
        Writeback {
            file,
            written: 0,
            kicked: 0,
        }
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.kicked >= WRITEBACK_STEP {
            // SAFETY: a hint on an open descriptor; it reads no memory.
            // Failure only loses the overlap: the fsync still makes the
            // data durable.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.kicked as libc::off64_t,
                    (self.written - self.kicked) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.kicked = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reads the key prefix of a segment, leaving `f` at the envelope.
fn read_prefix(f: &mut File) -> Result<(KeyKind, Vec<u8>), EngineError> {
    let mut fixed = [0u8; PREFIX_FIXED];
    f.read_exact(&mut fixed)?;
    if &fixed[..4] != MAGIC {
        return Err(EngineError::Corrupted("not an object segment".into()));
    }
    let kind = match fixed[4] {
        1 => KeyKind::Project,
        2 => KeyKind::Customer,
        k => return Err(EngineError::Corrupted(format!("unknown key kind {k}"))),
    };
    let len = u16::from_be_bytes([fixed[5], fixed[6]]) as usize;
    let mut wrapped = vec![0u8; len];
    f.read_exact(&mut wrapped)?;
    Ok((kind, wrapped))
}

/// Sends the plaintext `range` of one segment to `out`, one chunk at a
/// time: each chunk is read into a buffer of its own, decrypted in place
/// and handed on without a copy.
fn read_segment(
    path: &Path,
    file_id: &str,
    key: &Key,
    range: Range<u64>,
    out: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let mut f = File::open(path)?;
    read_prefix(&mut f).map_err(io::Error::other)?;
    let base = f.stream_position()?;
    let envelope_len = f
        .metadata()?
        .len()
        .checked_sub(base)
        .ok_or_else(|| io::Error::other("segment truncated"))?;
    let mut head = [0u8; HEADER_LEN];
    f.read_exact(&mut head)?;
    let header = Header::parse(&head).map_err(io::Error::other)?;
    let plain_len = header.plain_len(envelope_len).map_err(io::Error::other)?;
    let end = range.end.min(plain_len);
    if range.start >= end && !(range.start == 0 && plain_len == 0) {
        return Ok(());
    }
    let dec = Decryptor::new(key, file_id.as_bytes(), header);
    let size = u64::from(header.chunk_size);
    let sealed_size = size + TAG_LEN as u64;
    let last_chunk = header.chunk_count(plain_len) - 1;
    let first = range.start / size;
    let last = if end == 0 { 0 } else { (end - 1) / size }.min(last_chunk);
    if last > first {
        // SAFETY: an advisory call on an open descriptor.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    }
    f.seek(SeekFrom::Start(
        base + HEADER_LEN as u64 + first * sealed_size,
    ))?;
    for index in first..=last {
        let chunk_plain = if index == last_chunk {
            plain_len - index * size
        } else {
            size
        };
        let sealed_len = chunk_plain + TAG_LEN as u64;
        let mut sealed = Vec::with_capacity(sealed_len as usize);
        (&mut f).take(sealed_len).read_to_end(&mut sealed)?;
        if sealed.len() as u64 != sealed_len {
            return Err(io::Error::other(envelope::EnvelopeError::Truncated));
        }
        dec.open_chunk(index, index == last_chunk, &mut sealed)
            .map_err(io::Error::other)?;
        let chunk_start = index * size;
        let from = range.start.saturating_sub(chunk_start) as usize;
        let to = (end - chunk_start).min(chunk_plain) as usize;
        if from == to {
            continue;
        }
        let piece = Bytes::from(sealed).slice(from..to);
        if out.blocking_send(Ok(piece)).is_err() {
            // The client went away; nothing more to do.
            return Ok(());
        }
    }
    Ok(())
}

struct ReceiverStream {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl Stream for ReceiverStream {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(s: impl Stream<Item = io::Result<Bytes>>) -> Vec<u8> {
        let mut out = Vec::new();
        futures::pin_mut!(s);
        while let Some(piece) = s.next().await {
            out.extend_from_slice(&piece.unwrap());
        }
        out
    }

    fn files_under(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
            .sum()
    }

    async fn write(engine: &Engine, key: &Key, data: &[u8]) -> (String, Written) {
        let id = Engine::new_file_id();
        let body = futures::stream::iter(
            data.chunks(10_000)
                .map(|c| Ok::<_, io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let (staged, written) = engine
            .stage(
                id.clone(),
                SegmentKey {
                    key: key.clone(),
                    kind: KeyKind::Project,
                    wrapped: vec![7; 3],
                },
                body,
                u64::MAX,
                ChecksumHasher::default(),
            )
            .await
            .unwrap();
        engine.publish(staged).await.unwrap();
        (id, written)
    }

    #[tokio::test]
    async fn segments_read_back_whole_and_in_ranges_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let key = Key::generate();
        let a: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..300_001u32).map(|i| (i % 13) as u8).collect();
        let (ida, wa) = write(&engine, &key, &a).await;
        let (idb, _) = write(&engine, &key, &b).await;
        assert_eq!(wa.size, a.len() as u64);
        assert_eq!(
            engine.read_key(&ida).await.unwrap(),
            (KeyKind::Project, vec![7; 3])
        );
        let all: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        let segs = vec![
            (ida.clone(), a.len() as u64, key.clone()),
            (idb.clone(), b.len() as u64, key.clone()),
        ];
        assert_eq!(
            collect(engine.read(segs.clone(), 0..all.len() as u64)).await,
            all
        );
        let r = 599_990..600_020;
        assert_eq!(
            collect(engine.read(segs.clone(), r.clone())).await,
            all[r.start as usize..r.end as usize]
        );
        // A wrong key fails instead of yielding data.
        let wrong = vec![(ida.clone(), a.len() as u64, Key::generate())];
        let s = engine.read(wrong, 0..10);
        futures::pin_mut!(s);
        assert!(s.next().await.unwrap().is_err());
        // The plaintext is nowhere in the file.
        let raw = std::fs::read(engine.path(&ida)).unwrap();
        assert!(!raw.windows(64).any(|w| w == &a[1000..1064]));
        // Only referenced segments survive the orphan sweep.
        let keep: HashSet<String> = [ida.clone()].into();
        assert_eq!(engine.remove_orphans(&keep).unwrap(), 1);
        assert!(engine.path(&ida).exists() && !engine.path(&idb).exists());
    }

    #[tokio::test]
    async fn small_large_and_empty_bodies_hash_and_read_back_alike() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let key = Key::generate();
        let small = SMALL_BODY as usize;
        for len in [
            0,
            1,
            4096,
            small,
            small + 1,
            (WRITEBACK_STEP as usize) + 300_000,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
            let (id, written) = write(&engine, &key, &data).await;
            assert_eq!(written.size, len as u64);
            let mut md5 = Md5::new();
            md5.update(&data);
            assert_eq!(written.md5, md5.finalize(), "{len} bytes");
            let segs = vec![(id.clone(), len as u64, key.clone())];
            assert_eq!(collect(engine.read(segs, 0..len as u64)).await, data);
            // The key prefix reads back from the file too, not only from
            // the cache.
            let fresh = Engine::open(dir.path()).unwrap();
            assert_eq!(
                fresh.read_key(&id).await.unwrap(),
                (KeyKind::Project, vec![7; 3])
            );
        }
    }

    #[tokio::test]
    async fn a_large_body_failing_midway_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut pieces: Vec<io::Result<Bytes>> = (0..40)
            .map(|_| Ok(Bytes::from(vec![1u8; 64 * 1024])))
            .collect();
        pieces.push(Err(io::Error::other("reset")));
        let r = engine
            .stage(
                Engine::new_file_id(),
                SegmentKey {
                    key: Key::generate(),
                    kind: KeyKind::Project,
                    wrapped: vec![],
                },
                futures::stream::iter(pieces),
                u64::MAX,
                ChecksumHasher::default(),
            )
            .await;
        assert!(matches!(r, Err(EngineError::Body(_))));
        let body = futures::stream::iter(
            (0..40).map(|_| Ok::<_, io::Error>(Bytes::from(vec![1u8; 64 * 1024]))),
        );
        let r = engine
            .stage(
                Engine::new_file_id(),
                SegmentKey {
                    key: Key::generate(),
                    kind: KeyKind::Project,
                    wrapped: vec![],
                },
                body,
                SMALL_BODY * 2,
                ChecksumHasher::default(),
            )
            .await;
        assert!(matches!(r, Err(EngineError::TooLarge)));
        assert_eq!(files_under(&dir.path().join("objects")), 0);
    }

    #[tokio::test]
    async fn a_failed_or_oversized_body_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let body = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"hello")),
            Err(io::Error::other("reset")),
        ]);
        let r = engine
            .stage(
                Engine::new_file_id(),
                SegmentKey {
                    key: Key::generate(),
                    kind: KeyKind::Project,
                    wrapped: vec![],
                },
                body,
                u64::MAX,
                ChecksumHasher::default(),
            )
            .await;
        assert!(matches!(r, Err(EngineError::Body(_))));
        let body = futures::stream::iter(vec![Ok::<_, io::Error>(Bytes::from(vec![0u8; 100]))]);
        let r = engine
            .stage(
                Engine::new_file_id(),
                SegmentKey {
                    key: Key::generate(),
                    kind: KeyKind::Project,
                    wrapped: vec![],
                },
                body,
                99,
                ChecksumHasher::default(),
            )
            .await;
        assert!(matches!(r, Err(EngineError::TooLarge)));
        assert_eq!(files_under(&dir.path().join("objects")), 0);
    }
}
