//! Root key on a PKCS#11 token (an HSM; SoftHSM2 in the tests). The root key
//! is generated on the token as non-extractable and sensitive, so it never
//! leaves it: KEKs are sent to the token to be sealed and opened with
//! AES-256-GCM there.
//!
//! Root keys are token objects labelled `himmel-root-<version>`; the highest
//! version is current. Rotation generates the next one on the token; older
//! ones stay for unwrapping until every KEK has been re-wrapped.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroize;

use super::{RootKeyProvider, WrappedKek};
use crate::{Key, KmsError};

const LABEL_PREFIX: &str = "himmel-root-";
const REF_PREFIX: &str = "pkcs11:";
const IV_LEN: usize = 12;

pub struct Pkcs11Root {
    module: PathBuf,
    token: String,
    /// A PKCS#11 session may be used by one thread at a time.
    session: Mutex<Session>,
    // Kept so the library stays initialised as long as the session lives.
    _context: Pkcs11,
}

fn hsm(what: &str) -> impl Fn(cryptoki::error::Error) -> KmsError + '_ {
    move |e| KmsError::RootUnavailable(format!("PKCS#11 {what}: {e}"))
}

impl Pkcs11Root {
    /// Opens the token labelled `token` through the PKCS#11 library at
    /// `module`, logs in with `pin`, and makes sure a root key exists.
    pub fn open(module: &Path, token: &str, pin: &str) -> Result<Pkcs11Root, KmsError> {
        let context = Pkcs11::new(module).map_err(hsm("loading the module"))?;
        context
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(hsm("initialising"))?;
        let slot = context
            .get_slots_with_token()
            .map_err(hsm("listing slots"))?
            .into_iter()
            .find(|slot| {
                context
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label().trim_end() == token)
            })
            .ok_or_else(|| {
                KmsError::RootUnavailable(format!("no PKCS#11 token is labelled {token:?}"))
            })?;
        let session = context
            .open_rw_session(slot)
            .map_err(hsm("opening a session"))?;
        session
            .login(UserType::User, Some(&AuthPin::new(pin.into())))
            .map_err(hsm("logging in"))?;
        let root = Pkcs11Root {
            module: module.to_owned(),
            token: token.to_owned(),
            session: Mutex::new(session),
            _context: context,
        };
        if root.versions()?.is_empty() {
            root.generate(1)?;
        }
        Ok(root)
    }

    /// The versions of the root keys on the token, ascending.
    fn versions(&self) -> Result<Vec<u32>, KmsError> {
        let session = self.session.lock().expect("pkcs11 session lock");
        let handles = session
            .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
            .map_err(hsm("finding keys"))?;
        let mut versions = Vec::new();
        for handle in handles {
            let attrs = session
                .get_attributes(handle, &[AttributeType::Label])
                .map_err(hsm("reading a key label"))?;
            for attr in attrs {
                if let Attribute::Label(label) = attr {
                    let label = String::from_utf8_lossy(&label).into_owned();
                    if let Some(v) = label
                        .strip_prefix(LABEL_PREFIX)
                        .and_then(|v| v.parse().ok())
                    {
                        versions.push(v);
                    }
                }
            }
        }
        versions.sort_unstable();
        Ok(versions)
    }

    fn current_version(&self) -> Result<u32, KmsError> {
        self.versions()?.last().copied().ok_or_else(|| {
            KmsError::RootUnavailable(format!("the token {:?} holds no root key", self.token))
        })
    }

    fn handle(session: &Session, version: u32) -> Result<ObjectHandle, KmsError> {
        let label = format!("{LABEL_PREFIX}{version}");
        session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.clone().into_bytes()),
            ])
            .map_err(hsm("finding the root key"))?
            .into_iter()
            .next()
            .ok_or_else(|| KmsError::RootUnavailable(format!("the token holds no key {label}")))
    }

    fn generate(&self, version: u32) -> Result<(), KmsError> {
        let session = self.session.lock().expect("pkcs11 session lock");
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Label(format!("{LABEL_PREFIX}{version}").into_bytes()),
                ],
            )
            .map_err(hsm("generating the root key"))?;
        Ok(())
    }
}

fn parse_ref(root_ref: &str) -> Option<u32> {
    root_ref.strip_prefix(REF_PREFIX)?.parse().ok()
}

#[async_trait]
impl RootKeyProvider for Pkcs11Root {
    fn describe(&self) -> String {
        format!(
            "PKCS#11 token {:?} via {}",
            self.token,
            self.module.display()
        )
    }

    async fn wrap(
        &self,
        _project_id: &str,
        context: &[u8],
        kek: &Key,
    ) -> Result<WrappedKek, KmsError> {
        let version = self.current_version()?;
        let session = self.session.lock().expect("pkcs11 session lock");
        let key = Self::handle(&session, version)?;
        let mut iv: [u8; IV_LEN] = rand::random();
        let iv_copy = iv;
        let params = GcmParams::new(&mut iv, context, 128.into()).map_err(hsm("GCM parameters"))?;
        let sealed = session
            .encrypt(&Mechanism::AesGcm(params), key, kek.as_bytes())
            .map_err(hsm("wrapping"))?;
        let mut blob = iv_copy.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(WrappedKek {
            root_ref: format!("{REF_PREFIX}{version}"),
            blob,
        })
    }

    async fn unwrap(
        &self,
        _project_id: &str,
        context: &[u8],
        wrapped: &WrappedKek,
    ) -> Result<Key, KmsError> {
        let version = parse_ref(&wrapped.root_ref).ok_or_else(|| {
            KmsError::RootUnavailable(format!(
                "a key wrapped by {} cannot be opened with a PKCS#11 token",
                wrapped.root_ref
            ))
        })?;
        if wrapped.blob.len() <= IV_LEN {
            return Err(KmsError::Corrupted(
                "a wrapped project key is truncated".into(),
            ));
        }
        let session = self.session.lock().expect("pkcs11 session lock");
        let key = Self::handle(&session, version)?;
        let mut iv: [u8; IV_LEN] = wrapped.blob[..IV_LEN].try_into().expect("12 bytes");
        let params = GcmParams::new(&mut iv, context, 128.into()).map_err(hsm("GCM parameters"))?;
        let mut plain = session
            .decrypt(&Mechanism::AesGcm(params), key, &wrapped.blob[IV_LEN..])
            .map_err(|_| {
                KmsError::Corrupted(
                    "a wrapped project key does not open with the token's root key".into(),
                )
            })?;
        let kek = Key::from_slice(&plain);
        plain.zeroize();
        kek.ok_or_else(|| {
            KmsError::Corrupted("an unwrapped project key has the wrong length".into())
        })
    }

    async fn rotate(&self) -> Result<String, KmsError> {
        let next = self.current_version()? + 1;
        self.generate(next)?;
        Ok(format!("{REF_PREFIX}{next}"))
    }

    fn is_current(&self, root_ref: &str) -> bool {
        parse_ref(root_ref).is_some() && parse_ref(root_ref) == self.current_version().ok()
    }
}
