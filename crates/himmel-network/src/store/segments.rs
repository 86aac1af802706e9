//! VXLAN segment ids (VNIs): one per tenant network, unique in the region.
//!
//! Every region on a host shares the kernel's VNI space (VXLAN devices on
//! one UDP port need distinct VNIs), so a region does not start at 1: it
//! picks a random block start once ([`BLOCK`]-aligned, kept in
//! `net_vni_base`) and allocates the lowest free VNI from there, wrapping
//! around to 1 when the top of the space is full. Two regions then clash
//! only if they drew the same block (1 in 4096) or one of them outgrew the
//! distance between their blocks.

use himmel_core::Error;
use rand::Rng;
use sqlx::AnyConnection;

use super::db_err;

/// The 24-bit VNI space; 0 is not used.
pub const MAX_VNI: i64 = (1 << 24) - 1;
/// Size of the blocks a region's first VNI is drawn from.
const BLOCK: i64 = 4096;

/// Allocates the lowest free VNI from the region's base for `network_id`.
pub async fn allocate(conn: &mut AnyConnection, network_id: &str) -> Result<i64, Error> {
    super::lock(conn, "segments").await?;
    let base = region_base(conn).await?;
    let mut vni = lowest_free_from(conn, base).await?;
    if vni > MAX_VNI {
        vni = lowest_free_from(conn, 1).await?;
    }
    if vni > MAX_VNI {
        return Err(Error::Conflict(
            "Unable to create the network. No tenant network is available for allocation.".into(),
        ));
    }
    reserve(conn, vni, network_id).await?;
    Ok(vni)
}

/// The region's first VNI, drawn on first use (under the segments lock).
async fn region_base(conn: &mut AnyConnection) -> Result<i64, Error> {
    let stored = sqlx::query_scalar::<_, i64>("SELECT base FROM net_vni_base WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    if let Some(base) = stored {
        return Ok(base);
    }
    let base = rand::thread_rng().gen_range(0..(MAX_VNI + 1) / BLOCK) * BLOCK + 1;
    set_region_base(conn, base).await?;
    Ok(base)
}

/// Sets where the region starts allocating (tests pin it).
pub async fn set_region_base(conn: &mut AnyConnection, base: i64) -> Result<(), Error> {
    sqlx::query("DELETE FROM net_vni_base WHERE id = 1")
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    sqlx::query("INSERT INTO net_vni_base (id, base) VALUES (1, $1)")
        .bind(base)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The lowest VNI at or above `from` that no network uses; above
/// [`MAX_VNI`] when none is left up there.
async fn lowest_free_from(conn: &mut AnyConnection, from: i64) -> Result<i64, Error> {
    let taken: bool = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM net_segments WHERE segmentation_id = $1",
    )
    .bind(from)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?
        > 0;
    if !taken {
        return Ok(from);
    }
    // The lowest used id at or above `from` whose successor is free.
    sqlx::query_scalar::<_, i64>(
        "SELECT MIN(s.segmentation_id) + 1 FROM net_segments s WHERE s.segmentation_id >= $1 \
         AND NOT EXISTS (SELECT 1 FROM net_segments t WHERE t.segmentation_id = s.segmentation_id + 1)",
    )
    .bind(from)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite() -> (tempfile::TempDir, himmel_db::Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db").display());
        let db = himmel_db::Db::connect(&url).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn a_region_allocates_from_its_own_block_and_keeps_it() {
        let (_dir, db) = sqlite().await;
        let mut tx = db.begin_write().await.unwrap();
        let first = allocate(&mut tx, "n1").await.unwrap();
        assert_eq!((first - 1) % BLOCK, 0, "a block start: {first}");
        assert_eq!(allocate(&mut tx, "n2").await.unwrap(), first + 1);
        release(&mut tx, "n1").await.unwrap();
        assert_eq!(allocate(&mut tx, "n3").await.unwrap(), first, "reused");
        assert_eq!(region_base(&mut tx).await.unwrap(), first, "kept");
    }

    #[tokio::test]
    async fn allocation_wraps_to_the_bottom_when_the_top_is_full() {
        let (_dir, db) = sqlite().await;
        let mut tx = db.begin_write().await.unwrap();
        set_region_base(&mut tx, MAX_VNI - 1).await.unwrap();
        assert_eq!(allocate(&mut tx, "a").await.unwrap(), MAX_VNI - 1);
        assert_eq!(allocate(&mut tx, "b").await.unwrap(), MAX_VNI);
        reserve(&mut tx, 1, "admin-chosen").await.unwrap();
        assert_eq!(allocate(&mut tx, "c").await.unwrap(), 2);
    }
}
