//! The compute model: what the API stores and the reconciler reads. The
//! API layer ([`crate::api`]) renders these in Nova's wire shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The one availability zone of a region (as Nova names its default).
pub const AVAILABILITY_ZONE: &str = "nova";

/// What the store needs to know about a resource type.
pub trait Resource: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync {
    /// The `kind` column.
    const KIND: &'static str;
    fn id(&self) -> &str;
    fn project_id(&self) -> &str;
    fn user_id(&self) -> &str {
        ""
    }
    fn parent_id(&self) -> Option<&str> {
        None
    }
    /// A key that must be unique among resources of this kind.
    fn unique_key(&self) -> Option<String> {
        None
    }
    fn host(&self) -> &str {
        ""
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    /// MiB.
    pub ram: u64,
    /// GiB of root disk; 0 means "the image's size".
    pub disk: u64,
    pub ephemeral: u64,
    /// MiB.
    pub swap: u64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
    /// Projects that may use a private flavor.
    pub access: Vec<String>,
    pub created_at: String,
}

impl Resource for Flavor {
    const KIND: &'static str = "flavor";
    fn id(&self) -> &str {
        &self.id
    }
    fn project_id(&self) -> &str {
        ""
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.name.clone())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Keypair {
    /// `<user id>/<name>`: keypairs are the user's, named per user.
    pub id: String,
    /// The integer id Nova shows.
    pub number: i64,
    pub name: String,
    pub user_id: String,
    pub project_id: String,
    pub public_key: String,
    pub fingerprint: String,
    /// `ssh` or `x509`.
    pub key_type: String,
    pub created_at: String,
}

impl Resource for Keypair {
    const KIND: &'static str = "keypair";
    fn id(&self) -> &str {
        &self.id
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn user_id(&self) -> &str {
        &self.user_id
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

/// Where a server should be, as its owner asked (the reconciler drives the
/// host to it).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Power {
    Running,
    Stopped,
    Paused,
}

/// Nova's `vm_state`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    Building,
    Active,
    Stopped,
    Paused,
    Resized,
    Error,
}

impl VmState {
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Building => "building",
            VmState::Active => "active",
            VmState::Stopped => "stopped",
            VmState::Paused => "paused",
            VmState::Resized => "resized",
            VmState::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fault {
    pub code: u16,
    pub message: String,
    pub details: String,
    pub created: String,
}

/// A network the server was asked to be on (resolved at create time).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NicRequest {
    pub network_id: String,
    pub port_id: Option<String>,
    pub fixed_ip: Option<String>,
}

/// The server's flavor as it was when the server got it (later changes of
/// the flavor do not change running servers, as in Nova).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlavorSnapshot {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram: u64,
    pub disk: u64,
    pub ephemeral: u64,
    pub swap: u64,
    pub extra_specs: BTreeMap<String, String>,
}

impl From<&Flavor> for FlavorSnapshot {
    fn from(f: &Flavor) -> Self {
        FlavorSnapshot {
            id: f.id.clone(),
            name: f.name.clone(),
            vcpus: f.vcpus,
            ram: f.ram,
            disk: f.disk,
            ephemeral: f.ephemeral,
            swap: f.swap,
            extra_specs: f.extra_specs.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Server {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub hostname: String,
    pub vm_state: VmState,
    /// Nova's `task_state` (`spawning`, `powering-off`, `rebooting`, `deleting`, …).
    pub task_state: Option<String>,
    /// What the owner asked for; the reconciler drives the host to it.
    pub power: Power,
    /// Nova's power state number, as the hypervisor last reported it.
    pub power_state: i64,
    pub flavor: FlavorSnapshot,
    /// The flavor before a resize, until it is confirmed or reverted.
    pub old_flavor: Option<FlavorSnapshot>,
    /// The placement consumer holding the old flavor's resources during a
    /// resize (Nova's migration record), until it is confirmed or reverted.
    #[serde(default)]
    pub migration_id: Option<String>,
    /// Empty when the server boots from a volume (not offered yet).
    pub image_ref: String,
    /// What the image said when the server got it.
    pub image: crate::images::BootImage,
    pub key_name: Option<String>,
    pub key_data: Option<String>,
    /// Base64, as sent.
    pub user_data: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    /// Security group names, as Nova shows them.
    pub security_groups: Vec<String>,
    pub availability_zone: String,
    pub host: String,
    pub nics: Vec<NicRequest>,
    /// Ports the server is plugged into, in NIC order.
    pub ports: Vec<String>,
    /// Ports compute created (deleted with the server); the rest were the user's.
    pub created_ports: Vec<String>,
    pub config_drive: bool,
    pub launch_index: i64,
    pub reservation_id: String,
    pub access_ipv4: String,
    pub access_ipv6: String,
    pub fault: Option<Fault>,
    /// Bumped by actions that need the instance restarted (reboot, rebuild,
    /// resize): the reconciler restarts when its running generation differs.
    pub generation: i64,
    /// HARD or SOFT for the pending reboot.
    pub reboot_kind: Option<String>,
    pub launched_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The delete was accepted; the reconciler removes the instance and
    /// then the row.
    pub deleting: bool,
    /// Who locked the server (`owner` or `admin`, as Nova records it): a locked server
    /// refuses state changes from anyone but administrators.
    #[serde(default)]
    pub locked_by: Option<String>,
    /// What the guest posted to the metadata service's `password` (already
    /// encrypted by the guest with the server's public key, as Nova keeps it).
    #[serde(default)]
    pub password: Option<String>,
}

impl Resource for Server {
    const KIND: &'static str = "server";
    fn id(&self) -> &str {
        &self.id
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn user_id(&self) -> &str {
        &self.user_id
    }
    fn host(&self) -> &str {
        &self.host
    }
}

impl Server {
    /// Nova's `status`, derived from the states.
    pub fn status(&self) -> &'static str {
        if self.deleting {
            return "ACTIVE";
        }
        match (self.vm_state, self.task_state.as_deref()) {
            (VmState::Error, _) => "ERROR",
            (VmState::Building, _) => "BUILD",
            (_, Some("rebooting")) => "REBOOT",
            (_, Some("rebooting_hard")) => "HARD_REBOOT",
            (_, Some("rebuilding")) => "REBUILD",
            (_, Some("resize_prep")) => "RESIZE",
            (VmState::Resized, _) => "VERIFY_RESIZE",
            (VmState::Active, _) => "ACTIVE",
            (VmState::Stopped, _) => "SHUTOFF",
            (VmState::Paused, _) => "PAUSED",
        }
    }
}

/// One entry of `os-instance-actions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceAction {
    pub id: String,
    pub server_id: String,
    pub project_id: String,
    pub user_id: String,
    pub action: String,
    pub request_id: String,
    pub start_time: String,
    pub message: Option<String>,
}

impl Resource for InstanceAction {
    const KIND: &'static str = "instance_action";
    fn id(&self) -> &str {
        &self.id
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn user_id(&self) -> &str {
        &self.user_id
    }
    fn parent_id(&self) -> Option<&str> {
        Some(&self.server_id)
    }
}
