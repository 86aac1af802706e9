//! Queries, one module per resource. Handlers call these, never SQL.

pub mod application_credentials;
pub mod assignments;
pub mod catalog;
pub mod credentials;
pub mod domains;
pub mod grants;
pub mod groups;
pub mod projects;
pub mod revocation;
pub mod roles;
pub mod users;

use himmel_db::{AnyRow, Row};

pub(crate) fn s(row: &AnyRow, col: &str) -> String {
    row.try_get::<String, _>(col).unwrap_or_default()
}

pub(crate) fn opt_s(row: &AnyRow, col: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(col).ok().flatten()
}

pub(crate) fn opt_i(row: &AnyRow, col: &str) -> Option<i64> {
    row.try_get::<Option<i64>, _>(col).ok().flatten()
}

pub(crate) fn i(row: &AnyRow, col: &str) -> i64 {
    row.try_get::<i64, _>(col).unwrap_or_default()
}

pub(crate) fn json(row: &AnyRow, col: &str) -> serde_json::Value {
    serde_json::from_str(&s(row, col)).unwrap_or(serde_json::Value::Object(Default::default()))
}

pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
