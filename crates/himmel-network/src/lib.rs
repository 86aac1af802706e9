//! Networking: the Neutron v2.0 API, its model and store, and IPAM.
//!
//! The dataplane reconciler reads the model through [`store::snapshot`],
//! waits on [`NetworkService::changes`] and reports ports ready with
//! [`store::set_port_status`]. Guests reach their metadata through
//! [`metadata`], which asks the registered [`InstanceMetadata`].

pub mod addr;
mod api;
pub mod instance_fips;
pub mod instance_ports;
pub mod metadata;
pub mod model;
pub mod policy;
pub mod reconcile;
pub mod store;

use std::sync::{Arc, RwLock};

use himmel_db::Db;
use tokio::sync::Notify;

pub use api::routes;
pub use metadata::{InstanceMetadata, MetadataAnswer};

/// The path prefix of the API on the region's listener.
pub const PATH_PREFIX: &str = "/networking";

/// The network service's state, shared by its handlers.
#[derive(Clone)]
pub struct NetworkService {
    db: Db,
    changes: Arc<Notify>,
    instance_metadata: Arc<RwLock<Option<Arc<dyn InstanceMetadata>>>>,
}

impl NetworkService {
    pub fn new(db: Db) -> NetworkService {
        NetworkService {
            db,
            changes: Arc::new(Notify::new()),
            instance_metadata: Arc::default(),
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

    /// Registers what guests get from the metadata address (the compute service does, once).
    pub fn set_instance_metadata(&self, m: Arc<dyn InstanceMetadata>) {
        *self
            .instance_metadata
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(m);
    }

    pub(crate) fn instance_metadata(&self) -> Option<Arc<dyn InstanceMetadata>> {
        self.instance_metadata
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn changed(&self) {
        self.changes.notify_one();
    }
}
