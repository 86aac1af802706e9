//! What guests read from 169.254.169.254: the OpenStack tree
//! (`/openstack/latest/meta_data.json`, `network_data.json`, `user_data`)
//! and the EC2 tree (`/latest/meta-data/...`), for cloud-init. The network
//! service finds the instance by the port a request came from; this module
//! answers for it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use himmel_core::Error;
use himmel_network::instance_ports;
use himmel_network::metadata::{InstanceMetadata, MetadataAnswer};
use serde_json::{json, Value};

use crate::model::Server;
use crate::servers;
use crate::ComputeService;

/// OpenStack metadata versions, oldest first (all answered with the same content).
const OPENSTACK_VERSIONS: &[&str] = &[
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "latest",
];

const EC2_VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "latest",
];

/// The compute service's answers to guests.
pub struct GuestMetadata {
    service: ComputeService,
}

impl GuestMetadata {
    pub fn new(service: ComputeService) -> GuestMetadata {
        GuestMetadata { service }
    }
}

fn text(body: impl Into<String>) -> Option<MetadataAnswer> {
    Some(MetadataAnswer {
        content_type: "text/plain; charset=UTF-8",
        body: body.into().into_bytes(),
    })
}

fn json_answer(v: &Value) -> Option<MetadataAnswer> {
    Some(MetadataAnswer {
        content_type: "application/json",
        body: v.to_string().into_bytes(),
    })
}

#[async_trait::async_trait]
impl InstanceMetadata for GuestMetadata {
    async fn answer(&self, instance_id: &str, port_id: &str, path: &str) -> Option<MetadataAnswer> {
        let server = self.speaking(instance_id, port_id).await?;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [] => text(EC2_VERSIONS.join("\n")),
            ["openstack"] => text(OPENSTACK_VERSIONS.join("\n")),
            ["openstack", version, rest @ ..] if OPENSTACK_VERSIONS.contains(version) => {
                self.openstack(&server, version, rest).await
            }
            [version, rest @ ..] if EC2_VERSIONS.contains(version) => self.ec2(&server, rest).await,
            _ => None,
        }
    }

    /// A guest sets its password once (cloudbase-init posts the password it
    /// made, encrypted with the server's key); a second post is refused
    /// until the password is cleared through the compute API, as in Nova.
    async fn post(&self, instance_id: &str, port_id: &str, path: &str, body: &[u8]) -> StatusCode {
        let Some(server) = self.speaking(instance_id, port_id).await else {
            return StatusCode::NOT_FOUND;
        };
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            ["openstack", version, "password"] if has_password(version) => {}
            _ => return StatusCode::NOT_FOUND,
        }
        if body.len() > MAX_PASSWORD_LEN {
            return StatusCode::BAD_REQUEST;
        }
        let Ok(password) = std::str::from_utf8(body) else {
            return StatusCode::BAD_REQUEST;
        };
        let stored = servers::modify(&self.service, &server.id, |sv| {
            if sv.password.as_deref().is_some_and(|p| !p.is_empty()) {
                return Err(Error::Conflict("the password is already set".into()));
            }
            sv.password = Some(password.to_string());
            Ok(())
        })
        .await;
        match stored {
            Ok(_) => StatusCode::OK,
            Err(Error::Conflict(_)) => StatusCode::CONFLICT,
            Err(Error::NotFound(_)) => StatusCode::NOT_FOUND,
            Err(e) => {
                tracing::warn!(server = %server.id, "metadata: storing the password failed: {e}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// Nova's limit on a posted password.
const MAX_PASSWORD_LEN: usize = 256;

/// The password entry exists from metadata version 2013-04-04 on.
fn has_password(version: &str) -> bool {
    OPENSTACK_VERSIONS.contains(&version) && version != "2012-08-10"
}

impl GuestMetadata {
    /// The server `instance_id` if `port_id` may speak for it: only the
    /// server's own ports do, and not once it is being deleted.
    async fn speaking(&self, instance_id: &str, port_id: &str) -> Option<Server> {
        let server = servers::get(&self.service, instance_id).await.ok()??;
        (!server.deleting && server.ports.iter().any(|p| p == port_id)).then_some(server)
    }

    async fn openstack(
        &self,
        server: &Server,
        version: &str,
        rest: &[&str],
    ) -> Option<MetadataAnswer> {
        match rest {
            [] => {
                let mut items = vec![
                    "meta_data.json",
                    "network_data.json",
                    "vendor_data.json",
                    "vendor_data2.json",
                ];
                if has_password(version) {
                    items.push("password");
                }
                if server.user_data.is_some() {
                    items.push("user_data");
                }
                text(items.join("\n"))
            }
            ["password"] if has_password(version) => {
                text(server.password.clone().unwrap_or_default())
            }
            ["meta_data.json"] => json_answer(&meta_data(server)),
            ["network_data.json"] => json_answer(&self.network_data(server).await),
            ["vendor_data.json"] | ["vendor_data2.json"] => json_answer(&json!({})),
            ["user_data"] => user_data(server),
            _ => None,
        }
    }

    async fn ec2(&self, server: &Server, rest: &[&str]) -> Option<MetadataAnswer> {
        match rest {
            [] => {
                let mut items = vec!["meta-data/"];
                if server.user_data.is_some() {
                    items.push("user-data");
                }
                text(items.join("\n"))
            }
            ["user-data"] => user_data(server),
            ["meta-data", keys @ ..] => {
                let tree = self.ec2_tree(server).await;
                ec2_lookup(&tree, keys)
            }
            _ => None,
        }
    }

    /// The first fixed IPv4 address of the server's ports.
    async fn local_ipv4(&self, server: &Server) -> String {
        for port_id in &server.ports {
            if let Ok(Some(p)) = instance_ports::get(self.service.network(), port_id).await {
                if let Some(ip) = p.fixed_ips.iter().find(|ip| !ip.ip_address.contains(':')) {
                    return ip.ip_address.clone();
                }
            }
        }
        String::new()
    }

    async fn ec2_tree(&self, server: &Server) -> Value {
        let local_ipv4 = self.local_ipv4(server).await;
        let mut public_keys = serde_json::Map::new();
        if let (Some(name), Some(key)) = (&server.key_name, &server.key_data) {
            public_keys.insert(format!("0={name}"), json!({"openssh-key": key}));
        }
        json!({
            "ami-id": server.image_ref,
            "ami-launch-index": server.launch_index.to_string(),
            "hostname": server.hostname,
            "instance-id": server.id,
            "instance-type": server.flavor.name,
            "local-hostname": server.hostname,
            "local-ipv4": local_ipv4,
            "public-hostname": server.hostname,
            "public-ipv4": "",
            "public-keys": public_keys,
            "reservation-id": server.reservation_id,
            "security-groups": server.security_groups.join("\n"),
            "placement": {"availability-zone": server.availability_zone},
        })
    }

    async fn network_data(&self, server: &Server) -> Value {
        let mut links = Vec::new();
        let mut networks = Vec::new();
        let mut services = Vec::new();
        for port_id in &server.ports {
            let Ok(Some(port)) = instance_ports::get(self.service.network(), port_id).await else {
                continue;
            };
            let mtu = match instance_ports::network(self.service.network(), &port.network_id).await
            {
                Ok(Some(n)) => Some(n.mtu),
                _ => None,
            };
            let link = format!("tap{}", &port.meta.id.chars().take(11).collect::<String>());
            links.push(json!({
                "id": link, "type": "phy", "ethernet_mac_address": port.mac_address,
                "mtu": mtu, "vif_id": port.meta.id,
            }));
            for ip in &port.fixed_ips {
                let subnet = instance_ports::subnet(self.service.network(), &ip.subnet_id)
                    .await
                    .ok()
                    .flatten();
                let v6 = ip.ip_address.contains(':');
                let dhcp = subnet.as_ref().is_some_and(|s| s.enable_dhcp);
                let kind = match (v6, dhcp) {
                    (false, true) => "ipv4_dhcp",
                    (false, false) => "ipv4",
                    (true, true) => "ipv6_dhcp",
                    (true, false) => "ipv6",
                };
                let mut net = json!({
                    "id": format!("network{}", networks.len()),
                    "type": kind,
                    "link": link,
                    "network_id": port.network_id,
                    "ip_address": ip.ip_address,
                });
                if let Some(sub) = &subnet {
                    if let Ok(cidr) = sub.cidr.parse::<ipnet::IpNet>() {
                        net["netmask"] = json!(cidr.netmask().to_string());
                    }
                    let mut routes = Vec::new();
                    if let Some(gw) = &sub.gateway_ip {
                        let (dest, mask) = if v6 {
                            ("::", "::")
                        } else {
                            ("0.0.0.0", "0.0.0.0")
                        };
                        routes.push(json!({"network": dest, "netmask": mask, "gateway": gw}));
                    }
                    net["routes"] = json!(routes);
                    for dns in &sub.dns_nameservers {
                        let svc = json!({"type": "dns", "address": dns});
                        if !services.contains(&svc) {
                            services.push(svc);
                        }
                    }
                }
                net["services"] = json!([]);
                networks.push(net);
            }
        }
        json!({"links": links, "networks": networks, "services": services})
    }
}

fn meta_data(server: &Server) -> Value {
    let mut public_keys = BTreeMap::new();
    let mut keys = Vec::new();
    if let (Some(name), Some(key)) = (&server.key_name, &server.key_data) {
        public_keys.insert(name.clone(), key.clone());
        keys.push(json!({"name": name, "type": "ssh", "data": key}));
    }
    let seed: Vec<u8> = (0..512).map(|_| rand::random::<u8>()).collect();
    json!({
        "uuid": server.id,
        "name": server.name,
        "hostname": server.hostname,
        "launch_index": server.launch_index,
        "availability_zone": server.availability_zone,
        "project_id": server.project_id,
        "public_keys": public_keys,
        "keys": keys,
        "meta": server.metadata,
        "devices": [],
        "random_seed": B64.encode(seed),
    })
}

fn user_data(server: &Server) -> Option<MetadataAnswer> {
    let encoded = server.user_data.as_ref()?;
    let body = B64.decode(encoded.trim()).ok()?;
    Some(MetadataAnswer {
        content_type: "application/octet-stream",
        body,
    })
}

/// Walks the EC2 tree: an object lists its keys (sub-trees with a `/`),
/// a string is the value.
fn ec2_lookup(tree: &Value, keys: &[&str]) -> Option<MetadataAnswer> {
    let mut node = tree;
    for key in keys {
        node = match node {
            Value::Object(m) => match m.get(*key) {
                Some(v) => v,
                // `public-keys/0` names the entry `0=<name>`.
                None => m
                    .iter()
                    .find(|(k, _)| k.split('=').next() == Some(*key))
                    .map(|(_, v)| v)?,
            },
            _ => return None,
        };
    }
    match node {
        Value::String(s) => text(s.clone()),
        Value::Object(m) => text(
            m.iter()
                .map(|(k, v)| {
                    if v.is_object() && !k.contains('=') {
                        format!("{k}/")
                    } else {
                        k.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}
