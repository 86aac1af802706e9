//! The image as Glance v2 defines it: core attributes, free-form
//! properties (string values only, as in Glance's schema), tags, and where
//! its encrypted data lives.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use himmel_core::Error;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Saving,
    Uploading,
    Importing,
    Active,
    Deactivated,
    Killed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Saving => "saving",
            Status::Uploading => "uploading",
            Status::Importing => "importing",
            Status::Active => "active",
            Status::Deactivated => "deactivated",
            Status::Killed => "killed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "saving" => Status::Saving,
            "uploading" => Status::Uploading,
            "importing" => Status::Importing,
            "active" => Status::Active,
            "deactivated" => Status::Deactivated,
            "killed" => Status::Killed,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Private,
    Shared,
    Community,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Community => "community",
        }
    }

    pub fn parse(s: &str) -> Result<Visibility, Error> {
        Ok(match s {
            "public" => Visibility::Public,
            "private" => Visibility::Private,
            "shared" => Visibility::Shared,
            "community" => Visibility::Community,
            other => {
                return Err(Error::BadRequest(format!(
                    "Invalid visibility value: {other}"
                )))
            }
        })
    }
}

/// The one store image data lives in (`GET /v2/info/stores`).
pub const STORE_ID: &str = "local";

pub const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
pub const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];

/// Attributes a client may never set (Glance answers 403).
pub const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "stores",
];

/// Names Glance keeps for itself (403 as well).
pub const RESERVED: &[&str] = &["deleted", "deleted_at", "location", "locations"];

/// Core attributes a client may set.
pub const SETTABLE: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "owner",
    "tags",
];

/// Where an image's encrypted data lives.
#[derive(Debug, Clone)]
pub struct StoredData {
    pub file_id: String,
    /// The project whose key-encryption key wraps the data key.
    pub key_project: String,
    pub data_key: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub owner: String,
    pub status: Status,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: u64,
    pub min_ram: u64,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub tags: BTreeSet<String>,
    pub data: Option<StoredData>,
    pub staged: Option<StoredData>,
    pub staged_size: Option<u64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Image {
    /// A queued image with Glance's defaults (visibility `shared`).
    pub fn new(id: String, owner: String) -> Image {
        let now = himmel_core::time::now().timestamp_micros();
        Image {
            id,
            name: None,
            owner,
            status: Status::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            disk_format: None,
            container_format: None,
            min_disk: 0,
            min_ram: 0,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            properties: BTreeMap::new(),
            tags: BTreeSet::new(),
            data: None,
            staged: None,
            staged_size: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn data(&self) -> Option<&StoredData> {
        self.data.as_ref()
    }

    /// The image as Glance shows it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.properties {
            m.insert(k.clone(), Value::String(v.clone()));
        }
        let core = json!({
            "id": self.id,
            "name": self.name,
            "status": self.status.as_str(),
            "visibility": self.visibility.as_str(),
            "protected": self.protected,
            "os_hidden": self.os_hidden,
            "owner": self.owner,
            "disk_format": self.disk_format,
            "container_format": self.container_format,
            "min_disk": self.min_disk,
            "min_ram": self.min_ram,
            "size": self.size,
            "virtual_size": self.virtual_size,
            "checksum": self.checksum,
            "os_hash_algo": self.os_hash_algo,
            "os_hash_value": self.os_hash_value,
            "tags": self.tags.iter().collect::<Vec<_>>(),
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(self.updated_at),
            "self": format!("/v2/images/{}", self.id),
            "file": format!("/v2/images/{}/file", self.id),
            "schema": "/v2/schemas/image",
        });
        if let Value::Object(core) = core {
            m.extend(core);
        }
        // Like Glance with stores, an image whose data is in place names
        // the store (clients wait for it after an import).
        if self.data.is_some() && matches!(self.status, Status::Active | Status::Deactivated) {
            m.insert("stores".into(), Value::String(STORE_ID.into()));
        }
        Value::Object(m)
    }

    /// The value of attribute or property `key` as JSON (for sorting and
    /// filtering).
    pub fn attribute(&self, key: &str) -> Value {
        match key {
            "created_at" => json!(self.created_at),
            "updated_at" => json!(self.updated_at),
            _ => {
                let v = self.to_json();
                v.get(key).cloned().unwrap_or(Value::Null)
            }
        }
    }
}

/// Glance's timestamps: `2026-01-01T00:00:00Z`.
pub fn timestamp(us: i64) -> String {
    himmel_core::time::from_unix_micros(us)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn check_disk_format(f: &str) -> Result<(), Error> {
    if DISK_FORMATS.contains(&f) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "Invalid value '{f}' for 'disk_format': expected one of {}.",
            DISK_FORMATS.join(", ")
        )))
    }
}

pub fn check_container_format(f: &str) -> Result<(), Error> {
    if CONTAINER_FORMATS.contains(&f) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "Invalid value '{f}' for 'container_format': expected one of {}.",
            CONTAINER_FORMATS.join(", ")
        )))
    }
}

/// A free-form property: a name of 1..=255 characters and a string value
/// (`kernel_id`/`ramdisk_id`: an image id).
pub fn check_property(key: &str, value: &Value) -> Result<String, Error> {
    if key.is_empty() || key.len() > 255 {
        return Err(Error::BadRequest(format!(
            "Property names must be 1 to 255 characters long: '{key}'."
        )));
    }
    let Value::String(s) = value else {
        return Err(Error::BadRequest(format!(
            "Invalid value for property '{key}': must be a string."
        )));
    };
    if s.len() > 65_535 {
        return Err(Error::BadRequest(format!(
            "Value of property '{key}' is too long."
        )));
    }
    if (key == "kernel_id" || key == "ramdisk_id") && uuid::Uuid::parse_str(s).is_err() {
        return Err(Error::BadRequest(format!(
            "Invalid value for '{key}': '{s}' is not an image id."
        )));
    }
    Ok(s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_show_beside_core_attributes_and_cannot_shadow_them() {
        let mut i = Image::new("i1".into(), "p1".into());
        i.properties.insert("os_distro".into(), "debian".into());
        i.properties.insert("status".into(), "forged".into());
        let v = i.to_json();
        assert_eq!(v["os_distro"], "debian");
        assert_eq!(v["status"], "queued");
        assert_eq!(v["visibility"], "shared");
        assert_eq!(v["self"], "/v2/images/i1");
    }

    #[test]
    fn only_images_with_their_data_in_place_name_the_store() {
        let mut i = Image::new("i1".into(), "p1".into());
        assert!(i.to_json().get("stores").is_none());
        i.data = Some(StoredData {
            file_id: "f1".into(),
            key_project: "p1".into(),
            data_key: vec![0; 32],
        });
        i.status = Status::Importing;
        assert!(i.to_json().get("stores").is_none());
        i.status = Status::Active;
        assert_eq!(i.to_json()["stores"], STORE_ID);
    }

    #[test]
    fn property_values_must_be_strings_and_kernel_ids_uuids() {
        assert!(check_property("os_distro", &json!("debian")).is_ok());
        assert!(check_property("os_distro", &json!(3)).is_err());
        assert!(check_property("", &json!("x")).is_err());
        assert!(check_property("kernel_id", &json!("not-a-uuid")).is_err());
        assert!(check_property("kernel_id", &json!(uuid::Uuid::new_v4().to_string())).is_ok());
    }
}
