//! The scheduler: picks the host of a new server and claims the server's
//! resources there as placement allocations, in one write transaction that
//! holds placement's lock, so that concurrent creates never overcommit.
//!
//! Filters, in order (a host must pass all):
//! - capacity: every requested class fits the provider's
//!   (total - reserved) × allocation_ratio minus what others hold, within
//!   min_unit/max_unit/step_size;
//! - availability zone: a host's zone is the `availability_zone` metadata of
//!   an aggregate holding it, else the default zone;
//! - tenant isolation, both ways: let T(h) be the projects named by the
//!   `filter_tenant_id` / `filter_tenant_id_N` metadata of the aggregates
//!   holding host h, and D all projects named by any aggregate. A project p
//!   may land on h iff (T(h) is empty or p ∈ T(h)) and (p ∉ D or p ∈ T(h)):
//!   dedicated hosts take only their projects, and those projects run only
//!   on hosts dedicated to them;
//! - server group: `affinity` keeps to the host of the members, and
//!   `anti-affinity` avoids hosts with `max_server_per_host` (1) members.
//!
//! Weighers: soft-affinity prefers hosts with more members, soft-anti-affinity
//! fewer; then the most free RAM first (spreading), then the host name.

pub mod model;

use std::collections::{BTreeMap, BTreeSet};

use himmel_core::Error;
use himmel_db::Db;
use sqlx::AnyConnection;

use crate::model::AVAILABILITY_ZONE;
use crate::placement::store::{self as placement, Allocation, Resources};
use crate::store::{self, db_err};
use model::{Aggregate, GroupPolicy, ServerGroup};

/// The start of the fault message of a server no host could take.
pub const NO_VALID_HOST: &str = "No valid host was found.";

/// What a new server needs.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The server's id: the placement consumer.
    pub consumer: String,
    pub project_id: String,
    pub user_id: String,
    pub resources: Resources,
    /// The availability zone asked for, if any.
    pub zone: Option<String>,
    /// A host the administrator asked for (`zone:host`), if any.
    pub forced_host: Option<String>,
    /// The server group (scheduler hint `group`), if any.
    pub group: Option<String>,
}

/// The resources a flavor consumes: its vCPUs, RAM and all its disks.
pub fn flavor_resources(flavor: &crate::model::FlavorSnapshot) -> Resources {
    let mut r = Resources::new();
    r.insert(placement::VCPU.into(), i64::from(flavor.vcpus));
    r.insert(placement::MEMORY_MB.into(), flavor.ram as i64);
    let disk = (flavor.disk + flavor.ephemeral + flavor.swap.div_ceil(1024)) as i64;
    if disk > 0 {
        r.insert(placement::DISK_GB.into(), disk);
    }
    r
}

#[derive(Debug)]
pub enum ScheduleError {
    /// No host passes the filters; the reason is for the fault's details.
    NoValidHost(String),
    Failed(Error),
}

impl From<Error> for ScheduleError {
    fn from(e: Error) -> Self {
        ScheduleError::Failed(e)
    }
}

impl ScheduleError {
    /// The fault message of the server, as Nova words it.
    pub fn message(&self) -> String {
        match self {
            ScheduleError::NoValidHost(why) => format!("{NO_VALID_HOST} {why}"),
            ScheduleError::Failed(e) => e.to_string(),
        }
    }
}

struct Candidate {
    host: String,
    provider: String,
    free_ram: i64,
    members: i64,
}

/// Picks a host for `req`, claims its resources there and adds the server to
/// its group; returns the host. Nothing is claimed when it fails.
pub async fn schedule(db: &Db, req: &Request) -> Result<String, ScheduleError> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let host = schedule_in(&mut tx, req).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(host)
}

/// [`schedule`] inside the caller's write transaction (the server create
/// claims in the transaction that inserts the server).
pub async fn schedule_in(conn: &mut AnyConnection, req: &Request) -> Result<String, ScheduleError> {
    placement::serialise(conn).await?;
    let aggregates: Vec<Aggregate> = store::list(conn, None).await?;
    let group = match &req.group {
        None => None,
        Some(id) => Some(
            store::get::<ServerGroup>(conn, id)
                .await?
                .ok_or_else(|| Error::BadRequest(format!("Invalid server group {id}")))?,
        ),
    };
    let members_on = match &group {
        Some(g) => member_hosts(conn, g, &req.consumer).await?,
        None => BTreeMap::new(),
    };
    let dedicated: BTreeSet<&str> = aggregates.iter().flat_map(|a| a.tenants()).collect();
    let mut rejected: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut candidates = vec![];
    for p in placement::providers(conn).await? {
        let in_aggs: Vec<&Aggregate> = aggregates
            .iter()
            .filter(|a| a.hosts.contains(&p.name))
            .collect();
        let members = members_on.get(&p.name).copied().unwrap_or(0);
        let verdict = if req.forced_host.as_ref().is_some_and(|h| *h != p.name) {
            Some("forced host")
        } else if !zone_admits(&in_aggs, req.zone.as_deref()) {
            Some("AvailabilityZoneFilter")
        } else if !tenancy_admits(&in_aggs, &dedicated, &req.project_id) {
            Some("AggregateMultiTenancyIsolation")
        } else if !group_admits(group.as_ref(), &members_on, members) {
            Some("ServerGroupFilter")
        } else if !crate::placement::fits(conn, &p.uuid, &req.resources).await? {
            Some("placement capacity")
        } else {
            None
        };
        if let Some(filter) = verdict {
            *rejected.entry(filter).or_default() += 1;
            continue;
        }
        let inv = placement::inventories(conn, &p.uuid).await?;
        let used = placement::usages(conn, &p.uuid).await?;
        let free_ram = inv.get(placement::MEMORY_MB).map_or(0, |i| i.capacity())
            - used.get(placement::MEMORY_MB).copied().unwrap_or(0);
        candidates.push(Candidate {
            host: p.name,
            provider: p.uuid,
            free_ram,
            members,
        });
    }
    let policy = group.as_ref().map(|g| g.policy);
    let Some(best) = candidates.into_iter().max_by(|a, b| {
        group_weight(policy, a.members)
            .cmp(&group_weight(policy, b.members))
            .then(a.free_ram.cmp(&b.free_ram))
            .then(b.host.cmp(&a.host))
    }) else {
        let why: Vec<String> = rejected
            .iter()
            .map(|(f, n)| format!("{f} rejected {n} host(s)"))
            .collect();
        return Err(ScheduleError::NoValidHost(if why.is_empty() {
            "There are not enough hosts available.".into()
        } else {
            format!("There are not enough hosts available: {}.", why.join(", "))
        }));
    };
    placement::replace_allocations(
        conn,
        &req.consumer,
        &req.project_id,
        &req.user_id,
        &[Allocation {
            provider_uuid: best.provider,
            resources: req.resources.clone(),
        }],
    )
    .await?;
    if let Some(mut g) = group {
        if !g.members.contains(&req.consumer) {
            g.members.push(req.consumer.clone());
            store::update(conn, &g).await?;
        }
    }
    Ok(best.host)
}

/// How many of a group's other members hold allocations on each host.
async fn member_hosts(
    conn: &mut AnyConnection,
    group: &ServerGroup,
    consumer: &str,
) -> Result<BTreeMap<String, i64>, Error> {
    let names: BTreeMap<String, String> = placement::providers(conn)
        .await?
        .into_iter()
        .map(|p| (p.uuid, p.name))
        .collect();
    let mut out = BTreeMap::new();
    for member in group.members.iter().filter(|m| *m != consumer) {
        let held = placement::consumer_allocations(conn, member).await?;
        for a in &held.allocations {
            if let Some(host) = names.get(&a.provider_uuid) {
                *out.entry(host.clone()).or_insert(0) += 1;
            }
        }
    }
    Ok(out)
}

fn zone_admits(in_aggs: &[&Aggregate], zone: Option<&str>) -> bool {
    let Some(zone) = zone else { return true };
    let zones: BTreeSet<&str> = in_aggs
        .iter()
        .filter_map(|a| a.availability_zone())
        .collect();
    if zones.is_empty() {
        zone == AVAILABILITY_ZONE
    } else {
        zones.contains(zone)
    }
}

fn tenancy_admits(in_aggs: &[&Aggregate], dedicated: &BTreeSet<&str>, project: &str) -> bool {
    let host_tenants: BTreeSet<&str> = in_aggs.iter().flat_map(|a| a.tenants()).collect();
    let host_ok = host_tenants.is_empty() || host_tenants.contains(project);
    let project_ok = !dedicated.contains(project) || host_tenants.contains(project);
    host_ok && project_ok
}

fn group_admits(
    group: Option<&ServerGroup>,
    members_on: &BTreeMap<String, i64>,
    here: i64,
) -> bool {
    match group {
        Some(g) if g.policy == GroupPolicy::Affinity => members_on.is_empty() || here > 0,
        Some(g) if g.policy == GroupPolicy::AntiAffinity => {
            here < g.max_server_per_host.unwrap_or(1)
        }
        _ => true,
    }
}

fn group_weight(policy: Option<GroupPolicy>, members: i64) -> i64 {
    match policy {
        Some(GroupPolicy::SoftAffinity) => members,
        Some(GroupPolicy::SoftAntiAffinity) => -members,
        _ => 0,
    }
}

/// Whether `zone` is the default zone or the zone of an aggregate.
pub async fn zone_exists(db: &Db, zone: &str) -> Result<bool, Error> {
    if zone == AVAILABILITY_ZONE {
        return Ok(true);
    }
    let mut conn = db.pool().acquire().await.map_err(db_err)?;
    let aggregates: Vec<Aggregate> = store::list(&mut conn, None).await?;
    Ok(aggregates
        .iter()
        .any(|a| a.availability_zone() == Some(zone)))
}

/// Releases what a server holds (deleted, or its build failed) and takes it
/// out of its server groups.
pub async fn release(db: &Db, consumer: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    release_in(&mut tx, consumer).await?;
    tx.commit().await.map_err(db_err)
}

/// [`release`] inside the caller's write transaction.
pub async fn release_in(conn: &mut AnyConnection, consumer: &str) -> Result<(), Error> {
    placement::delete_allocations(conn, consumer).await?;
    let groups: Vec<ServerGroup> = store::list(conn, None).await?;
    for mut g in groups {
        if g.members.iter().any(|m| m == consumer) {
            g.members.retain(|m| m != consumer);
            store::update(conn, &g).await?;
        }
    }
    Ok(())
}

/// Claims a resized server's new flavor on its host, as Nova does: the
/// old flavor's allocation moves to the consumer `migration` and the server
/// claims the new flavor beside it, so the host must have room for both
/// until the resize is confirmed ([`confirm_resize`]) or reverted
/// ([`revert_resize`]). Fails with NoValidHost, changing nothing, when the
/// new flavor does not fit.
pub async fn claim_resize(
    db: &Db,
    consumer: &str,
    migration: &str,
    resources: &Resources,
) -> Result<(), ScheduleError> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    placement::serialise(&mut tx).await?;
    let held = placement::consumer_allocations(&mut tx, consumer).await?;
    let Some(current) = held.allocations.first() else {
        return Err(ScheduleError::NoValidHost(format!(
            "Server {consumer} holds no allocation to resize."
        )));
    };
    let claim = [Allocation {
        provider_uuid: current.provider_uuid.clone(),
        resources: resources.clone(),
    }];
    // Dropping the transaction on an error below undoes the move.
    placement::delete_allocations(&mut tx, consumer).await?;
    placement::replace_allocations(
        &mut tx,
        migration,
        &held.project_id,
        &held.user_id,
        &held.allocations,
    )
    .await?;
    match placement::replace_allocations(&mut tx, consumer, &held.project_id, &held.user_id, &claim)
        .await
    {
        Ok(()) => {}
        Err(Error::Conflict(why)) => return Err(ScheduleError::NoValidHost(why)),
        Err(e) => return Err(e.into()),
    }
    tx.commit().await.map_err(db_err)?;
    Ok(())
}

/// A confirmed resize frees the old flavor's resources (inside the
/// caller's write transaction).
pub async fn confirm_resize_in(conn: &mut AnyConnection, migration: &str) -> Result<(), Error> {
    placement::delete_allocations(conn, migration).await?;
    Ok(())
}

/// A reverted resize frees the new flavor's resources: the server holds
/// the old flavor's allocation again.
pub async fn revert_resize(db: &Db, consumer: &str, migration: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    revert_resize_in(&mut tx, consumer, migration).await?;
    tx.commit().await.map_err(db_err)
}

/// [`revert_resize`] inside the caller's write transaction.
pub async fn revert_resize_in(
    conn: &mut AnyConnection,
    consumer: &str,
    migration: &str,
) -> Result<(), Error> {
    let old = placement::consumer_allocations(conn, migration).await?;
    if !old.allocations.is_empty() {
        placement::delete_allocations(conn, migration).await?;
        placement::replace_allocations(
            conn,
            consumer,
            &old.project_id,
            &old.user_id,
            &old.allocations,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(hosts: &[&str], meta: &[(&str, &str)]) -> Aggregate {
        Aggregate {
            id: "1".into(),
            number: 1,
            uuid: "u".into(),
            name: "a".into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_at: String::new(),
            updated_at: None,
        }
    }

    #[test]
    fn dedicated_hosts_isolate_both_ways() {
        let a = agg(&["h1"], &[("filter_tenant_id", "p1")]);
        let dedicated: BTreeSet<&str> = a.tenants();
        // The dedicated host takes its project only.
        assert!(tenancy_admits(&[&a], &dedicated, "p1"));
        assert!(!tenancy_admits(&[&a], &dedicated, "p2"));
        // Other hosts take other projects, not the dedicated one.
        assert!(tenancy_admits(&[], &dedicated, "p2"));
        assert!(!tenancy_admits(&[], &dedicated, "p1"));
    }

    #[test]
    fn zones_come_from_aggregates_else_the_default() {
        let a = agg(&["h1"], &[("availability_zone", "az1")]);
        assert!(zone_admits(&[&a], Some("az1")));
        assert!(!zone_admits(&[&a], Some(AVAILABILITY_ZONE)));
        assert!(zone_admits(&[], Some(AVAILABILITY_ZONE)));
        assert!(!zone_admits(&[], Some("az1")));
        assert!(zone_admits(&[&a], None));
    }
}
