//! Floating IPs for the compute service's deprecated floating IP proxy, in
//! the same process (not over HTTP). Every address is the network
//! service's own floating IP, allocated, associated and released by the
//! network API's code, and the dataplane is woken after each change, so an
//! association made through the proxy is translated exactly as one made
//! through the network API.

use std::collections::HashMap;

use himmel_core::Error;

use crate::api::floatingips;
use crate::instance_ports::GroupCaller;
use crate::model::{FloatingIp, Network, Port};
use crate::store::{self, db_err, quota, Visibility};
use crate::NetworkService;

/// Who calls the proxy: the token's project, and whether it is the cloud
/// administrator (who, as in Neutron, reaches every project's addresses).
pub type Caller<'a> = GroupCaller<'a>;

/// A floating IP with what the proxy shows beside it: the network it came
/// from (its pool) and the device of the port it translates to.
#[derive(Debug, Clone)]
pub struct FloatingIpView {
    pub fip: FloatingIp,
    pub network: Option<Network>,
    /// The `device_id` of the associated port (a server's id), if any.
    pub device_id: Option<String>,
}

impl FloatingIpView {
    /// The pool's name: the network's name, or its id when it has none.
    pub fn pool(&self) -> String {
        match &self.network {
            Some(n) if !n.name.is_empty() => n.name.clone(),
            _ => self.fip.floating_network_id.clone(),
        }
    }
}

/// Why an address could not be allocated, so the proxy can word each case
/// as Nova does.
#[derive(Debug)]
pub enum AllocateError {
    /// No external network of that name or id (or no default one).
    PoolNotFound,
    /// More than one external network has that name.
    AmbiguousPool(String),
    /// The project's floating IP quota is used up.
    OverQuota(String),
    /// The pool has no free address left.
    Exhausted(String),
    Failed(Error),
}

impl From<Error> for AllocateError {
    fn from(e: Error) -> Self {
        AllocateError::Failed(e)
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Floating IP {id} could not be found."))
}

/// Reads the networks and ports of `fips` in one query each.
async fn views(
    conn: &mut sqlx::AnyConnection,
    fips: Vec<FloatingIp>,
) -> Result<Vec<FloatingIpView>, Error> {
    let mut net_ids: Vec<&str> = fips
        .iter()
        .map(|f| f.floating_network_id.as_str())
        .collect();
    net_ids.sort_unstable();
    net_ids.dedup();
    let port_ids: Vec<&str> = fips.iter().filter_map(|f| f.port_id.as_deref()).collect();
    let networks: HashMap<String, Network> = store::get_many(conn, &net_ids).await?;
    let ports: HashMap<String, Port> = store::get_many(conn, &port_ids).await?;
    Ok(fips
        .into_iter()
        .map(|fip| {
            let device_id = fip
                .port_id
                .as_deref()
                .and_then(|p| ports.get(p))
                .map(|p| p.device_id.clone());
            let network = networks.get(&fip.floating_network_id).cloned();
            FloatingIpView {
                fip,
                network,
                device_id,
            }
        })
        .collect())
}

/// The caller's project's floating IPs, oldest first (Nova lists the
/// token's project's only, administrators included).
pub async fn list(net: &NetworkService, caller: Caller<'_>) -> Result<Vec<FloatingIpView>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let all: Vec<FloatingIp> = store::list(
        &mut conn,
        &Visibility::Project(caller.project_id.to_string()),
    )
    .await?;
    let own = all
        .into_iter()
        .filter(|f| f.meta.project_id == caller.project_id)
        .collect();
    views(&mut conn, own).await
}

/// One floating IP the caller reaches; others are not found.
pub async fn get(
    net: &NetworkService,
    caller: Caller<'_>,
    id: &str,
) -> Result<FloatingIpView, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    match store::get::<FloatingIp>(&mut conn, id).await? {
        Some(f) if caller.can_see(&f.meta.project_id) => {
            Ok(views(&mut conn, vec![f]).await?.remove(0))
        }
        _ => Err(not_found(id)),
    }
}

/// The floating IPs the caller reaches with this address (more than one
/// only for the administrator, across external networks).
pub async fn by_address(
    net: &NetworkService,
    caller: Caller<'_>,
    address: &str,
) -> Result<Vec<FloatingIpView>, Error> {
    let visibility = if caller.admin {
        Visibility::All
    } else {
        Visibility::Project(caller.project_id.to_string())
    };
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let all: Vec<FloatingIp> = store::list(&mut conn, &visibility).await?;
    let matching = all
        .into_iter()
        .filter(|f| f.floating_ip_address == address && caller.can_see(&f.meta.project_id))
        .collect();
    views(&mut conn, matching).await
}

/// The pools: every external network (each is visible to every project).
pub async fn pools(net: &NetworkService) -> Result<Vec<Network>, Error> {
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    let all: Vec<Network> = store::list(&mut conn, &Visibility::All).await?;
    Ok(all.into_iter().filter(|n| n.external).collect())
}

/// Nova's default pool name, used when a region has several external
/// networks and the request names none.
const DEFAULT_POOL: &str = "nova";

/// The external network `pool` names (by id or name). Without a name, the
/// only external network, else the one with Nova's default pool name.
fn choose_pool(externals: Vec<Network>, pool: Option<&str>) -> Result<Network, AllocateError> {
    let (wanted, by_id) = match pool {
        Some(p) => (p, uuid::Uuid::parse_str(p).is_ok()),
        None if externals.len() == 1 => (externals[0].meta.id.as_str(), true),
        None => (DEFAULT_POOL, false),
    };
    let wanted = wanted.to_string();
    let mut matching: Vec<Network> = externals
        .into_iter()
        .filter(|n| {
            if by_id {
                n.meta.id == wanted
            } else {
                n.name == wanted
            }
        })
        .collect();
    match matching.len() {
        0 => Err(AllocateError::PoolNotFound),
        1 => Ok(matching.remove(0)),
        _ => Err(AllocateError::AmbiguousPool(wanted)),
    }
}

/// Allocates an address of `project` from a pool, within the project's
/// quota, as the network API's create does.
pub async fn allocate(
    net: &NetworkService,
    project_id: &str,
    pool: Option<&str>,
) -> Result<FloatingIpView, AllocateError> {
    let network = choose_pool(pools(net).await?, pool)?;
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    quota::check(&mut tx, project_id, "floatingip", 1)
        .await
        .map_err(|e| match e {
            Error::Conflict(m) => AllocateError::OverQuota(m),
            other => AllocateError::Failed(other),
        })?;
    let fip = floatingips::allocate(&mut tx, &network, project_id.to_string(), None)
        .await
        .map_err(|e| match e {
            Error::Conflict(m) => AllocateError::Exhausted(m),
            other => AllocateError::Failed(other),
        })?;
    floatingips::insert(&mut tx, &fip).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(FloatingIpView {
        fip,
        network: Some(network),
        device_id: None,
    })
}

/// Deletes a floating IP the caller reaches, associated or not.
pub async fn release(net: &NetworkService, caller: Caller<'_>, id: &str) -> Result<(), Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    match store::get::<FloatingIp>(&mut tx, id).await? {
        Some(f) if caller.can_see(&f.meta.project_id) => {}
        _ => return Err(not_found(id)),
    }
    floatingips::delete_rows(&mut tx, id).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(())
}

/// Points a floating IP the caller reaches at `fixed_ip` of a port (moving
/// it if it pointed elsewhere), with the network API's checks: a fixed
/// address that already has a floating IP on that network is a conflict,
/// one no router joins to the floating network is not found.
pub async fn associate(
    net: &NetworkService,
    caller: Caller<'_>,
    fip_id: &str,
    port_id: &str,
    fixed_ip: &str,
) -> Result<FloatingIp, Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    let mut fip = match store::get::<FloatingIp>(&mut tx, fip_id).await? {
        Some(f) if caller.can_see(&f.meta.project_id) => f,
        _ => return Err(not_found(fip_id)),
    };
    floatingips::associate(
        &mut tx,
        caller.admin,
        &mut fip,
        port_id,
        Some(fixed_ip.to_string()),
    )
    .await?;
    store::update(&mut tx, &mut fip).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(fip)
}

/// Stops a floating IP the caller reaches from translating.
pub async fn disassociate(
    net: &NetworkService,
    caller: Caller<'_>,
    fip_id: &str,
) -> Result<(), Error> {
    let mut tx = net.db().begin_write().await.map_err(db_err)?;
    let mut fip = match store::get::<FloatingIp>(&mut tx, fip_id).await? {
        Some(f) if caller.can_see(&f.meta.project_id) => f,
        _ => return Err(not_found(fip_id)),
    };
    fip.disassociate();
    store::update(&mut tx, &mut fip).await?;
    tx.commit().await.map_err(db_err)?;
    net.changed();
    Ok(())
}

/// The floating IPs translating to any of `port_ids`, for a server's
/// addresses (every row read once: floating IPs are few).
pub async fn on_ports(net: &NetworkService, port_ids: &[&str]) -> Result<Vec<FloatingIp>, Error> {
    if port_ids.is_empty() {
        return Ok(vec![]);
    }
    let mut conn = net.db().pool().acquire().await.map_err(db_err)?;
    // Floating IPs are few beside ports and not indexed by port: one read of
    // them all, matched against the ports in a set, serves a whole list.
    let wanted: std::collections::HashSet<&str> = port_ids.iter().copied().collect();
    let all: Vec<FloatingIp> = store::list(&mut conn, &Visibility::All).await?;
    Ok(all
        .into_iter()
        .filter(|f| f.port_id.as_deref().is_some_and(|p| wanted.contains(p)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(id: &str, name: &str) -> Network {
        Network {
            meta: crate::model::Meta {
                id: id.into(),
                ..Default::default()
            },
            name: name.into(),
            admin_state_up: true,
            status: "ACTIVE".into(),
            shared: false,
            external: true,
            mtu: 1500,
            port_security_enabled: true,
            availability_zone_hints: vec![],
            network_type: "flat".into(),
            physical_network: None,
            segmentation_id: None,
        }
    }

    #[test]
    fn pools_by_name_id_and_default() {
        let a = "6a0ad5a6-0cf5-4c49-8f2c-43bd1b1e0001";
        let b = "6a0ad5a6-0cf5-4c49-8f2c-43bd1b1e0002";
        let one = || vec![ext(a, "public")];
        assert_eq!(choose_pool(one(), None).unwrap().meta.id, a);
        assert_eq!(choose_pool(one(), Some("public")).unwrap().meta.id, a);
        assert_eq!(choose_pool(one(), Some(a)).unwrap().meta.id, a);
        assert!(matches!(
            choose_pool(one(), Some("x")),
            Err(AllocateError::PoolNotFound)
        ));
        let two = || vec![ext(a, "public"), ext(b, "nova")];
        assert_eq!(choose_pool(two(), None).unwrap().meta.id, b);
        let same = vec![ext(a, "public"), ext(b, "public")];
        assert!(matches!(
            choose_pool(same, Some("public")),
            Err(AllocateError::AmbiguousPool(_))
        ));
        assert!(matches!(
            choose_pool(vec![], None),
            Err(AllocateError::PoolNotFound)
        ));
    }
}
