//! Guest metadata inside tenant networks, the way Neutron's isolated metadata works: guests
//! reach `169.254.169.254:80` through their network's DHCP port (DHCP hands out a host route
//! to it), the address sits on the DHCP namespace's interface, and the region listens there on
//! a socket bound inside that namespace, one per network.
//!
//! A request is attributed by where it arrives and where it comes from: the listener's network
//! and the TCP peer's address find the port holding that fixed IP on that network (the
//! security-group filter already drops packets whose source is not the sending port's), and
//! the port's `device_id` is the instance. Headers such as `X-Forwarded-For` are never read, so
//! a guest cannot speak for another; a guest on another network reaches another listener and
//! can only ever be one of that network's ports.
//!
//! What is answered is not decided here: the compute service registers an
//! [`InstanceMetadata`] with [`NetworkService::set_instance_metadata`]. Without one, or for a
//! source that is no instance's port, the answer is 404.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use himmel_agent::names::Names;
use himmel_core::Error;

use crate::model::Port;
use crate::store::{self, db_err};
use crate::NetworkService;

/// The guest-facing content, implemented by the compute service.
#[async_trait::async_trait]
pub trait InstanceMetadata: Send + Sync + 'static {
    /// A guest's request for `path` (e.g. "/openstack/latest/meta_data.json",
    /// "/latest/meta-data/instance-id"), identified by the port it came from. None: 404.
    async fn answer(&self, instance_id: &str, port_id: &str, path: &str) -> Option<MetadataAnswer>;

    /// A guest's POST of `body` to `path` (in OpenStack's tree only the
    /// password takes one): the status to answer with. Without an
    /// implementation nothing can be posted.
    async fn post(
        &self,
        _instance_id: &str,
        _port_id: &str,
        _path: &str,
        _body: &[u8],
    ) -> StatusCode {
        StatusCode::NOT_FOUND
    }
}

/// One answer to a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataAnswer {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The port on `network_id` that holds `source` as a fixed IP, if any.
pub async fn port_for(
    service: &NetworkService,
    network_id: &str,
    source: IpAddr,
) -> Result<Option<Port>, Error> {
    let mut conn = service.db().pool().acquire().await.map_err(db_err)?;
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT owner_id FROM net_ip_allocations WHERE network_id = $1 AND ip_address = $2",
    )
    .bind(network_id)
    .bind(source.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    match owner {
        // The owner may also be a floating IP (on external networks): then no port is found.
        Some(id) => store::get::<Port>(&mut conn, &id).await,
        None => Ok(None),
    }
}

/// What a listener needs to answer for its network.
#[derive(Clone)]
struct Origin {
    service: NetworkService,
    network_id: String,
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

async fn answer(
    State(origin): State<Origin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
    }
    let source = match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let port = match port_for(&origin.service, &origin.network_id, source).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(network = %origin.network_id, "metadata: finding the port failed: {e}");
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            );
        }
    };
    let instance_port = port.filter(|p| {
        p.device_owner.starts_with("compute:")
            && !p.device_id.is_empty()
            && p.network_id == origin.network_id
    });
    let (Some(port), Some(provider)) = (instance_port, origin.service.instance_metadata()) else {
        return plain(StatusCode::NOT_FOUND, "404 Not Found\n");
    };
    if method == Method::POST {
        let status = provider
            .post(&port.device_id, &port.meta.id, uri.path(), &body)
            .await;
        return (status, [(header::CONTENT_TYPE, "text/plain")], "").into_response();
    }
    match provider
        .answer(&port.device_id, &port.meta.id, uri.path())
        .await
    {
        Some(a) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, a.content_type)],
            a.body,
        )
            .into_response(),
        None => plain(StatusCode::NOT_FOUND, "404 Not Found\n"),
    }
}

struct Listener {
    /// The namespace the socket was bound in (it is replaced when the name now stands for
    /// another namespace, e.g. after one was deleted by hand and made again).
    netns: (u64, u64),
    task: tokio::task::JoinHandle<()>,
}

/// The metadata listeners of this host, one per network whose DHCP namespace is in place.
#[derive(Default)]
pub struct Listeners {
    by_network: HashMap<String, Listener>,
}

impl Listeners {
    /// Makes the listeners match `networks` (the ids of networks whose DHCP namespace with
    /// the metadata address is in place): binds the missing ones, rebinds those whose
    /// namespace changed or whose task ended, and stops the others. Failures are logged and
    /// retried on the next call.
    pub fn sync(&mut self, service: &NetworkService, names: &Names, networks: &[String]) {
        self.by_network.retain(|id, l| {
            let keep = networks.contains(id)
                && !l.task.is_finished()
                && himmel_agent::netns::identity(&names.dhcp_netns(id)) == Some(l.netns);
            if !keep {
                l.task.abort();
            }
            keep
        });
        for id in networks {
            if self.by_network.contains_key(id) {
                continue;
            }
            let netns = names.dhcp_netns(id);
            match bind(service, &netns, id) {
                Ok(listener) => {
                    self.by_network.insert(id.clone(), listener);
                }
                Err(e) => tracing::warn!(network = %id, "metadata listener: {e}"),
            }
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for l in self.by_network.values() {
            l.task.abort();
        }
    }
}

fn bind(service: &NetworkService, netns: &str, network_id: &str) -> Result<Listener, String> {
    let identity = himmel_agent::netns::identity(netns)
        .ok_or_else(|| format!("namespace {netns} does not exist"))?;
    let addr = SocketAddr::from((himmel_agent::METADATA_IP, 80));
    let std_listener = himmel_agent::netns::bind_tcp(netns, addr).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
    // Guests post nothing bigger than a password.
    let app = axum::Router::new()
        .fallback(answer)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(Origin {
            service: service.clone(),
            network_id: network_id.to_string(),
        });
    let network = network_id.to_string();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
        if let Err(e) = served {
            tracing::warn!(%network, "metadata listener stopped: {e}");
        }
    });
    Ok(Listener {
        netns: identity,
        task,
    })
}
