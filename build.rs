//! Rebuild when a migration is added or changed: they are embedded in the binary
//! (`refinery::embed_migrations!`), and a new file would otherwise go unnoticed by cargo.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
