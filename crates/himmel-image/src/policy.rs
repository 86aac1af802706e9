//! Glance's secure-RBAC defaults as data: one operation per API call with
//! the rule that guards it. Project members create and change their
//! project's images and (de)activate them, readers list, show and
//! download, only the cloud administrator publicizes images. What a rule
//! cannot say is in [`crate::access`]: public, community and shared images
//! are readable beyond their project, and an image the caller cannot see is
//! a 404. Membership changes (accept/reject) belong to the member project,
//! so their target is the member, not the owner.
//! The golden test renders this table to `policy-matrix.txt`.

use himmel_http::policy::Check::{self, *};
use himmel_http::policy::Rule;
use himmel_http::{Operation, Service};

pub static SERVICE: Service = Service {
    name: "image",
    format: himmel_http::ErrorFormat::Glance,
};

/// The cloud administrator, on a token of any scope.
const ADMIN: Check = Role("admin");
const SYSTEM_READER: Check = System("reader");
const MEMBER: Check = Project("member");
const READER: Check = Project("reader");

macro_rules! operations {
    ($($id:ident = $name:literal, $target:literal, [$($check:expr),* $(,)?];)*) => {
        $(pub static $id: Operation = Operation::new($name, $target, &[$($check),*]);)*
        /// Every image operation, in the order of the matrix.
        pub static TABLE: &[&Operation] = &[$(&$id),*];
    };
}

operations! {
    VERSIONS = "image:get_versions", "image/version", [Public];
    UNKNOWN_PATH = "image:unknown_path", "image/unknown", [Public];
    GET_SCHEMA = "image:get_schema", "image/schema", [Authenticated];
    GET_INFO = "image:get_info", "image/info", [Authenticated];

    ADD_IMAGE = "image:add_image", "image/image", [ADMIN, MEMBER];
    GET_IMAGES = "image:get_images", "image/image", [ADMIN, SYSTEM_READER, READER];
    GET_IMAGE = "image:get_image", "image/image", [ADMIN, SYSTEM_READER, READER];
    MODIFY_IMAGE = "image:modify_image", "image/image", [ADMIN, MEMBER];
    DELETE_IMAGE = "image:delete_image", "image/image", [ADMIN, MEMBER];
    // Making an image public (on create or update).
    PUBLICIZE_IMAGE = "image:publicize_image", "image/image", [ADMIN];
    COMMUNITIZE_IMAGE = "image:communitize_image", "image/image", [ADMIN, MEMBER];
    // Giving an image to another project.
    SET_OWNER = "image:set_image_owner", "image/image", [ADMIN];
    ADD_TAG = "image:add_tag", "image/image", [ADMIN, MEMBER];
    DELETE_TAG = "image:delete_tag", "image/image", [ADMIN, MEMBER];

    UPLOAD_IMAGE = "image:upload_image", "image/image", [ADMIN, MEMBER];
    DOWNLOAD_IMAGE = "image:download_image", "image/image", [ADMIN, SYSTEM_READER, READER];
    STAGE_IMAGE = "image:stage_image", "image/image", [ADMIN, MEMBER];
    IMPORT_IMAGE = "image:import_image", "image/image", [ADMIN, MEMBER];
    DEACTIVATE = "image:deactivate", "image/image", [ADMIN, MEMBER];
    REACTIVATE = "image:reactivate", "image/image", [ADMIN, MEMBER];

    ADD_MEMBER = "image:add_member", "image/member", [ADMIN, MEMBER];
    GET_MEMBERS = "image:get_members", "image/member", [ADMIN, SYSTEM_READER, READER];
    GET_MEMBER = "image:get_member", "image/member", [ADMIN, SYSTEM_READER, READER];
    // Target: the member project (it accepts or rejects).
    MODIFY_MEMBER = "image:modify_member", "image/member", [ADMIN, MEMBER];
    DELETE_MEMBER = "image:delete_member", "image/member", [ADMIN, MEMBER];
}

pub fn table() -> impl Iterator<Item = (&'static str, Rule)> {
    TABLE.iter().map(|op| (op.name, op.rule))
}
