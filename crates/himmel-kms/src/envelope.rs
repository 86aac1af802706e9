//! The chunked envelope format.
//!
//! ```text
//! header  = "HMLC" | version (1) | chunk_size (u32 BE) | key_version (u32 BE) | nonce_prefix (8)
//! chunk i = AES-256-GCM(data key, nonce = nonce_prefix | i (u32 BE),
//!                       aad = "himmel-chunk-v1" | identity | i | chunk_size | key_version | last)
//! file    = header | chunk 0 | chunk 1 | … | chunk n-1   (n >= 1)
//! ```
//!
//! Every chunk but the last holds exactly `chunk_size` bytes of plaintext
//! (the last one 0..=chunk_size), so chunk `i` sits at a computable offset
//! and a range read decrypts only the chunks it touches. The object's
//! identity, the chunk's index and whether it is the last one are
//! authenticated: a chunk moved to another object or position, a dropped
//! tail or an appended chunk all fail to decrypt instead of yielding
//! plaintext. The header's fields are bound too (through the nonce and the
//! associated data), so editing them makes every chunk fail.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::keys::Key;

pub const MAGIC: [u8; 4] = *b"HMLC";
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 4 + 1 + 4 + 4 + 8;
pub const TAG_LEN: usize = 16;
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// The nonce holds the chunk index in 32 bits.
const MAX_CHUNKS: u64 = 1 << 32;

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Authentication failed: the data was altered, swapped, or the key or
    /// identity is wrong. Never returned as plaintext.
    #[error("encrypted data is corrupted: {0}")]
    Corrupted(String),
    #[error("encrypted data is truncated")]
    Truncated,
    #[error("not an encrypted himmel object: {0}")]
    BadHeader(String),
    #[error("object too large for the envelope format")]
    TooLarge,
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub chunk_size: u32,
    pub key_version: u32,
    pub nonce_prefix: [u8; 8],
}

impl Header {
    pub fn new(chunk_size: u32, key_version: u32) -> Header {
        Header {
            chunk_size: chunk_size.clamp(1, MAX_CHUNK_SIZE),
            key_version,
            nonce_prefix: rand::random(),
        }
    }

    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = FORMAT_VERSION;
        b[5..9].copy_from_slice(&self.chunk_size.to_be_bytes());
        b[9..13].copy_from_slice(&self.key_version.to_be_bytes());
        b[13..21].copy_from_slice(&self.nonce_prefix);
        b
    }

    pub fn parse(b: &[u8]) -> Result<Header, EnvelopeError> {
        if b.len() < HEADER_LEN {
            return Err(EnvelopeError::BadHeader("shorter than a header".into()));
        }
        if b[..4] != MAGIC {
            return Err(EnvelopeError::BadHeader("wrong magic".into()));
        }
        if b[4] != FORMAT_VERSION {
            return Err(EnvelopeError::BadHeader(format!(
                "unsupported format version {}",
                b[4]
            )));
        }
        let chunk_size = u32::from_be_bytes(b[5..9].try_into().expect("4 bytes"));
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(EnvelopeError::BadHeader(format!(
                "invalid chunk size {chunk_size}"
            )));
        }
        Ok(Header {
            chunk_size,
            key_version: u32::from_be_bytes(b[9..13].try_into().expect("4 bytes")),
            nonce_prefix: b[13..21].try_into().expect("8 bytes"),
        })
    }

    fn sealed_chunk_len(&self) -> u64 {
        u64::from(self.chunk_size) + TAG_LEN as u64
    }

    /// Size of the envelope of `plain_len` bytes, header included.
    pub fn envelope_len(&self, plain_len: u64) -> u64 {
        HEADER_LEN as u64 + plain_len + self.chunk_count(plain_len) * TAG_LEN as u64
    }

    /// Plaintext length of an envelope of `envelope_len` bytes, or an error
    /// when no plaintext length gives that size (the data was cut or grown).
    pub fn plain_len(&self, envelope_len: u64) -> Result<u64, EnvelopeError> {
        let body = envelope_len
            .checked_sub(HEADER_LEN as u64)
            .ok_or(EnvelopeError::Truncated)?;
        let full = body / self.sealed_chunk_len();
        let rest = body % self.sealed_chunk_len();
        // The last chunk always exists; it is `rest` bytes, or a whole
        // sealed chunk when the plaintext fills its chunks exactly.
        let plain = if rest >= TAG_LEN as u64 {
            full * u64::from(self.chunk_size) + rest - TAG_LEN as u64
        } else if rest == 0 && full > 0 {
            full * u64::from(self.chunk_size)
        } else {
            return Err(EnvelopeError::Truncated);
        };
        if self.envelope_len(plain) != envelope_len {
            return Err(EnvelopeError::Truncated);
        }
        Ok(plain)
    }

    /// Number of chunks holding `plain_len` bytes.
    pub fn chunk_count(&self, plain_len: u64) -> u64 {
        if plain_len == 0 {
            1
        } else {
            plain_len.div_ceil(u64::from(self.chunk_size))
        }
    }
}

fn nonce(prefix: &[u8; 8], index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(prefix);
    n[8..].copy_from_slice(&(index as u32).to_be_bytes());
    n
}

/// Every header field is bound: the nonce prefix through the nonce, the
/// rest here (a changed chunk size would otherwise go unnoticed in an
/// object of one chunk).
fn chunk_aad(identity: &[u8], index: u64, header: &Header, last: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(40 + identity.len());
    aad.extend_from_slice(b"himmel-chunk-v1");
    aad.extend_from_slice(&(identity.len() as u64).to_be_bytes());
    aad.extend_from_slice(identity);
    aad.extend_from_slice(&index.to_be_bytes());
    aad.extend_from_slice(&header.chunk_size.to_be_bytes());
    aad.extend_from_slice(&header.key_version.to_be_bytes());
    aad.push(u8::from(last));
    aad
}

/// Streams plaintext into an envelope, holding at most two chunks in memory.
pub struct Encryptor<W: Write> {
    cipher: Aes256Gcm,
    header: Header,
    identity: Vec<u8>,
    buf: Vec<u8>,
    index: u64,
    out: W,
}

impl<W: Write> Encryptor<W> {
    /// Writes the header to `out`. `identity` names the item (bucket/key,
    /// volume id…) so its chunks cannot be passed off as another item's.
    pub fn new(
        key: &Key,
        identity: &[u8],
        header: Header,
        mut out: W,
    ) -> Result<Self, EnvelopeError> {
        out.write_all(&header.to_bytes())?;
        Ok(Encryptor {
            cipher: key.cipher(),
            header,
            identity: identity.to_vec(),
            buf: Vec::with_capacity(2 * header.chunk_size as usize),
            index: 0,
            out,
        })
    }

    fn seal(&mut self, len: usize, last: bool) -> Result<(), EnvelopeError> {
        if self.index >= MAX_CHUNKS {
            return Err(EnvelopeError::TooLarge);
        }
        let aad = chunk_aad(&self.identity, self.index, &self.header, last);
        let n = nonce(&self.header.nonce_prefix, self.index);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&n), &aad, &mut self.buf[..len])
            .map_err(|_| EnvelopeError::TooLarge)?;
        self.out.write_all(&self.buf[..len])?;
        self.out.write_all(&tag)?;
        self.buf.drain(..len);
        self.index += 1;
        Ok(())
    }

    pub fn write(&mut self, mut data: &[u8]) -> Result<(), EnvelopeError> {
        let size = self.header.chunk_size as usize;
        while !data.is_empty() {
            let room = 2 * size - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            // A full chunk is sealed only once more data follows it: until
            // then it might be the last one.
            while self.buf.len() > size {
                self.seal(size, false)?;
            }
        }
        Ok(())
    }

    /// Seals the last chunk and returns the writer.
    pub fn finish(mut self) -> Result<W, EnvelopeError> {
        let len = self.buf.len();
        self.seal(len, true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Opens the chunks of one envelope.
pub struct Decryptor {
    cipher: Aes256Gcm,
    header: Header,
    identity: Vec<u8>,
}

impl Decryptor {
    pub fn new(key: &Key, identity: &[u8], header: Header) -> Decryptor {
        Decryptor {
            cipher: key.cipher(),
            header,
            identity: identity.to_vec(),
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Decrypts sealed chunk `index` in place; returns the plaintext length.
    pub fn open_chunk(
        &self,
        index: u64,
        last: bool,
        sealed: &mut [u8],
    ) -> Result<usize, EnvelopeError> {
        if sealed.len() < TAG_LEN || index >= MAX_CHUNKS {
            return Err(EnvelopeError::Truncated);
        }
        let (body, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
        let aad = chunk_aad(&self.identity, index, &self.header, last);
        let n = nonce(&self.header.nonce_prefix, index);
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(&n), &aad, body, Tag::from_slice(tag))
            .map_err(|_| {
                EnvelopeError::Corrupted(format!("chunk {index} failed authentication"))
            })?;
        Ok(body.len())
    }

    /// Decrypts the plaintext bytes `range` of the envelope in `src`
    /// (`envelope_len` bytes in all), writing them to `out`. Reads and
    /// decrypts only the chunks the range touches, one at a time.
    pub fn read_range<R: Read + Seek, W: Write>(
        &self,
        src: &mut R,
        envelope_len: u64,
        range: Range<u64>,
        out: &mut W,
    ) -> Result<(), EnvelopeError> {
        let plain_len = self.header.plain_len(envelope_len)?;
        let end = range.end.min(plain_len);
        if range.start >= end && !(range.start == 0 && plain_len == 0) {
            return Ok(());
        }
        let size = u64::from(self.header.chunk_size);
        let last_chunk = self.header.chunk_count(plain_len) - 1;
        let first = range.start / size;
        let last = if end == 0 { 0 } else { (end - 1) / size };
        let mut buf = vec![0u8; self.header.sealed_chunk_len() as usize];
        for index in first..=last.min(last_chunk) {
            let chunk_plain = if index == last_chunk {
                plain_len - index * size
            } else {
                size
            };
            let sealed_len = chunk_plain as usize + TAG_LEN;
            src.seek(SeekFrom::Start(
                HEADER_LEN as u64 + index * self.header.sealed_chunk_len(),
            ))?;
            src.read_exact(&mut buf[..sealed_len])
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => EnvelopeError::Truncated,
                    _ => EnvelopeError::Io(e),
                })?;
            self.open_chunk(index, index == last_chunk, &mut buf[..sealed_len])?;
            let chunk_start = index * size;
            let from = range.start.saturating_sub(chunk_start) as usize;
            let to = (end - chunk_start).min(chunk_plain) as usize;
            out.write_all(&buf[from..to])?;
        }
        Ok(())
    }
}

/// Decrypts a whole envelope read from `src` (header first) to `out`, in
/// constant memory. `identity` must be the one it was sealed with.
pub fn decrypt_stream<R: Read, W: Write>(
    key: &Key,
    identity: &[u8],
    mut src: R,
    out: &mut W,
) -> Result<u64, EnvelopeError> {
    let mut head = [0u8; HEADER_LEN];
    read_full(&mut src, &mut head)?
        .eq(&HEADER_LEN)
        .then_some(())
        .ok_or(EnvelopeError::Truncated)?;
    let header = Header::parse(&head)?;
    let dec = Decryptor::new(key, identity, header);
    let sealed_len = header.sealed_chunk_len() as usize;
    // Read one sealed chunk ahead: a chunk is the last one exactly when
    // nothing follows it.
    let mut cur = vec![0u8; sealed_len];
    let mut next = vec![0u8; sealed_len];
    let mut cur_len = read_full(&mut src, &mut cur)?;
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        let next_len = if cur_len == sealed_len {
            read_full(&mut src, &mut next)?
        } else {
            0
        };
        let last = next_len == 0;
        if !last && cur_len != sealed_len {
            return Err(EnvelopeError::Truncated);
        }
        let n = dec.open_chunk(index, last, &mut cur[..cur_len])?;
        out.write_all(&cur[..n])?;
        total += n as u64;
        if last {
            return Ok(total);
        }
        std::mem::swap(&mut cur, &mut next);
        cur_len = next_len;
        index += 1;
    }
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_full<R: Read>(src: &mut R, buf: &mut [u8]) -> Result<usize, EnvelopeError> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Encrypts `plain` into a new envelope in memory (small items: secrets).
pub fn seal(key: &Key, identity: &[u8], key_version: u32, plain: &[u8]) -> Vec<u8> {
    let header = Header::new(DEFAULT_CHUNK_SIZE, key_version);
    let mut enc = Encryptor::new(key, identity, header, Vec::with_capacity(plain.len() + 64))
        .expect("writing to a Vec cannot fail");
    enc.write(plain).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Opens an envelope held in memory.
pub fn open(key: &Key, identity: &[u8], envelope: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::with_capacity(envelope.len());
    decrypt_stream(key, identity, envelope, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn encrypt(key: &Key, id: &[u8], chunk: u32, plain: &[u8], pieces: usize) -> Vec<u8> {
        let mut enc = Encryptor::new(key, id, Header::new(chunk, 7), Vec::new()).unwrap();
        for part in plain.chunks(pieces.max(1)) {
            enc.write(part).unwrap();
        }
        enc.finish().unwrap()
    }

    #[test]
    fn round_trips_at_every_boundary() {
        let key = Key::generate();
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 100] {
            let plain = sample(len);
            for pieces in [1, 7, 16, 1000] {
                let env = encrypt(&key, b"obj", 16, &plain, pieces);
                let header = Header::parse(&env).unwrap();
                assert_eq!(
                    header.envelope_len(len as u64),
                    env.len() as u64,
                    "len {len}"
                );
                assert_eq!(header.plain_len(env.len() as u64).unwrap(), len as u64);
                assert_eq!(
                    open(&key, b"obj", &env).unwrap(),
                    plain,
                    "len {len} pieces {pieces}"
                );
            }
        }
    }

    #[test]
    fn range_reads_match_the_plaintext() {
        let key = Key::generate();
        let plain = sample(100);
        let env = encrypt(&key, b"obj", 16, &plain, 9);
        let dec = Decryptor::new(&key, b"obj", Header::parse(&env).unwrap());
        for (a, b) in [
            (0, 100),
            (0, 1),
            (15, 17),
            (16, 32),
            (31, 90),
            (99, 100),
            (50, 500),
            (100, 120),
        ] {
            let mut out = Vec::new();
            dec.read_range(&mut Cursor::new(&env), env.len() as u64, a..b, &mut out)
                .unwrap();
            let b = b.min(100);
            assert_eq!(
                out,
                plain[a as usize..(b.max(a)) as usize],
                "range {a}..{b}"
            );
        }
    }

    #[test]
    fn tampering_is_detected_never_decrypted() {
        let key = Key::generate();
        let plain = sample(64);
        let env = encrypt(&key, b"obj-a", 16, &plain, 64);
        // Flipped byte anywhere past the magic.
        for i in HEADER_LEN..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 0x40;
            assert!(open(&key, b"obj-a", &bad).is_err(), "flip at {i}");
        }
        // Header fields are bound too, even where a change would not move
        // any chunk boundary (found by the fuzz target).
        let mut bad = env.clone();
        bad[12] ^= 1; // key version
        assert!(open(&key, b"obj-a", &bad).is_err());
        let small = encrypt(&key, b"obj-a", 16, &sample(8), 8);
        let mut bad = small.clone();
        bad[8] ^= 1; // chunk size 16 -> 17: still one chunk
        assert!(open(&key, b"obj-a", &bad).is_err());
        // Wrong identity, wrong key.
        assert!(open(&key, b"obj-b", &env).is_err());
        assert!(open(&Key::generate(), b"obj-a", &env).is_err());
        // Dropped last chunk (cut at a chunk boundary): the new last chunk
        // was not sealed as last.
        let cut = HEADER_LEN + 3 * (16 + TAG_LEN);
        assert!(matches!(
            open(&key, b"obj-a", &env[..cut]),
            Err(EnvelopeError::Corrupted(_))
        ));
        // Cut mid-chunk, or only a header.
        assert!(open(&key, b"obj-a", &env[..env.len() - 3]).is_err());
        assert!(open(&key, b"obj-a", &env[..HEADER_LEN]).is_err());
        assert!(open(&key, b"obj-a", &env[..5]).is_err());
        // Swapped chunks.
        let mut swapped = env.clone();
        let c = 16 + TAG_LEN;
        let (a, b) = (HEADER_LEN, HEADER_LEN + c);
        let first: Vec<u8> = swapped[a..a + c].to_vec();
        swapped.copy_within(b..b + c, a);
        swapped[b..b + c].copy_from_slice(&first);
        assert!(open(&key, b"obj-a", &swapped).is_err());
    }

    #[test]
    fn a_chunk_from_another_object_does_not_open() {
        let key = Key::generate();
        let a = encrypt(&key, b"a", 16, &sample(48), 48);
        let b = encrypt(&key, b"b", 16, &sample(48), 48);
        let mut mixed = a.clone();
        let c = 16 + TAG_LEN;
        mixed[HEADER_LEN..HEADER_LEN + c].copy_from_slice(&b[HEADER_LEN..HEADER_LEN + c]);
        assert!(open(&key, b"a", &mixed).is_err());
    }

    #[test]
    fn garbage_headers_are_errors() {
        let key = Key::generate();
        for bad in [
            &b""[..],
            b"HMLC",
            b"XXXX\x01\0\0\0\x10\0\0\0\0\0\0\0\0\0\0\0\0",
            b"HMLC\x09\0\0\0\x10\0\0\0\0\0\0\0\0\0\0\0\0",
            b"HMLC\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ] {
            assert!(open(&key, b"x", bad).is_err());
        }
    }
}
