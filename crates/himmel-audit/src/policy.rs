//! Who may read the audit trail. The golden test renders this table to
//! `policy-matrix.txt`.

use himmel_http::policy::Check::{self, *};
use himmel_http::policy::Rule;
use himmel_http::{ErrorFormat, Operation, Service};

pub static SERVICE: Service = Service {
    name: "audit",
    format: ErrorFormat::Keystone,
};

/// The cloud administrator, on a token of any scope (as in identity).
const ADMIN: Check = Role("admin");

/// Listing events: the cloud administrator and system readers see every
/// event; a project reader passes only for its own project, and the
/// handler confines the listing to it.
pub static LIST_EVENTS: Operation = Operation::new(
    "audit:list_events",
    "audit/event",
    &[ADMIN, System("reader"), Project("reader")],
);

/// Every audit operation, in the order of the matrix.
pub static POLICY: &[&Operation] = &[&LIST_EVENTS];

pub fn table() -> impl Iterator<Item = (&'static str, Rule)> {
    POLICY.iter().map(|op| (op.name, op.rule))
}
