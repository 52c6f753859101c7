//! `subid`: inspect and audit subordinate-id allocation (`show`, `check`, `next`, `scan`).
//! The same program answers when `become-root` runs under the name `subid`.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::exit(become_root::run(become_root::Program::Subid, args));
}
