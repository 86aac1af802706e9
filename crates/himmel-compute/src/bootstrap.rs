//! The Sovereign Cloud Stack's standard flavors (SCS-0103: the mandatory
//! set and the two recommended ones with local SSD disks), with the `scs:`
//! extra specs the standard asks for. Seeded at start, idempotently: a
//! flavor whose name exists is left as the operator made it.

use std::collections::BTreeMap;

use himmel_core::Error;
use himmel_db::Db;

use crate::model::Flavor;
use crate::store::{self, db_err};

/// (name, vCPUs, RAM GiB, root disk GiB, disk type).
const SCS_FLAVORS: &[(&str, u32, u64, u64, Option<&str>)] = &[
    ("SCS-1V-4", 1, 4, 0, None),
    ("SCS-2V-8", 2, 8, 0, None),
    ("SCS-4V-16", 4, 16, 0, None),
    ("SCS-8V-32", 8, 32, 0, None),
    ("SCS-1V-2", 1, 2, 0, None),
    ("SCS-2V-4", 2, 4, 0, None),
    ("SCS-4V-8", 4, 8, 0, None),
    ("SCS-8V-16", 8, 16, 0, None),
    ("SCS-16V-32", 16, 32, 0, None),
    ("SCS-1V-8", 1, 8, 0, None),
    ("SCS-2V-16", 2, 16, 0, None),
    ("SCS-4V-32", 4, 32, 0, None),
    ("SCS-1L-1", 1, 1, 0, None),
    ("SCS-2V-4-20s", 2, 4, 20, Some("ssd")),
    ("SCS-4V-16-100s", 4, 16, 100, Some("ssd")),
];

/// The `scs:` extra specs of a standard flavor name.
fn extra_specs(name: &str, disk_type: Option<&str>) -> BTreeMap<String, String> {
    let cpu_type = if name.contains('L') {
        "crowded-core"
    } else {
        "shared-core"
    };
    // v1 names separate the parts after the CPU by colons: SCS-2V:4:20s.
    let rest = name.trim_start_matches("SCS-");
    let mut parts = rest.split('-');
    let cpu = parts.next().unwrap_or_default();
    let v1_tail: Vec<&str> = parts.collect();
    let name_v1 = format!("SCS-{cpu}:{}", v1_tail.join(":"));
    let mut specs = BTreeMap::from([
        ("scs:cpu-type".to_string(), cpu_type.to_string()),
        ("scs:name-v1".to_string(), name_v1),
        ("scs:name-v2".to_string(), name.to_string()),
        ("hw_rng:allowed".to_string(), "true".to_string()),
    ]);
    if let Some(t) = disk_type {
        specs.insert("scs:disk0-type".into(), t.into());
    }
    specs
}

/// Creates the standard flavors that do not exist yet.
pub async fn seed_flavors(db: &Db) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let existing: Vec<Flavor> = store::list(&mut tx, None).await?;
    let now = himmel_core::time::iso_seconds(himmel_core::time::now());
    for (name, vcpus, ram_gib, disk, disk_type) in SCS_FLAVORS {
        if existing.iter().any(|f| f.name == *name) {
            continue;
        }
        let flavor = Flavor {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            vcpus: *vcpus,
            ram: ram_gib * 1024,
            disk: *disk,
            ephemeral: 0,
            swap: 0,
            rxtx_factor: 1.0,
            is_public: true,
            disabled: false,
            description: None,
            extra_specs: extra_specs(name, *disk_type),
            access: vec![],
            created_at: now.clone(),
        };
        store::insert(&mut tx, &flavor, || {
            format!("Flavor {name} already exists.")
        })
        .await?;
    }
    tx.commit().await.map_err(db_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_names_map_to_their_specs() {
        let s = extra_specs("SCS-2V-4-20s", Some("ssd"));
        assert_eq!(s["scs:name-v1"], "SCS-2V:4:20s");
        assert_eq!(s["scs:cpu-type"], "shared-core");
        assert_eq!(s["scs:disk0-type"], "ssd");
        let l = extra_specs("SCS-1L-1", None);
        assert_eq!(l["scs:name-v1"], "SCS-1L:1");
        assert_eq!(l["scs:cpu-type"], "crowded-core");
        assert!(!l.contains_key("scs:disk0-type"));
    }
}
