//! Server operations shared by the API and the reconciler: loading, saving
//! with a state change, instance actions, faults.

use himmel_core::{Error, RequestContext};
use sqlx::AnyConnection;

use crate::model::{Fault, InstanceAction, Resource, Server};
use crate::store::{self, db_err};
use crate::ComputeService;

pub fn now() -> String {
    himmel_core::time::iso_seconds(himmel_core::time::now())
}

pub fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Instance {id} could not be found."))
}

pub async fn get(s: &ComputeService, id: &str) -> Result<Option<Server>, Error> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    store::get::<Server>(&mut conn, id).await
}

/// Reads the server, applies `change` and writes it back in one
/// transaction. The change may refuse (its error is returned as is).
pub async fn modify<T>(
    s: &ComputeService,
    id: &str,
    change: impl FnOnce(&mut Server) -> Result<T, Error>,
) -> Result<(Server, T), Error> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let out = modify_in(&mut tx, id, change).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(out)
}

/// [`modify`] inside the caller's write transaction.
pub async fn modify_in<T>(
    conn: &mut AnyConnection,
    id: &str,
    change: impl FnOnce(&mut Server) -> Result<T, Error>,
) -> Result<(Server, T), Error> {
    let mut server = store::get::<Server>(conn, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let out = change(&mut server)?;
    server.updated_at = now();
    store::update(conn, &server).await?;
    Ok((server, out))
}

/// Records an instance action (`os-instance-actions`) for a request.
pub async fn record_action(
    s: &ComputeService,
    server: &Server,
    ctx: &RequestContext,
    action: &str,
) -> Result<(), Error> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let a = InstanceAction {
        id: himmel_core::ids::new_id(),
        server_id: server.id.clone(),
        project_id: server.project_id.clone(),
        user_id: ctx.user_id.clone(),
        action: action.to_string(),
        request_id: ctx.request_id.clone(),
        start_time: now(),
        message: None,
    };
    store::insert(&mut tx, &a, || "duplicate action".into()).await?;
    tx.commit().await.map_err(db_err)
}

pub fn fault(code: u16, message: &str) -> Fault {
    Fault {
        code,
        message: message.to_string(),
        details: String::new(),
        created: now(),
    }
}

/// Removes a server's rows (the server and its actions) and gives back
/// what it holds.
pub async fn purge(s: &ComputeService, id: &str) -> Result<(), Error> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    // A server deleted while resized also holds its old flavor's resources.
    if let Some(migration) = store::get::<Server>(&mut tx, id)
        .await?
        .and_then(|sv| sv.migration_id)
    {
        crate::placement::store::delete_allocations(&mut tx, &migration).await?;
    }
    store::delete_children(&mut tx, InstanceAction::KIND, id).await?;
    store::delete(&mut tx, Server::KIND, id).await?;
    crate::scheduler::release_in(&mut tx, id).await?;
    tx.commit().await.map_err(db_err)
}
