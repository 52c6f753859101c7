//! `become-root`: run a command as root in a new user namespace. Also answers to the name
//! `subid` (a symlink, busybox-style), so one installed file can serve both.
//!
//! It starts without Rust's runtime (`no_main`): start-up is a feature, and that runtime's
//! set-up before `main` was a fifth of the instructions become-root runs before it execs
//! COMMAND (scripts/profile-startup). `sys::start_without_runtime` does the part of it
//! become-root relies on. Arguments still come from std (glibc hands them to std's
//! initializer before `main`).
#![no_main]

use std::ffi::{c_char, c_int};

#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    become_root::sys::start_without_runtime();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A panic must not unwind out of this C entry point (that aborts); 101 is the status
    // Rust's runtime gives a panicking main, after the same message on stderr.
    let status = std::panic::catch_unwind(|| become_root::main(args)).unwrap_or(101);
    // process::exit flushes stdout, as returning from a Rust main does.
    std::process::exit(status)
}
