//! The golden authorization matrix of the image API. Any change to who
//! may do what changes `policy-matrix.txt`, so it shows in review.
//! Regenerate with `HIMMEL_BLESS=1 cargo test -p himmel-image --test policy_matrix`.

#[test]
fn policy_matrix_matches_the_checked_in_file() {
    let rendered = himmel_http::policy::render_matrix(himmel_image::policy::table());
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
