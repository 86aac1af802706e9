//! The golden authorization matrix of the S3 API: every bucket and object
//! operation for each persona on a private bucket, a public-read bucket and
//! a bucket whose policy makes objects public but refuses every request
//! from outside an address range. Any change to who may do what changes
//! `policy-matrix.txt`, so it shows in review. Regenerate with
//! `HIMMEL_BLESS=1 cargo test -p himmel-object --test policy_matrix`.

#[test]
fn policy_matrix_matches_the_checked_in_file() {
    let rendered = himmel_object::policy::render_matrix();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policy-matrix.txt");
    if std::env::var_os("HIMMEL_BLESS").is_some() {
        std::fs::write(&path, &rendered).expect("writing the matrix");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        rendered == checked_in,
        "policy changed: review the diff and regenerate policy-matrix.txt with HIMMEL_BLESS=1"
    );
}
