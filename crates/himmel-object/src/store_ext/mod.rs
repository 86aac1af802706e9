//! Queries for the S3 features beyond the core object path (object lock,
//! ...), apart from [`crate::store`] which the write path owns.

pub mod cors;
pub mod lock;
