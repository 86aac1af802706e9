//! A JSON body extractor whose every rejection is an [`ApiError`], so a
//! malformed body is a 400 in the service's own format (OpenStack APIs use
//! 400 where axum would say 422), an oversized one a 413.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use himmel_core::Error;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ApiError;

pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(ApiError(rejection_error(&rejection))),
        }
    }
}

fn rejection_error(r: &JsonRejection) -> Error {
    match r {
        JsonRejection::MissingJsonContentType(_) => Error::BadRequest(
            "Expected a JSON request body with Content-Type: application/json.".into(),
        ),
        JsonRejection::JsonSyntaxError(e) => Error::BadRequest(format!(
            "Malformed JSON in request body: {}",
            body_text(&e.body_text())
        )),
        JsonRejection::JsonDataError(e) => Error::BadRequest(format!(
            "Invalid input for field/attribute: {}",
            body_text(&e.body_text())
        )),
        JsonRejection::BytesRejection(e) if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
            Error::PayloadTooLarge("Request is too large.".into())
        }
        other => Error::BadRequest(format!(
            "Could not read the request body: {}",
            other.body_text()
        )),
    }
}

/// serde's messages start with axum's prefix; keep the useful part.
fn body_text(s: &str) -> String {
    s.split_once(": ")
        .map(|(_, rest)| rest)
        .unwrap_or(s)
        .to_string()
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
