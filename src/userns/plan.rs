//! Which maps a run gets (`--map=auto|full|single|keep-id|subids`, `--map-users` and
//! `--map-groups`, real root's identity, a nested root's pass through), from the caller's
//! subordinate ranges in the files or from getsubids.

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

/// Decide the maps a run asks for, collecting warnings (`--map=auto`'s fallback, lines
/// skipped as newuidmap skips them). Explicit entries replace their side's map; the other
/// side is `--map`'s.
pub fn plan_mapping(
    ask: &Ask,
    source: SubidSource,
    caller: &Caller,
    warnings: &mut Vec<Warning>,
) -> Result<Mapping, UsernsError> {
    let users = grants::parse_explicit("uid", ask.users)?;
    let groups = grants::parse_explicit("gid", ask.groups)?;
    let explicit = users.is_some() || groups.is_some();
    let single = |how: (Planned, Planned)| Mapping {
        uid: IdMap::single(caller.uid),
        gid: IdMap::single(caller.gid),
        // The kernel lets an unprivileged writer map its own gid only once setgroups is
        // denied, or a dropped supplementary group could be regained (CVE-2014-8989).
        writer: Writer::SelfMap,
        how,
    };
    if caller.nested.is_some() || caller.uid == 0 {
        if ask.mode == MapMode::Single && !explicit {
            return Ok(single((Planned::Single, Planned::Single)));
        }
        // Already root in a user namespace: what we have, as it is (keep-id and subids are
        // that too: the caller is 0 and every id keeps its number). Real root: every id.
        let parent = caller.nested.as_ref();
        let side = |kind,
                    explicit: &Option<Explicit>,
                    own: u32,
                    current: Option<&IdMap>|
         -> Result<(IdMap, Planned), UsernsError> {
            Ok(match (explicit, current) {
                (Some(e), _) => (
                    grants::privileged_explicit_map(kind, e, current)?,
                    Planned::Explicit,
                ),
                (None, _) if ask.mode == MapMode::Single => (IdMap::single(own), Planned::Single),
                (None, Some(map)) => (map.pass_through(), Planned::PassThrough),
                (None, None) => (IdMap::host_identity(), Planned::Identity),
            })
        };
        let (uid, uid_how) = side("uid", &users, caller.uid, parent.map(|(u, _)| u))?;
        let (gid, gid_how) = side("gid", &groups, caller.gid, parent.map(|(_, g)| g))?;
        return Ok(Mapping {
            uid,
            gid,
            writer: Writer::Privileged,
            how: (uid_how, gid_how),
        });
    }
    if ask.mode == MapMode::Single && !explicit {
        return Ok(single((Planned::Single, Planned::Single)));
    }

    // The sides --map makes: newuidmap and newgidmap, and ranges in the files, or why not.
    let getsubids_asked = grants::uses_getsubids(source);
    let mode_sides = [users.is_none(), groups.is_none()];
    let mut made: [Option<(IdMap, Planned)>; 2] = [None, None];
    let mut writer = None;
    if mode_sides.contains(&true) {
        let planned = match ask.mode {
            // --map=single beside explicit entries: the caller alone on that side.
            MapMode::Single => None,
            MapMode::Auto | MapMode::Full => Some((MapMode::Full, Planned::Full)),
            MapMode::KeepId => Some((MapMode::KeepId, Planned::KeepId)),
            MapMode::Subids => Some((MapMode::Subids, Planned::Subids)),
        };
        let auto = ask.mode == MapMode::Auto;
        let mut skipped = Vec::new();
        let tried = planned.ok_or(None).and_then(|(mode, how)| {
            let helpers = grants::helper_writer().map_err(Some)?;
            let mut maps = [None, None];
            for (i, (path, id)) in [(SUBUID, caller.uid), (SUBGID, caller.gid)]
                .into_iter()
                .enumerate()
            {
                if !mode_sides[i] {
                    continue;
                }
                let lenient = auto.then_some(&mut skipped);
                let granted =
                    grants::read_grants(path, getsubids_asked, caller, lenient).map_err(Some)?;
                if granted.ranges.is_empty() {
                    return Err(Some(UsernsError::NoSubordinateIds {
                        user: caller.display_name(),
                        path: granted.source.into(),
                    }));
                }
                let map = match mode {
                    MapMode::KeepId => IdMap::keep_id(id, &granted.ranges),
                    MapMode::Subids => IdMap::subids(id, &granted.ranges),
                    _ => IdMap::full(id, &granted.ranges),
                };
                let map = map.map_err(|source| {
                    Some(UsernsError::Map {
                        path: path.into(),
                        source,
                    })
                })?;
                maps[i] = Some((map, how));
            }
            Ok((helpers, maps))
        });
        match tried {
            Ok((helpers, maps)) => {
                warnings.extend(skipped);
                writer = Some(helpers);
                made = maps;
            }
            Err(None) => {}
            // A helper the caller named (NEWUIDMAP, NEWGIDMAP) is never passed over.
            Err(Some(e)) if auto && !matches!(e, UsernsError::BadVariable { .. }) => {
                warnings.push(fallback_warning(&e, caller));
            }
            Err(Some(e)) => return Err(e),
        }
    }
    let own = [caller.uid, caller.gid];
    for (i, (kind, path, explicit)) in [("uid", SUBUID, &users), ("gid", SUBGID, &groups)]
        .into_iter()
        .enumerate()
    {
        made[i] = Some(match explicit {
            Some(explicit) => {
                let mut skipped = Vec::new();
                let granted =
                    grants::read_grants(path, getsubids_asked, caller, Some(&mut skipped))
                        .or_else(|e| match e {
                            // Nothing valid for the caller: only its own id is allowed.
                            UsernsError::Subid(_) => Ok(grants::Granted {
                                source: path.into(),
                                ..Default::default()
                            }),
                            e => Err(e),
                        })?;
                warnings.extend(skipped);
                (
                    grants::explicit_map(kind, explicit, own[i], &granted)?,
                    Planned::Explicit,
                )
            }
            None => match made[i].take() {
                Some(made) => made,
                None => (IdMap::single(own[i]), Planned::Single),
            },
        });
    }
    let [Some((uid, uid_how)), Some((gid, gid_how))] = made else {
        unreachable!("both sides are made above");
    };
    // One id each, the caller's own: the kernel takes that from the caller itself.
    let own_only =
        |map: &IdMap, id: u32| matches!(map.ranges(), [r] if r.count() == 1 && r.outside() == id);
    let writer = if own_only(&uid, caller.uid) && own_only(&gid, caller.gid) {
        Writer::SelfMap
    } else {
        match writer {
            Some(writer) => writer,
            None => grants::helper_writer()?,
        }
    };
    Ok(Mapping {
        uid,
        gid,
        writer,
        how: (uid_how, gid_how),
    })
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
