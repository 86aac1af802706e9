//! Small objects sealed into their metadata row instead of a file.
//!
//! A single PUT (or copy) whose body is at most [`INLINE_MAX`] bytes is
//! encrypted in memory and the sealed bytes travel with the object row
//! through the group commit ([`crate::commit`]): they are written in the
//! transaction that makes the version visible, so the data is durable
//! exactly when the version is, and a crash leaves either both or neither.
//! No file is created, so there is no file fsync, rename or directory
//! fsync, and no orphan to sweep.
//!
//! ```text
//! sealed = version (1) | key kind (1) | wrapped key length (u16 BE) | wrapped data key | envelope
//! ```
//!
//! The encryption is the segment files' own: a fresh data key per object,
//! wrapped under the project key (or the customer's key), and the chunked
//! AES-256-GCM envelope. Where a file binds its file id, the sealed bytes
//! bind the version's row id ([`identity`]), both as the envelope's
//! identity and as the wrapped key's context: copied into another row they
//! fail to open instead of yielding the other object's data.
//!
//! Why 64 KiB: below it the fixed cost of a file (create, two fsyncs, a
//! directory entry, an inode) dominates a PUT; above it the database's own
//! write amplification (its log, then the table, plus a third for the
//! base64 text) costs more disk bandwidth than a file would, large rows
//! slow every transaction of the batch they share, and every read of the
//! version row (HEAD too) carries the data. 64 KiB is also one envelope
//! chunk, so a range read opens one chunk either way.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use himmel_kms::envelope;
use himmel_kms::Key;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};

use crate::engine::{EngineError, KeyKind, SegmentKey, Written};

/// Objects up to this many plaintext bytes are stored inline.
pub const INLINE_MAX: u64 = 64 * 1024;

const FORMAT: u8 = 1;
/// The key version field of the envelope header, as segment files write it.
const KEY_VERSION: u32 = 1;

/// What inline data of the version `object_id` is bound to. Distinct from
/// every file id (those are bare hex), so a file's key or chunks cannot
/// pass for inline data either.
pub fn identity(object_id: &str) -> String {
    format!("s3-inline/{object_id}")
}

/// The start of a request body: all of it when it is small enough to
/// store inline, else what was read before that was clear.
pub enum Gathered {
    Small(Vec<u8>),
    /// Pieces read so far; the rest is still in the body.
    Large(Vec<Bytes>),
}

/// Reads `body` until it ends or holds more than [`INLINE_MAX`] bytes, so
/// at most one piece past the limit is held before the caller decides.
pub async fn gather<S, E>(body: &mut S, max_size: u64) -> Result<Gathered, EngineError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut pieces = Vec::new();
    let mut size = 0u64;
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| EngineError::Body(e.to_string()))?;
        size += piece.len() as u64;
        if size > max_size {
            return Err(EngineError::TooLarge);
        }
        pieces.push(piece);
        if size > INLINE_MAX {
            return Ok(Gathered::Large(pieces));
        }
    }
    let mut plain = Vec::with_capacity(size as usize);
    for piece in &pieces {
        plain.extend_from_slice(piece);
    }
    Ok(Gathered::Small(plain))
}

/// Size, MD5 (the ETag) and the client's checksums of a small body.
pub fn measure(plain: &[u8], mut checksum: ChecksumHasher) -> Written {
    let mut md5 = Md5::new();
    md5.update(plain);
    checksum.update(plain);
    Written {
        size: plain.len() as u64,
        md5: md5.finalize(),
        checksum: checksum.finalize(),
    }
}

/// Encrypts `plain` for the version `object_id` under `key`, whose data key
/// must have been wrapped with [`identity`] as its context.
pub fn seal(key: &SegmentKey, object_id: &str, plain: &[u8]) -> Vec<u8> {
    let envelope = envelope::seal(&key.key, identity(object_id).as_bytes(), KEY_VERSION, plain);
    let mut out = Vec::with_capacity(4 + key.wrapped.len() + envelope.len());
    out.push(FORMAT);
    out.push(key.kind as u8);
    out.extend_from_slice(&(key.wrapped.len() as u16).to_be_bytes());
    out.extend_from_slice(&key.wrapped);
    out.extend_from_slice(&envelope);
    out
}

/// The parts of sealed inline data.
pub struct Sealed<'a> {
    pub kind: KeyKind,
    pub wrapped: &'a [u8],
    envelope: &'a [u8],
}

/// Splits sealed inline data into its stored key and its envelope.
pub fn parse(sealed: &[u8]) -> Result<Sealed<'_>, EngineError> {
    let damaged = |what: &str| EngineError::Corrupted(format!("inline object data: {what}"));
    let [format, kind, l0, l1, rest @ ..] = sealed else {
        return Err(damaged("truncated"));
    };
    if *format != FORMAT {
        return Err(damaged("unknown format"));
    }
    let kind = match kind {
        1 => KeyKind::Project,
        2 => KeyKind::Customer,
        _ => return Err(damaged("unknown key kind")),
    };
    let len = u16::from_be_bytes([*l0, *l1]) as usize;
    if rest.len() < len {
        return Err(damaged("truncated"));
    }
    let (wrapped, envelope) = rest.split_at(len);
    Ok(Sealed {
        kind,
        wrapped,
        envelope,
    })
}

impl Sealed<'_> {
    /// Decrypts the data of the version `object_id` with its opened data
    /// key; fails (never yields other bytes) when the data was sealed for
    /// another version or altered.
    pub fn open(&self, key: &Key, object_id: &str) -> Result<Vec<u8>, EngineError> {
        Ok(envelope::open(
            key,
            identity(object_id).as_bytes(),
            self.envelope,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SegmentKey {
        SegmentKey {
            key: Key::generate(),
            kind: KeyKind::Customer,
            wrapped: vec![9; 40],
        }
    }

    #[test]
    fn sealed_data_opens_only_for_its_own_version() {
        let k = key();
        for len in [0usize, 1, 4096, INLINE_MAX as usize] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let sealed = seal(&k, "v1", &plain);
            if len >= 64 {
                assert!(!sealed.windows(64).any(|w| w == &plain[..64]));
            }
            let parts = parse(&sealed).unwrap();
            assert_eq!(
                (parts.kind, parts.wrapped),
                (KeyKind::Customer, &[9u8; 40][..])
            );
            assert_eq!(parts.open(&k.key, "v1").unwrap(), plain);
            assert!(parts.open(&k.key, "v2").is_err(), "{len} bytes");
            assert!(parts.open(&Key::generate(), "v1").is_err());
        }
        let mut sealed = seal(&k, "v1", b"hello");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(parse(&sealed).unwrap().open(&k.key, "v1").is_err());
        assert!(parse(&[1, 1, 0]).is_err());
        assert!(parse(&[7, 1, 0, 0]).is_err());
    }

    #[tokio::test]
    async fn bodies_up_to_the_limit_are_gathered_whole() {
        let pieces = |n: usize| {
            futures::stream::iter(
                vec![0u8; n]
                    .chunks(1000)
                    .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            )
        };
        let limit = INLINE_MAX as usize;
        for (n, small) in [(0, true), (limit, true), (limit + 1, false)] {
            let mut body = pieces(n);
            match gather(&mut body, u64::MAX).await.unwrap() {
                Gathered::Small(b) => assert!(small && b.len() == n),
                Gathered::Large(head) => {
                    assert!(!small);
                    let held: usize = head.iter().map(Bytes::len).sum();
                    assert!(held > limit && held <= limit + 1000);
                }
            }
        }
        let mut body = pieces(5000);
        assert!(matches!(
            gather(&mut body, 4999).await,
            Err(EngineError::TooLarge)
        ));
    }
}
