//! The envelope decoder on arbitrary bytes: it must never panic, and it
//! must never return plaintext for data it did not seal. The first byte
//! picks a range for the random-access reader.

#![no_main]

use std::io::Cursor;

use himmel_kms::envelope::{open, seal, Decryptor, Header};
use himmel_kms::Key;
use libfuzzer_sys::fuzz_target;

fn key() -> Key {
    Key::from_bytes([7u8; 32])
}

fuzz_target!(|data: &[u8]| {
    let key = key();
    // Arbitrary bytes never open: a forgery would need the key.
    assert!(open(&key, b"fuzz", data).is_err());

    // Random access over arbitrary bytes: errors, never a panic.
    if let Ok(header) = Header::parse(data) {
        let dec = Decryptor::new(&key, b"fuzz", header);
        let start = u64::from(data.first().copied().unwrap_or(0));
        let mut out = Vec::new();
        let _ = dec.read_range(
            &mut Cursor::new(data),
            data.len() as u64,
            start..start + 300,
            &mut out,
        );
    }

    // What we seal opens to exactly what went in; one flipped bit does not.
    let sealed = seal(&key, b"fuzz", 1, data);
    assert_eq!(open(&key, b"fuzz", &sealed).unwrap(), data);
    let mut bent = sealed.clone();
    let i = data.len() % bent.len();
    bent[i] ^= 1;
    assert!(open(&key, b"fuzz", &bent).is_err());
});
