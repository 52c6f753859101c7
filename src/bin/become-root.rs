//! `become-root`: run a command as root in a new user namespace. Also answers to the name
//! `subid` (a symlink, busybox-style), so one installed file can serve both.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::exit(become_root::main(args));
}
