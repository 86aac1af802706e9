//! `himmel keyholder serve`: the key holder's HTTPS API. Mutual TLS (1.3
//! only): a client must present a certificate that chains to the key
//! holder's own CA, or the handshake fails. Every wrap, unwrap and rotate
//! is written to the key holder's log before it is answered; a request
//! that cannot be logged is refused.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use zeroize::Zeroizing;

use super::api::{self, ErrorBody, RotateResponse, UnwrapRequest, UnwrapResponse, WrapRequest};
use super::api::{WrapResponse, ERR_BAD_REQUEST, ERR_CORRUPTED, ERR_REVOKED, ERR_UNAVAILABLE};
use super::{revocations, AuditLog, KeyHolderError, Layout, LogEntry};
use crate::root::file::KeyFile;
use crate::root::{RootKeyProvider, WrappedKek};
use crate::{Key, KmsError};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the key holder in `dir` on `listener` until the task is dropped.
pub async fn serve(dir: &Path, listener: TcpListener) -> Result<(), KeyHolderError> {
    let layout = Layout::new(dir);
    if !layout.root_key().exists() {
        return Err(KeyHolderError::Invalid(format!(
            "{} is not a key holder directory (run `himmel keyholder init` first)",
            dir.display()
        )));
    }
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&layout)?));
    let holder = Arc::new(KeyHolder {
        root: KeyFile::open_or_create(&layout.root_key())?,
        log: Arc::new(AuditLog::new(&layout.audit_log())),
        layout,
    });
    let app = Router::new()
        .route(api::WRAP_PATH, post(wrap))
        .route(api::UNWRAP_PATH, post(unwrap))
        .route(api::ROTATE_PATH, post(rotate))
        .with_state(holder);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%peer, "refused a TLS handshake: {e}");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let Some(client) = client_subject(tls.get_ref().1) else {
                tracing::warn!(%peer, "TLS session without a client certificate");
                return;
            };
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(client.clone());
                app.clone().oneshot(req)
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

fn tls_config(layout: &Layout) -> Result<ServerConfig, KeyHolderError> {
    let tls = |e: rustls::Error| KeyHolderError::Tls(e.to_string());
    let pem = |path: &Path| {
        let path = path.to_owned();
        move |e: rustls::pki_types::pem::Error| {
            KeyHolderError::Invalid(format!("{}: {e}", path.display()))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(layout.ca_cert()).map_err(pem(&layout.ca_cert()))?)
        .map_err(tls)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| KeyHolderError::Tls(e.to_string()))?;
    let chain =
        vec![CertificateDer::from_pem_file(layout.server_cert())
            .map_err(pem(&layout.server_cert()))?];
    let key =
        PrivateKeyDer::from_pem_file(layout.server_key()).map_err(pem(&layout.server_key()))?;
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls)
}

/// Who is asking: the subject of the verified client certificate.
#[derive(Clone)]
struct Client(Arc<str>);

fn client_subject(session: &rustls::ServerConnection) -> Option<Client> {
    let der = session.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(Client(cert.subject().to_string().into()))
}

struct KeyHolder {
    layout: Layout,
    root: KeyFile,
    log: Arc<AuditLog>,
}

/// Why a request is refused, as the client and the log see it.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: ERR_BAD_REQUEST,
            message: message.into(),
        }
    }

    fn unavailable(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ERR_UNAVAILABLE,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<KmsError> for Refusal {
    fn from(e: KmsError) -> Refusal {
        match e {
            KmsError::Corrupted(m) => Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: ERR_CORRUPTED,
                message: m,
            },
            other => Refusal::unavailable(other.to_string()),
        }
    }
}

impl KeyHolder {
    /// Refuses a malformed project id or a revoked project; refuses
    /// everything while the revocation list cannot be read.
    fn admit(&self, project_id: &str) -> Result<(), Refusal> {
        if !api::valid_project_id(project_id) {
            return Err(Refusal::bad_request("project_id is not a project id"));
        }
        match revocations::is_revoked(&self.layout.revocations(), project_id) {
            Ok(false) => Ok(()),
            Ok(true) => Err(Refusal {
                status: StatusCode::FORBIDDEN,
                code: ERR_REVOKED,
                message: format!("access to the keys of project {project_id} is revoked"),
            }),
            Err(e) => {
                tracing::error!("reading the revocation list: {e}");
                Err(Refusal::unavailable("the revocation list cannot be read"))
            }
        }
    }

    /// Logs the outcome, then answers; an answer that cannot be logged is
    /// not given.
    async fn finish<T: serde::Serialize>(
        &self,
        operation: &str,
        project: &str,
        client: &Client,
        result: Result<T, Refusal>,
    ) -> Response {
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(r) if r.code == ERR_REVOKED => ERR_REVOKED.to_owned(),
            Err(r) => format!("{}: {}", r.code, r.message),
        };
        let entry = LogEntry::now(operation, &loggable(project), &client.0, &outcome);
        let log = self.log.clone();
        let logged = tokio::task::spawn_blocking(move || log.append(&entry)).await;
        if !matches!(logged, Ok(Ok(()))) {
            tracing::error!("cannot write the key holder's log: {logged:?}");
            return Refusal::unavailable("the key holder cannot write its log").into_response();
        }
        match result {
            Ok(body) => Json(body).into_response(),
            Err(refusal) => refusal.into_response(),
        }
    }
}

/// A project id as the log shows it: a valid one as is, anything else a
/// client sent quoted and cut short, so that it cannot pass for another
/// entry or flood the log.
fn loggable(project: &str) -> String {
    const MAX: usize = 80;
    if project == "-" || api::valid_project_id(project) {
        return project.to_owned();
    }
    let cut: String = project.chars().take(MAX).collect();
    let ellipsis = if cut.len() < project.len() { "…" } else { "" };
    format!("{cut:?}{ellipsis}")
}

/// What the key holder binds a wrapped key to: the project it answers for
/// (so a region cannot open a revoked project's key by naming another
/// project) and the region's own context.
fn bound_context(project_id: &str, context: &[u8]) -> Vec<u8> {
    let mut bound = b"himmel-keyholder-v1/".to_vec();
    bound.extend_from_slice(&(project_id.len() as u32).to_be_bytes());
    bound.extend_from_slice(project_id.as_bytes());
    bound.extend_from_slice(context);
    bound
}

fn decode(field: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    B64.decode(value)
        .map(Zeroizing::new)
        .map_err(|_| Refusal::bad_request(format!("{field} is not base64")))
}

async fn wrap(
    State(holder): State<Arc<KeyHolder>>,
    Extension(client): Extension<Client>,
    body: Result<Json<WrapRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(e) => {
            let refusal = Refusal::bad_request(e.body_text());
            return holder
                .finish::<()>("wrap", "-", &client, Err(refusal))
                .await;
        }
    };
    let result = async {
        holder.admit(&req.project_id)?;
        let context = decode("context", &req.context)?;
        let key = Key::from_slice(&decode("key", &req.key)?)
            .ok_or_else(|| Refusal::bad_request("key is not 32 bytes"))?;
        let wrapped = holder
            .root
            .wrap(
                &req.project_id,
                &bound_context(&req.project_id, &context),
                &key,
            )
            .await?;
        Ok(WrapResponse {
            root_ref: wrapped.root_ref,
            wrapped: B64.encode(wrapped.blob),
        })
    }
    .await;
    holder
        .finish("wrap", &req.project_id, &client, result)
        .await
}

async fn unwrap(
    State(holder): State<Arc<KeyHolder>>,
    Extension(client): Extension<Client>,
    body: Result<Json<UnwrapRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(e) => {
            let refusal = Refusal::bad_request(e.body_text());
            return holder
                .finish::<()>("unwrap", "-", &client, Err(refusal))
                .await;
        }
    };
    let result = async {
        holder.admit(&req.project_id)?;
        let context = decode("context", &req.context)?;
        let wrapped = WrappedKek {
            root_ref: req.root_ref.clone(),
            blob: decode("wrapped", &req.wrapped)?.to_vec(),
        };
        let key = holder
            .root
            .unwrap(
                &req.project_id,
                &bound_context(&req.project_id, &context),
                &wrapped,
            )
            .await?;
        Ok(UnwrapResponse {
            key: B64.encode(key.as_bytes()),
        })
    }
    .await;
    holder
        .finish("unwrap", &req.project_id, &client, result)
        .await
}

async fn rotate(
    State(holder): State<Arc<KeyHolder>>,
    Extension(client): Extension<Client>,
) -> Response {
    let result = holder
        .root
        .rotate()
        .await
        .map(|root_ref| RotateResponse { root_ref })
        .map_err(Refusal::from);
    holder.finish("rotate", "-", &client, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_project_ids_are_logged_quoted_and_short() {
        assert_eq!(loggable("0123abcd"), "0123abcd");
        assert_eq!(loggable("-"), "-");
        assert_eq!(loggable("a\nwrap ok"), "\"a\\nwrap ok\"");
        let long = "x/".repeat(1000);
        let logged = loggable(&long);
        assert!(logged.len() < 100 && logged.ends_with('…'), "{logged}");
    }

    #[test]
    fn the_bound_context_separates_project_and_context() {
        // ("ab", "c") and ("a", "bc") must not bind to the same bytes.
        assert_ne!(bound_context("ab", b"c"), bound_context("a", b"bc"));
    }
}
