//! Compute: the Nova v2.1 API, its model and store, and the reconciler that
//! drives this host's instances to what the store says.
//!
//! The API writes desired state (a server row with the power state its
//! owner asked for) and wakes the reconciler through
//! [`ComputeService::changed`]; the reconciler starts, stops and removes
//! instances through the host's hypervisor and writes back what happened.

mod api;
pub mod bootstrap;
pub mod host;
pub mod images;
pub mod keys;
pub mod metadata;
pub mod model;
pub mod placement;
pub mod policy;
pub mod reconcile;
pub mod scheduler;
pub mod servers;
mod snapshot;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

use himmel_db::Db;
use himmel_network::NetworkService;
use tokio::sync::Notify;

pub use api::routes;

/// The path prefix of the API on the region's listener.
pub const PATH_PREFIX: &str = "/compute";

/// Where this region's compute runs.
#[derive(Debug, Clone)]
pub struct ComputeConfig {
    /// The compute host's name (servers' `OS-EXT-SRV-ATTR:host`, ports'
    /// `binding:host_id`): the network reconciler's host name.
    pub host: String,
    /// Instance state: disks, cached images, config drives.
    pub state_dir: PathBuf,
}

/// The compute service's state, shared by its handlers and reconciler.
#[derive(Clone)]
pub struct ComputeService {
    db: Db,
    network: NetworkService,
    config: Arc<ComputeConfig>,
    images: Option<Arc<dyn images::Images>>,
    hypervisor: Option<Arc<dyn host::Host>>,
    changes: Arc<Notify>,
    /// Servers whose snapshot this process is taking (their `image_snapshot`
    /// task state is live; after a restart it is stale).
    snapshots: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl ComputeService {
    pub fn new(db: Db, network: NetworkService, config: ComputeConfig) -> ComputeService {
        ComputeService {
            db,
            network,
            config: Arc::new(config),
            images: None,
            hypervisor: None,
            changes: Arc::new(Notify::new()),
            snapshots: Arc::default(),
        }
    }

    /// Where servers' images come from (without it, servers need no image).
    pub fn with_images(mut self, images: Arc<dyn images::Images>) -> ComputeService {
        self.images = Some(images);
        self
    }

    /// This host's hypervisor (without it, builds fail with a fault that says so).
    pub fn with_hypervisor(mut self, hypervisor: Arc<dyn host::Host>) -> ComputeService {
        self.hypervisor = Some(hypervisor);
        self
    }

    pub fn hypervisor(&self) -> Option<&Arc<dyn host::Host>> {
        self.hypervisor.as_ref()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn network(&self) -> &NetworkService {
        &self.network
    }

    pub fn config(&self) -> &ComputeConfig {
        &self.config
    }

    pub fn images(&self) -> Option<&Arc<dyn images::Images>> {
        self.images.as_ref()
    }

    /// Marks (or unmarks) a snapshot of `server_id` as being taken here.
    pub(crate) fn set_snapshotting(&self, server_id: &str, taking: bool) {
        let mut set = self
            .snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if taking {
            set.insert(server_id.to_string());
        } else {
            set.remove(server_id);
        }
    }

    pub(crate) fn is_snapshotting(&self, server_id: &str) -> bool {
        self.snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(server_id)
    }

    pub(crate) fn changed(&self) {
        self.changes.notify_one();
    }

    /// Notified after every committed change of desired state.
    pub fn changes(&self) -> Arc<Notify> {
        self.changes.clone()
    }
}
