//! Ports for servers, for the compute service in the same process (not
//! over HTTP). A server's port has `device_owner = compute:<zone>`,
//! `device_id` = the server's id and `binding:host_id` = the compute host,
//! so the dataplane reconciler plugs it into the instance's namespace.
//! These reuse the port API's allocation, quota and deletion code, so a
//! server's port is exactly a port a user could have made.

use std::collections::HashMap;

use himmel_core::Error;

use crate::api::{ports, security_groups};
use crate::model::{self, Meta, Network, Port, Resource, SecurityGroup, SecurityGroupRule, Subnet};
use crate::store::{self, db_err, quota, Visibility};
use crate::NetworkService;

/// A new port for a server.
#[derive(Debug, Clone)]
pub struct NewInstancePort {
    pub project_id: String,
    pub network_id: String,
    /// A fixed address asked for on the network.
    pub fixed_ip: Option<String>,
    /// Security group ids; `None` is the project's default group.
    pub security_groups: Option<Vec<String>>,
    pub server_id: String,
    pub availability_zone: String,
    pub host: String,
}

impl NetworkService {
    /// Wakes the dataplane reconciler after a change made in-process.
    pub fn notify_changed(&self) {
        self.changed();
    }
}

/// `device_owner` of a server's port.
pub fn device_owner(availability_zone: &str) -> String {
    format!("compute:{availability_zone}")
}

fn network_not_found(id: &str) -> Error {
    Error::NotFound(format!("Network {id} could not be found."))
}

/// A network `project` may put a server on: its own or a shared one
/// (administrators: any). Others are not found.
pub async fn usable_network(
    net: &NetworkService,
    project_id: &str,
    admin: bool,
    network_id: &str,
) -> Result<Network, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    match store::get::<Network>(&mut conn, network_id).await? {
        Some(n) if admin || n.shared || n.meta.project_id == project_id => Ok(n),
        _ => Err(network_not_found(network_id)),
    }
}

/// The tenant networks a server of `project` could go on when it names
/// none: the project's own and shared ones, not external ones.
pub async fn candidate_networks(
    net: &NetworkService,
    project_id: &str,
) -> Result<Vec<Network>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let all: Vec<Network> =
        store::list(&mut conn, &Visibility::Project(project_id.to_string())).await?;
    Ok(all
        .into_iter()
        .filter(|n| !n.external && (n.shared || n.meta.project_id == project_id))
        .collect())
}

/// Security groups by id or name in `project`, as ids (Nova takes names).
pub async fn resolve_security_groups(
    net: &NetworkService,
    project_id: &str,
    names_or_ids: &[String],
) -> Result<Vec<SecurityGroup>, Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    // The default group exists once anything asks for it, as in Neutron.
    if names_or_ids.iter().any(|n| n == "default") {
        security_groups::ensure_default(&mut tx, project_id).await?;
    }
    let groups: Vec<SecurityGroup> =
        store::list(&mut tx, &Visibility::Project(project_id.to_string())).await?;
    tx.commit().await.map_err(db_err)?;
    let mut out: Vec<SecurityGroup> = Vec::new();
    for wanted in names_or_ids {
        let matching: Vec<&SecurityGroup> = groups
            .iter()
            .filter(|g| g.meta.project_id == project_id)
            .filter(|g| &g.meta.id == wanted || &g.name == wanted)
            .collect();
        match matching.as_slice() {
            [g] => {
                if !out.iter().any(|o| o.meta.id == g.meta.id) {
                    out.push((*g).clone());
                }
            }
            [] => {
                return Err(Error::BadRequest(format!(
                    "Security group {wanted} not found for project {project_id}."
                )))
            }
            _ => {
                return Err(Error::Conflict(format!(
                    "Multiple security groups named {wanted} exist; use its id."
                )))
            }
        }
    }
    Ok(out)
}

/// Creates and binds a port for a server (quota, addresses, default group
/// as for any port), and wakes the dataplane.
pub async fn create(net: &NetworkService, req: NewInstancePort) -> Result<Port, Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    let network = store::get::<Network>(&mut tx, &req.network_id)
        .await?
        .ok_or_else(|| network_not_found(&req.network_id))?;
    let port_security = network.port_security_enabled;
    let groups = match req.security_groups {
        Some(g) if port_security => g,
        Some(_) => vec![],
        None if port_security => {
            vec![security_groups::ensure_default(&mut tx, &req.project_id).await?]
        }
        None => vec![],
    };
    quota::check(&mut tx, &req.project_id, "port", 1).await?;
    let mut port = Port {
        meta: Meta {
            project_id: req.project_id.clone(),
            ..Default::default()
        },
        name: String::new(),
        network_id: network.meta.id.clone(),
        admin_state_up: true,
        status: model::STATUS_DOWN.into(),
        mac_address: crate::addr::random_mac(),
        fixed_ips: vec![],
        device_id: req.server_id,
        device_owner: device_owner(&req.availability_zone),
        host_id: req.host,
        security_groups: groups,
        allowed_address_pairs: vec![],
        port_security_enabled: port_security,
    };
    store::stamp_new(&mut port.meta);
    let requested = req.fixed_ip.map(|ip| {
        vec![ports::FixedIpRequest {
            subnet_id: None,
            ip_address: Some(ip),
        }]
    });
    let mac = port.mac_address.clone();
    port.fixed_ips =
        ports::allocate(&mut tx, &network, requested, &port.meta.id, Some(&mac)).await?;
    store::insert(&mut tx, &port, || {
        format!("The mac address {mac} is in use.")
    })
    .await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(port)
}

/// Binds an existing port of `project` to a server. A port in use by
/// another device is a 409, as in Nova.
pub async fn bind(
    net: &NetworkService,
    project_id: &str,
    admin: bool,
    port_id: &str,
    server_id: &str,
    availability_zone: &str,
    host: &str,
) -> Result<Port, Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    let mut port = match store::get::<Port>(&mut tx, port_id).await? {
        Some(p) if admin || p.meta.project_id == project_id => p,
        _ => {
            return Err(Error::NotFound(format!(
                "Port id {port_id} could not be found."
            )))
        }
    };
    if !port.device_id.is_empty() && port.device_id != server_id {
        return Err(Error::Conflict(format!("Port {port_id} is still in use.")));
    }
    port.device_id = server_id.to_string();
    port.device_owner = device_owner(availability_zone);
    port.host_id = host.to_string();
    store::update(&mut tx, &mut port).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(port)
}

/// Gives a user's port back: no device, no host.
pub async fn unbind(net: &NetworkService, port_id: &str) -> Result<(), Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    if let Some(mut port) = store::get::<Port>(&mut tx, port_id).await? {
        port.device_id.clear();
        port.device_owner.clear();
        port.host_id.clear();
        port.status = model::STATUS_DOWN.into();
        store::update(&mut tx, &mut port).await?;
    }
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(())
}

/// Deletes a port (its addresses and floating IP associations with it).
/// A port already gone is fine.
pub async fn delete(net: &NetworkService, port_id: &str) -> Result<(), Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    if let Some(port) = store::get::<Port>(&mut tx, port_id).await? {
        ports::delete_rows(&mut tx, &port).await?;
    }
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(())
}

/// A port by id.
pub async fn get(net: &NetworkService, port_id: &str) -> Result<Option<Port>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    store::get::<Port>(&mut conn, port_id).await
}

/// The ports with the given ids and the networks they are on, each read in one query.
pub async fn ports_and_networks(
    net: &NetworkService,
    port_ids: &[&str],
) -> Result<(HashMap<String, Port>, HashMap<String, Network>), Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let ports: HashMap<String, Port> = store::get_many(&mut conn, port_ids).await?;
    let mut network_ids: Vec<&str> = ports.values().map(|p| p.network_id.as_str()).collect();
    network_ids.sort_unstable();
    network_ids.dedup();
    let networks = store::get_many(&mut conn, &network_ids).await?;
    Ok((ports, networks))
}

/// Every port bound to a device by compute (`compute:*` owners).
pub async fn compute_ports(net: &NetworkService) -> Result<Vec<Port>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let all: Vec<Port> = store::list(&mut conn, &Visibility::All).await?;
    Ok(all
        .into_iter()
        .filter(|p| p.device_owner.starts_with("compute:"))
        .collect())
}

/// Replaces a port's security groups (ids).
pub async fn set_security_groups(
    net: &NetworkService,
    port_id: &str,
    group_ids: Vec<String>,
) -> Result<(), Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    if let Some(mut port) = store::get::<Port>(&mut tx, port_id).await? {
        if port.port_security_enabled {
            port.security_groups = group_ids;
            store::update(&mut tx, &mut port).await?;
        }
    }
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(())
}

/// Security groups by id (for showing their names).
pub async fn security_groups(
    net: &NetworkService,
    ids: &[String],
) -> Result<Vec<SecurityGroup>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(g) = store::get::<SecurityGroup>(&mut conn, id).await? {
            out.push(g);
        }
    }
    Ok(out)
}

/// Who calls the compute API's security group proxy: the token's project,
/// and whether it is the cloud administrator (who, as in Neutron, reaches
/// every project's groups). Any other project's group is not found.
#[derive(Debug, Clone, Copy)]
pub struct GroupCaller<'a> {
    pub project_id: &'a str,
    pub admin: bool,
}

impl GroupCaller<'_> {
    pub(crate) fn can_see(&self, project_id: &str) -> bool {
        self.admin || self.project_id == project_id
    }
}

/// A security group with its rules (every direction and ethertype).
#[derive(Debug, Clone)]
pub struct GroupWithRules {
    pub group: SecurityGroup,
    pub rules: Vec<SecurityGroupRule>,
}

/// A rule to add to a group, in Neutron's terms.
#[derive(Debug, Clone, Default)]
pub struct NewSecurityGroupRule {
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

async fn visible_group(
    conn: &mut sqlx::AnyConnection,
    caller: GroupCaller<'_>,
    id: &str,
) -> Result<SecurityGroup, Error> {
    match store::get::<SecurityGroup>(conn, id).await? {
        Some(g) if caller.can_see(&g.meta.project_id) => Ok(g),
        _ => Err(Error::NotFound(format!(
            "Security group {id} could not be found."
        ))),
    }
}

/// The caller's project's groups (every project's with `all_projects`
/// for the administrator), the project's default group made on first
/// look as Neutron does.
pub async fn list_security_groups(
    net: &NetworkService,
    caller: GroupCaller<'_>,
    all_projects: bool,
) -> Result<Vec<GroupWithRules>, Error> {
    // A token without a project (system scope) has no default group.
    if !caller.project_id.is_empty() {
        let mut tx = net.db().begin_write().await.map_err(db_err)?;
        security_groups::ensure_default(&mut tx, caller.project_id).await?;
        tx.commit().await.map_err(db_err)?;
    }
    let visibility = if all_projects && caller.admin {
        Visibility::All
    } else {
        Visibility::Project(caller.project_id.to_string())
    };
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let groups: Vec<SecurityGroup> = store::list(&mut conn, &visibility).await?;
    let rules: Vec<SecurityGroupRule> = store::list(&mut conn, &visibility).await?;
    let mut by_group: HashMap<String, Vec<SecurityGroupRule>> = HashMap::new();
    for r in rules {
        by_group
            .entry(r.security_group_id.clone())
            .or_default()
            .push(r);
    }
    Ok(groups
        .into_iter()
        .filter(|g| (all_projects && caller.admin) || g.meta.project_id == caller.project_id)
        .map(|group| GroupWithRules {
            rules: by_group.remove(&group.meta.id).unwrap_or_default(),
            group,
        })
        .collect())
}

/// One group the caller reaches, with its rules.
pub async fn get_security_group(
    net: &NetworkService,
    caller: GroupCaller<'_>,
    id: &str,
) -> Result<GroupWithRules, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let group = visible_group(&mut conn, caller, id).await?;
    let rules = store::children(&mut conn, id).await?;
    Ok(GroupWithRules { group, rules })
}

/// The rules of groups already found (a server's, say).
pub async fn with_rules(
    net: &NetworkService,
    groups: Vec<SecurityGroup>,
) -> Result<Vec<GroupWithRules>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let mut out = Vec::with_capacity(groups.len());
    for group in groups {
        let rules = store::children(&mut conn, &group.meta.id).await?;
        out.push(GroupWithRules { group, rules });
    }
    Ok(out)
}

/// A new group of `project_id`, made as the network API makes one (the
/// default group first, the quota, the template rules).
pub async fn create_security_group(
    net: &NetworkService,
    project_id: &str,
    name: String,
    description: String,
) -> Result<GroupWithRules, Error> {
    let mut group = SecurityGroup {
        meta: Meta {
            project_id: project_id.to_string(),
            description,
            ..Default::default()
        },
        name,
        stateful: true,
        is_default: false,
    };
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    let rules = security_groups::insert_group(&mut tx, &mut group).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(GroupWithRules { group, rules })
}

/// Renames a group or changes its description, with the network API's
/// checks.
pub async fn update_security_group(
    net: &NetworkService,
    caller: GroupCaller<'_>,
    id: &str,
    name: Option<String>,
    description: Option<String>,
) -> Result<GroupWithRules, Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    let mut group = visible_group(&mut tx, caller, id).await?;
    security_groups::apply_update(&mut group, name, description, None)?;
    store::update(&mut tx, &mut group).await?;
    let rules = store::children(&mut tx, id).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(GroupWithRules { group, rules })
}

/// Deletes a group as the network API does: not the default one (but by
/// the administrator), not one a port uses (both conflicts).
pub async fn delete_security_group(
    net: &NetworkService,
    caller: GroupCaller<'_>,
    id: &str,
) -> Result<(), Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    let group = visible_group(&mut tx, caller, id).await?;
    security_groups::delete_group_rows(&mut tx, &group, caller.admin).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(())
}

/// Adds a rule to a group the caller reaches, validated as the network
/// API validates it (a 400 for what it refuses), within the project's
/// quota; the same rule twice is a conflict. Wakes the dataplane.
pub async fn create_security_group_rule(
    net: &NetworkService,
    caller: GroupCaller<'_>,
    group_id: &str,
    new: NewSecurityGroupRule,
) -> Result<SecurityGroupRule, Error> {
    let req = security_groups::RuleRequest {
        security_group_id: Some(group_id.to_string()),
        direction: Some(new.direction),
        ethertype: Some(new.ethertype),
        protocol: new.protocol.map(serde_json::Value::String),
        port_range_min: new.port_range_min,
        port_range_max: new.port_range_max,
        remote_ip_prefix: new.remote_ip_prefix,
        remote_group_id: new.remote_group_id,
        ..Default::default()
    };
    let rule = security_groups::validate_rule(&req)?;
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    let group = visible_group(&mut tx, caller, group_id).await?;
    let can_see = |project: &str| caller.can_see(project);
    let made = security_groups::insert_rule(&mut tx, &group, rule, String::new(), &can_see).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(made)
}

fn rule_not_found(id: &str) -> Error {
    Error::NotFound(format!("Security group rule {id} could not be found."))
}

/// A rule in a group the caller reaches.
pub async fn get_security_group_rule(
    net: &NetworkService,
    caller: GroupCaller<'_>,
    id: &str,
) -> Result<SecurityGroupRule, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    match store::get::<SecurityGroupRule>(&mut conn, id).await? {
        Some(r) if caller.can_see(&r.meta.project_id) => Ok(r),
        _ => Err(rule_not_found(id)),
    }
}

/// Deletes a rule of a group the caller reaches. Wakes the dataplane.
pub async fn delete_security_group_rule(
    net: &NetworkService,
    caller: GroupCaller<'_>,
    id: &str,
) -> Result<(), Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    match store::get::<SecurityGroupRule>(&mut tx, id).await? {
        Some(r) if caller.can_see(&r.meta.project_id) => {}
        _ => return Err(rule_not_found(id)),
    }
    store::delete(&mut tx, SecurityGroupRule::KIND, id).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(())
}

/// Networks and subnets by id (for addresses and network_data.json).
pub async fn network(net: &NetworkService, id: &str) -> Result<Option<Network>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    store::get::<Network>(&mut conn, id).await
}

/// The networks `caller` sees in the network API's own list: its project's,
/// shared and external ones (the cloud administrator: every one).
pub async fn visible_networks(
    net: &NetworkService,
    caller: GroupCaller<'_>,
) -> Result<Vec<Network>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let visibility = if caller.admin {
        Visibility::All
    } else {
        Visibility::Project(caller.project_id.to_string())
    };
    store::list(&mut conn, &visibility).await
}

/// One network, if `caller` sees it (as in [`visible_networks`]).
pub async fn visible_network(
    net: &NetworkService,
    caller: GroupCaller<'_>,
    id: &str,
) -> Result<Option<Network>, Error> {
    Ok(network(net, id)
        .await?
        .filter(|n| n.visible_to_all() || caller.can_see(&n.meta.project_id)))
}

pub async fn subnet(net: &NetworkService, id: &str) -> Result<Option<Subnet>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    store::get::<Subnet>(&mut conn, id).await
}
