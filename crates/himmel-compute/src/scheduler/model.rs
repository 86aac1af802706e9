//! Host aggregates and server groups, stored as rows of
//! `compute_resources` like the other compute resources.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::Resource;

/// Metadata key naming an aggregate's availability zone.
pub const AZ_KEY: &str = "availability_zone";
/// Metadata keys (`filter_tenant_id`, `filter_tenant_id_2`, …) naming the
/// projects an aggregate's hosts are dedicated to.
pub const TENANT_KEY: &str = "filter_tenant_id";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Aggregate {
    /// Nova's integer id, as text (the row's id).
    pub id: String,
    pub number: i64,
    pub uuid: String,
    pub name: String,
    pub hosts: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl Resource for Aggregate {
    const KIND: &'static str = "aggregate";
    fn id(&self) -> &str {
        &self.id
    }
    fn project_id(&self) -> &str {
        ""
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.name.clone())
    }
}

impl Aggregate {
    pub fn availability_zone(&self) -> Option<&str> {
        self.metadata.get(AZ_KEY).map(String::as_str)
    }

    /// The projects this aggregate's hosts are dedicated to.
    pub fn tenants(&self) -> BTreeSet<&str> {
        self.metadata
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(TENANT_KEY)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
            })
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum GroupPolicy {
    Affinity,
    AntiAffinity,
    SoftAffinity,
    SoftAntiAffinity,
}

impl GroupPolicy {
    pub fn parse(s: &str) -> Option<GroupPolicy> {
        Some(match s {
            "affinity" => GroupPolicy::Affinity,
            "anti-affinity" => GroupPolicy::AntiAffinity,
            "soft-affinity" => GroupPolicy::SoftAffinity,
            "soft-anti-affinity" => GroupPolicy::SoftAntiAffinity,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupPolicy::Affinity => "affinity",
            GroupPolicy::AntiAffinity => "anti-affinity",
            GroupPolicy::SoftAffinity => "soft-affinity",
            GroupPolicy::SoftAntiAffinity => "soft-anti-affinity",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerGroup {
    pub id: String,
    pub name: String,
    pub policy: GroupPolicy,
    /// `max_server_per_host` of an anti-affinity group (1 when absent).
    pub max_server_per_host: Option<i64>,
    /// Server ids, in the order they joined.
    pub members: Vec<String>,
    pub project_id: String,
    pub user_id: String,
    pub created_at: String,
}

impl Resource for ServerGroup {
    const KIND: &'static str = "server_group";
    fn id(&self) -> &str {
        &self.id
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn user_id(&self) -> &str {
        &self.user_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_keys_are_the_plain_and_numbered_ones() {
        let a = Aggregate {
            id: "1".into(),
            number: 1,
            uuid: "u".into(),
            name: "a".into(),
            hosts: vec![],
            metadata: BTreeMap::from([
                ("filter_tenant_id".into(), "p1".into()),
                ("filter_tenant_id_2".into(), "p2".into()),
                ("filter_tenant_idx".into(), "p3".into()),
                ("other".into(), "p4".into()),
            ]),
            created_at: String::new(),
            updated_at: None,
        };
        assert_eq!(a.tenants(), BTreeSet::from(["p1", "p2"]));
    }
}
