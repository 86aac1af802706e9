//! VXLAN segment ids (VNIs): one per tenant network, unique in the region.

use himmel_core::Error;
use sqlx::AnyConnection;

use super::db_err;

/// The 24-bit VNI space; 0 is not used.
pub const MAX_VNI: i64 = (1 << 24) - 1;

/// Allocates the lowest free VNI for `network_id`.
pub async fn allocate(conn: &mut AnyConnection, network_id: &str) -> Result<i64, Error> {
    super::lock(conn, "segments").await?;
    // The lowest id with a free successor, or 1 when 1 is free.
    let one_free: bool =
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM net_segments WHERE segmentation_id = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?
            == 0;
    let vni = if one_free {
        1
    } else {
        sqlx::query_scalar::<_, i64>(
            "SELECT MIN(s.segmentation_id) + 1 FROM net_segments s WHERE NOT EXISTS \
             (SELECT 1 FROM net_segments t WHERE t.segmentation_id = s.segmentation_id + 1)",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?
    };
    if vni > MAX_VNI {
        return Err(Error::Conflict(
            "Unable to create the network. No tenant network is available for allocation.".into(),
        ));
    }
    reserve(conn, vni, network_id).await?;
    Ok(vni)
}

/// Takes a given VNI (an administrator chose it). 409 when in use.
pub async fn reserve(conn: &mut AnyConnection, vni: i64, network_id: &str) -> Result<(), Error> {
    let res = sqlx::query("INSERT INTO net_segments (segmentation_id, network_id) VALUES ($1, $2)")
        .bind(vni)
        .bind(network_id)
        .execute(&mut *conn)
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if himmel_db::is_unique_violation(&e) => Err(Error::Conflict(format!(
            "Unable to create the network. The VXLAN {vni} is in use."
        ))),
        Err(e) => Err(db_err(e)),
    }
}

pub async fn release(conn: &mut AnyConnection, network_id: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM net_segments WHERE network_id = $1")
        .bind(network_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}
