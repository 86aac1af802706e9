//! `/os-keypairs`: SSH keys of the calling user, by name. Imported, or
//! generated here (ed25519) when no public key is given, as microversions
//! before 2.92 allow; the private key is shown once and never stored.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline, Target};
use serde::Deserialize;
use serde_json::{json, Value};

use super::wire;
use crate::keys;
use crate::model::{Keypair, Resource};
use crate::policy::*;
use crate::store::{self, db_err, quota};
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/os-keypairs",
            p.on(&SERVICE, &KEYPAIRS, MethodFilter::GET, list)
                .merge(p.on(&SERVICE, &KEYPAIRS, MethodFilter::POST, create)),
        )
        .route(
            "/os-keypairs/{name}",
            p.on(&SERVICE, &KEYPAIRS, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &KEYPAIRS, MethodFilter::DELETE, delete)),
        )
}

fn owner(user_id: &str) -> Target {
    Target {
        user_id: Some(user_id.to_string()),
        ..Default::default()
    }
}

fn key_id(user_id: &str, name: &str) -> String {
    format!("{user_id}/{name}")
}

fn not_found(name: &str, user_id: &str) -> Error {
    Error::NotFound(format!("Keypair {name} not found for user {user_id}"))
}

fn brief(k: &Keypair) -> Value {
    json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint})
}

/// A keypair of the caller's user by name (other users' keys are not found).
pub async fn find(s: &ComputeService, user_id: &str, name: &str) -> Result<Keypair, Error> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    store::get::<Keypair>(&mut conn, &key_id(user_id, name))
        .await?
        .ok_or_else(|| not_found(name, user_id))
}

async fn list(State(s): State<ComputeService>, ctx: Ctx, authz: Authz) -> ApiResult<Json<Value>> {
    authz.check(&owner(&ctx.user_id))?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let keys: Vec<Keypair> = store::list_for_user(&mut conn, &ctx.user_id).await?;
    let items: Vec<Value> = keys.iter().map(|k| json!({"keypair": brief(k)})).collect();
    Ok(Json(json!({"keypairs": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKeypair {
    name: String,
    public_key: Option<String>,
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.chars().count() <= 255
        && name.trim() == name
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "Invalid input for field/attribute name. Value: {}. Keypair names may contain letters, digits, spaces, '_' and '-'.",
            wire::short(&json!(name))
        )))
    }
}

async fn create(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    authz.check(&owner(&ctx.user_id))?;
    let req: CreateKeypair = wire::body(body, "keypair")?;
    check_name(&req.name)?;
    let project = ctx.project_id().unwrap_or_default().to_string();
    let (public_key, private_key) = match req.public_key {
        Some(k) => (k.trim().to_string(), None),
        None => {
            let (public, private) = keys::generate(&format!("Generated-by-himmel {}", req.name));
            (public, Some(private))
        }
    };
    let fingerprint = keys::fingerprint(&public_key)?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    quota::check(&mut tx, &project, &ctx.user_id, &[("key_pairs", 1)])
        .await
        .map_err(|e| match e {
            Error::Forbidden(_) => Error::Forbidden("Quota exceeded, too many key pairs.".into()),
            other => other,
        })?;
    let key = Keypair {
        id: key_id(&ctx.user_id, &req.name),
        number: store::next_number(&mut tx, Keypair::KIND).await?,
        name: req.name.clone(),
        user_id: ctx.user_id.clone(),
        project_id: project,
        public_key,
        fingerprint,
        key_type: "ssh".into(),
        created_at: wire::now(),
    };
    store::insert(&mut tx, &key, || {
        format!("Key pair '{}' already exists.", req.name)
    })
    .await?;
    tx.commit().await.map_err(db_err)?;
    let mut v = brief(&key);
    v["user_id"] = json!(key.user_id);
    if let Some(private) = private_key {
        v["private_key"] = json!(private);
    }
    Ok(wire::with_status(StatusCode::OK, "keypair", &key.id, v))
}

async fn show(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    authz.check(&owner(&ctx.user_id))?;
    let k = find(&s, &ctx.user_id, &name).await?;
    let mut v = brief(&k);
    v["user_id"] = json!(k.user_id);
    v["id"] = json!(k.number);
    v["created_at"] = json!(k.created_at);
    v["updated_at"] = Value::Null;
    v["deleted_at"] = Value::Null;
    v["deleted"] = json!(false);
    Ok(Json(json!({"keypair": v})))
}

async fn delete(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    authz.check(&owner(&ctx.user_id))?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let id = key_id(&ctx.user_id, &name);
    if store::get::<Keypair>(&mut tx, &id).await?.is_none() {
        return Err(not_found(&name, &ctx.user_id).into());
    }
    store::delete(&mut tx, Keypair::KIND, &id).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(wire::accepted())
}
