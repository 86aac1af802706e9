//! Identifiers. OpenStack ids are 32 lowercase hex digits (a UUID without
//! dashes); we generate them that way so clients that parse them are happy.

pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}
