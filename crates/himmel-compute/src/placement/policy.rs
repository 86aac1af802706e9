//! Placement's defaults: everything but version discovery is for the cloud
//! administrator (placement is an operator's and services' API).

use himmel_http::policy::Check::{self, *};
use himmel_http::policy::Rule;
use himmel_http::{Operation, Service};

/// Placement answers errors in Nova's body format (one code, one message).
pub static SERVICE: Service = Service {
    name: "placement",
    format: himmel_http::ErrorFormat::Nova,
};

const ADMIN: Check = Role("admin");

macro_rules! operations {
    ($($id:ident = $name:literal, $target:literal, [$($check:expr),* $(,)?];)*) => {
        $(pub static $id: Operation = Operation::new($name, $target, &[$($check),*]);)*
        /// Every placement operation, in the order of the matrix.
        pub static TABLE: &[&Operation] = &[$(&$id),*];
    };
}

operations! {
    VERSIONS = "placement:root", "placement/version", [Public];
    LIST_PROVIDERS = "placement:resource_providers:list", "placement/resource_provider", [ADMIN];
    CREATE_PROVIDER = "placement:resource_providers:create", "placement/resource_provider", [ADMIN];
    SHOW_PROVIDER = "placement:resource_providers:show", "placement/resource_provider", [ADMIN];
    UPDATE_PROVIDER = "placement:resource_providers:update", "placement/resource_provider", [ADMIN];
    DELETE_PROVIDER = "placement:resource_providers:delete", "placement/resource_provider", [ADMIN];
    LIST_INVENTORIES = "placement:resource_providers:inventories:list", "placement/inventory", [ADMIN];
    UPDATE_INVENTORIES = "placement:resource_providers:inventories:update", "placement/inventory", [ADMIN];
    DELETE_INVENTORIES = "placement:resource_providers:inventories:delete", "placement/inventory", [ADMIN];
    PROVIDER_USAGES = "placement:resource_providers:usages", "placement/usage", [ADMIN];
    PROVIDER_ALLOCATIONS = "placement:resource_providers:allocations:list", "placement/allocation", [ADMIN];
    SHOW_ALLOCATIONS = "placement:allocations:list", "placement/allocation", [ADMIN];
    UPDATE_ALLOCATIONS = "placement:allocations:update", "placement/allocation", [ADMIN];
    DELETE_ALLOCATIONS = "placement:allocations:delete", "placement/allocation", [ADMIN];
    PROJECT_USAGES = "placement:usages", "placement/usage", [ADMIN];
    ALLOCATION_CANDIDATES = "placement:allocation_candidates:list", "placement/allocation_candidate", [ADMIN];
    LIST_CLASSES = "placement:resource_classes:list", "placement/resource_class", [ADMIN];
}

pub fn table() -> impl Iterator<Item = (&'static str, Rule)> {
    TABLE.iter().map(|op| (op.name, op.rule))
}
