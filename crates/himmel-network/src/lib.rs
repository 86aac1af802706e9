//! Networking: the Neutron v2.0 API, its model and store, and IPAM.
//!
//! The dataplane reconciler reads the model through [`store::snapshot`],
//! waits on [`NetworkService::changes`] and reports ports ready with
//! [`store::set_port_status`].

pub mod addr;
mod api;
pub mod model;
pub mod policy;
pub mod reconcile;
pub mod store;

use std::sync::Arc;

use himmel_db::Db;
use tokio::sync::Notify;

pub use api::routes;

/// The path prefix of the API on the region's listener.
pub const PATH_PREFIX: &str = "/networking";

/// The network service's state, shared by its handlers.
#[derive(Clone)]
pub struct NetworkService {
    db: Db,
    changes: Arc<Notify>,
}

impl NetworkService {
    pub fn new(db: Db) -> NetworkService {
        NetworkService {
            db,
            changes: Arc::new(Notify::new()),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Notified after every committed change, so a reconciler can apply it
    /// at once instead of waiting for its next periodic pass.
    pub fn changes(&self) -> Arc<Notify> {
        self.changes.clone()
    }

    pub(crate) fn changed(&self) {
        self.changes.notify_one();
    }
}
