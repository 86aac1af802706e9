//! IP address management. An address is taken by inserting its row in
//! `net_ip_allocations` inside the caller's write transaction; the primary
//! key (subnet, address) makes a double allocation impossible even when two
//! transactions race on PostgreSQL.

use std::collections::HashSet;
use std::net::IpAddr;

use himmel_core::Error;
use sqlx::AnyConnection;

use super::db_err;
use crate::addr;
use crate::model::Subnet;

/// The addresses of a subnet in use.
pub async fn allocated(conn: &mut AnyConnection, subnet_id: &str) -> Result<HashSet<u128>, Error> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT ip_address FROM net_ip_allocations WHERE subnet_id = $1")
            .bind(subnet_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
    Ok(rows
        .iter()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .map(addr::to_num)
        .collect())
}

/// Takes a given address of a subnet for `owner`. 409 when it is in use.
pub async fn take(
    conn: &mut AnyConnection,
    subnet: &Subnet,
    ip: IpAddr,
    owner_id: &str,
) -> Result<(), Error> {
    let res = sqlx::query(
        "INSERT INTO net_ip_allocations (subnet_id, ip_address, network_id, owner_id) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&subnet.meta.id)
    .bind(ip.to_string())
    .bind(&subnet.network_id)
    .bind(owner_id)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if himmel_db::is_unique_violation(&e) => Err(Error::Conflict(format!(
            "IP address {ip} already allocated in subnet {}",
            subnet.meta.id
        ))),
        Err(e) => Err(db_err(e)),
    }
}

/// Takes the first free address of the subnet's pools, or `None` when
/// the pools are exhausted.
pub async fn take_any(
    conn: &mut AnyConnection,
    subnet: &Subnet,
    owner_id: &str,
) -> Result<Option<IpAddr>, Error> {
    let net = addr::parse_subnet_cidr(&subnet.cidr)?;
    let ranges = addr::pool_ranges(&net, &subnet.allocation_pools)?;
    super::lock_row(conn, "subnet", &subnet.meta.id).await?;
    let used = allocated(conn, &subnet.meta.id).await?;
    let v4 = subnet.ip_version == 4;
    for (lo, hi) in ranges {
        // At most |used| + 1 steps per pool: every skipped number is in use.
        let mut n = lo;
        loop {
            if !used.contains(&n) {
                let ip = addr::from_num(v4, n);
                take(conn, subnet, ip, owner_id).await?;
                return Ok(Some(ip));
            }
            if n == hi {
                break;
            }
            n += 1;
        }
    }
    Ok(None)
}

/// An address of `subnet` for a port with `mac`: on IPv6 subnets whose
/// hosts autoconfigure (SLAAC, DHCPv6 stateless) the address the host
/// will pick itself, elsewhere the first free one.
pub async fn take_for_port(
    conn: &mut AnyConnection,
    subnet: &Subnet,
    owner_id: &str,
    mac: Option<&str>,
) -> Result<Option<IpAddr>, Error> {
    let autoconfigured = matches!(
        subnet.ipv6_address_mode.as_deref(),
        Some("slaac") | Some("dhcpv6-stateless")
    );
    if let (true, Some(mac)) = (autoconfigured, mac) {
        let net = addr::parse_subnet_cidr(&subnet.cidr)?;
        if let Some(ip) = addr::eui64(&net, mac) {
            take(conn, subnet, ip, owner_id).await?;
            return Ok(Some(ip));
        }
    }
    take_any(conn, subnet, owner_id).await
}

/// Gives back every address `owner` holds (a port or floating IP going away).
pub async fn release_owner(conn: &mut AnyConnection, owner_id: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM net_ip_allocations WHERE owner_id = $1")
        .bind(owner_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Gives back one address.
pub async fn release(conn: &mut AnyConnection, subnet_id: &str, ip: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM net_ip_allocations WHERE subnet_id = $1 AND ip_address = $2")
        .bind(subnet_id)
        .bind(ip)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Owners holding addresses of a subnet.
pub async fn subnet_owners(
    conn: &mut AnyConnection,
    subnet_id: &str,
) -> Result<Vec<String>, Error> {
    sqlx::query_scalar("SELECT DISTINCT owner_id FROM net_ip_allocations WHERE subnet_id = $1")
        .bind(subnet_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)
}

/// Number of addresses of a subnet in use.
pub async fn used_count(conn: &mut AnyConnection, subnet_id: &str) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM net_ip_allocations WHERE subnet_id = $1")
        .bind(subnet_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)
}
