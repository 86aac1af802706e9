// `sqlx::migrate!` embeds the migrations at compile time; without this,
// cargo would not rebuild the crate when a migration file is added.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
