//! `/v2/schemas/*`: the JSON schemas clients (glanceclient, the openstack
//! CLI) read to tell core attributes from free-form properties.

use axum::routing::MethodFilter;
use axum::Router;
use himmel_http::{Json, Pipeline};
use serde_json::{json, Value};

use crate::model::{CONTAINER_FORMATS, DISK_FORMATS};
use crate::policy::*;
use crate::ImageService;

pub fn routes(p: &Pipeline) -> Router<ImageService> {
    Router::new()
        .route(
            "/v2/schemas/image",
            p.on(&SERVICE, &GET_SCHEMA, MethodFilter::GET, image),
        )
        .route(
            "/v2/schemas/images",
            p.on(&SERVICE, &GET_SCHEMA, MethodFilter::GET, images),
        )
        .route(
            "/v2/schemas/member",
            p.on(&SERVICE, &GET_SCHEMA, MethodFilter::GET, member),
        )
        .route(
            "/v2/schemas/members",
            p.on(&SERVICE, &GET_SCHEMA, MethodFilter::GET, members),
        )
}

const UUID_PATTERN: &str =
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

fn read_only(t: Value, description: &str) -> Value {
    json!({"type": t, "readOnly": true, "description": description})
}

pub fn image_schema() -> Value {
    let mut formats_disk: Vec<Value> = vec![Value::Null];
    formats_disk.extend(DISK_FORMATS.iter().map(|f| json!(f)));
    let mut formats_container: Vec<Value> = vec![Value::Null];
    formats_container.extend(CONTAINER_FORMATS.iter().map(|f| json!(f)));
    json!({
        "name": "image",
        "additionalProperties": {"type": "string"},
        "links": [
            {"href": "{self}", "rel": "self"},
            {"href": "{file}", "rel": "enclosure"},
            {"href": "{schema}", "rel": "describedby"}
        ],
        "properties": {
            "id": {"type": "string", "pattern": UUID_PATTERN,
                   "description": "An identifier for the image"},
            "name": {"type": ["null", "string"], "maxLength": 255,
                     "description": "Descriptive name for the image"},
            "status": {"type": "string", "readOnly": true,
                       "enum": ["queued", "saving", "active", "killed", "deleted", "uploading",
                                "importing", "pending_delete", "deactivated"],
                       "description": "Status of the image"},
            "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"],
                           "description": "Scope of image accessibility"},
            "protected": {"type": "boolean",
                          "description": "If true, image will not be deletable."},
            "os_hidden": {"type": "boolean",
                          "description": "If true, image will not appear in default image list response."},
            "checksum": {"type": ["null", "string"], "readOnly": true, "maxLength": 32,
                         "description": "md5 hash of image contents."},
            "os_hash_algo": {"type": ["null", "string"], "readOnly": true, "maxLength": 64,
                             "description": "Algorithm to calculate the os_hash_value"},
            "os_hash_value": {"type": ["null", "string"], "readOnly": true, "maxLength": 128,
                              "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo"},
            "owner": {"type": ["null", "string"], "maxLength": 255,
                      "description": "Owner of the image"},
            "size": read_only(json!(["null", "integer"]), "Size of image file in bytes"),
            "virtual_size": read_only(json!(["null", "integer"]), "Virtual size of image in bytes"),
            "container_format": {"type": ["null", "string"], "enum": formats_container,
                                 "description": "Format of the container"},
            "disk_format": {"type": ["null", "string"], "enum": formats_disk,
                            "description": "Format of the disk"},
            "created_at": read_only(json!("string"), "Date and time of image registration"),
            "updated_at": read_only(json!("string"), "Date and time of the last image modification"),
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 255},
                     "description": "List of strings related to the image"},
            "direct_url": read_only(json!("string"), "URL to access the image file kept in external store"),
            "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
            "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
            "self": read_only(json!("string"), "An image self url"),
            "file": read_only(json!("string"), "An image file url"),
            "stores": read_only(json!("string"), "Store in which image data resides."),
            "schema": read_only(json!("string"), "An image schema url"),
            "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                          "items": {"type": "object"}},
            "kernel_id": {"type": ["null", "string"], "pattern": UUID_PATTERN,
                          "description": "ID of image stored in Glance that should be used as the kernel when booting an AMI-style image.",
                          "is_base": false},
            "ramdisk_id": {"type": ["null", "string"], "pattern": UUID_PATTERN,
                           "description": "ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image.",
                           "is_base": false},
            "instance_uuid": {"type": "string", "is_base": false,
                              "description": "Metadata which can be used to record which instance this image is associated with."},
            "architecture": {"type": "string", "is_base": false,
                             "description": "Operating system architecture as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
            "os_distro": {"type": "string", "is_base": false,
                          "description": "Common name of operating system distribution as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
            "os_version": {"type": "string", "is_base": false,
                           "description": "Operating system version as specified by the distributor."},
            "description": {"type": "string", "is_base": false,
                            "description": "A human-readable string describing this image."},
            "cim_pasd_instructionset": {"type": "string", "is_base": false,
                                        "description": "The instruction set of the processor."}
        }
    })
}

async fn image() -> Json<Value> {
    Json(image_schema())
}

async fn images() -> Json<Value> {
    Json(json!({
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"}
        },
        "links": [
            {"href": "{first}", "rel": "first"},
            {"href": "{next}", "rel": "next"},
            {"href": "{schema}", "rel": "describedby"}
        ]
    }))
}

fn member_schema() -> Value {
    json!({
        "name": "member",
        "properties": {
            "created_at": {"type": "string", "description": "Date and time of image member creation"},
            "image_id": {"type": "string", "pattern": UUID_PATTERN,
                         "description": "An identifier for the image"},
            "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
            "status": {"type": "string", "enum": ["pending", "accepted", "rejected"],
                       "description": "The status of this image member"},
            "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
            "schema": {"type": "string", "readOnly": true}
        }
    })
}

async fn member() -> Json<Value> {
    Json(member_schema())
}

async fn members() -> Json<Value> {
    Json(json!({
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"}
        },
        "links": [{"href": "{schema}", "rel": "describedby"}]
    }))
}
