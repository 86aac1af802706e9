//! `/os-server-groups`: groups whose policy the scheduler applies to their
//! members (`affinity` or `anti-affinity`; the scheduler also knows the soft
//! variants, which the API takes from microversion 2.15 on). A server
//! joins a group at create through the scheduler hint `group`; it leaves
//! when it is deleted. Shapes of microversion 2.1: a `policies` list of one
//! policy, `members` and an empty `metadata`.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use serde::Deserialize;
use serde_json::{json, Value};

use super::wire;
use crate::model::Resource;
use crate::policy::*;
use crate::scheduler::model::{GroupPolicy, ServerGroup};
use crate::store::{self, db_err, quota};
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/os-server-groups",
            p.on(&SERVICE, &LIST_SERVER_GROUPS, MethodFilter::GET, list)
                .merge(p.on(&SERVICE, &CREATE_SERVER_GROUP, MethodFilter::POST, create)),
        )
        .route(
            "/os-server-groups/{id}",
            p.on(&SERVICE, &GET_SERVER_GROUP, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &DELETE_SERVER_GROUP, MethodFilter::DELETE, delete)),
        )
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Instance group {id} could not be found."))
}

fn view(g: &ServerGroup) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "policies": [g.policy.as_str()],
        "members": g.members,
        "metadata": {},
    })
}

/// A group the caller may see (another project's group is not found).
async fn visible(s: &ComputeService, authz: &Authz, id: &str) -> Result<ServerGroup, Error> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    match store::get::<ServerGroup>(&mut conn, id).await? {
        Some(g) if authz.allows(&wire::target(&g.project_id)) => Ok(g),
        _ => {
            authz.allows(&Default::default());
            Err(not_found(id))
        }
    }
}

async fn list(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = wire::query_pairs(raw.as_deref());
    let all_projects = match wire::param(&q, "all_projects") {
        Some(v) => wire::parse_bool("all_projects", v)?,
        None => false,
    };
    let project = ctx.project_id().unwrap_or_default().to_string();
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let groups: Vec<ServerGroup> = if all_projects && wire::is_admin(&ctx) {
        authz.allows(&Default::default());
        store::list(&mut conn, None).await?
    } else {
        authz.check(&wire::target(&project))?;
        store::list(&mut conn, Some(&project)).await?
    };
    let offset = wire::int_param(&q, "offset")?.unwrap_or(0) as usize;
    let limit = wire::int_param(&q, "limit")?.map(|l| l as usize);
    let items: Vec<Value> = groups
        .iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(view)
        .collect();
    Ok(Json(json!({"server_groups": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGroup {
    name: Value,
    policies: Value,
}

fn parse_name(v: &Value) -> Result<String, Error> {
    match v {
        Value::String(n) if !n.trim().is_empty() && n.chars().count() <= 255 => Ok(n.clone()),
        other => Err(Error::BadRequest(format!(
            "Invalid input for field/attribute name. Value: {}. It must be a non-blank string of at most 255 characters.",
            wire::short(other)
        ))),
    }
}

/// The one policy of `policies` (microversion 2.1 takes a list of one).
fn parse_policy(v: &Value) -> Result<GroupPolicy, Error> {
    let invalid = |why: &str| {
        Error::BadRequest(format!(
            "Invalid input for field/attribute policies. Value: {}. {why}",
            wire::short(v)
        ))
    };
    let Value::Array(list) = v else {
        return Err(invalid("It is not an array."));
    };
    match list.as_slice() {
        // The soft policies came with microversion 2.15; 2.1 knows these two.
        [Value::String(p)] => match GroupPolicy::parse(p) {
            Some(policy @ (GroupPolicy::Affinity | GroupPolicy::AntiAffinity)) => Ok(policy),
            _ => Err(invalid("It is not one of ['anti-affinity', 'affinity'].")),
        },
        [] => Err(invalid("[] is too short")),
        [_] => Err(invalid("A policy is a string.")),
        _ => Err(invalid("A group has exactly one policy.")),
    }
}

async fn create(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let project = ctx
        .project_id()
        .ok_or_else(|| {
            Error::BadRequest("Creating a server group needs a project-scoped token.".into())
        })?
        .to_string();
    authz.check(&wire::target(&project))?;
    let req: CreateGroup = wire::body(body, "server_group")?;
    let name = parse_name(&req.name)?;
    let policy = parse_policy(&req.policies)?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    quota::check(&mut tx, &project, &ctx.user_id, &[("server_groups", 1)])
        .await
        .map_err(|e| match e {
            Error::Forbidden(_) => {
                Error::Forbidden("Quota exceeded, too many server groups.".into())
            }
            other => other,
        })?;
    let group = ServerGroup {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        policy,
        max_server_per_host: None,
        members: vec![],
        project_id: project,
        user_id: ctx.user_id.clone(),
        created_at: wire::now(),
    };
    store::insert(&mut tx, &group, || "server group exists".into()).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(wire::with_status(
        StatusCode::OK,
        "server_group",
        &group.id,
        view(&group),
    ))
}

async fn show(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = visible(&s, &authz, &id).await?;
    Ok(Json(json!({"server_group": view(&g)})))
}

async fn delete(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let g = visible(&s, &authz, &id).await?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    store::delete(&mut tx, ServerGroup::KIND, &g.id).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Checks the group of a server create's hint: one of `project`'s groups
/// (any group for an administrator), and `adding` more members keep it
/// within the `server_group_members` quota (403, as Nova, otherwise).
pub async fn check_members(
    conn: &mut sqlx::AnyConnection,
    group_id: &str,
    project: &str,
    admin: bool,
    adding: i64,
) -> Result<(), Error> {
    let group = store::get::<ServerGroup>(conn, group_id)
        .await?
        .filter(|g| admin || g.project_id == project)
        .ok_or_else(|| Error::BadRequest(format!("Invalid server group {group_id}")))?;
    let limit = quota::limits(conn, &group.project_id)
        .await?
        .get("server_group_members")
        .copied()
        .unwrap_or(-1);
    if limit >= 0 && group.members.len() as i64 + adding > limit {
        return Err(Error::Forbidden(
            "Quota exceeded, too many servers in group".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_has_exactly_one_known_policy() {
        assert_eq!(
            parse_policy(&json!(["anti-affinity"])).ok(),
            Some(GroupPolicy::AntiAffinity)
        );
        assert_eq!(
            parse_policy(&json!(["affinity"])).ok(),
            Some(GroupPolicy::Affinity)
        );
        assert!(parse_policy(&json!(["soft-affinity"])).is_err());
        assert!(parse_policy(&json!([])).is_err());
        assert!(parse_policy(&json!(["affinity", "anti-affinity"])).is_err());
        assert!(parse_policy(&json!(["spread"])).is_err());
        assert!(parse_policy(&json!("affinity")).is_err());
        assert!(parse_policy(&json!([1])).is_err());
    }

    #[test]
    fn names_are_non_blank_strings() {
        assert!(parse_name(&json!("g")).is_ok());
        assert!(parse_name(&json!(" ")).is_err());
        assert!(parse_name(&json!(7)).is_err());
        assert!(parse_name(&json!("x".repeat(256))).is_err());
    }
}
