//! The golden authorization matrix of the Key Manager: the pipeline's
//! rules (operation × persona × scope) and the rules on existing secrets,
//! containers and orders (operation × persona × how the caller relates to
//! the resource: its project, privacy, creator, ACL). Any change to who may
//! do what changes `policy-matrix.txt`, so it shows in review.
//! Regenerate with `HIMMEL_BLESS=1 cargo test -p himmel-kms --test barbican_policy_matrix`.

#[test]
fn policy_matrix_matches_the_checked_in_file() {
    let rendered = format!(
        "## pipeline rules\n{}\n## rules on an existing resource\n{}",
        himmel_http::policy::render_matrix(himmel_kms::policy::table()),
        himmel_kms::policy::render_resource_matrix()
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policy-matrix.txt");
    if std::env::var_os("HIMMEL_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        golden == rendered,
        "policy changed: review the diff and regenerate policy-matrix.txt with HIMMEL_BLESS=1"
    );
}

/// Every operation on an existing resource has grants: one missing from
/// the resource table would allow nobody, silently.
#[test]
fn every_resource_operation_has_grants() {
    use himmel_http::policy::Check;
    for op in himmel_kms::policy::TABLE {
        if op.rule == [Check::Authenticated] {
            assert!(
                !himmel_kms::policy::grants(op).is_empty(),
                "{} has no grants",
                op.name
            );
        }
    }
}
