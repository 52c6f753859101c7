//! What the caller may map (its subordinate ranges, each with the line that grants it), the
//! helpers that map them, and explicit `--map-users`/`--map-groups` maps checked against
//! those grants, with errors that name the entry and the grants.

use std::fs;
use std::path::Path;

use super::{
    Caller, SUBGID, UsernsError, Warning, Writer, find_helper, getsubids, nsswitch_has_subid,
};
use crate::idmap::{Explicit, Grants, IdMap, MapError};
use crate::options::SubidSource;
use crate::subid::{self, SubRange};
use crate::sys;

/// The caller's ranges in one source, in file order, each with where it comes from.
#[derive(Debug, Clone, Default)]
pub(super) struct Granted {
    pub(super) ranges: Vec<SubRange>,
    /// `/etc/subuid:3`, or `getsubids` for each range.
    pub(super) at: Vec<String>,
    /// The source asked: the file, or `getsubids [-g]`.
    pub(super) source: String,
}

/// Where ranges come from under `source`: getsubids, or the files.
pub(super) fn uses_getsubids(source: SubidSource) -> bool {
    match source {
        SubidSource::Files => false,
        SubidSource::Getsubids => true,
        SubidSource::Auto => nsswitch_has_subid(),
    }
}

/// newuidmap and newgidmap, usable: found, privileged, and no no_new_privs to void them.
pub(super) fn helper_writer() -> Result<Writer, UsernsError> {
    let newuidmap = find_helper("NEWUIDMAP", "newuidmap")?;
    let newgidmap = find_helper("NEWGIDMAP", "newgidmap")?;
    if nix::sys::prctl::get_no_new_privs().unwrap_or(false) {
        return Err(UsernsError::NoNewPrivs);
    }
    Ok(Writer::Helpers {
        newuidmap,
        newgidmap,
    })
}

/// The caller's ranges in `path` (SUBUID or SUBGID), or from getsubids. With `skipped`,
/// malformed lines of the caller become warnings and the valid ranges are used; without,
/// they are errors. No range at all is not an error here.
pub(super) fn read_grants(
    path: &'static str,
    getsubids_asked: bool,
    caller: &Caller,
    skipped: Option<&mut Vec<Warning>>,
) -> Result<Granted, UsernsError> {
    let name = caller.display_name();
    if getsubids_asked {
        let groups = path == SUBGID;
        let ranges = getsubids(&name, groups)?;
        let source = format!("getsubids{}", if groups { " -g" } else { "" });
        return Ok(Granted {
            at: vec![source.clone(); ranges.len()],
            ranges,
            source,
        });
    }
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(UsernsError::Read {
                path: path.into(),
                errno: sys::io_errno(&e),
            });
        }
    };
    let parsed = subid::caller_ranges(&text, Path::new(path), &name, caller.uid);
    if let Some(first) = parsed.errors.into_iter().next() {
        match skipped {
            // Nothing valid left: the bad line is the reason, not a missing entry.
            _ if parsed.ranges.is_empty() => return Err(first.into()),
            Some(skipped) => skipped.push(Warning {
                why: format!("ignoring {first}, as newuidmap does"),
                hint: Some("ask an administrator to correct that line".into()),
            }),
            None => return Err(first.into()),
        }
    }
    Ok(Granted {
        at: parsed.lines.iter().map(|l| format!("{path}:{l}")).collect(),
        ranges: parsed.ranges,
        source: path.to_string(),
    })
}

/// The map of `--map-users` (`kind` "uid") or `--map-groups` ("gid") for an unprivileged
/// caller whose own id is `own` and whose grants are `granted`.
pub(super) fn explicit_map(
    kind: &'static str,
    explicit: &Explicit,
    own: u32,
    granted: &Granted,
) -> Result<IdMap, UsernsError> {
    let grants = Grants {
        own: Some(own),
        ranges: &granted.ranges,
        cut_at_ends: false,
    };
    IdMap::explicit(&grants, explicit).map_err(|e| match e {
        MapError::NotGranted { entry, first, last } => {
            let listed: Vec<String> = granted
                .ranges
                .iter()
                .zip(&granted.at)
                .map(|(r, at)| format!("{at} grants {}", span_text(r.start, r.count)))
                .collect();
            let grants = if listed.is_empty() {
                format!("{} grants you none", granted.source)
            } else {
                listed.join("; ")
            };
            UsernsError::NotGranted {
                message: format!(
                    "{}={entry}: {} neither yours ({kind} {own}) nor granted to you ({grants})",
                    flag(kind),
                    ids_are(kind, first, last, "host ")
                ),
                nested: false,
            }
        }
        source => UsernsError::Entries {
            flag: flag(kind),
            source,
        },
    })
}

/// The map of `--map-users` or `--map-groups` for a privileged caller (real root, or root in
/// a user namespace whose current map is `parent`): any id the parent namespace has.
pub(super) fn privileged_explicit_map(
    kind: &'static str,
    explicit: &Explicit,
    parent: Option<&IdMap>,
) -> Result<IdMap, UsernsError> {
    let ranges: Vec<SubRange> = match parent {
        None => vec![SubRange {
            start: 0,
            count: u32::MAX,
        }],
        Some(map) => map
            .ranges()
            .iter()
            .map(|r| SubRange {
                start: r.inside(),
                count: r.count(),
            })
            .collect(),
    };
    let grants = Grants {
        own: None,
        ranges: &ranges,
        cut_at_ends: parent.is_some(),
    };
    IdMap::explicit(&grants, explicit).map_err(|e| match e {
        MapError::NotGranted { entry, first, last } => {
            let held: Vec<String> = ranges.iter().map(|r| span_text(r.start, r.count)).collect();
            UsernsError::NotGranted {
                message: format!(
                    "{}={entry}: {} not mapped in this user namespace (its {kind} map holds {}), \
                     so no namespace below it can have them",
                    flag(kind),
                    ids_are(kind, first, last, ""),
                    held.join(", ")
                ),
                nested: true,
            }
        }
        source => UsernsError::Entries {
            flag: flag(kind),
            source,
        },
    })
}

/// Parse the values of `--map-users` (`kind` "uid") or `--map-groups`; `None` when not given.
pub(super) fn parse_explicit(
    kind: &'static str,
    values: &[String],
) -> Result<Option<Explicit>, UsernsError> {
    if values.is_empty() {
        return Ok(None);
    }
    Explicit::parse(values)
        .map(Some)
        .map_err(|source| UsernsError::Entries {
            flag: flag(kind),
            source,
        })
}

fn flag(kind: &str) -> &'static str {
    if kind == "uid" {
        "--map-users"
    } else {
        "--map-groups"
    }
}

/// "host uids 300000-300009 are", or "host uid 1001 is".
fn ids_are(kind: &str, first: u32, last: u32, host: &str) -> String {
    if first == last {
        format!("{host}{kind} {first} is")
    } else {
        format!("{host}{kind}s {first}-{last} are")
    }
}

/// `start-last` of a range, or `start` alone for one id.
fn span_text(start: u32, count: u32) -> String {
    let last = u64::from(start) + u64::from(count) - 1;
    if count == 1 {
        start.to_string()
    } else {
        format!("{start}-{last}")
    }
}
