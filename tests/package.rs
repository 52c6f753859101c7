//! Installation: `make install` puts both programs, their man pages and their completions
//! where distributions look for them, under PREFIX and DESTDIR, and `make uninstall` takes
//! them away again. (The Debian package is built and checked by scripts/build-deb, and
//! installed and run in the VM tier.)

use std::path::{Path, PathBuf};
use std::process::Command;

const TOP: &str = env!("CARGO_MANIFEST_DIR");

fn built_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_become-root"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn make(args: &[&str]) -> std::process::Output {
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(TOP)
        .args(args)
        .output()
        .expect("make (Debian: make) must be installed");
    assert!(
        out.status.success(),
        "make {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn gunzip(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success(), "{}", path.display());
    out.stdout
}

/// Every file one install makes, relative to DESTDIR, with its mode.
fn expected(prefix: &str) -> Vec<(String, u32)> {
    let mut files = Vec::new();
    for p in ["become-root", "subid"] {
        // subid: a link to become-root (whose mode it shows).
        files.push((format!("{prefix}/bin/{p}"), 0o755));
        files.push((format!("{prefix}/share/man/man1/{p}.1.gz"), 0o644));
        files.push((
            format!("{prefix}/share/bash-completion/completions/{p}"),
            0o644,
        ));
        files.push((format!("{prefix}/share/zsh/site-functions/_{p}"), 0o644));
        files.push((
            format!("{prefix}/share/fish/vendor_completions.d/{p}.fish"),
            0o644,
        ));
    }
    files
}

/// The regular files under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(format!("/{}", path.strip_prefix(dir).unwrap().display()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn make_install_puts_every_file_where_distributions_look_and_uninstall_removes_them() {
    use std::os::unix::fs::PermissionsExt;
    let built = built_dir();
    for (prefix_arg, prefix) in [(None, "/usr/local"), (Some("PREFIX=/usr"), "/usr")] {
        let dest = std::env::temp_dir().join(format!(
            "become-root-install-{}-{}",
            std::process::id(),
            prefix.replace('/', "_")
        ));
        let _ = std::fs::remove_dir_all(&dest);
        let destdir = format!("DESTDIR={}", dest.display());
        let built_arg = format!("BUILT={}", built.display());
        let mut args = vec!["install", destdir.as_str(), built_arg.as_str()];
        args.extend(prefix_arg);
        make(&args);
        let mut want = expected(prefix);
        want.sort();
        let names: Vec<String> = want.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(files_under(&dest), names, "installed under {prefix}");
        for (path, mode) in &want {
            let meta = std::fs::metadata(dest.join(&path[1..])).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, *mode, "{path}");
        }
        let subid = dest.join(format!("{}/bin/subid", &prefix[1..]));
        assert_eq!(
            std::fs::read_link(&subid).ok(),
            Some(PathBuf::from("become-root")),
            "subid is a link to become-root, not a second copy"
        );
        for p in ["become-root", "subid"] {
            let man = gunzip(&dest.join(format!("{}/share/man/man1/{p}.1.gz", &prefix[1..])));
            assert_eq!(
                man,
                std::fs::read(Path::new(TOP).join(format!("man/{p}.1"))).unwrap(),
                "{p}.1.gz is the committed man page"
            );
            let out = Command::new(dest.join(format!("{}/bin/{p}", &prefix[1..])))
                .arg("--version")
                .output()
                .unwrap();
            assert!(
                String::from_utf8_lossy(&out.stdout).starts_with(p),
                "{p} --version: {out:?}"
            );
        }
        let mut args = vec!["uninstall", destdir.as_str()];
        args.extend(prefix_arg);
        make(&args);
        assert_eq!(
            files_under(&dest),
            Vec::<String>::new(),
            "left after uninstall"
        );
        std::fs::remove_dir_all(&dest).unwrap();
    }
}

#[test]
fn man_pages_render() {
    // man(1) is one of the test packages (man-db); the VM tier renders the installed page.
    for p in ["become-root", "subid"] {
        let out = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(Path::new(TOP).join(format!("man/{p}.1")))
            .env("MANWIDTH", "80")
            .output()
            .expect("man(1) must be installed (Debian: man-db)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man {p}: {out:?}");
        assert!(text.contains("EXIT STATUS"), "man {p}: {text}");
    }
}
