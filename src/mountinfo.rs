//! /proc/PID/mountinfo, parsed (proc(5)): which mounts there are, where, with which flags.
//! Pure: the text in, entries out; lines that do not have the documented shape are skipped.
//! The text is bytes: the kernel writes a mount point as it is, escaping only four
//! characters, so a mount point need not be UTF-8, and one that is not must not hide the rest.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub parent: u64,
    /// The directory of its file system the mount shows (`/` unless a bind or a cgroup2
    /// mount of a namespace), unescaped.
    pub root: PathBuf,
    /// Where it is mounted, relative to the reading process's root, unescaped.
    pub mount_point: PathBuf,
    /// The per-mount options (`rw,nosuid,relatime`).
    pub options: String,
    pub fs_type: String,
}

impl Entry {
    /// Whether the per-mount options hold `flag` (`nosuid`, `ro`, ...).
    pub fn has(&self, flag: &str) -> bool {
        self.options.split(',').any(|o| o == flag)
    }
}

/// Parse a whole mountinfo text.
pub fn parse(text: &[u8]) -> Vec<Entry> {
    text.split(|&b| b == b'\n').filter_map(parse_line).collect()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_line(line: &[u8]) -> Option<Entry> {
    let mut fields = line.split(|&b| b == b' ');
    let number = |field: &[u8]| std::str::from_utf8(field).ok()?.parse().ok();
    let text = |field: &[u8]| String::from_utf8_lossy(field).into_owned();
    let id = number(fields.next()?)?;
    let parent = number(fields.next()?)?;
    let _device = fields.next()?;
    let root = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    let options = text(fields.next()?);
    // Optional fields end at a lone "-"; the file system type follows.
    let fs_type = fields.find(|f| *f == b"-").and_then(|_| fields.next())?;
    if !mount_point.starts_with(b"/") {
        return None;
    }
    Some(Entry {
        id,
        parent,
        root: PathBuf::from(OsString::from_vec(root)),
        mount_point: PathBuf::from(OsString::from_vec(mount_point)),
        options,
        fs_type: text(fs_type),
    })
}

/// The kernel writes space, tab, newline and backslash in paths as `\` and three octal
/// digits (seq_path with " \t\n\\"); any other `\` is itself.
pub fn unescape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            d.iter().all(|b| (b'0'..=b'7').contains(b)) && d[0] <= b'3' && bytes[i] == b'\\'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The mounts at `path` or below it, in the order the kernel lists them.
pub fn at_or_below<'a>(entries: &'a [Entry], path: &Path) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.mount_point.starts_with(path))
        .collect()
}

/// The id of the topmost mount at exactly `path` (the one a lookup of `path` reaches).
pub fn top_at(entries: &[Entry], path: &Path) -> Option<u64> {
    entries
        .iter()
        .rev()
        .find(|e| e.mount_point == path)
        .map(|e| e.id)
}

#[cfg(test)]
mod tests {

    use std::path::{Path, PathBuf};

    use super::{at_or_below, parse, top_at, unescape};

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
30 22 0:40 / /srv/with\\040space ro,nosuid master:3 propagate_from:1 - tmpfs tmpfs rw
31 30 0:41 / /srv/with\\040space/sub rw - tmpfs tmpfs rw
32 22 0:42 / /srv/with rw - tmpfs tmpfs rw
garbage line
33 22 0:43 / relative rw - tmpfs tmpfs rw
";

    #[test]
    fn lines_parse_with_optional_fields_and_escapes() {
        let e = parse(SAMPLE.as_bytes());
        assert_eq!(e.len(), 6, "{e:#?}");
        assert_eq!(e[0].mount_point, PathBuf::from("/"));
        assert_eq!(e[3].mount_point, PathBuf::from("/srv/with space"));
        assert_eq!(e[3].fs_type, "tmpfs");
        assert_eq!((e[4].id, e[4].parent), (31, 30));
        assert!(e[1].has("nosuid") && e[1].has("noexec") && !e[1].has("ro"));
        assert!(e[3].has("ro"));
    }

    #[test]
    fn unescape_rows() {
        let rows = [
            ("/a\\040b", "/a b"),
            ("/a\\011b\\012c", "/a\tb\nc"),
            ("/a\\134b", "/a\\b"),
            ("/a\\b", "/a\\b"),
            ("/a\\04", "/a\\04"),
            ("/a\\999", "/a\\999"),
            ("/\\", "/\\"),
        ];
        for (text, want) in rows {
            assert_eq!(unescape(text.as_bytes()), want.as_bytes(), "{text:?}");
        }
    }

    /// Regression: the text was read as UTF-8, so one mount point that is not (a Latin-1
    /// "café") made every read of mountinfo fail; it is bytes, kept as they are.
    #[test]
    fn a_mount_point_that_is_not_utf8_is_kept_as_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let text = b"22 1 254:0 / / rw - ext4 /dev/vda rw\n\
                     40 22 0:50 / /srv/caf\xe9\\040x rw - tmpfs \xff rw\n\
                     41 22 0:51 / /srv/after rw - tmpfs tmpfs rw\n";
        let e = parse(text);
        let points: Vec<&[u8]> = e
            .iter()
            .map(|e| e.mount_point.as_os_str().as_bytes())
            .collect();
        assert_eq!(points, [&b"/"[..], b"/srv/caf\xe9 x", b"/srv/after"]);
        assert_eq!(
            e[1].fs_type, "tmpfs",
            "a source that is not UTF-8 does not matter"
        );
        assert_eq!(unescape(b"/caf\xe9\\134"), b"/caf\xe9\\");
    }

    #[test]
    fn below_is_by_path_component_not_by_prefix() {
        let e = parse(SAMPLE.as_bytes());
        let below: Vec<u64> = at_or_below(&e, Path::new("/srv/with space"))
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(below, [30, 31], "/srv/with is not below /srv/with space");
        assert_eq!(top_at(&e, Path::new("/srv/with")), Some(32));
        assert_eq!(top_at(&e, Path::new("/nowhere")), None);
    }
}
