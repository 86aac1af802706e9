//! The Key Manager's service layer: secrets (payloads sealed under the
//! project's key hierarchy, never stored or logged in the clear), their
//! user metadata and read ACLs, containers and orders. The API handlers
//! call this; it calls the stores.

pub mod acl_store;
pub mod container_store;
pub mod content;
pub mod model;
pub mod order_store;
mod query;
pub mod secret_store;

use base64::Engine;
use himmel_core::{Error, RequestContext};
use himmel_db::Db;
use himmel_http::pipeline::forbidden;
use himmel_http::Operation;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::policy;
use crate::Keyring;
use model::{Acl, AclChange, AclEntity, Container, ContainerRef, NewSecret, Order, Secret, ACTIVE};

/// The Key Manager's state: the store and the key hierarchy.
#[derive(Clone)]
pub struct KeyManager {
    db: Db,
    keyring: Keyring,
}

pub fn now_micros() -> i64 {
    himmel_core::time::now().timestamp_micros()
}

/// The item identity a secret's payload is sealed under: binds the
/// ciphertext to this secret, so it cannot be moved to another.
fn payload_identity(secret_id: &str) -> Vec<u8> {
    format!("secret/{secret_id}").into_bytes()
}

pub fn container_not_found() -> Error {
    Error::NotFound("Container not found.".into())
}

pub fn order_not_found() -> Error {
    Error::NotFound("Order not found.".into())
}

/// Key orders: the algorithm, its key sizes and modes.
pub const ORDER_ALGORITHM: &str = "aes";
pub const ORDER_BIT_LENGTHS: &[i64] = &[128, 192, 256];
pub const ORDER_MODES: &[&str] = &["cbc", "ctr", "gcm", "cfb", "ofb", "xts"];

pub fn secret_not_found() -> Error {
    Error::NotFound("Secret not found.".into())
}

/// Resource ids are UUIDs; anything else cannot name one.
pub fn is_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

impl KeyManager {
    pub fn new(db: Db, keyring: Keyring) -> KeyManager {
        KeyManager { db, keyring }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Creates a secret in `project_id`; with a payload it is sealed first.
    pub async fn create_secret(
        &self,
        project_id: &str,
        creator_id: &str,
        new: NewSecret,
    ) -> Result<Secret, Error> {
        let now = now_micros();
        let id = uuid::Uuid::new_v4().to_string();
        let (content_type, sealed) = match &new.payload {
            Some((ct, plain)) => (
                Some(ct.clone()),
                Some(self.seal(project_id, &id, plain).await?),
            ),
            None => (None, None),
        };
        let secret = Secret {
            id,
            project_id: project_id.to_owned(),
            creator_id: creator_id.to_owned(),
            name: new.name,
            secret_type: new.secret_type,
            algorithm: new.algorithm,
            bit_length: new.bit_length,
            mode: new.mode,
            expiration: new.expiration,
            content_type,
            status: ACTIVE.into(),
            created_at: now,
            updated_at: now,
        };
        secret_store::insert(&self.db, &secret, sealed.as_deref()).await?;
        Ok(secret)
    }

    async fn seal(&self, project_id: &str, secret_id: &str, plain: &[u8]) -> Result<String, Error> {
        let sealed = self
            .keyring
            .seal(project_id, &payload_identity(secret_id), plain)
            .await?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// A secret that exists and has not expired, with its read ACL, after
    /// checking that `op` allows the caller on it.
    pub async fn secret_for(
        &self,
        op: &'static Operation,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<(Secret, Acl), Error> {
        let secret = self.live_secret(id).await?;
        let acl = self
            .authorize(
                op,
                ctx,
                AclEntity::Secret,
                &secret.id,
                &secret.project_id,
                &secret.creator_id,
            )
            .await?;
        Ok((secret, acl))
    }

    /// Like [`KeyManager::secret_for`], but an expired secret may still be
    /// found (to delete it).
    pub async fn any_secret_for(
        &self,
        op: &'static Operation,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Secret, Error> {
        if !is_uuid(id) {
            return Err(secret_not_found());
        }
        let secret = secret_store::get(&self.db, id)
            .await?
            .ok_or_else(secret_not_found)?;
        self.authorize(
            op,
            ctx,
            AclEntity::Secret,
            &secret.id,
            &secret.project_id,
            &secret.creator_id,
        )
        .await?;
        Ok(secret)
    }

    async fn live_secret(&self, id: &str) -> Result<Secret, Error> {
        if !is_uuid(id) {
            return Err(secret_not_found());
        }
        match secret_store::get(&self.db, id).await? {
            Some(s) if !s.is_expired(now_micros()) => Ok(s),
            _ => Err(secret_not_found()),
        }
    }

    /// Loads the resource's ACL and applies `op`'s grants.
    pub async fn authorize(
        &self,
        op: &'static Operation,
        ctx: &RequestContext,
        entity: AclEntity,
        id: &str,
        project_id: &str,
        creator_id: &str,
    ) -> Result<Acl, Error> {
        let acl = acl_store::get(&self.db, entity, id).await?;
        let resource = model::resource(project_id, creator_id, &acl);
        if policy::allows(policy::grants(op), ctx, &resource) {
            Ok(acl)
        } else {
            Err(forbidden(op.name))
        }
    }

    /// The plaintext of a secret's payload.
    pub async fn read_payload(&self, secret: &Secret) -> Result<Vec<u8>, Error> {
        let sealed = secret_store::sealed(&self.db, &secret.id)
            .await?
            .ok_or_else(|| {
                Error::NotFound("Not Found. Sorry but your secret has no payload.".into())
            })?;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(sealed.as_bytes())
            .map_err(|_| {
                Error::Corrupted(format!(
                    "the stored payload of secret {} is not readable",
                    secret.id
                ))
            })?;
        Ok(self
            .keyring
            .open(&secret.project_id, &payload_identity(&secret.id), &sealed)
            .await?)
    }

    /// Stores the payload of a secret created without one (two-step create).
    pub async fn store_payload(
        &self,
        secret: &Secret,
        content_type: &str,
        plain: &[u8],
    ) -> Result<(), Error> {
        if secret.content_type.is_some() {
            return Err(already_has_data());
        }
        let sealed = self.seal(&secret.project_id, &secret.id, plain).await?;
        if secret_store::set_payload(&self.db, &secret.id, content_type, &sealed, now_micros())
            .await?
        {
            Ok(())
        } else {
            Err(already_has_data())
        }
    }

    /// Creates a container of secrets that all live in `project_id`.
    pub async fn create_container(
        &self,
        project_id: &str,
        creator_id: &str,
        name: Option<String>,
        container_type: String,
        secret_refs: Vec<ContainerRef>,
    ) -> Result<Container, Error> {
        for r in &secret_refs {
            self.project_secret(project_id, r).await?;
        }
        let now = now_micros();
        let container = Container {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project_id.to_owned(),
            creator_id: creator_id.to_owned(),
            name,
            container_type,
            status: ACTIVE.into(),
            secret_refs,
            created_at: now,
            updated_at: now,
        };
        container_store::insert(&self.db, &container).await?;
        Ok(container)
    }

    /// A container's reference must name a live secret of its project.
    async fn project_secret(&self, project_id: &str, r: &ContainerRef) -> Result<(), Error> {
        let missing =
            || Error::NotFound(format!("Secret provided for '{}' doesn't exist.", r.name));
        let secret = self
            .live_secret(&r.secret_id)
            .await
            .map_err(|_| missing())?;
        if secret.project_id != project_id {
            return Err(missing());
        }
        Ok(())
    }

    /// A container, after checking that `op` allows the caller on it.
    pub async fn container_for(
        &self,
        op: &'static Operation,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<(Container, Acl), Error> {
        if !is_uuid(id) {
            return Err(container_not_found());
        }
        let c = container_store::get(&self.db, id)
            .await?
            .ok_or_else(container_not_found)?;
        let acl = self
            .authorize(
                op,
                ctx,
                AclEntity::Container,
                &c.id,
                &c.project_id,
                &c.creator_id,
            )
            .await?;
        Ok((c, acl))
    }

    pub async fn add_container_secret(&self, c: &Container, r: ContainerRef) -> Result<(), Error> {
        if c.container_type != "generic" {
            return Err(Error::BadRequest(
                "Only 'generic' containers can be modified.".into(),
            ));
        }
        self.project_secret(&c.project_id, &r).await?;
        if container_store::add_secret(&self.db, &c.id, &r).await? {
            Ok(())
        } else {
            Err(Error::Conflict(
                "The secret is already in the container.".into(),
            ))
        }
    }

    pub async fn remove_container_secret(
        &self,
        c: &Container,
        r: ContainerRef,
    ) -> Result<(), Error> {
        if c.container_type != "generic" {
            return Err(Error::BadRequest(
                "Only 'generic' containers can be modified.".into(),
            ));
        }
        if container_store::remove_secret(&self.db, &c.id, &r).await? {
            Ok(())
        } else {
            Err(Error::NotFound(
                "Secret provided doesn't exist in the container".into(),
            ))
        }
    }

    pub async fn delete_container(&self, c: &Container) -> Result<(), Error> {
        if container_store::delete(&self.db, &c.id).await? {
            Ok(())
        } else {
            Err(container_not_found())
        }
    }

    /// Fulfils a key order at once: a random symmetric key of the asked
    /// size becomes a secret of the project, and the order is ACTIVE.
    pub async fn create_key_order(
        &self,
        project_id: &str,
        creator_id: &str,
        meta: serde_json::Value,
        mut new: NewSecret,
    ) -> Result<Order, Error> {
        let bits = new.bit_length.unwrap_or(256);
        let mut key = Zeroizing::new(vec![0u8; (bits / 8) as usize]);
        rand::rngs::OsRng.fill_bytes(&mut key);
        new.payload = Some((content::OCTET_STREAM.to_owned(), key));
        new.secret_type = "symmetric".into();
        let secret = self.create_secret(project_id, creator_id, new).await?;
        let now = now_micros();
        let order = Order {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project_id.to_owned(),
            creator_id: creator_id.to_owned(),
            order_type: "key".into(),
            meta,
            status: ACTIVE.into(),
            secret_id: Some(secret.id),
            created_at: now,
            updated_at: now,
        };
        order_store::insert(&self.db, &order).await?;
        Ok(order)
    }

    /// An order, after checking that `op` allows the caller on it (orders
    /// have no ACL: the project and the role decide).
    pub async fn order_for(
        &self,
        op: &'static Operation,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Order, Error> {
        if !is_uuid(id) {
            return Err(order_not_found());
        }
        let order = order_store::get(&self.db, id)
            .await?
            .ok_or_else(order_not_found)?;
        let acl = Acl::default();
        let resource = model::resource(&order.project_id, &order.creator_id, &acl);
        if !policy::allows(policy::grants(op), ctx, &resource) {
            return Err(forbidden(op.name));
        }
        Ok(order)
    }

    pub async fn delete_order(&self, order: &Order) -> Result<(), Error> {
        if order_store::delete(&self.db, &order.id).await? {
            Ok(())
        } else {
            Err(order_not_found())
        }
    }

    pub async fn delete_secret(&self, secret: &Secret) -> Result<(), Error> {
        if secret_store::delete(&self.db, &secret.id).await? {
            Ok(())
        } else {
            Err(secret_not_found())
        }
    }

    /// Applies a PUT (`replace`) or PATCH to a resource's read ACL.
    pub async fn change_acl(
        &self,
        entity: AclEntity,
        id: &str,
        current: &Acl,
        change: AclChange,
        replace: bool,
    ) -> Result<(), Error> {
        let acl = if replace {
            Acl {
                project_access: change.project_access.unwrap_or(true),
                users: change.users.unwrap_or_default(),
                ..current.clone()
            }
        } else {
            Acl {
                project_access: change.project_access.unwrap_or(current.project_access),
                users: change.users.unwrap_or_else(|| current.users.clone()),
                ..current.clone()
            }
        };
        acl_store::put(&self.db, entity, id, &acl, now_micros()).await
    }

    pub async fn delete_acl(&self, entity: AclEntity, id: &str) -> Result<(), Error> {
        acl_store::delete(&self.db, entity, id).await
    }
}

fn already_has_data() -> Error {
    Error::Conflict("Secret already has data, cannot modify it.".into())
}
