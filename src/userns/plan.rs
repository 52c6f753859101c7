//! Which maps a run gets (`--map=auto|full|single`, real root's identity, a nested root's pass
//! through), from the caller's subordinate ranges in the files or from getsubids.

use super::*;

pub(super) fn read_proc_map(path: &str) -> Result<IdMap, UsernsError> {
    let text = fs::read_to_string(path).map_err(|e| UsernsError::Read {
        path: path.into(),
        errno: sys::io_errno(&e),
    })?;
    IdMap::parse_proc(&text).map_err(|source| UsernsError::Map {
        path: path.into(),
        source,
    })
}

/// Decide the maps for `mode`, collecting warnings for `--map=auto`.
pub fn plan_mapping(
    mode: MapMode,
    source: SubidSource,
    caller: &Caller,
    warnings: &mut Vec<Warning>,
) -> Result<Mapping, UsernsError> {
    let single = || Mapping {
        uid: IdMap::single(caller.uid),
        gid: IdMap::single(caller.gid),
        // The kernel lets an unprivileged writer map its own gid only once setgroups is
        // denied, or a dropped supplementary group could be regained (CVE-2014-8989).
        writer: Writer::SelfMap,
    };
    if let Some((uid_map, gid_map)) = &caller.nested {
        // Already root in a user namespace: map what we have, as it is.
        if mode == MapMode::Single {
            return Ok(single());
        }
        return Ok(Mapping {
            uid: uid_map.pass_through(),
            gid: gid_map.pass_through(),
            writer: Writer::Privileged,
        });
    }
    if caller.uid == 0 {
        if mode == MapMode::Single {
            return Ok(single());
        }
        return Ok(Mapping {
            uid: IdMap::host_identity(),
            gid: IdMap::host_identity(),
            writer: Writer::Privileged,
        });
    }
    match mode {
        MapMode::Single => Ok(single()),
        MapMode::Full => full_mapping(source, caller, None),
        MapMode::Auto => {
            let mut skipped = Vec::new();
            match full_mapping(source, caller, Some(&mut skipped)) {
                Ok(mapping) => {
                    warnings.extend(skipped);
                    Ok(mapping)
                }
                Err(e) => {
                    warnings.push(fallback_warning(&e, caller));
                    Ok(single())
                }
            }
        }
    }
}

pub(super) fn fallback_warning(e: &UsernsError, caller: &Caller) -> Warning {
    let hint = e.hint();
    Warning {
        why: format!(
            "{e}; mapping only uid {} and gid {} (as 0); use --map=full to make this an error",
            caller.uid, caller.gid
        ),
        hint,
    }
}

/// The full mapping, or why it cannot be had. With `skipped`, malformed lines of the caller
/// become warnings and the valid ranges are used (`--map=auto`); without, they are errors.
pub(super) fn full_mapping(
    source: SubidSource,
    caller: &Caller,
    mut skipped: Option<&mut Vec<Warning>>,
) -> Result<Mapping, UsernsError> {
    let newuidmap = find_helper("NEWUIDMAP", "newuidmap")?;
    let newgidmap = find_helper("NEWGIDMAP", "newgidmap")?;
    if nix::sys::prctl::get_no_new_privs().unwrap_or(false) {
        return Err(UsernsError::NoNewPrivs);
    }
    let name = caller.display_name();
    let use_getsubids = match source {
        SubidSource::Files => false,
        SubidSource::Getsubids => true,
        SubidSource::Auto => nsswitch_has_subid(),
    };
    let mut maps = Vec::with_capacity(2);
    for (path, id) in [(SUBUID, caller.uid), (SUBGID, caller.gid)] {
        let ranges = if use_getsubids {
            getsubids(&name, path == SUBGID)?
        } else {
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
                match skipped.as_deref_mut() {
                    // Nothing valid left: the bad line is the reason, not a missing entry.
                    _ if parsed.ranges.is_empty() => return Err(first.into()),
                    Some(skipped) => skipped.push(Warning {
                        why: format!("ignoring {first}, as newuidmap does"),
                        hint: Some("ask an administrator to correct that line".into()),
                    }),
                    None => return Err(first.into()),
                }
            }
            parsed.ranges
        };
        if ranges.is_empty() {
            // Name the source that was asked: with getsubids, not the file.
            let source = if use_getsubids {
                format!("getsubids{}", if path == SUBGID { " -g" } else { "" })
            } else {
                path.to_string()
            };
            return Err(UsernsError::NoSubordinateIds {
                user: name,
                path: source.into(),
            });
        }
        let map = IdMap::full(id, &ranges).map_err(|source| UsernsError::Map {
            path: path.into(),
            source,
        })?;
        maps.push(map);
    }
    let gid = maps.pop().expect("two maps");
    let uid = maps.pop().expect("two maps");
    Ok(Mapping {
        uid,
        gid,
        writer: Writer::Helpers {
            newuidmap,
            newgidmap,
        },
    })
}

pub fn nsswitch_has_subid() -> bool {
    nsswitch().has_subid
}

/// What become-root needs of /etc/nsswitch.conf, read once.
pub(super) struct Nsswitch {
    /// A `subid:` line: ranges come from getsubids (libsubid) under --subid-source=auto.
    pub(super) has_subid: bool,
    /// The `passwd:` line names `files` first (or there is no such line, or no file): the
    /// caller's name can be read from /etc/passwd directly, without loading NSS modules.
    pub(super) passwd_files_first: bool,
}

pub(super) fn nsswitch() -> &'static Nsswitch {
    static READ: std::sync::OnceLock<Nsswitch> = std::sync::OnceLock::new();
    READ.get_or_init(|| parse_nsswitch(&fs::read_to_string(NSSWITCH).unwrap_or_default()))
}

pub(super) fn parse_nsswitch(text: &str) -> Nsswitch {
    let line = |database: &str| {
        text.lines().find_map(|l| {
            let l = l.split('#').next().unwrap_or("").trim_start();
            l.strip_prefix(database)?.strip_prefix(':').map(str::trim)
        })
    };
    Nsswitch {
        has_subid: line("subid").is_some(),
        passwd_files_first: line("passwd").is_none_or(|sources| {
            sources
                .split_whitespace()
                .next()
                .is_none_or(|s| s == "files")
        }),
    }
}

/// Ask libsubid through the getsubids program (shadow): `getsubids [-g] USER`.
pub fn getsubids(name: &str, groups: bool) -> Result<Vec<SubRange>, UsernsError> {
    let program = find_program("getsubids")
        .ok_or_else(|| UsernsError::Getsubids("the getsubids program is not installed".into()))?;
    let mut cmd = sys::helper_command(&program);
    if groups {
        cmd.arg("-g");
    }
    let out = cmd
        .arg(name)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| UsernsError::Getsubids(format!("{}: {e}", program.display())))?;
    // Status 1 with nothing printed: the user has no ranges, which is an empty list.
    let no_ranges = out.status.code() == Some(1) && out.stdout.iter().all(u8::is_ascii_whitespace);
    if !out.status.success() && !no_ranges {
        return Err(UsernsError::Getsubids(format!(
            "{} {name} failed ({}): {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    subid::parse_getsubids(&String::from_utf8_lossy(&out.stdout), name)
        .map_err(UsernsError::Getsubids)
}
