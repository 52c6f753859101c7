//! The fuzz targets' bodies: the property checks of the main crate's property tests
//! (`tests/properties/props.rs`), compiled here against the same library, so that libFuzzer
//! and `cargo test` check the same properties.

// The shared checks reach glibc's strtoul as `crate::libc` (the main crate's tests get it
// through nix).
pub use libc;

#[path = "../../tests/properties/props.rs"]
pub mod props;

/// Run target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    let (_, check) = props::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    check(data);
}
