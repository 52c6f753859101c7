//! Which maps a run gets (`--map=auto|full|single|keep-id|subids`, `--map-users` and
//! `--map-groups`, real root's identity, a nested root's pass through), from the caller's
//! subordinate ranges in the files or from getsubids.

use std::fs;
use std::process::Stdio;

use super::{
    Ask, Caller, Mapping, NSSWITCH, Planned, SUBGID, SUBUID, UsernsError, Warning, Writer,
    find_program, grants,
};
use crate::idmap::{Explicit, IdMap};
use crate::options::{MapMode, SubidSource};
use crate::subid::{self, SubRange};
use crate::sys;

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
/// side is `--map`'s. The steps: real or nested root's maps; else --map's sides through
/// newuidmap and newgidmap (or the caller alone), the explicit sides, and who writes them.
pub fn plan_mapping(
    ask: &Ask,
    source: SubidSource,
    caller: &Caller,
    warnings: &mut Vec<Warning>,
) -> Result<Mapping, UsernsError> {
    let users = grants::parse_explicit("uid", ask.users)?;
    let groups = grants::parse_explicit("gid", ask.groups)?;
    let explicit = users.is_some() || groups.is_some();
    if ask.mode == MapMode::Single && !explicit {
        return Ok(single_mapping(caller));
    }
    if caller.nested.is_some() || caller.uid == 0 {
        return privileged_mapping(ask.mode, caller, [&users, &groups]);
    }
    // The sides --map makes: newuidmap and newgidmap, and ranges in the files, or why not.
    let getsubids = grants::uses_getsubids(source);
    let mode_sides = [users.is_none(), groups.is_none()];
    let (writer, mut made) = mode_maps(ask.mode, mode_sides, getsubids, caller, warnings)?;
    let own = [caller.uid, caller.gid];
    for (i, (kind, path, explicit)) in [("uid", SUBUID, &users), ("gid", SUBGID, &groups)]
        .into_iter()
        .enumerate()
    {
        made[i] = Some(match explicit {
            Some(explicit) => {
                let granted = explicit_grants(path, getsubids, caller, warnings)?;
                (
                    grants::explicit_map(kind, explicit, own[i], &granted)?,
                    Planned::Explicit,
                )
            }
            None => made[i]
                .take()
                .unwrap_or((IdMap::single(own[i]), Planned::Single)),
        });
    }
    let [Some((uid, uid_how)), Some((gid, gid_how))] = made else {
        unreachable!("both sides are made above");
    };
    let writer = writer_for(&uid, &gid, caller, writer)?;
    Ok(Mapping {
        uid,
        gid,
        writer,
        how: (uid_how, gid_how),
    })
}

/// --map=single: only the caller, as 0.
fn single_mapping(caller: &Caller) -> Mapping {
    Mapping {
        uid: IdMap::single(caller.uid),
        gid: IdMap::single(caller.gid),
        // The kernel lets an unprivileged writer map its own gid only once setgroups is
        // denied, or a dropped supplementary group could be regained (CVE-2014-8989).
        writer: Writer::SelfMap,
        how: (Planned::Single, Planned::Single),
    }
}

/// Real root, or already root in a user namespace: the maps are written directly. What we
/// have, as it is (keep-id and subids are that too: the caller is 0 and every id keeps its
/// number); real root: every id. Explicit entries (uid side, gid side) are checked against
/// what the parent namespace maps.
fn privileged_mapping(
    mode: MapMode,
    caller: &Caller,
    explicit: [&Option<Explicit>; 2],
) -> Result<Mapping, UsernsError> {
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
            (None, _) if mode == MapMode::Single => (IdMap::single(own), Planned::Single),
            (None, Some(map)) => (map.pass_through(), Planned::PassThrough),
            (None, None) => (IdMap::host_identity(), Planned::Identity),
        })
    };
    let (uid, uid_how) = side("uid", explicit[0], caller.uid, parent.map(|(u, _)| u))?;
    let (gid, gid_how) = side("gid", explicit[1], caller.gid, parent.map(|(_, g)| g))?;
    Ok(Mapping {
        uid,
        gid,
        writer: Writer::Privileged,
        how: (uid_how, gid_how),
    })
}

/// A map of each side --map makes (`sides`: uid, gid), `None` where it makes none, and the
/// helpers that write them. Under --map=auto, what stops a full map is a warning and the
/// sides are left to the caller alone; a helper the caller named is never passed over.
type Sides = [Option<(IdMap, Planned)>; 2];
fn mode_maps(
    mode: MapMode,
    sides: [bool; 2],
    getsubids: bool,
    caller: &Caller,
    warnings: &mut Vec<Warning>,
) -> Result<(Option<Writer>, Sides), UsernsError> {
    let planned = match mode {
        // --map=single beside explicit entries: the caller alone on that side.
        MapMode::Single => None,
        MapMode::Auto | MapMode::Full => Some((MapMode::Full, Planned::Full)),
        MapMode::KeepId => Some((MapMode::KeepId, Planned::KeepId)),
        MapMode::Subids => Some((MapMode::Subids, Planned::Subids)),
    };
    let Some(planned) = planned.filter(|_| sides.contains(&true)) else {
        return Ok((None, [None, None]));
    };
    let auto = mode == MapMode::Auto;
    let mut skipped = Vec::new();
    let lenient = auto.then_some(&mut skipped);
    match helper_maps(planned, sides, getsubids, caller, lenient) {
        Ok((helpers, maps)) => {
            warnings.extend(skipped);
            Ok((Some(helpers), maps))
        }
        Err(e) if auto && !matches!(e, UsernsError::BadVariable { .. }) => {
            warnings.push(fallback_warning(&e, caller));
            Ok((None, [None, None]))
        }
        Err(e) => Err(e),
    }
}

/// The helpers, and the map `mode` makes of the caller's grants on each side asked for.
/// `lenient` collects the lines skipped as newuidmap skips them (else they are errors).
fn helper_maps(
    (mode, how): (MapMode, Planned),
    sides: [bool; 2],
    getsubids: bool,
    caller: &Caller,
    mut lenient: Option<&mut Vec<Warning>>,
) -> Result<(Writer, Sides), UsernsError> {
    let helpers = grants::helper_writer()?;
    let mut maps = [None, None];
    for (i, (path, id)) in [(SUBUID, caller.uid), (SUBGID, caller.gid)]
        .into_iter()
        .enumerate()
    {
        if !sides[i] {
            continue;
        }
        let granted = grants::read_grants(path, getsubids, caller, lenient.as_deref_mut())?;
        if granted.ranges.is_empty() {
            return Err(UsernsError::NoSubordinateIds {
                user: caller.display_name(),
                path: granted.source.into(),
            });
        }
        let map = match mode {
            MapMode::KeepId => IdMap::keep_id(id, &granted.ranges),
            MapMode::Subids => IdMap::subids(id, &granted.ranges),
            _ => IdMap::full(id, &granted.ranges),
        };
        let map = map.map_err(|source| UsernsError::Map {
            path: path.into(),
            source,
        })?;
        maps[i] = Some((map, how));
    }
    Ok((helpers, maps))
}

/// The grants explicit entries are checked against; nothing valid for the caller leaves
/// only its own id.
fn explicit_grants(
    path: &'static str,
    getsubids: bool,
    caller: &Caller,
    warnings: &mut Vec<Warning>,
) -> Result<grants::Granted, UsernsError> {
    let mut skipped = Vec::new();
    let granted =
        grants::read_grants(path, getsubids, caller, Some(&mut skipped)).or_else(|e| match e {
            UsernsError::Subid(_) => Ok(grants::Granted {
                source: path.into(),
                ..Default::default()
            }),
            e => Err(e),
        })?;
    warnings.extend(skipped);
    Ok(granted)
}

/// Who writes the maps: the caller itself when each is one id, its own (the kernel takes that
/// from the caller); else newuidmap and newgidmap.
fn writer_for(
    uid: &IdMap,
    gid: &IdMap,
    caller: &Caller,
    helpers: Option<Writer>,
) -> Result<Writer, UsernsError> {
    let own_only =
        |map: &IdMap, id: u32| matches!(map.ranges(), [r] if r.count() == 1 && r.outside() == id);
    if own_only(uid, caller.uid) && own_only(gid, caller.gid) {
        return Ok(Writer::SelfMap);
    }
    match helpers {
        Some(writer) => Ok(writer),
        None => grants::helper_writer(),
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
