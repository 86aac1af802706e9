//! Image data at rest: one envelope-encrypted file per upload under
//! `<data_dir>/images/<shard>/<file id>`, its data key bound to the file id.
//! A file is written under `tmp/`, fsynced, then renamed into place; the
//! image row refers to it only after that, so a crash leaves at most an
//! orphan, removed at the next start. Memory stays bounded: the request
//! body flows through a small queue into a blocking writer that encrypts
//! and hashes (md5 for Glance's `checksum`, sha512 for `os_hash_value`).

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::Stream;
use himmel_core::Error;
use himmel_kms::envelope::{self, Encryptor, Header, DEFAULT_CHUNK_SIZE};
use himmel_kms::Key;
use md5::{Digest, Md5};
use sha2::Sha512;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Pieces of a body in flight to the writer thread.
const QUEUE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the image data is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("writing image data: {0}")]
    Io(String),
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::TooLarge(limit) => Error::PayloadTooLarge(format!(
                "Image exceeds the storage quota: the limit is {limit} bytes."
            )),
            WriteError::Io(m) => Error::internal(m),
        }
    }
}

fn io_err(e: impl std::fmt::Display) -> WriteError {
    WriteError::Io(e.to_string())
}

/// What a finished write produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub file_id: String,
    pub size: u64,
    pub md5: String,
    pub sha512: String,
}

/// What a read must find.
pub struct Expected {
    pub size: u64,
    pub sha512: String,
}

#[derive(Clone)]
pub struct DataStore {
    root: PathBuf,
}

impl DataStore {
    pub fn open(root: &Path) -> io::Result<DataStore> {
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(DataStore {
            root: root.to_path_buf(),
        })
    }

    pub fn new_file_id() -> String {
        hex::encode(rand_bytes())
    }

    fn path(&self, file_id: &str) -> PathBuf {
        let shard = file_id.get(..2).unwrap_or("00");
        self.root.join(shard).join(file_id)
    }

    /// Starts writing a new data file sealed with `key`.
    pub fn writer(&self, file_id: String, key: Key, max_size: u64) -> DataWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        let tmp = self.root.join("tmp").join(&file_id);
        let dest = self.path(&file_id);
        let handle =
            tokio::task::spawn_blocking(move || write_file(rx, file_id, key, max_size, tmp, dest));
        DataWriter { tx, handle }
    }

    /// Removes data files (best effort: a leftover is an orphan, removed at
    /// the next start).
    pub async fn remove(&self, file_ids: &[String]) {
        for id in file_ids {
            if let Err(e) = tokio::fs::remove_file(self.path(id)).await {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(file = %id, error = %e, "removing image data");
                }
            }
        }
    }

    /// Removes every temporary file and every data file not in
    /// `referenced`; returns how many went.
    pub fn remove_orphans(&self, referenced: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let is_tmp = entry.file_name() == "tmp";
            for file in std::fs::read_dir(entry.path())? {
                let file = file?;
                let name = file.file_name().to_string_lossy().into_owned();
                if is_tmp || !referenced.contains(&name) {
                    std::fs::remove_file(file.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The plaintext of a data file, decrypted as it is read (integrity
    /// failures end the stream with an error, never with altered bytes).
    pub fn read(
        &self,
        file_id: &str,
        key: Key,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + Sync + 'static {
        let path = self.path(file_id);
        let identity = file_id.as_bytes().to_vec();
        let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(QUEUE);
        tokio::task::spawn_blocking(move || {
            let result = std::fs::File::open(&path)
                .map_err(envelope::EnvelopeError::Io)
                .and_then(|f| {
                    let mut out = ChannelWriter { tx: tx.clone() };
                    envelope::decrypt_stream(
                        &key,
                        &identity,
                        io::BufReader::with_capacity(1 << 20, f),
                        &mut out,
                    )
                });
            if let Err(e) = result {
                tracing::error!(path = %path.display(), error = %e, "reading image data");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        });
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
    }

    /// Decrypts a data file into the new file `dest` (fsynced), checking its
    /// size and sha512; `dest` is removed again when a check fails.
    pub async fn decrypt_to_file(
        &self,
        file_id: &str,
        key: Key,
        dest: &Path,
        expected: Expected,
    ) -> Result<(), Error> {
        let src = self.path(file_id);
        let identity = file_id.as_bytes().to_vec();
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let result = decrypt_file(&src, &identity, &key, &dest, &expected);
            if result.is_err() {
                let _ = std::fs::remove_file(&dest);
            }
            result
        })
        .await
        .map_err(Error::internal)?
    }
}

fn decrypt_file(
    src: &Path,
    identity: &[u8],
    key: &Key,
    dest: &Path,
    expected: &Expected,
) -> Result<(), Error> {
    let input = std::fs::File::open(src).map_err(Error::internal)?;
    let output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| Error::BadRequest(format!("cannot create {}: {e}", dest.display())))?;
    let mut out = HashingWriter {
        inner: io::BufWriter::with_capacity(1 << 20, output),
        sha512: Sha512::new(),
    };
    let size = envelope::decrypt_stream(
        key,
        identity,
        io::BufReader::with_capacity(1 << 20, input),
        &mut out,
    )
    .map_err(|e| Error::Corrupted(e.to_string()))?;
    let digest = hex::encode(out.sha512.finalize());
    if size != expected.size || digest != expected.sha512 {
        return Err(Error::Corrupted(format!(
            "image data does not match its recorded size and sha512 ({size} bytes read, {} expected)",
            expected.size
        )));
    }
    let file = out
        .inner
        .into_inner()
        .map_err(|e| Error::internal(e.into_error()))?;
    file.sync_all().map_err(Error::internal)
}

struct HashingWriter<W: Write> {
    inner: W,
    sha512: Sha512,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha512.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Sends what the decryptor writes to an async reader.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
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

/// A data file being written. Feed it with [`DataWriter::write`], then
/// [`DataWriter::finish`]; dropping it unfinished removes the partial file.
pub struct DataWriter {
    tx: mpsc::Sender<Option<Bytes>>,
    handle: JoinHandle<Result<Written, WriteError>>,
}

impl DataWriter {
    pub async fn write(&mut self, piece: Bytes) -> Result<(), WriteError> {
        if self.tx.send(Some(piece)).await.is_err() {
            // The writer stopped early; its result says why.
            return Err(match (&mut self.handle).await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => WriteError::Io("writer ended early".into()),
                Err(e) => io_err(e),
            });
        }
        Ok(())
    }

    /// Seals, fsyncs and moves the file into place.
    pub async fn finish(self) -> Result<Written, WriteError> {
        let _ = self.tx.send(None).await;
        drop(self.tx);
        self.handle.await.map_err(io_err)?
    }
}

fn write_file(
    mut rx: mpsc::Receiver<Option<Bytes>>,
    file_id: String,
    key: Key,
    max_size: u64,
    tmp: PathBuf,
    dest: PathBuf,
) -> Result<Written, WriteError> {
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(io_err)?;
        let out = io::BufWriter::with_capacity(1 << 20, file);
        let mut enc = Encryptor::new(
            &key,
            file_id.as_bytes(),
            Header::new(DEFAULT_CHUNK_SIZE, 1),
            out,
        )
        .map_err(io_err)?;
        let mut md5 = Md5::new();
        let mut sha512 = Sha512::new();
        let mut size = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(Some(piece)) => {
                    size += piece.len() as u64;
                    if size > max_size {
                        return Err(WriteError::TooLarge(max_size));
                    }
                    md5.update(&piece);
                    sha512.update(&piece);
                    enc.write(&piece).map_err(io_err)?;
                }
                Some(None) => break,
                None => return Err(WriteError::Io("the upload was interrupted".into())),
            }
        }
        let out = enc.finish().map_err(io_err)?;
        let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
        let dir = dest
            .parent()
            .ok_or_else(|| WriteError::Io("data path has no parent".into()))?;
        std::fs::create_dir_all(dir).map_err(io_err)?;
        std::fs::rename(&tmp, &dest).map_err(io_err)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)?;
        Ok(Written {
            file_id: file_id.clone(),
            size,
            md5: hex::encode(md5.finalize()),
            sha512: hex::encode(sha512.finalize()),
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn rand_bytes() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}
