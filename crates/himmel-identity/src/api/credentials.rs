//! `/v3/credentials` and the EC2 credentials of a user
//! (`/v3/users/{user_id}/credentials/OS-EC2`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::policy::decide;
use himmel_http::{ApiResult, AuditTargetId, Authz, Ctx, Decision, Json, Pipeline, Target};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::base_url;
use crate::policy::*;
use crate::store::credentials::{self as creds, Credential};
use crate::store::{projects, users};
use crate::Identity;

/// Attributes with a meaning of their own; everything else is `extra`.
const KNOWN: &[&str] = &["id", "links", "blob", "type", "user_id", "project_id"];

fn bad(field: &str, why: &str) -> Error {
    Error::BadRequest(format!("Invalid input for field '{field}': {why}"))
}

fn not_found(cred_id: &str) -> Error {
    Error::not_found("credential", cred_id)
}

fn owner(user_id: &str) -> Target {
    Target {
        user_id: Some(user_id.to_owned()),
        ..Default::default()
    }
}

fn section<'a>(body: &'a Value, key: &str) -> Result<&'a Map<String, Value>, Error> {
    body.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| bad(key, "an object is required."))
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, Error> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(key, "a string is required.")),
        None => Err(bad(key, "this field is required.")),
    }
}

fn optional_str(obj: &Map<String, Value>, key: &str) -> Result<Option<Option<String>>, Error> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(bad(key, "a string or null is required.")),
    }
}

fn check_type(kind: &str) -> Result<(), Error> {
    if creds::TYPES.contains(&kind) {
        Ok(())
    } else {
        Err(bad(
            "type",
            &format!(
                "unsupported credential type '{}'; supported: {}.",
                kind.chars().take(64).collect::<String>(),
                creds::TYPES.join(", ")
            ),
        ))
    }
}

/// Checks the blob of the credential's type is usable.
fn check_blob(c: &Credential) -> Result<(), Error> {
    match c.kind.as_str() {
        "ec2" => {
            creds::ec2_blob(&c.blob)?;
            if c.project_id.is_none() {
                return Err(bad("project_id", "an ec2 credential requires project_id."));
            }
        }
        "totp" => {
            crate::auth::totp::decode_base32(&c.blob).ok_or_else(|| {
                bad(
                    "blob",
                    "a totp credential's blob is a base32-encoded secret.",
                )
            })?;
        }
        _ => {}
    }
    Ok(())
}

fn extra_of(obj: &Map<String, Value>, mut extra: Value) -> Value {
    for (k, v) in obj.iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())) {
        extra[k] = v.clone();
    }
    extra
}

async fn require_user(id: &Identity, user_id: &str) -> Result<(), Error> {
    users::get(id.db(), user_id)
        .await?
        .map(|_| ())
        .ok_or_else(|| Error::not_found("user", user_id))
}

async fn require_project(id: &Identity, project_id: &str) -> Result<(), Error> {
    projects::get(id.db(), project_id)
        .await?
        .map(|_| ())
        .ok_or_else(|| Error::not_found("project", project_id))
}

/// An ec2 credential made through an application credential remembers it,
/// so what is signed with it gets no more than the application credential.
fn stamp_app_cred(c: &mut Credential, ctx: &Ctx) -> Result<(), Error> {
    let Some(ac) = &ctx.application_credential_id else {
        return Ok(());
    };
    if c.kind != "ec2" {
        return Ok(());
    }
    let mut blob: Value = serde_json::from_str(&c.blob)
        .map_err(|_| Error::BadRequest("Invalid blob in credential".into()))?;
    blob["app_cred_id"] = json!(ac);
    c.blob = blob.to_string();
    Ok(())
}

fn created(kind: &str, body: Value, id: String) -> Response {
    let mut resp = (StatusCode::CREATED, axum::Json(json!({ kind: body }))).into_response();
    resp.extensions_mut().insert(AuditTargetId(id));
    resp
}

async fn create(
    State(id): State<Identity>,
    headers: HeaderMap,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let obj = section(&body, "credential")?;
    let kind = required_str(obj, "type")?;
    check_type(kind)?;
    let blob = required_str(obj, "blob")?;
    let user_id = required_str(obj, "user_id")?;
    let project_id = optional_str(obj, "project_id")?.flatten();
    authz.check(&owner(user_id))?;
    require_user(&id, user_id).await?;
    let mut cred = Credential {
        id: himmel_core::ids::new_id(),
        user_id: user_id.to_owned(),
        project_id,
        kind: kind.to_owned(),
        blob: blob.to_owned(),
        extra: extra_of(obj, json!({})),
    };
    check_blob(&cred)?;
    if cred.kind == "ec2" {
        if let Some(p) = &cred.project_id {
            require_project(&id, p).await?;
        }
        cred.id = creds::ec2_id(&creds::ec2_blob(&cred.blob)?.access);
        stamp_app_cred(&mut cred, &ctx)?;
    }
    creds::create(&id, &cred).await?;
    Ok(created(
        "credential",
        cred.to_json(&base_url(&headers)),
        cred.id.clone(),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    user_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn list(
    State(id): State<Identity>,
    headers: HeaderMap,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let base = base_url(&headers);
    let all = creds::list(&id, q.user_id.as_deref(), q.kind.as_deref()).await?;
    // Everyone may list, but sees only what they may read.
    let visible: Vec<Value> = all
        .iter()
        .filter(|c| {
            decide(GET_CREDENTIAL.rule, Some(&ctx), Some(&owner(&c.user_id))) == Decision::Allow
        })
        .map(|c| c.to_json(&base))
        .collect();
    Ok(Json(json!({
        "credentials": visible,
        "links": {"self": format!("{base}/v3/credentials"), "previous": null, "next": null},
    })))
}

async fn load(id: &Identity, authz: &Authz, cred_id: &str) -> Result<Credential, Error> {
    let cred = creds::get(id, cred_id)
        .await?
        .ok_or_else(|| not_found(cred_id))?;
    authz.check(&owner(&cred.user_id)).map_err(|e| e.0)?;
    Ok(cred)
}

async fn get(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
    Path(cred_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let cred = load(&id, &authz, &cred_id).await?;
    Ok(Json(
        json!({"credential": cred.to_json(&base_url(&headers))}),
    ))
}

async fn update(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
    Path(cred_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let obj = section(&body, "credential")?;
    let mut cred = load(&id, &authz, &cred_id).await?;
    if obj
        .get("id")
        .is_some_and(|v| v.as_str() != Some(cred_id.as_str()))
    {
        return Err(bad("id", "the id in the body does not match the URL.").into());
    }
    let was_ec2 = cred.kind == "ec2";
    if obj.contains_key("type") {
        let kind = required_str(obj, "type")?;
        check_type(kind)?;
        cred.kind = kind.to_owned();
    }
    if obj.contains_key("blob") {
        cred.blob = required_str(obj, "blob")?.to_owned();
    }
    if obj.contains_key("user_id") {
        cred.user_id = required_str(obj, "user_id")?.to_owned();
        // The new owner must be one the caller may act for, too.
        authz.check(&owner(&cred.user_id))?;
        require_user(&id, &cred.user_id).await?;
    }
    if let Some(p) = optional_str(obj, "project_id")? {
        cred.project_id = p;
    }
    cred.extra = extra_of(obj, cred.extra);
    check_blob(&cred)?;
    // An ec2 credential's id is derived from its access key.
    if was_ec2 != (cred.kind == "ec2") {
        return Err(bad("type", "a credential cannot change to or from type ec2.").into());
    }
    if was_ec2 {
        // Keystone lets the access key change; the id stays the hash of the
        // first one, and the store re-indexes the new key (409 on a clash).
        if let Some(p) = &cred.project_id {
            require_project(&id, p).await?;
        }
    }
    creds::update(&id, &cred).await?;
    Ok(Json(
        json!({"credential": cred.to_json(&base_url(&headers))}),
    ))
}

async fn delete(
    State(id): State<Identity>,
    authz: Authz,
    Path(cred_id): Path<String>,
) -> ApiResult<StatusCode> {
    load(&id, &authz, &cred_id).await?;
    creds::delete(&id, &cred_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The EC2 view of an ec2 credential, as Keystone's OS-EC2 API shows it.
fn ec2_json(c: &Credential, base: &str) -> Result<Value, Error> {
    let blob = creds::ec2_blob(&c.blob)?;
    Ok(json!({
        "user_id": c.user_id,
        "tenant_id": c.project_id,
        "access": blob.access,
        "secret": blob.secret,
        "trust_id": blob.trust_id,
        "links": {"self": format!(
            "{base}/v3/users/{}/credentials/OS-EC2/{}", c.user_id, blob.access
        )},
    }))
}

async fn ec2_create(
    State(id): State<Identity>,
    headers: HeaderMap,
    ctx: Ctx,
    authz: Authz,
    Path(user_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    authz.check(&owner(&user_id))?;
    require_user(&id, &user_id).await?;
    let obj = body
        .as_object()
        .ok_or_else(|| bad("tenant_id", "a JSON object is required."))?;
    let project_id = required_str(obj, "tenant_id")?;
    require_project(&id, project_id).await?;
    let access = uuid::Uuid::new_v4().simple().to_string();
    let blob = json!({
        "access": access,
        "secret": uuid::Uuid::new_v4().simple().to_string(),
        "trust_id": null,
    });
    let mut cred = Credential {
        id: creds::ec2_id(&access),
        user_id: user_id.clone(),
        project_id: Some(project_id.to_owned()),
        kind: "ec2".into(),
        blob: blob.to_string(),
        extra: json!({}),
    };
    stamp_app_cred(&mut cred, &ctx)?;
    creds::create(&id, &cred).await?;
    let body = ec2_json(&cred, &base_url(&headers))?;
    Ok(created("credential", body, cred.id))
}

async fn ec2_list(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    authz.check(&owner(&user_id))?;
    require_user(&id, &user_id).await?;
    let base = base_url(&headers);
    let list = creds::list(&id, Some(&user_id), Some("ec2"))
        .await?
        .iter()
        .map(|c| ec2_json(c, &base))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "credentials": list,
        "links": {
            "self": format!("{base}/v3/users/{user_id}/credentials/OS-EC2"),
            "previous": null,
            "next": null,
        },
    })))
}

/// The user's ec2 credential with this access key.
async fn ec2_load(
    id: &Identity,
    authz: &Authz,
    user_id: &str,
    access: &str,
) -> Result<Credential, Error> {
    authz.check(&owner(user_id)).map_err(|e| e.0)?;
    let cred_id = creds::ec2_id(access);
    creds::get(id, &cred_id)
        .await?
        .filter(|c| c.kind == "ec2" && c.user_id == user_id)
        .ok_or_else(|| not_found(&cred_id))
}

async fn ec2_get(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
    Path((user_id, access)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let cred = ec2_load(&id, &authz, &user_id, &access).await?;
    Ok(Json(
        json!({"credential": ec2_json(&cred, &base_url(&headers))?}),
    ))
}

async fn ec2_delete(
    State(id): State<Identity>,
    authz: Authz,
    Path((user_id, access)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let cred = ec2_load(&id, &authz, &user_id, &access).await?;
    creds::delete(&id, &cred.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    Router::new()
        .route(
            "/v3/credentials",
            p.on(&SERVICE, &LIST_CREDENTIALS, M::GET, list).merge(p.on(
                &SERVICE,
                &CREATE_CREDENTIAL,
                M::POST,
                create,
            )),
        )
        .route(
            "/v3/credentials/{credential_id}",
            p.on(&SERVICE, &GET_CREDENTIAL, M::GET, get)
                .merge(p.on(&SERVICE, &UPDATE_CREDENTIAL, M::PATCH, update))
                .merge(p.on(&SERVICE, &DELETE_CREDENTIAL, M::DELETE, delete)),
        )
        .route(
            "/v3/users/{user_id}/credentials/OS-EC2",
            p.on(&SERVICE, &EC2_LIST_CREDENTIALS, M::GET, ec2_list)
                .merge(p.on(&SERVICE, &EC2_CREATE_CREDENTIAL, M::POST, ec2_create)),
        )
        .route(
            "/v3/users/{user_id}/credentials/OS-EC2/{credential_id}",
            p.on(&SERVICE, &EC2_GET_CREDENTIAL, M::GET, ec2_get)
                .merge(p.on(&SERVICE, &EC2_DELETE_CREDENTIAL, M::DELETE, ec2_delete)),
        )
}
