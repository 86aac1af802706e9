//! `POST /servers/{id}/action`: lifecycle actions. Each one checks the
//! server's state like Nova (409 otherwise), writes the new desired state
//! and wakes the reconciler; the reconciler does the work and reports.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::policy::decide;
use himmel_http::{ApiResult, Authz, Ctx, Decision, Json, Pipeline};
use himmel_network::instance_ports;
use serde_json::{json, Value};

use super::servers::{check_name, metadata_from, render, update_shape, visible};
use super::{flavors, wire};
use crate::model::{FlavorSnapshot, Power, Server, VmState};
use crate::policy::*;
use crate::scheduler;
use crate::servers;
use crate::store::{db_err, quota};
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new().route(
        "/servers/{id}/action",
        p.on(&SERVICE, &SERVER_ACTION, MethodFilter::POST, action),
    )
}

fn conflict(action: &str, server: &Server) -> Error {
    match &server.task_state {
        Some(t) if !server_settled(server) => Error::Conflict(format!(
            "Cannot '{action}' instance {} while it is in task_state {t}",
            server.id
        )),
        _ => Error::Conflict(format!(
            "Cannot '{action}' instance {} while it is in vm_state {}",
            server.id,
            server.vm_state.as_str()
        )),
    }
}

/// No task in flight (the reconciler has nothing pending for it).
fn server_settled(server: &Server) -> bool {
    server.task_state.is_none() && !server.deleting
}

/// Applies a state change if the server is settled and in one of `states`.
async fn transition(
    s: &ComputeService,
    ctx: &RequestContext,
    id: &str,
    action: &str,
    states: &[VmState],
    change: impl FnOnce(&mut Server) -> Result<(), Error>,
) -> Result<Server, Error> {
    let (server, ()) = servers::modify(s, id, |sv| {
        if !server_settled(sv) || !states.contains(&sv.vm_state) {
            return Err(conflict(action, sv));
        }
        change(sv)
    })
    .await?;
    servers::record_action(s, &server, ctx, action).await?;
    s.changed();
    Ok(server)
}

enum Settle {
    Confirm,
    Revert,
}

/// Confirms or reverts a resize. The server's change and the placement
/// move that goes with it commit together, so a failure between them
/// cannot leave a flavor's resources held (or freed) for good.
async fn settle_resize(
    s: &ComputeService,
    ctx: &RequestContext,
    id: &str,
    settle: Settle,
) -> Result<(), Error> {
    let action = match settle {
        Settle::Confirm => "confirmResize",
        Settle::Revert => "revertResize",
    };
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let (server, migration) = servers::modify_in(&mut tx, id, |sv| {
        if !server_settled(sv) || sv.vm_state != VmState::Resized {
            return Err(conflict(action, sv));
        }
        match settle {
            Settle::Confirm => {
                sv.old_flavor = None;
                sv.vm_state = if sv.power == Power::Stopped {
                    VmState::Stopped
                } else {
                    VmState::Active
                };
            }
            Settle::Revert => {
                if let Some(old) = sv.old_flavor.take() {
                    sv.flavor = old;
                }
                sv.task_state = Some("resize_reverting".into());
                sv.generation += 1;
            }
        }
        Ok(sv.migration_id.take())
    })
    .await?;
    if let Some(migration) = migration {
        match settle {
            Settle::Confirm => scheduler::confirm_resize_in(&mut tx, &migration).await?,
            Settle::Revert => scheduler::revert_resize_in(&mut tx, id, &migration).await?,
        }
    }
    tx.commit().await.map_err(db_err)?;
    servers::record_action(s, &server, ctx, action).await?;
    s.changed();
    Ok(())
}

/// The actions a lock stops (Nova's `check_instance_lock`); a delete is stopped too.
const LOCKED_ACTIONS: [&str; 11] = [
    "reboot",
    "os-stop",
    "os-start",
    "pause",
    "unpause",
    "rebuild",
    "resize",
    "confirmResize",
    "revertResize",
    "createImage",
    "createBackup",
];

/// 409 for a locked server, unless the caller is an administrator.
pub fn refuse_if_locked(ctx: &RequestContext, server: &Server) -> Result<(), Error> {
    if server.locked_by.is_some() && !wire::is_admin(ctx) {
        return Err(Error::Conflict(format!("Instance {} is locked", server.id)));
    }
    Ok(())
}

/// `lock` and `unlock`. A lock an administrator set is lifted only by an administrator.
async fn lock(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    lock: bool,
) -> ApiResult<Response> {
    let target = wire::target(&server.project_id);
    let op = if lock { &LOCK_SERVER } else { &UNLOCK_SERVER };
    if decide(op.rule, Some(ctx), Some(&target)) != Decision::Allow {
        return Err(himmel_http::pipeline::forbidden(op.name).into());
    }
    let by_admin = wire::is_admin(ctx) && ctx.project_id() != Some(server.project_id.as_str());
    let (locked, ()) = servers::modify(s, &server.id, |sv| {
        if lock {
            if sv.locked_by.is_none() {
                sv.locked_by = Some(if by_admin { "admin" } else { "owner" }.into());
            }
        } else {
            if sv.locked_by.as_deref() == Some("admin")
                && decide(UNLOCK_OVERRIDE.rule, Some(ctx), Some(&target)) != Decision::Allow
            {
                return Err(himmel_http::pipeline::forbidden(UNLOCK_OVERRIDE.name));
            }
            sv.locked_by = None;
        }
        Ok(())
    })
    .await?;
    servers::record_action(s, &locked, ctx, if lock { "lock" } else { "unlock" }).await?;
    Ok(accepted())
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

async fn action(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let server = visible(&s, &authz, &id).await?;
    let Value::Object(m) = &body else {
        return Err(Error::BadRequest("The action body must be an object.".into()).into());
    };
    if m.len() != 1 {
        return Err(Error::BadRequest(
            "There is either none or too many actions in the request body.".into(),
        )
        .into());
    }
    let (name, arg) = m
        .iter()
        .next()
        .map(|(k, v)| (k.as_str(), v))
        .unwrap_or(("", &Value::Null));
    if LOCKED_ACTIONS.contains(&name) {
        refuse_if_locked(&ctx, &server)?;
    }
    use VmState::{Active, Paused, Stopped};
    match name {
        "reboot" => {
            let hard = match arg.get("type").and_then(Value::as_str) {
                Some(t) if t.eq_ignore_ascii_case("HARD") => true,
                Some(t) if t.eq_ignore_ascii_case("SOFT") => false,
                _ => {
                    return Err(Error::BadRequest(
                        "Invalid input for field/attribute type: must be SOFT or HARD.".into(),
                    )
                    .into())
                }
            };
            let states: &[VmState] = if hard {
                &[Active, Stopped, Paused, VmState::Error]
            } else {
                &[Active]
            };
            transition(&s, &ctx, &id, "reboot", states, |sv| {
                sv.task_state = Some(if hard { "rebooting_hard" } else { "rebooting" }.into());
                sv.reboot_kind = Some(if hard { "HARD" } else { "SOFT" }.into());
                sv.power = Power::Running;
                sv.generation += 1;
                Ok(())
            })
            .await?;
            Ok(accepted())
        }
        "os-stop" => {
            transition(
                &s,
                &ctx,
                &id,
                "stop",
                &[Active, VmState::Error, Paused],
                |sv| {
                    sv.task_state = Some("powering-off".into());
                    sv.power = Power::Stopped;
                    Ok(())
                },
            )
            .await?;
            Ok(accepted())
        }
        "os-start" => {
            transition(&s, &ctx, &id, "start", &[Stopped], |sv| {
                sv.task_state = Some("powering-on".into());
                sv.power = Power::Running;
                Ok(())
            })
            .await?;
            Ok(accepted())
        }
        "pause" => {
            transition(&s, &ctx, &id, "pause", &[Active], |sv| {
                sv.task_state = Some("pausing".into());
                sv.power = Power::Paused;
                Ok(())
            })
            .await?;
            Ok(accepted())
        }
        "unpause" => {
            transition(&s, &ctx, &id, "unpause", &[Paused], |sv| {
                sv.task_state = Some("unpausing".into());
                sv.power = Power::Running;
                Ok(())
            })
            .await?;
            Ok(accepted())
        }
        "rebuild" => rebuild(&s, &ctx, &headers, &server, arg).await,
        "resize" => resize(&s, &ctx, &server, arg).await,
        "confirmResize" => {
            settle_resize(&s, &ctx, &id, Settle::Confirm).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        "revertResize" => {
            settle_resize(&s, &ctx, &id, Settle::Revert).await?;
            Ok(accepted())
        }
        "os-getConsoleOutput" => console_output(&s, &ctx, &server, arg).await,
        "addSecurityGroup" | "removeSecurityGroup" => {
            security_group(&s, &ctx, &server, name == "addSecurityGroup", arg).await
        }
        "addFloatingIp" => super::floating_ip_actions::add(&s, &ctx, &server, arg).await,
        "removeFloatingIp" => super::floating_ip_actions::remove(&s, &ctx, &server, arg).await,
        "createImage" => create_image(&s, &ctx, &headers, &server, arg).await,
        "createBackup" => create_backup(&s, &ctx, &headers, &server, arg).await,
        "lock" | "unlock" => lock(&s, &ctx, &server, name == "lock").await,
        other => Err(Error::BadRequest(format!(
            "There is no such action: {}",
            other.chars().take(60).collect::<String>()
        ))
        .into()),
    }
}

async fn rebuild(
    s: &ComputeService,
    ctx: &RequestContext,
    headers: &HeaderMap,
    server: &Server,
    arg: &Value,
) -> ApiResult<Response> {
    let image_ref = arg
        .get("imageRef")
        .and_then(Value::as_str)
        .map(|r| {
            r.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(r)
                .to_string()
        })
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            Error::BadRequest(
                "Invalid input for field/attribute rebuild. 'imageRef' is a required property"
                    .into(),
            )
        })?;
    let image = match s.images() {
        Some(images) => images
            .image_for_boot(ctx, &image_ref)
            .await
            .map_err(|e| match e {
                Error::Internal(_) => e,
                _ => Error::BadRequest(format!("Image {image_ref} could not be found.")),
            })?,
        None => {
            return Err(Error::BadRequest(format!("Image {image_ref} could not be found.")).into())
        }
    };
    let name = match arg.get("name") {
        Some(Value::String(n)) => {
            check_name(n)?;
            Some(n.clone())
        }
        None => None,
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute name. Value: {}.",
                wire::short(other)
            ))
            .into())
        }
    };
    let metadata = match arg.get("metadata") {
        Some(m) => {
            let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
            let limits = quota::limits(&mut conn, &server.project_id).await?;
            Some(metadata_from(
                m,
                limits.get("metadata_items").copied().unwrap_or(-1),
            )?)
        }
        None => None,
    };
    use VmState::{Active, Stopped};
    let rebuilt = transition(
        s,
        ctx,
        &server.id,
        "rebuild",
        &[Active, Stopped, VmState::Error],
        |sv| {
            sv.image_ref = image.id.clone();
            sv.image = image;
            if let Some(n) = name {
                sv.name = n;
            }
            if let Some(m) = metadata {
                sv.metadata = m;
            }
            sv.task_state = Some("rebuilding".into());
            sv.generation += 1;
            Ok(())
        },
    )
    .await?;
    let mut v = update_shape(render(s, &rebuilt, ctx, headers).await?);
    v["adminPass"] = json!(himmel_core::ids::new_id()[..12].to_string());
    Ok(wire::with_status(
        StatusCode::ACCEPTED,
        "server",
        &rebuilt.id,
        v,
    ))
}

async fn resize(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    arg: &Value,
) -> ApiResult<Response> {
    let flavor_ref = match arg.get("flavorRef") {
        Some(Value::String(r)) if !r.is_empty() => r
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(r)
            .to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(Error::BadRequest(
                "Invalid input for field/attribute resize. 'flavorRef' is a required property"
                    .into(),
            )
            .into())
        }
    };
    let flavor = match flavors::find(s, ctx, &flavor_ref).await {
        Ok(f) if !f.disabled => FlavorSnapshot::from(&f),
        _ => {
            return Err(
                Error::BadRequest(format!("Flavor {flavor_ref} could not be found.")).into(),
            )
        }
    };
    if flavor.id == server.flavor.id {
        return Err(
            Error::BadRequest("When resizing, instances must change flavor!".into()).into(),
        );
    }
    if flavor.disk > 0 && flavor.disk < server.flavor.disk {
        return Err(
            Error::BadRequest("Resizing to a smaller disk flavor is not allowed.".into()).into(),
        );
    }
    // The growth must fit the quota.
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let cores = flavor.vcpus as i64 - server.flavor.vcpus as i64;
    let ram = flavor.ram as i64 - server.flavor.ram as i64;
    quota::check(
        &mut tx,
        &server.project_id,
        &ctx.user_id,
        &[("cores", cores.max(0)), ("ram", ram.max(0))],
    )
    .await?;
    tx.commit().await.map_err(db_err)?;
    use VmState::{Active, Stopped};
    if !server_settled(server) || ![Active, Stopped].contains(&server.vm_state) {
        return Err(conflict("resize", server).into());
    }
    // The new flavor must fit the host beside the old one (Nova answers a
    // resize no host can take with a 400 and leaves the server as it was).
    let migration = uuid::Uuid::new_v4().to_string();
    let wanted = scheduler::flavor_resources(&flavor);
    match scheduler::claim_resize(s.db(), &server.id, &migration, &wanted).await {
        Ok(()) => {}
        Err(scheduler::ScheduleError::Failed(e)) => return Err(e.into()),
        Err(e) => return Err(Error::BadRequest(e.message()).into()),
    }
    let moved = servers::modify(s, &server.id, |sv| {
        if !server_settled(sv) || ![Active, Stopped].contains(&sv.vm_state) {
            return Err(conflict("resize", sv));
        }
        sv.old_flavor = Some(sv.flavor.clone());
        sv.flavor = flavor;
        sv.migration_id = Some(migration.clone());
        sv.task_state = Some("resize_prep".into());
        sv.generation += 1;
        Ok(())
    })
    .await;
    let resized = match moved {
        Ok((resized, ())) => resized,
        Err(e) => {
            // The server changed meanwhile: give the claim back.
            scheduler::revert_resize(s.db(), &server.id, &migration).await?;
            return Err(e.into());
        }
    };
    servers::record_action(s, &resized, ctx, "resize").await?;
    s.changed();
    Ok(accepted())
}

async fn console_output(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    arg: &Value,
) -> ApiResult<Response> {
    if decide(
        CONSOLE_OUTPUT.rule,
        Some(ctx),
        Some(&wire::target(&server.project_id)),
    ) != Decision::Allow
    {
        return Err(himmel_http::pipeline::forbidden(CONSOLE_OUTPUT.name).into());
    }
    let length = match arg.get("length") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n >= -1) => {
            n.as_i64().filter(|n| *n >= 0).map(|n| n as usize)
        }
        Some(Value::String(t)) if t.parse::<i64>().is_ok_and(|n| n >= -1) => t
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n as usize),
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute length. Value: {}.",
                wire::short(other)
            ))
            .into())
        }
    };
    if server.vm_state == VmState::Building {
        return Err(Error::Conflict(format!(
            "Cannot 'get_console_output' instance {} while it is in vm_state building",
            server.id
        ))
        .into());
    }
    let Some(hv) = s.hypervisor().cloned() else {
        return Err(
            Error::Conflict("The console of this instance is not available.".into()).into(),
        );
    };
    let id = server.id.clone();
    let output = tokio::task::spawn_blocking(move || hv.console_output(&id, length))
        .await
        .map_err(Error::internal)?
        .map_err(|e| {
            tracing::warn!(error = %e, "console output");
            Error::Conflict("The console of this instance is not available.".into())
        })?;
    Ok(axum::Json(json!({"output": output})).into_response())
}

async fn security_group(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    add: bool,
    arg: &Value,
) -> ApiResult<Response> {
    let name = arg
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::BadRequest("Security group name cannot be empty.".into()))?;
    let group = instance_ports::resolve_security_groups(
        s.network(),
        &server.project_id,
        &[name.to_string()],
    )
    .await?
    .remove(0);
    let has = server.security_groups.contains(&group.name);
    if add && has {
        return Err(Error::BadRequest(format!(
            "Security group {name} is already associated with the instance {}",
            server.id
        ))
        .into());
    }
    if !add && !has {
        return Err(Error::BadRequest(format!(
            "Security group {name} not associated with the instance {}",
            server.id
        ))
        .into());
    }
    for port_id in &server.ports {
        if let Some(port) = instance_ports::get(s.network(), port_id).await? {
            let mut ids = port.security_groups.clone();
            if add {
                if !ids.contains(&group.meta.id) {
                    ids.push(group.meta.id.clone());
                }
            } else {
                ids.retain(|g| g != &group.meta.id);
            }
            instance_ports::set_security_groups(s.network(), port_id, ids).await?;
        }
    }
    let group_name = group.name.clone();
    let (server, ()) = servers::modify(s, &server.id, |sv| {
        if add {
            sv.security_groups.push(group_name);
        } else {
            sv.security_groups.retain(|g| g != &group_name);
        }
        Ok(())
    })
    .await?;
    let action = if add {
        "addSecurityGroup"
    } else {
        "removeSecurityGroup"
    };
    servers::record_action(s, &server, ctx, action).await?;
    Ok(accepted())
}

async fn create_image(
    s: &ComputeService,
    ctx: &RequestContext,
    headers: &HeaderMap,
    server: &Server,
    arg: &Value,
) -> ApiResult<Response> {
    let name = image_name("createImage", arg)?;
    let properties = image_metadata(arg)?;
    check_snapshottable("createImage", server)?;
    let image_id = crate::snapshot::create_image(s, ctx, server, name, properties).await?;
    servers::record_action(s, server, ctx, "createImage").await?;
    Ok(image_accepted(headers, server, Some(&image_id)))
}

/// createBackup: a snapshot marked as a backup of `backup_type`, after which
/// only the newest `rotation` backups of that type of the server are kept.
async fn create_backup(
    s: &ComputeService,
    ctx: &RequestContext,
    headers: &HeaderMap,
    server: &Server,
    arg: &Value,
) -> ApiResult<Response> {
    let name = image_name("createBackup", arg)?;
    let backup_type = arg
        .get("backup_type")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::BadRequest(
                "Invalid input for field/attribute createBackup. 'backup_type' is a required property"
                    .into(),
            )
        })?
        .to_string();
    // Nova takes a non-negative integer, also written as a string of digits.
    let rotation = match arg.get("rotation") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
            t.parse().ok()
        }
        _ => None,
    }
    .ok_or_else(|| {
        Error::BadRequest(
            "Invalid input for field/attribute rotation. 'rotation' must be a non-negative integer"
                .into(),
        )
    })?;
    let properties = image_metadata(arg)?;
    check_snapshottable("createBackup", server)?;
    let image_id =
        crate::snapshot::create_backup(s, ctx, server, name, &backup_type, rotation, properties)
            .await?;
    servers::record_action(s, server, ctx, "createBackup").await?;
    // With rotation 0 the new backup is gone at once: Nova names no image then.
    Ok(image_accepted(
        headers,
        server,
        (rotation > 0).then_some(image_id.as_str()),
    ))
}

/// The new image's properties from the action's optional `metadata`.
fn image_metadata(arg: &Value) -> Result<std::collections::BTreeMap<String, String>, Error> {
    match arg.get("metadata") {
        Some(m) => metadata_from(m, -1),
        None => Ok(Default::default()),
    }
}

fn image_name(action: &str, arg: &Value) -> Result<String, Error> {
    arg.get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty() && n.chars().count() <= 255)
        .map(str::to_string)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "Invalid input for field/attribute {action}. 'name' is a required property"
            ))
        })
}

fn check_snapshottable(action: &str, server: &Server) -> Result<(), Error> {
    if matches!(
        server.vm_state,
        VmState::Active | VmState::Stopped | VmState::Paused
    ) && server_settled(server)
    {
        Ok(())
    } else {
        Err(conflict(action, server))
    }
}

/// 202 with the new image's address in `Location` (before microversion 2.45).
fn image_accepted(headers: &HeaderMap, server: &Server, image_id: Option<&str>) -> Response {
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Some(id) = image_id {
        let location = format!("{}/image/v2/images/{id}", wire::base_url(headers));
        if let Ok(v) = axum::http::HeaderValue::from_str(&location) {
            resp.headers_mut().insert(axum::http::header::LOCATION, v);
        }
    }
    resp.extensions_mut()
        .insert(himmel_http::AuditTargetId(server.id.clone()));
    resp
}
