//! Neutron v2.0 routes, one module per resource, all under
//! [`crate::PATH_PREFIX`].

mod access;
pub(crate) mod floatingips;
mod ip_availability;
mod list;
mod networks;
pub(crate) mod ports;
mod quotas;
mod routers;
pub(crate) mod security_groups;
mod subnets;
mod tags;
mod wire;

use axum::http::HeaderMap;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_http::{Json, Pipeline};
use serde_json::{json, Value};

use crate::policy::*;
use crate::NetworkService;

/// Every network route, guarded by the pipeline, under `/networking`.
pub fn routes(p: &Pipeline, service: NetworkService) -> Router {
    let api = Router::new()
        .route("/", p.on(&SERVICE, &VERSIONS, MethodFilter::GET, versions))
        .route(
            "/v2.0",
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, resources),
        )
        .route(
            "/v2.0/",
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, resources),
        )
        .route(
            "/v2.0/extensions",
            p.on(&SERVICE, &LIST_EXTENSIONS, MethodFilter::GET, extensions),
        )
        .route(
            "/v2.0/extensions/{alias}",
            p.on(&SERVICE, &LIST_EXTENSIONS, MethodFilter::GET, extension),
        )
        .route(
            "/v2.0/availability_zones",
            p.on(
                &SERVICE,
                &LIST_AVAILABILITY_ZONES,
                MethodFilter::GET,
                availability_zones,
            ),
        )
        .merge(networks::routes(p))
        .merge(subnets::routes(p))
        .merge(ports::routes(p))
        .merge(security_groups::routes(p))
        .merge(routers::routes(p))
        .merge(floatingips::routes(p))
        .merge(quotas::routes(p))
        .merge(ip_availability::routes(p))
        .fallback(p.on(&SERVICE, &UNKNOWN_PATH, any_method(), unknown_path))
        .with_state(service);
    // The nested "/" answers `/networking`; `/networking/` needs its own route.
    Router::new()
        .route(
            &format!("{}/", crate::PATH_PREFIX),
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, versions),
        )
        .nest(crate::PATH_PREFIX, api)
}

fn any_method() -> MethodFilter {
    use MethodFilter as M;
    [
        M::POST,
        M::PUT,
        M::PATCH,
        M::DELETE,
        M::HEAD,
        M::OPTIONS,
        M::TRACE,
        M::CONNECT,
    ]
    .into_iter()
    .fold(M::GET, MethodFilter::or)
}

async fn unknown_path() -> himmel_http::ApiError {
    himmel_http::ApiError(himmel_core::Error::NotFound(
        "The resource could not be found.".into(),
    ))
}

fn root_url(headers: &HeaderMap) -> String {
    format!("{}{}", wire::base_url(headers), crate::PATH_PREFIX)
}

async fn versions(headers: HeaderMap) -> Json<Value> {
    let href = format!("{}/v2.0/", root_url(&headers));
    Json(json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"href": href, "rel": "self"}],
    }]}))
}

/// The collections of v2.0, as Neutron lists them at its root.
const COLLECTIONS: &[(&str, &str)] = &[
    ("network", "networks"),
    ("subnet", "subnets"),
    ("port", "ports"),
    ("router", "routers"),
    ("floatingip", "floatingips"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("quota", "quotas"),
];

async fn resources(headers: HeaderMap) -> Json<Value> {
    let base = format!("{}/v2.0", root_url(&headers));
    let items: Vec<Value> = COLLECTIONS
        .iter()
        .map(|(name, collection)| {
            json!({"name": name, "collection": collection,
                   "links": [{"href": format!("{base}/{collection}"), "rel": "self"}]})
        })
        .collect();
    Json(json!({"resources": items}))
}

/// Exactly the extensions this API implements: (alias, name, description).
const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("external-net", "Neutron external network", "Adds the router:external attribute to networks."),
    ("subnet-external-network", "Subnet External Network", "Subnets of external networks are visible to every project, like their networks."),
    ("provider", "Provider Network", "Exposes the network_type, physical_network and segmentation_id of networks to administrators."),
    ("net-mtu", "Network MTU", "Provides the MTU attribute of a network."),
    ("port-security", "Port Security", "Provides port security (anti-spoofing and security groups) on or off per network and port."),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs on ports."),
    ("binding", "Port Binding", "Exposes port bindings to administrators."),
    ("router", "Neutron L3 Router", "Routers, their interfaces and floating IPs."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "SNAT on or off on a router's external gateway."),
    ("extraroute", "Neutron Extra Route", "Static routes on routers."),
    ("router_availability_zone", "Router Availability Zone", "Availability zone support for routers."),
    ("quotas", "Quota management support", "Per-project quotas, enforced on create."),
    ("quota_details", "Quota details management support", "Quota usage details per project."),
    ("quota-check-limit", "Quota engine limit check", "check_limit refuses limits below current usage."),
    ("network-ip-availability", "Network IP Availability", "How many addresses networks and subnets have and use."),
    ("security-group", "security-group", "The security groups extension."),
    ("security-groups-default-rules", "Default rules for security groups", "Configures the rules new security groups start with."),
    ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not."),
    ("availability_zone", "Availability Zone", "The availability zone resource."),
    ("network_availability_zone", "Network Availability Zone", "Availability zone support for networks."),
    ("standard-attr-tag", "Tag support for resources with standard attribute", "Enables tags on networks, subnets, ports, routers, floating IPs and security groups."),
    ("standard-attr-revisions", "Resource revision numbers", "Every resource carries a revision number that changes with it."),
    ("revision-if-match", "If-Match constraints based on revision_number", "Changes honour If-Match: revision_number=N."),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at to resources."),
    ("standard-attr-description", "standard-attr-description", "Adds a description to resources."),
    ("project-id", "project_id field enabled", "Resources carry project_id beside tenant_id."),
    ("sorting", "Sorting support", "Lists sort by sort_key and sort_dir."),
    ("pagination", "Pagination support", "Lists page with limit and marker."),
];

fn extension_body(alias: &str, name: &str, description: &str) -> Value {
    json!({"alias": alias, "name": name, "description": description,
           "updated": "2026-01-01T00:00:00-00:00", "links": []})
}

async fn extensions() -> Json<Value> {
    let list: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(a, n, d)| extension_body(a, n, d))
        .collect();
    Json(json!({"extensions": list}))
}

async fn extension(
    axum::extract::Path(alias): axum::extract::Path<String>,
) -> himmel_http::ApiResult<Json<Value>> {
    EXTENSIONS
        .iter()
        .find(|(a, _, _)| *a == alias)
        .map(|(a, n, d)| Json(json!({"extension": extension_body(a, n, d)})))
        .ok_or_else(|| {
            himmel_core::Error::NotFound(format!("Extension with alias {alias} does not exist"))
                .into()
        })
}

async fn availability_zones() -> Json<Value> {
    let zone = crate::model::AVAILABILITY_ZONE;
    Json(json!({"availability_zones": [
        {"name": zone, "resource": "network", "state": "available"},
        {"name": zone, "resource": "router", "state": "available"},
    ]}))
}
