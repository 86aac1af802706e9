//! SSH public keys of keypairs: validation, Nova's MD5 fingerprint, and
//! generated ed25519 keypairs in OpenSSH's formats.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use himmel_core::Error;
use md5::{Digest, Md5};

const KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The fingerprint of an OpenSSH public key line (`type base64 [comment]`):
/// colon-separated hex of the MD5 of the key blob, as Nova shows it.
pub fn fingerprint(public_key: &str) -> Result<String, Error> {
    let invalid =
        || Error::BadRequest("Keypair data is invalid: failed to generate fingerprint".into());
    let mut parts = public_key.split_whitespace();
    let kind = parts.next().ok_or_else(invalid)?;
    let blob = B64
        .decode(parts.next().ok_or_else(invalid)?)
        .map_err(|_| invalid())?;
    if !KEY_TYPES.contains(&kind) || !blob_names(&blob, kind) {
        return Err(invalid());
    }
    let digest = Md5::digest(&blob);
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// The blob starts with its key type as an SSH string.
fn blob_names(blob: &[u8], kind: &str) -> bool {
    let Some(len) = blob.get(..4) else {
        return false;
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    blob.get(4..4 + len) == Some(kind.as_bytes())
}

fn ssh_string(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// A new ed25519 keypair: (public key line, private key in OpenSSH's PEM).
pub fn generate(comment: &str) -> (String, String) {
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let public = signing.verifying_key().to_bytes();
    let mut pub_blob = Vec::new();
    ssh_string(&mut pub_blob, b"ssh-ed25519");
    ssh_string(&mut pub_blob, &public);
    let public_line = format!("ssh-ed25519 {} {comment}", B64.encode(&pub_blob));

    // openssh-key-v1, unencrypted: the private section is a check number
    // twice, the key, the comment, and padding 1, 2, 3, … to 8 bytes.
    let check: u32 = rand::random();
    let mut private = Vec::new();
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    ssh_string(&mut private, b"ssh-ed25519");
    ssh_string(&mut private, &public);
    let mut secret = signing.to_bytes().to_vec();
    secret.extend_from_slice(&public);
    ssh_string(&mut private, &secret);
    ssh_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut body = b"openssh-key-v1\0".to_vec();
    ssh_string(&mut body, b"none");
    ssh_string(&mut body, b"none");
    ssh_string(&mut body, b"");
    body.extend_from_slice(&1u32.to_be_bytes());
    ssh_string(&mut body, &pub_blob);
    ssh_string(&mut body, &private);
    let encoded = B64.encode(&body);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in encoded.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    (public_line, pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_a_fingerprint_and_garbage_has_none() {
        let (public, private) = generate("test");
        assert!(public.starts_with("ssh-ed25519 "));
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let fp = fingerprint(&public).unwrap();
        assert_eq!(fp.len(), 47);
        assert!(fingerprint("ssh-rsa not-base64!").is_err());
        assert!(fingerprint("hello").is_err());
        // A valid blob under the wrong type name.
        let blob = public.split_whitespace().nth(1).unwrap();
        assert!(fingerprint(&format!("ssh-rsa {blob}")).is_err());
    }
}
