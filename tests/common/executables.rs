//! Executables the tests make: written by a child process, never by the test process.
//!
//! A test process forks all the time, from every test thread (each run of the harness is a
//! fork and exec). A file this process holds open for writing is copied into every child
//! forked meanwhile, which keeps that copy until its exec closes it (O_CLOEXEC); and the
//! kernel refuses to exec a file that any process holds open for writing (ETXTBSY, "Text file
//! busy"). So a test that writes a script or copies a binary itself and then runs it fails
//! whenever another thread forked while the file was open and that child has not exec'd yet:
//! microseconds on a quiet machine, long enough under load (`World::new`'s copy of
//! become-root failed so, issue 26). Written by `install(1)`, a process of its own that forks
//! nothing, the file is open for writing in that process only, and closed when it exits.
//!
//! Hence the rule, which tests/structure.rs checks: no test calls `fs::copy` or
//! `set_permissions` itself; it uses [`write_executable`], [`copy_executable`] and [`chmod`],
//! and [`chmod`] refuses to make a regular file executable (it would be one this process
//! wrote).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// Write `contents` to `path` as an executable of mode `mode` (0o755, 0o4755...), by a child
/// process (install(1), from its standard input).
pub fn write_executable(path: &Path, contents: impl AsRef<[u8]>, mode: u32) {
    use std::io::Write;
    let mut child = install(mode)
        .arg("/dev/stdin")
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("install {}: {e}", path.display()));
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(contents.as_ref())
        .unwrap_or_else(|e| panic!("install {}: writing: {e}", path.display()));
    drop(stdin);
    let status = child.wait().expect("wait for install");
    assert!(status.success(), "install {}: {status}", path.display());
}

/// Copy the executable `from` to `to`, with mode `mode`, by a child process (install(1)).
pub fn copy_executable(from: &Path, to: &Path, mode: u32) {
    let out = install(mode)
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("install {} {}: {e}", from.display(), to.display()));
    assert!(
        out.status.success(),
        "install {} {}: {}: {}",
        from.display(),
        to.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn install(mode: u32) -> Command {
    let mut cmd = Command::new("install");
    cmd.arg(format!("--mode={mode:o}"));
    cmd
}

/// chmod(2) `path` to `mode`: a directory, or a file that is executable already (a set-ID bit
/// added after a chown, which clears it). Making a regular file executable is refused: write
/// it with [`write_executable`] or [`copy_executable`] instead (see the module's docs).
#[track_caller]
pub fn chmod(path: &Path, mode: u32) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    assert!(
        !(meta.is_file() && meta.mode() & 0o111 == 0 && mode & 0o111 != 0),
        "chmod {:o} {}: a file this process wrote must not become executable (another \
         thread's fork may hold it open: ETXTBSY); write it with common::write_executable",
        mode,
        path.display()
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}
