//! Sub-resources of a server: `metadata`, `os-instance-actions`,
//! `os-interface` (attach and detach ports), `os-security-groups` and
//! `os-server-password`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use himmel_network::instance_ports::{self, NewInstancePort};
use serde_json::{json, Value};

use super::servers::{metadata_from, visible};
use super::wire;
use crate::model::{InstanceAction, Server};
use crate::policy::*;
use crate::servers;
use crate::store::{self, db_err, quota};
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/servers/{id}/metadata",
            p.on(&SERVICE, &GET_SERVER_METADATA, MethodFilter::GET, list_meta)
                .merge(p.on(
                    &SERVICE,
                    &SET_SERVER_METADATA,
                    MethodFilter::PUT,
                    replace_meta,
                ))
                .merge(p.on(
                    &SERVICE,
                    &SET_SERVER_METADATA,
                    MethodFilter::POST,
                    merge_meta,
                )),
        )
        .route(
            "/servers/{id}/metadata/{key}",
            p.on(&SERVICE, &GET_SERVER_METADATA, MethodFilter::GET, show_meta)
                .merge(p.on(&SERVICE, &SET_SERVER_METADATA, MethodFilter::PUT, put_meta))
                .merge(p.on(
                    &SERVICE,
                    &SET_SERVER_METADATA,
                    MethodFilter::DELETE,
                    delete_meta,
                )),
        )
        .route(
            "/servers/{id}/os-instance-actions",
            p.on(
                &SERVICE,
                &GET_INSTANCE_ACTIONS,
                MethodFilter::GET,
                list_actions,
            ),
        )
        .route(
            "/servers/{id}/os-instance-actions/{request_id}",
            p.on(
                &SERVICE,
                &GET_INSTANCE_ACTIONS,
                MethodFilter::GET,
                show_action,
            ),
        )
        .route(
            "/servers/{id}/os-interface",
            p.on(
                &SERVICE,
                &GET_INTERFACES,
                MethodFilter::GET,
                list_interfaces,
            )
            .merge(p.on(&SERVICE, &MANAGE_INTERFACES, MethodFilter::POST, attach)),
        )
        .route(
            "/servers/{id}/os-interface/{port_id}",
            p.on(&SERVICE, &GET_INTERFACES, MethodFilter::GET, show_interface)
                .merge(p.on(&SERVICE, &MANAGE_INTERFACES, MethodFilter::DELETE, detach)),
        )
        .route(
            "/servers/{id}/os-security-groups",
            p.on(
                &SERVICE,
                &GET_SECURITY_GROUPS,
                MethodFilter::GET,
                list_groups,
            ),
        )
        .route(
            "/servers/{id}/os-server-password",
            p.on(
                &SERVICE,
                &GET_SERVER_PASSWORD,
                MethodFilter::GET,
                show_password,
            )
            .merge(p.on(
                &SERVICE,
                &CLEAR_SERVER_PASSWORD,
                MethodFilter::DELETE,
                clear_password,
            )),
        )
}

/// The password the guest posted to the metadata service (encrypted with
/// the server's key; the caller decrypts it), or "" before it has.
async fn show_password(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let server = visible(&s, &authz, &id).await?;
    Ok(Json(
        json!({"password": server.password.unwrap_or_default()}),
    ))
}

/// Forgets the password, so the guest may post a new one.
async fn clear_password(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let server = visible(&s, &authz, &id).await?;
    servers::modify(&s, &server.id, |sv| {
        sv.password = None;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn max_items(s: &ComputeService, project: &str) -> Result<i64, Error> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let limits = quota::limits(&mut conn, project).await?;
    Ok(limits.get("metadata_items").copied().unwrap_or(-1))
}

async fn list_meta(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let server = visible(&s, &authz, &id).await?;
    Ok(Json(json!({"metadata": server.metadata})))
}

async fn set_meta(
    s: &ComputeService,
    authz: &Authz,
    id: &str,
    body: &Value,
    replace: bool,
) -> Result<BTreeMap<String, String>, Error> {
    let server = visible(s, authz, id).await?;
    let given = body.get("metadata").ok_or_else(|| {
        Error::BadRequest(
            "Invalid input for field/attribute metadata. 'metadata' is a required property".into(),
        )
    })?;
    let limit = max_items(s, &server.project_id).await?;
    let given = metadata_from(given, -1)?;
    let (server, ()) = servers::modify(s, id, |sv| {
        let mut next = if replace {
            BTreeMap::new()
        } else {
            sv.metadata.clone()
        };
        next.extend(given);
        if limit >= 0 && next.len() as i64 > limit {
            return Err(Error::Forbidden(format!(
                "Quota exceeded for metadata_items: Requested {}, but the limit is {limit}",
                next.len()
            )));
        }
        sv.metadata = next;
        Ok(())
    })
    .await?;
    Ok(server.metadata)
}

async fn replace_meta(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let m = set_meta(&s, &authz, &id, &body, true).await?;
    Ok(Json(json!({"metadata": m})))
}

async fn merge_meta(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let m = set_meta(&s, &authz, &id, &body, false).await?;
    Ok(Json(json!({"metadata": m})))
}

fn meta_not_found() -> Error {
    Error::NotFound("Metadata item was not found".into())
}

async fn show_meta(
    State(s): State<ComputeService>,
    authz: Authz,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let server = visible(&s, &authz, &id).await?;
    let v = server.metadata.get(&key).ok_or_else(meta_not_found)?;
    Ok(Json(json!({"meta": {key: v}})))
}

async fn put_meta(
    State(s): State<ComputeService>,
    authz: Authz,
    Path((id, key)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let meta = body.get("meta").ok_or_else(|| {
        Error::BadRequest(
            "Invalid input for field/attribute meta. 'meta' is a required property".into(),
        )
    })?;
    let item = metadata_from(meta, -1)?;
    if item.len() != 1 || !item.contains_key(&key) {
        return Err(Error::BadRequest("Request body and URI mismatch".into()).into());
    }
    set_meta(&s, &authz, &id, &json!({"metadata": item}), false).await?;
    Ok(Json(json!({"meta": item})))
}

async fn delete_meta(
    State(s): State<ComputeService>,
    authz: Authz,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    visible(&s, &authz, &id).await?;
    servers::modify(&s, &id, |sv| {
        sv.metadata
            .remove(&key)
            .map(|_| ())
            .ok_or_else(meta_not_found)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn render_action(a: &InstanceAction) -> Value {
    json!({
        "action": a.action,
        "instance_uuid": a.server_id,
        "message": a.message,
        "project_id": a.project_id,
        "request_id": a.request_id,
        "start_time": a.start_time,
        "user_id": a.user_id,
    })
}

async fn actions_of(s: &ComputeService, id: &str) -> Result<Vec<InstanceAction>, Error> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let mut list: Vec<InstanceAction> = store::children(&mut conn, id).await?;
    // Newest first, as Nova lists them.
    list.reverse();
    Ok(list)
}

async fn list_actions(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    visible(&s, &authz, &id).await?;
    let items: Vec<Value> = actions_of(&s, &id)
        .await?
        .iter()
        .map(render_action)
        .collect();
    Ok(Json(json!({"instanceActions": items})))
}

async fn show_action(
    State(s): State<ComputeService>,
    authz: Authz,
    Path((id, request_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    visible(&s, &authz, &id).await?;
    let a = actions_of(&s, &id)
        .await?
        .into_iter()
        .find(|a| a.request_id == request_id)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "Action for request_id {request_id} on instance {id} not found"
            ))
        })?;
    let mut v = render_action(&a);
    v["events"] = json!([]);
    Ok(Json(json!({"instanceAction": v})))
}

async fn interface(s: &ComputeService, port_id: &str) -> Result<Option<Value>, Error> {
    Ok(instance_ports::get(s.network(), port_id).await?.map(|p| {
        let ips: Vec<Value> = p
            .fixed_ips
            .iter()
            .map(|ip| json!({"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}))
            .collect();
        json!({
            "port_state": p.status,
            "fixed_ips": ips,
            "port_id": p.meta.id,
            "net_id": p.network_id,
            "mac_addr": p.mac_address,
        })
    }))
}

async fn list_interfaces(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let server = visible(&s, &authz, &id).await?;
    let mut items = Vec::new();
    for port_id in &server.ports {
        if let Some(v) = interface(&s, port_id).await? {
            items.push(v);
        }
    }
    Ok(Json(json!({"interfaceAttachments": items})))
}

fn interface_not_found(port_id: &str) -> Error {
    Error::NotFound(format!("Port {port_id} is not attached"))
}

async fn show_interface(
    State(s): State<ComputeService>,
    authz: Authz,
    Path((id, port_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let server = visible(&s, &authz, &id).await?;
    if !server.ports.contains(&port_id) {
        return Err(interface_not_found(&port_id).into());
    }
    let v = interface(&s, &port_id)
        .await?
        .ok_or_else(|| interface_not_found(&port_id))?;
    Ok(Json(json!({"interfaceAttachment": v})))
}

fn settled_for_interfaces(server: &Server) -> Result<(), Error> {
    use crate::model::VmState;
    if server.deleting
        || server.task_state.is_some()
        || !matches!(
            server.vm_state,
            VmState::Active | VmState::Stopped | VmState::Paused
        )
    {
        return Err(Error::Conflict(format!(
            "Cannot 'attach_interface' instance {} while it is in vm_state {}",
            server.id,
            server.vm_state.as_str()
        )));
    }
    Ok(())
}

async fn attach(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let server = visible(&s, &authz, &id).await?;
    settled_for_interfaces(&server)?;
    let req = body
        .get("interfaceAttachment")
        .cloned()
        .unwrap_or(json!({}));
    let port_id = req
        .get("port_id")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let net_id = req
        .get("net_id")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let fixed_ip = req
        .get("fixed_ips")
        .and_then(Value::as_array)
        .and_then(|l| l.first())
        .and_then(|f| f.get("ip_address"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let admin = wire::is_admin(&ctx);
    let (port, created) = match (port_id, net_id) {
        (Some(_), Some(_)) => {
            return Err(
                Error::BadRequest("Must not input both network_id and port_id".into()).into(),
            )
        }
        (Some(port_id), None) => {
            let p = instance_ports::bind(
                s.network(),
                &server.project_id,
                admin,
                port_id,
                &server.id,
                &server.availability_zone,
                &server.host,
            )
            .await?;
            (p, false)
        }
        (None, net) => {
            let network_id = match net {
                Some(n) => n.to_string(),
                None => {
                    let nets =
                        instance_ports::candidate_networks(s.network(), &server.project_id).await?;
                    match nets.as_slice() {
                        [one] => one.meta.id.clone(),
                        [] => return Err(Error::BadRequest("No network to attach to.".into()).into()),
                        _ => {
                            return Err(Error::Conflict(
                                "Multiple possible networks found, use a Network ID to be more specific.".into(),
                            )
                            .into())
                        }
                    }
                }
            };
            instance_ports::usable_network(s.network(), &server.project_id, admin, &network_id)
                .await
                .map_err(|_| {
                    Error::BadRequest(format!("Network {network_id} could not be found."))
                })?;
            let groups = instance_ports::resolve_security_groups(
                s.network(),
                &server.project_id,
                &server.security_groups,
            )
            .await?;
            let p = instance_ports::create(
                s.network(),
                NewInstancePort {
                    project_id: server.project_id.clone(),
                    network_id,
                    fixed_ip,
                    security_groups: Some(groups.into_iter().map(|g| g.meta.id).collect()),
                    server_id: server.id.clone(),
                    availability_zone: server.availability_zone.clone(),
                    host: server.host.clone(),
                },
            )
            .await?;
            (p, true)
        }
    };
    let port_id = port.meta.id.clone();
    let (server, ()) = servers::modify(&s, &id, |sv| {
        sv.ports.push(port_id.clone());
        if created {
            sv.created_ports.push(port_id.clone());
        }
        Ok(())
    })
    .await?;
    servers::record_action(&s, &server, &ctx, "attach_interface").await?;
    s.changed();
    let v = interface(&s, &port.meta.id)
        .await?
        .ok_or_else(|| interface_not_found(&port.meta.id))?;
    Ok(Json(json!({"interfaceAttachment": v})))
}

async fn detach(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path((id, port_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let server = visible(&s, &authz, &id).await?;
    settled_for_interfaces(&server)?;
    if !server.ports.contains(&port_id) {
        return Err(interface_not_found(&port_id).into());
    }
    if server.created_ports.contains(&port_id) {
        instance_ports::delete(s.network(), &port_id).await?;
    } else {
        instance_ports::unbind(s.network(), &port_id).await?;
    }
    let (server, ()) = servers::modify(&s, &id, |sv| {
        sv.ports.retain(|p| p != &port_id);
        sv.created_ports.retain(|p| p != &port_id);
        Ok(())
    })
    .await?;
    servers::record_action(&s, &server, &ctx, "detach_interface").await?;
    s.changed();
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn list_groups(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let server = visible(&s, &authz, &id).await?;
    let groups = instance_ports::resolve_security_groups(
        s.network(),
        &server.project_id,
        &server.security_groups,
    )
    .await?;
    // The shape of /os-security-groups, rules included, as Nova shows them.
    let groups = instance_ports::with_rules(s.network(), groups).await?;
    let items = super::security_groups_proxy::render_groups(&s, &groups).await?;
    Ok(Json(json!({"security_groups": items})))
}
