//! The golden authorization matrix: who may do what, for every identity
//! operation, persona and scope. Any change to the policy changes
//! `policy-matrix.txt`, so it shows in review. Regenerate with
//! `HIMMEL_BLESS=1 cargo test -p himmel-identity --test policy_matrix`.

#[test]
fn policy_matrix_matches_the_checked_in_file() {
    let rendered = himmel_http::policy::render_matrix(himmel_identity::policy::table());
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

#[test]
fn every_operation_name_is_unique() {
    let mut names: Vec<_> = himmel_identity::policy::table().map(|(n, _)| n).collect();
    let before = names.len();
    names.sort();
    names.dedup();
    assert_eq!(before, names.len());
}

#[test]
fn a_domain_manager_is_confined_to_its_domain() {
    use himmel_http::policy::{decide, matrix_cell, Decision};
    let rule = himmel_identity::policy::CREATE_USER.rule;
    let (own, target) = matrix_cell("manager", "domain:own", false);
    assert_eq!(decide(rule, Some(&own), Some(&target)), Decision::Allow);
    let (other, target) = matrix_cell("manager", "domain:other", false);
    assert_eq!(decide(rule, Some(&other), Some(&target)), Decision::Deny);
    let (member, target) = matrix_cell("member", "project:own", false);
    assert_eq!(decide(rule, Some(&member), Some(&target)), Decision::Deny);
}
