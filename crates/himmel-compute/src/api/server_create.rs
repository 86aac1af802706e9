//! `POST /servers`: validates the request like Nova (flavor, image, key,
//! networks, zone, user data, metadata, counts, quota), writes the servers
//! in BUILD, creates or binds their ports, and leaves the rest to the
//! reconciler. A request that cannot be satisfied leaves nothing behind.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use himmel_core::{Error, RequestContext};
use himmel_http::policy::decide;
use himmel_http::{ApiResult, Authz, Ctx, Decision, Json};
use himmel_network::instance_ports::{self, NewInstancePort};
use serde::Deserialize;
use serde_json::{json, Value};

use super::servers::{check_name, metadata_from};
use super::{flavors, keypairs, server_groups, wire};
use crate::images::BootImage;
use crate::model::{Fault, FlavorSnapshot, NicRequest, Power, Server, VmState, AVAILABILITY_ZONE};
use crate::policy::*;
use crate::scheduler;
use crate::servers::{self, now};
use crate::store::{self, db_err, quota};
use crate::ComputeService;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateServer {
    name: String,
    #[serde(rename = "imageRef")]
    image_ref: Option<String>,
    #[serde(rename = "flavorRef")]
    flavor_ref: Value,
    key_name: Option<String>,
    user_data: Option<String>,
    metadata: Option<Value>,
    networks: Option<Value>,
    security_groups: Option<Vec<SecurityGroupRef>>,
    availability_zone: Option<String>,
    block_device_mapping_v2: Option<Vec<BlockDevice>>,
    config_drive: Option<Value>,
    min_count: Option<Value>,
    max_count: Option<Value>,
    return_reservation_id: Option<Value>,
    #[serde(rename = "accessIPv4")]
    access_ipv4: Option<String>,
    #[serde(rename = "accessIPv6")]
    access_ipv6: Option<String>,
    #[serde(rename = "adminPass")]
    admin_pass: Option<String>,
    #[serde(rename = "OS-DCF:diskConfig")]
    disk_config: Option<String>,
    personality: Option<Value>,
}

#[derive(Deserialize)]
struct SecurityGroupRef {
    name: String,
}

/// What a block device mapping says that matters here (its size, bus and
/// name follow from the flavor and the driver).
#[derive(Deserialize)]
struct BlockDevice {
    boot_index: Option<Value>,
    uuid: Option<String>,
    source_type: Option<String>,
    destination_type: Option<String>,
}

/// The last path segment of a reference (clients may send URLs).
fn reference(v: &str) -> &str {
    v.trim_end_matches('/').rsplit('/').next().unwrap_or(v)
}

fn count(v: &Option<Value>, name: &str) -> Result<Option<u64>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            };
            n.filter(|n| *n >= 1).map(Some).ok_or_else(|| {
                Error::BadRequest(format!(
                    "Invalid input for field/attribute {name}. Value: {}. It must be an integer of at least 1.",
                    wire::short(v)
                ))
            })
        }
    }
}

fn boolish(v: &Option<Value>, name: &str) -> Result<bool, Error> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.is_empty() => Ok(false),
        Some(Value::String(s)) => wire::parse_bool(name, s),
        Some(other) => Err(Error::BadRequest(format!(
            "Invalid input for field/attribute {name}. Value: {}.",
            wire::short(other)
        ))),
    }
}

/// The image to boot: `imageRef`, or the image of a boot-index-0 block
/// device mapping from image to local disk (the only mapping offered).
fn image_id(req: &CreateServer) -> Result<Option<String>, Error> {
    let mut from_bdm = None;
    for bd in req.block_device_mapping_v2.iter().flatten() {
        let source = bd.source_type.as_deref().unwrap_or("blank");
        let dest = bd.destination_type.as_deref().unwrap_or("local");
        match (source, dest) {
            ("image", "local") => {
                let is_root = match &bd.boot_index {
                    None | Some(Value::Null) => true,
                    Some(Value::Number(n)) => n.as_i64() == Some(0),
                    Some(Value::String(s)) => s == "0",
                    Some(_) => false,
                };
                if !is_root {
                    return Err(Error::BadRequest(
                        "Only the root disk (boot_index 0) may come from an image.".into(),
                    ));
                }
                let uuid = bd.uuid.clone().ok_or_else(|| {
                    Error::BadRequest("Block device mapping from an image needs its uuid.".into())
                })?;
                from_bdm = Some(uuid);
            }
            (_, "volume") | ("volume" | "snapshot", _) => {
                return Err(Error::BadRequest(
                    "Block device mappings to volumes are not offered by this cloud.".into(),
                ))
            }
            ("blank", "local") => {
                return Err(Error::BadRequest(
                    "Ephemeral and swap block devices are not offered by this cloud.".into(),
                ))
            }
            (s, d) => {
                return Err(Error::BadRequest(format!(
                    "Invalid block device mapping: source_type {s} to destination_type {d}."
                )))
            }
        }
    }
    let image_ref = req
        .image_ref
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| reference(s).to_string());
    Ok(image_ref.or(from_bdm))
}

/// The networks asked for: a list of `{uuid|port, fixed_ip}` (microversion
/// 2.1 has no `auto`/`none`); none asked for means the project's one
/// network, as in Nova.
async fn nics(
    s: &ComputeService,
    ctx: &RequestContext,
    project: &str,
    v: &Option<Value>,
) -> Result<Vec<NicRequest>, Error> {
    let admin = wire::is_admin(ctx);
    let Some(v) = v else {
        let nets = instance_ports::candidate_networks(s.network(), project).await?;
        return match nets.as_slice() {
            [] => Ok(vec![]),
            [one] => Ok(vec![NicRequest {
                network_id: one.meta.id.clone(),
                port_id: None,
                fixed_ip: None,
            }]),
            _ => Err(Error::Conflict(
                "Multiple possible networks found, use a Network ID to be more specific.".into(),
            )),
        };
    };
    let Value::Array(list) = v else {
        return Err(Error::BadRequest(format!(
            "Invalid input for field/attribute networks. Value: {}. It must be a list.",
            wire::short(v)
        )));
    };
    let mut out = Vec::new();
    for item in list {
        let Value::Object(m) = item else {
            return Err(Error::BadRequest(
                "Invalid input for field/attribute networks. Each entry must be an object.".into(),
            ));
        };
        if let Some(k) = m
            .keys()
            .find(|k| !["uuid", "port", "fixed_ip", "tag"].contains(&k.as_str()))
        {
            return Err(Error::BadRequest(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
        let text = |k: &str| m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        if let Some(port_id) = text("port") {
            let port = instance_ports::get(s.network(), port_id)
                .await?
                .filter(|p| admin || p.meta.project_id == project)
                .ok_or_else(|| Error::BadRequest(format!("Port {port_id} could not be found.")))?;
            if !port.device_id.is_empty() {
                return Err(Error::Conflict(format!("Port {port_id} is still in use.")));
            }
            out.push(NicRequest {
                network_id: port.network_id,
                port_id: Some(port_id.to_string()),
                fixed_ip: None,
            });
        } else if let Some(net_id) = text("uuid") {
            let network = instance_ports::usable_network(s.network(), project, admin, net_id)
                .await
                .map_err(|_| Error::BadRequest(format!("Network {net_id} could not be found.")))?;
            let fixed_ip = match text("fixed_ip") {
                Some(ip) => {
                    ip.parse::<std::net::IpAddr>().map_err(|_| {
                        Error::BadRequest(format!(
                            "Invalid input for field/attribute fixed_ip. Value: {}. Not a valid IP address.",
                            wire::short(&json!(ip))
                        ))
                    })?;
                    Some(ip.to_string())
                }
                None => None,
            };
            out.push(NicRequest {
                network_id: network.meta.id,
                port_id: None,
                fixed_ip,
            });
        } else {
            return Err(Error::BadRequest(
                "Bad networks format: each network needs a uuid or a port.".into(),
            ));
        }
    }
    Ok(out)
}

/// Checks the flavor is large enough for the image, as Nova does.
fn check_fits(flavor: &FlavorSnapshot, image: &BootImage) -> Result<(), Error> {
    if image.min_ram_mb > flavor.ram {
        return Err(Error::BadRequest(
            "Flavor's memory is too small for requested image.".into(),
        ));
    }
    if flavor.disk > 0
        && (image.min_disk_gb > flavor.disk || image.size > flavor.disk * 1024 * 1024 * 1024)
    {
        return Err(Error::BadRequest(
            "Flavor's disk is too small for requested image.".into(),
        ));
    }
    Ok(())
}

pub async fn create(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let project = ctx
        .project_id()
        .ok_or_else(|| Error::BadRequest("Creating a server needs a project-scoped token.".into()))?
        .to_string();
    authz.check(&wire::target(&project))?;
    let group_hint = scheduler_group(&body)?;
    let req: CreateServer = wire::body(body, "server")?;
    check_name(&req.name)?;
    if req.personality.is_some() {
        return Err(Error::BadRequest(
            "Personality files are not offered by this cloud; use user_data or a config drive."
                .into(),
        )
        .into());
    }
    if let Some(dc) = &req.disk_config {
        if dc != "AUTO" && dc != "MANUAL" {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute OS-DCF:diskConfig. Value: {}.",
                wire::short(&json!(dc))
            ))
            .into());
        }
    }

    let flavor_ref = match &req.flavor_ref {
        Value::String(s) if !s.is_empty() => reference(s).to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute flavorRef. Value: {}.",
                wire::short(other)
            ))
            .into())
        }
    };
    let flavor = match flavors::find(&s, &ctx, &flavor_ref).await {
        Ok(f) if !f.disabled => FlavorSnapshot::from(&f),
        _ => {
            return Err(
                Error::BadRequest(format!("Flavor {flavor_ref} could not be found.")).into(),
            )
        }
    };

    let image_ref = image_id(&req)?.unwrap_or_default();
    if image_ref.is_empty() {
        return Err(Error::BadRequest(
            "Missing imageRef attribute: this cloud boots servers from images.".into(),
        )
        .into());
    }
    let image = match s.images() {
        Some(images) => images
            .image_for_boot(&ctx, &image_ref)
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => {
                    Error::BadRequest(format!("Image {image_ref} could not be found."))
                }
                Error::Internal(_) => e,
                other => Error::BadRequest(format!(
                    "Image {image_ref} is not active: {}",
                    other.public_message()
                )),
            })?,
        None => {
            return Err(Error::BadRequest(format!("Image {image_ref} could not be found.")).into())
        }
    };
    check_fits(&flavor, &image)?;

    let key = match &req.key_name {
        Some(name) => Some(
            keypairs::find(&s, &ctx.user_id, name)
                .await
                .map_err(|_| Error::BadRequest("Invalid key_name provided.".into()))?,
        ),
        None => None,
    };
    if let Some(ud) = &req.user_data {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ud.trim())
            .map_err(|_| Error::BadRequest("User data needs to be valid base 64.".into()))?;
        if ud.len() > 65535 {
            return Err(Error::BadRequest(format!(
                "User data too large. User data must be no larger than 65535 bytes once base64 encoded. Your data is {} bytes",
                decoded.len()
            ))
            .into());
        }
    }
    let mut forced_host = None;
    let mut requested_zone = None;
    let zone = match req.availability_zone.as_deref() {
        None | Some("") => AVAILABILITY_ZONE.to_string(),
        Some(z) => {
            let (name, host) = z.split_once(':').map_or((z, None), |(a, b)| (a, Some(b)));
            if let Some(host) = host.filter(|h| !h.is_empty()) {
                if decide(CREATE_SERVER_FORCED_HOST.rule, Some(&ctx), None) != Decision::Allow {
                    return Err(
                        himmel_http::pipeline::forbidden(CREATE_SERVER_FORCED_HOST.name).into(),
                    );
                }
                forced_host = Some(host.to_string());
            }
            if name.is_empty() {
                AVAILABILITY_ZONE.to_string()
            } else {
                if !scheduler::zone_exists(s.db(), name).await? {
                    return Err(Error::BadRequest(format!(
                        "The requested availability zone is not available: {}",
                        wire::short(&json!(name))
                    ))
                    .into());
                }
                requested_zone = Some(name.to_string());
                name.to_string()
            }
        }
    };
    let config_drive = boolish(&req.config_drive, "config_drive")?;
    if config_drive {
        return Err(Error::BadRequest(
            "Config drives are not offered by this cloud yet; guests read the metadata service at 169.254.169.254."
                .into(),
        )
        .into());
    }
    let return_reservation_id = boolish(&req.return_reservation_id, "return_reservation_id")?;
    let min_count = count(&req.min_count, "min_count")?.unwrap_or(1);
    let max_count = count(&req.max_count, "max_count")?.unwrap_or(min_count);
    if min_count > max_count {
        return Err(Error::BadRequest("min_count must be <= max_count".into()).into());
    }
    if max_count > 1
        && req.networks.as_ref().is_some_and(|n| {
            n.as_array()
                .is_some_and(|l| l.iter().any(|e| e.get("port").is_some()))
        })
    {
        return Err(Error::BadRequest(
            "Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports."
                .into(),
        )
        .into());
    }
    let nic_requests = nics(&s, &ctx, &project, &req.networks).await?;
    let group_names: Vec<String> = match &req.security_groups {
        Some(g) if !g.is_empty() => g.iter().map(|g| g.name.clone()).collect(),
        _ => vec!["default".to_string()],
    };
    let groups = if nic_requests.is_empty() {
        vec![]
    } else {
        instance_ports::resolve_security_groups(s.network(), &project, &group_names).await?
    };
    if let Some(v) = &req.access_ipv4 {
        if !v.is_empty() && v.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(
                Error::BadRequest("Invalid input for field/attribute accessIPv4.".into()).into(),
            );
        }
    }
    if let Some(v) = &req.access_ipv6 {
        if !v.is_empty() && v.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(
                Error::BadRequest("Invalid input for field/attribute accessIPv6.".into()).into(),
            );
        }
    }

    // Quota, then the rows, in one transaction.
    let reservation_id = format!("r-{}", &himmel_core::ids::new_id()[..8]);
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let limits = quota::limits(&mut tx, &project).await?;
    let metadata = match &req.metadata {
        Some(m) => metadata_from(m, limits.get("metadata_items").copied().unwrap_or(-1))?,
        None => Default::default(),
    };
    let n = max_count as i64;
    let wanted = |n: i64| {
        [
            ("instances", n),
            ("cores", n * flavor.vcpus as i64),
            ("ram", n * flavor.ram as i64),
        ]
    };
    let mut made = n;
    if let Err(e) = quota::check(&mut tx, &project, &ctx.user_id, &wanted(n)).await {
        // Nova builds fewer when min_count allows it.
        made = 0;
        for k in (min_count as i64..n).rev() {
            if quota::check(&mut tx, &project, &ctx.user_id, &wanted(k))
                .await
                .is_ok()
            {
                made = k;
                break;
            }
        }
        if made == 0 {
            return Err(e.into());
        }
    }
    if let Some(group) = &group_hint {
        server_groups::check_members(&mut tx, group, &project, wire::is_admin(&ctx), made).await?;
    }
    let now = now();
    let mut created: Vec<Server> = Vec::new();
    for i in 0..made {
        let name = if made > 1 {
            format!("{}-{}", req.name, i + 1)
        } else {
            req.name.clone()
        };
        let server = Server {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project.clone(),
            user_id: ctx.user_id.clone(),
            hostname: hostname(&name),
            name,
            vm_state: VmState::Building,
            task_state: Some("scheduling".into()),
            power: Power::Running,
            power_state: 0,
            flavor: flavor.clone(),
            old_flavor: None,
            migration_id: None,
            image_ref: image.id.clone(),
            image: image.clone(),
            key_name: key.as_ref().map(|k| k.name.clone()),
            key_data: key.as_ref().map(|k| k.public_key.clone()),
            user_data: req.user_data.clone(),
            metadata: metadata.clone(),
            tags: vec![],
            security_groups: groups.iter().map(|g| g.name.clone()).collect(),
            availability_zone: zone.clone(),
            host: s.config().host.clone(),
            nics: nic_requests.clone(),
            ports: vec![],
            created_ports: vec![],
            config_drive,
            launch_index: i,
            reservation_id: reservation_id.clone(),
            access_ipv4: req.access_ipv4.clone().unwrap_or_default(),
            access_ipv6: req.access_ipv6.clone().unwrap_or_default(),
            fault: None,
            generation: 0,
            reboot_kind: None,
            launched_at: None,
            created_at: now.clone(),
            updated_at: now.clone(),
            deleting: false,
            locked_by: None,
            password: None,
        };
        let mut server = server;
        let claim = scheduler::Request {
            consumer: server.id.clone(),
            project_id: project.clone(),
            user_id: ctx.user_id.clone(),
            resources: scheduler::flavor_resources(&flavor),
            zone: requested_zone.clone(),
            forced_host: forced_host.clone(),
            group: group_hint.clone(),
        };
        match scheduler::schedule_in(&mut tx, &claim).await {
            Ok(host) => server.host = host,
            Err(scheduler::ScheduleError::Failed(e)) => return Err(e.into()),
            Err(e @ scheduler::ScheduleError::NoValidHost(_)) => {
                server.host = String::new();
                server.vm_state = VmState::Error;
                server.task_state = None;
                server.fault = Some(Fault {
                    code: 500,
                    message: scheduler::NO_VALID_HOST.into(),
                    details: e.message(),
                    created: now.clone(),
                });
            }
        }
        store::insert(&mut tx, &server, || "server exists".into()).await?;
        created.push(server);
    }
    tx.commit().await.map_err(db_err)?;

    // Ports: a failure removes what this request made, servers included.
    let group_ids: Vec<String> = groups.iter().map(|g| g.meta.id.clone()).collect();
    for i in 0..created.len() {
        // No host, no ports (as in Nova, where the build creates them).
        if created[i].vm_state == VmState::Error {
            continue;
        }
        if let Err(e) = plug(&s, &ctx, &mut created[i], &group_ids).await {
            for sv in &created {
                release_ports(&s, sv).await;
                let _ = servers::purge(&s, &sv.id).await;
            }
            return Err(e.into());
        }
    }
    for server in &created {
        servers::record_action(&s, server, &ctx, "create").await?;
    }
    s.changed();
    let first = &created[0];
    if return_reservation_id {
        return Ok(wire::with_status(
            StatusCode::ACCEPTED,
            "reservation_id",
            &first.id,
            json!(reservation_id),
        ));
    }
    let mut v = json!({
        "id": first.id,
        "links": wire::links(&headers, "servers", &first.id),
        "OS-DCF:diskConfig": req.disk_config.unwrap_or_else(|| "MANUAL".into()),
        "security_groups": first.security_groups.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
    });
    // The guest gets no password from us; Nova shows one nonetheless.
    v["adminPass"] = json!(req
        .admin_pass
        .unwrap_or_else(|| himmel_core::ids::new_id()[..12].to_string()));
    Ok(wire::with_status(
        StatusCode::ACCEPTED,
        "server",
        &first.id,
        v,
    ))
}

/// The server group of the scheduler hints (`{"group": "<uuid>"}`), if any.
/// Nova takes them as `os:scheduler_hints` or, as the SDK sends them,
/// `OS-SCH-HNT:scheduler_hints`.
fn scheduler_group(body: &Value) -> Result<Option<String>, Error> {
    let hints = body
        .get("os:scheduler_hints")
        .or_else(|| body.get("OS-SCH-HNT:scheduler_hints"));
    match hints.and_then(|h| h.get("group")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(g)) => Ok(Some(g.clone())),
        Some(other) => Err(Error::BadRequest(format!(
            "Invalid input for field/attribute group. Value: {}. It is not a string",
            wire::short(other)
        ))),
    }
}

/// A DNS label from a server name, as Nova derives `hostname`.
fn hostname(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches('-').to_string();
    out.truncate(63);
    if out.is_empty() {
        "server".into()
    } else {
        out
    }
}

/// Creates or binds the server's ports and records them on the server.
async fn plug(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &mut Server,
    group_ids: &[String],
) -> Result<(), Error> {
    for nic in server.nics.clone() {
        let port = match &nic.port_id {
            Some(port_id) => {
                let p = instance_ports::bind(
                    s.network(),
                    &server.project_id,
                    wire::is_admin(ctx),
                    port_id,
                    &server.id,
                    &server.availability_zone,
                    &server.host,
                )
                .await?;
                server.ports.push(p.meta.id.clone());
                p
            }
            None => {
                let p = instance_ports::create(
                    s.network(),
                    NewInstancePort {
                        project_id: server.project_id.clone(),
                        network_id: nic.network_id.clone(),
                        fixed_ip: nic.fixed_ip.clone(),
                        security_groups: Some(group_ids.to_vec()),
                        server_id: server.id.clone(),
                        availability_zone: server.availability_zone.clone(),
                        host: server.host.clone(),
                    },
                )
                .await?;
                server.ports.push(p.meta.id.clone());
                server.created_ports.push(p.meta.id.clone());
                p
            }
        };
        tracing::debug!(server = %server.id, port = %port.meta.id, "port plugged");
    }
    let ports = server.ports.clone();
    let created = server.created_ports.clone();
    servers::modify(s, &server.id, |sv| {
        sv.ports = ports;
        sv.created_ports = created;
        sv.task_state = Some("networking".into());
        Ok(())
    })
    .await?;
    Ok(())
}

/// Deletes the ports compute made for a server and gives back the user's.
pub async fn release_ports(s: &ComputeService, server: &Server) {
    for port_id in &server.ports {
        let result = if server.created_ports.contains(port_id) {
            instance_ports::delete(s.network(), port_id).await
        } else {
            instance_ports::unbind(s.network(), port_id).await
        };
        if let Err(e) = result {
            tracing::warn!(server = %server.id, port = %port_id, error = %e, "releasing a port");
        }
    }
}
