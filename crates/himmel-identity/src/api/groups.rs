//! Routes of this resource (being written).

use axum::Router;
use himmel_http::Pipeline;

use crate::Identity;

pub fn routes(_p: &Pipeline) -> Router<Identity> {
    Router::new()
}
