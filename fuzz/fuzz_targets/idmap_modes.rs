#![no_main]
// The properties are in tests/properties/props.rs (see ../README.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| become_root_fuzz::run("idmap_modes", data));
