//! `subid scan PATH...`: set-user-ID and set-group-ID files owned by subordinate ids, on one
//! filesystem and without following symbolic links unless asked.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{EXIT_FAILURE, EXIT_FOUND, EXIT_OK, Failure, print_out, read_subid_files};
use crate::audit::{self, RangeIndex};
use crate::cli::subid::ScanArgs;

/// The allocated ranges of one file, with the file's name for the report.
pub(super) struct Ranges<'a> {
    index: RangeIndex<'a>,
    shown: &'a str,
}

impl Ranges<'_> {
    /// "range 100000-165535 of alice (/etc/subuid:1)", for each range containing `id`.
    fn describe(&self, id: u32) -> Option<String> {
        let found = self.index.containing(id);
        if found.is_empty() {
            return None;
        }
        let parts: Vec<String> = found
            .iter()
            .map(|a| {
                format!(
                    "range {}-{} of {} ({}:{})",
                    a.start,
                    a.end - 1,
                    audit::show_bytes(&a.owner),
                    self.shown,
                    a.line
                )
            })
            .collect();
        Some(parts.join(" and "))
    }
}

/// What the walk found and met.
#[derive(Default)]
pub(super) struct Walk {
    out: Vec<u8>,
    found: usize,
    trouble: bool,
}

pub(super) fn scan(args: ScanArgs) -> Result<i32, Failure> {
    let (subuid, subgid) = read_subid_files(&args.files)?;
    let uids = Ranges {
        index: RangeIndex::new(audit::allocated(&subuid.text)),
        shown: &subuid.shown,
    };
    let gids = Ranges {
        index: RangeIndex::new(audit::allocated(&subgid.text)),
        shown: &subgid.shown,
    };
    if uids.index.is_empty() && gids.index.is_empty() {
        eprintln!(
            "subid: scan: {} and {} allocate no ranges, so no file can be owned by one",
            subuid.shown, subgid.shown
        );
    }
    let one_fs = !args.cross_filesystems;
    let mut walk = Walk::default();
    for root in &args.paths {
        scan_root(root, one_fs, args.follow_symlinks, &uids, &gids, &mut walk);
        // Print as we go, so a long scan shows its findings early.
        print_out(&walk.out)?;
        walk.out.clear();
    }
    Ok(if walk.found > 0 {
        EXIT_FOUND
    } else if walk.trouble {
        EXIT_FAILURE
    } else {
        EXIT_OK
    })
}

pub(super) fn show_path(path: &Path) -> std::borrow::Cow<'_, str> {
    audit::show_bytes(path.as_os_str().as_bytes())
}

/// Walk one PATH depth-first without recursion, in name order (as `find` lists a tree). The
/// PATH itself is followed if it is a link (it was named on purpose, as `find -H` does);
/// below it, links are followed only with --follow-symlinks, and directories on other
/// filesystems are skipped unless asked. Every directory is entered once, by (device, inode),
/// so links cannot make it loop.
pub(super) fn scan_root(
    root: &Path,
    one_fs: bool,
    follow: bool,
    uids: &Ranges<'_>,
    gids: &Ranges<'_>,
    walk: &mut Walk,
) {
    let meta = match fs::metadata(root) {
        Ok(meta) => meta,
        Err(e) => {
            eprint!("{}", Failure::io(show_path(root), &e));
            walk.trouble = true;
            return;
        }
    };
    let device = meta.dev();
    let mut seen = HashSet::new();
    // What is still to visit, the next on top.
    let mut stack = vec![(root.to_path_buf(), meta)];
    while let Some((path, meta)) = stack.pop() {
        if !meta.is_dir() {
            judge(&path, &meta, uids, gids, walk);
            continue;
        }
        if (one_fs && meta.dev() != device) || !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) => {
                eprint!("{}", Failure::io(show_path(&path), &e));
                walk.trouble = true;
                continue;
            }
        };
        let mut children = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    eprint!("{}", Failure::io(show_path(&path), &e));
                    walk.trouble = true;
                    break;
                }
            };
            let child = entry.path();
            let meta = match entry.file_type() {
                Ok(t) if t.is_symlink() && !follow => continue,
                // A dangling link names no file.
                Ok(t) if t.is_symlink() => match fs::metadata(&child) {
                    Ok(meta) => meta,
                    Err(_) => continue,
                },
                _ => match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) => {
                        eprint!("{}", Failure::io(show_path(&child), &e));
                        walk.trouble = true;
                        continue;
                    }
                },
            };
            children.push((child, meta));
        }
        // Reversed, so that the first name is popped first.
        children.sort_by(|a, b| b.0.cmp(&a.0));
        stack.extend(children);
    }
}

/// Report a regular file that is set-user-ID with an owner in a subordinate uid range, or
/// set-group-ID with a group in a subordinate gid range. (A set-group-ID directory only
/// passes its group on to new files; it runs nothing, so it is not reported.)
pub(super) fn judge(
    path: &Path,
    meta: &fs::Metadata,
    uids: &Ranges<'_>,
    gids: &Ranges<'_>,
    walk: &mut Walk,
) {
    if !meta.is_file() {
        return;
    }
    let mode = meta.mode();
    let checks = [
        (S_ISUID, "set-user-ID", "uid", meta.uid(), uids),
        (S_ISGID, "set-group-ID", "gid", meta.gid(), gids),
    ];
    for (bit, what, word, id, ranges) in checks {
        if mode & bit == 0 {
            continue;
        }
        if let Some(owners) = ranges.describe(id) {
            walk.found += 1;
            let _ = writeln!(
                walk.out,
                "{}: {what} file of {word} {id}, in {owners}",
                show_path(path)
            );
        }
    }
}

/// The mode bits of inode(7).
pub(super) const S_ISUID: u32 = 0o4000;

pub(super) const S_ISGID: u32 = 0o2000;
