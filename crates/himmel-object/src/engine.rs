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
//! Writes go to `tmp/` first, are fsync'd, and are renamed into place only
//! once the caller has checked the digests; the metadata commit comes after
//! that, the acknowledgement last. Files no metadata row names (a crash
//! between rename and commit, an abandoned temp file) are removed at start.
//! Encryption and disk I/O run on blocking threads fed through bounded
//! channels, so a multi-gigabyte upload holds a few chunks in memory.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use himmel_kms::envelope::{self, Header, HEADER_LEN};
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
const READ_QUEUE: usize = 4;

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

#[derive(Clone, Debug)]
pub struct Engine {
    root: PathBuf,
}

/// A written, fsync'd segment not yet in place. Dropping it without
/// [`Engine::publish`] removes the file.
pub struct Staged {
    tmp: PathBuf,
    pub file_id: String,
    published: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Engine {
    pub fn open(data_dir: &Path) -> io::Result<Engine> {
        let root = data_dir.join("objects");
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Engine { root })
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
        mut checksum: ChecksumHasher,
    ) -> Result<(Staged, Written), EngineError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let tmp = self.root.join("tmp").join(&file_id);
        let staged = Staged {
            tmp: tmp.clone(),
            file_id: file_id.clone(),
            published: false,
        };
        let (tx, mut rx) = mpsc::channel::<Option<Bytes>>(WRITE_QUEUE);
        let SegmentKey { key, kind, wrapped } = key;
        let writer = tokio::task::spawn_blocking(move || -> Result<Written, EngineError> {
            let mut file = std::fs::File::create(&tmp).map_err(io_error)?;
            let mut prefix = MAGIC.to_vec();
            prefix.push(kind as u8);
            prefix.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
            prefix.extend_from_slice(&wrapped);
            file.write_all(&prefix).map_err(io_error)?;
            let out = io::BufWriter::with_capacity(1 << 20, file);
            let mut enc =
                Encryptor::new(&key, file_id.as_bytes(), Header::new(CHUNK_SIZE, 1), out)?;
            let mut md5 = Md5::new();
            let mut size = 0u64;
            loop {
                match rx.blocking_recv() {
                    Some(Some(piece)) => {
                        size += piece.len() as u64;
                        if size > max_size {
                            return Err(EngineError::TooLarge);
                        }
                        md5.update(&piece);
                        checksum.update(&piece);
                        enc.write(&piece)?;
                    }
                    // The end of the body.
                    Some(None) => break,
                    // The request went away mid-body.
                    None => return Err(EngineError::Body("connection closed".into())),
                }
            }
            let out = enc.finish()?;
            let file = out.into_inner().map_err(|e| io_error(e.into_error()))?;
            file.sync_all().map_err(io_error)?;
            Ok(Written {
                size,
                md5: md5.finalize(),
                checksum: checksum.finalize(),
            })
        });
        let mut body_error = None;
        while let Some(piece) = body.next().await {
            match piece {
                Ok(piece) => {
                    if tx.send(Some(piece)).await.is_err() {
                        // The writer stopped; its result says why.
                        break;
                    }
                }
                Err(e) => {
                    body_error = Some(e.to_string());
                    break;
                }
            }
        }
        if body_error.is_none() {
            let _ = tx.send(None).await;
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| EngineError::Io(io::Error::other(e.to_string())))?;
        if let Some(e) = body_error {
            return Err(EngineError::Body(e));
        }
        Ok((staged, written?))
    }

    /// Moves a staged segment into place, durably.
    pub async fn publish(&self, mut staged: Staged) -> Result<(), EngineError> {
        let dest = self.path(&staged.file_id);
        let tmp = staged.tmp.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let dir = dest.parent().expect("sharded path has a parent");
            std::fs::create_dir_all(dir)?;
            std::fs::rename(&tmp, &dest)?;
            std::fs::File::open(dir)?.sync_all()
        })
        .await
        .map_err(|e| EngineError::Io(io::Error::other(e.to_string())))?
        .map_err(io_error)?;
        staged.published = true;
        Ok(())
    }

    /// The kind and wrapped data key stored at the head of a segment.
    pub async fn read_key(&self, file_id: &str) -> Result<(KeyKind, Vec<u8>), EngineError> {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(self.path(file_id)).await?;
        let mut fixed = [0u8; PREFIX_FIXED];
        f.read_exact(&mut fixed).await?;
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
        f.read_exact(&mut wrapped).await?;
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
            let mut sink = ChannelWriter { tx: tx.clone() };
            let mut start = 0u64;
            for (path, id, size, key) in paths {
                let seg = start..start + size;
                start += size;
                let from = range.start.max(seg.start);
                let to = range.end.min(seg.end);
                if from >= to {
                    continue;
                }
                if let Err(e) = read_segment(
                    &path,
                    &id,
                    &key,
                    from - seg.start..to - seg.start,
                    &mut sink,
                ) {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        });
        ReceiverStream { rx }
    }

    pub async fn remove(&self, file_ids: &[String]) {
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

fn read_segment(
    path: &Path,
    file_id: &str,
    key: &Key,
    range: Range<u64>,
    out: &mut ChannelWriter,
) -> io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut fixed = [0u8; PREFIX_FIXED];
    f.read_exact(&mut fixed)?;
    let base = (PREFIX_FIXED + u16::from_be_bytes([fixed[5], fixed[6]]) as usize) as u64;
    let total = f.metadata()?.len();
    let envelope_len = total
        .checked_sub(base)
        .ok_or_else(|| io::Error::other("segment truncated"))?;
    let mut src = Offset { inner: f, base };
    let mut head = [0u8; HEADER_LEN];
    src.seek(SeekFrom::Start(0))?;
    src.read_exact(&mut head)?;
    let header = Header::parse(&head).map_err(io::Error::other)?;
    let dec = Decryptor::new(key, file_id.as_bytes(), header);
    let mut buffered = io::BufWriter::with_capacity(CHUNK_SIZE as usize, out);
    dec.read_range(&mut src, envelope_len, range, &mut buffered)
        .map_err(io::Error::other)?;
    buffered.flush()
}

/// A file seen from `base` on: the envelope after the key prefix.
struct Offset<R> {
    inner: R,
    base: u64,
}

impl<R: Read> Read for Offset<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: Seek> Seek for Offset<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let pos = match pos {
            SeekFrom::Start(n) => SeekFrom::Start(self.base + n),
            other => other,
        };
        Ok(self.inner.seek(pos)? - self.base)
    }
}

struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "reader went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
        assert_eq!(
            std::fs::read_dir(dir.path().join("objects/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
