//! `become-root`: run a command as root in a new user namespace. Also answers to the name
//! `subid` (a symlink, busybox-style), so one installed file can serve both.
//!
//! It starts without Rust's runtime (`no_main`): start-up is a feature, and that runtime's
//! set-up before `main` was a fifth of the instructions become-root runs before it execs
//! COMMAND (scripts/profile-startup). `sys::start_without_runtime` does the part of it
//! become-root relies on, and the arguments are read from `argc` and `argv` here, as the C
//! library passes them to `main` (std's own copy is filled only by glibc's initializer hook;
//! a musl build would have none, and `become-root make` would start a shell).
#![no_main]

use std::ffi::{c_char, c_int};

#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    become_root::sys::start_without_runtime();
    // SAFETY: the C runtime calls main with argc and argv as the kernel set them up: argv
    // holds argc pointers to NUL-terminated strings that live as long as the process.
    let args = unsafe { become_root::sys::args_from_main(argc, argv) };
    // A panic must not unwind out of this C entry point (that aborts); 101 is the status
    // Rust's runtime gives a panicking main, after the same message on stderr.
    let status = std::panic::catch_unwind(|| become_root::main(args)).unwrap_or(101);
    // process::exit flushes stdout, as returning from a Rust main does.
    std::process::exit(status)
}
