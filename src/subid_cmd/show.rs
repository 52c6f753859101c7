//! `subid show [USER]`: a user's ranges as newuidmap grants them, by name or uid, with totals and
//! the source (files or getsubids).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use super::{EXIT_FOUND, EXIT_OK, Failure, PASSWD, print_out, read_input, read_subid_files};
use crate::audit::{self, Accounts};
use crate::cli::subid::ShowArgs;
use crate::options::SubidSource;

/// Who `show` is about.
pub(super) struct User {
    /// The login name, or the owner text to match when USER is no account.
    name: Vec<u8>,
    uid: Option<u32>,
    /// Other login names with the same uid (newuidmap's `find_range` accepts those too).
    aliases: Vec<Vec<u8>>,
    is_account: bool,
}

pub(super) fn resolve_user(
    arg: Option<&OsString>,
    accounts: &Accounts,
    passwd_given: bool,
) -> User {
    let nss_by_uid = |uid: u32| {
        if passwd_given {
            return None;
        }
        crate::userns::getent_passwd(&uid.to_string()).map(|(name, _)| name.into_bytes())
    };
    let (name, uid) = match arg {
        None => {
            let uid = nix::unistd::getuid().as_raw();
            let name = accounts
                .name_of(uid)
                .map(<[u8]>::to_vec)
                .or_else(|| nss_by_uid(uid));
            (name, Some(uid))
        }
        Some(arg) => {
            let bytes = arg.as_bytes();
            if let Some(uid) = accounts.uid_of(bytes) {
                (Some(bytes.to_vec()), Some(uid))
            } else if let Some((_, uid)) = (!passwd_given)
                .then(|| arg.to_str())
                .flatten()
                .filter(|n| !n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(crate::userns::getent_passwd)
            {
                (Some(bytes.to_vec()), Some(uid))
            } else if let Some(uid) = std::str::from_utf8(bytes)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u32>().ok())
            {
                let name = accounts
                    .name_of(uid)
                    .map(<[u8]>::to_vec)
                    .or_else(|| nss_by_uid(uid));
                (name, Some(uid))
            } else {
                return User {
                    name: bytes.to_vec(),
                    uid: None,
                    aliases: Vec::new(),
                    is_account: false,
                };
            }
        }
    };
    let is_account = name.is_some();
    let name = name.unwrap_or_else(|| uid.unwrap_or_default().to_string().into_bytes());
    let aliases = match uid {
        Some(uid) if is_account => accounts
            .names_of(uid)
            .into_iter()
            .filter(|n| *n != name.as_slice())
            .map(<[u8]>::to_vec)
            .collect(),
        _ => Vec::new(),
    };
    User {
        name,
        uid,
        aliases,
        is_account,
    }
}

/// One line of `show`'s listing.
pub(super) struct Shown {
    range: crate::subid::SubRange,
    at: String,
    /// Whether become-root maps it: the owner is the user's name or uid, not another login
    /// of the same uid (which newuidmap accepts too).
    mapped: bool,
}

pub(super) fn show(args: ShowArgs) -> Result<i32, Failure> {
    let use_getsubids = uses_getsubids(&args)?;
    let passwd = read_input(args.passwd.as_deref(), PASSWD, true)?;
    let accounts = Accounts::parse(&passwd.text, b"");
    let user = resolve_user(args.user.as_ref(), &accounts, args.passwd.is_some());
    let name = audit::show_bytes(&user.name).into_owned();

    let mut out = String::new();
    match (user.is_account, user.uid) {
        (true, Some(uid)) => out.push_str(&format!("user    {name} (uid {uid})\n")),
        _ => out.push_str(&format!(
            "user    {name} (no such account: lines are matched by their owner field)\n"
        )),
    }
    let (source, lists, problems) = if use_getsubids {
        (
            "source  getsubids (libsubid)\n".to_string(),
            getsubids_lists(&name)?,
            Vec::new(),
        )
    } else {
        file_lists(&args, &user, &accounts)?
    };
    out.push_str(&source);
    out.push_str(&ranges_text(&lists));
    let gid = match (&args.user, user.is_account) {
        (None, _) => Some(nix::unistd::getgid().as_raw()),
        (Some(_), true) => primary_gid(&passwd.text, &user.name),
        (Some(_), false) => None,
    };
    out.push_str(&maps_text(user.uid.zip(gid), &lists));
    print_out(out.as_bytes())?;
    for p in &problems {
        eprintln!("{p}");
    }
    if lists.iter().any(|(_, shown)| shown.is_empty()) {
        eprintln!(
            "hint: 'subid next {name}' proposes a range no one has ever had, with the usermod \
             command that allocates it"
        );
        return Ok(EXIT_FOUND);
    }
    Ok(EXIT_OK)
}

/// Whether the ranges come from getsubids: --subid-source, else /etc/nsswitch.conf; never
/// when --subuid or --subgid name files.
fn uses_getsubids(args: &ShowArgs) -> Result<bool, Failure> {
    let files_given = args.files.subuid.is_some() || args.files.subgid.is_some();
    Ok(match args.subid_source {
        SubidSource::Getsubids if files_given => {
            return Err(Failure::new(
                "usage",
                "--subuid and --subgid name files, which --subid-source=getsubids does not read",
            )
            .hint("leave out --subid-source, or the file options"));
        }
        _ if files_given => false,
        SubidSource::Files => false,
        SubidSource::Getsubids => true,
        SubidSource::Auto => crate::userns::nsswitch_has_subid(),
    })
}

/// The user's uid and gid ranges as getsubids gives them.
fn getsubids_lists(name: &str) -> Result<Lists, Failure> {
    let mut lists = Vec::new();
    for (word, groups) in [("uid", false), ("gid", true)] {
        let ranges = getsubids(name, groups)?;
        let shown = ranges
            .into_iter()
            .map(|range| Shown {
                range,
                at: "getsubids".into(),
                mapped: true,
            })
            .collect();
        lists.push((word, shown));
    }
    Ok(lists)
}

/// The ranges of each kind (`uid`, `gid`) with where they were found.
type Lists = Vec<(&'static str, Vec<Shown>)>;

/// The source line, the user's uid and gid ranges in the files (by name, an alias or uid),
/// and the warnings about their lines.
fn file_lists(
    args: &ShowArgs,
    user: &User,
    accounts: &Accounts,
) -> Result<(String, Lists, Vec<String>), Failure> {
    let (subuid, subgid) = read_subid_files(&args.files)?;
    let source = format!("source  files {} and {}\n", subuid.shown, subgid.shown);
    let mut lists = Vec::new();
    let mut problems = Vec::new();
    let mut names: Vec<&[u8]> = vec![&user.name];
    names.extend(user.aliases.iter().map(Vec::as_slice));
    for (word, input) in [("uid", &subuid), ("gid", &subgid)] {
        let (ranges, bad) = audit::user_ranges(&input.text, &names, user.uid, accounts);
        let shown = ranges
            .into_iter()
            .map(|r| {
                let mut at = format!("{}:{}", input.shown, r.line);
                let by_name = r.owner.as_bytes() == user.name.as_slice();
                if !by_name {
                    at.push_str(&format!(" (as {})", r.owner));
                }
                let by_uid = user.uid.is_some_and(|uid| r.owner == uid.to_string());
                Shown {
                    range: r.range,
                    at,
                    mapped: by_name || by_uid,
                }
            })
            .collect();
        lists.push((word, shown));
        problems.extend(
            bad.into_iter()
                .map(|p| format!("warning: {}:{}: {}", input.shown, p.line, p.what)),
        );
    }
    Ok((source, lists, problems))
}

/// One line per range, its columns as wide as their widest entry, and the totals.
fn ranges_text(lists: &[(&str, Vec<Shown>)]) -> String {
    let rows: Vec<(&str, String, String, &str)> = lists
        .iter()
        .flat_map(|(word, shown)| {
            shown.iter().map(move |s| {
                let span = audit::Span {
                    start: s.range.start.into(),
                    count: s.range.count.into(),
                };
                (
                    *word,
                    span.to_string(),
                    s.range.count.to_string(),
                    s.at.as_str(),
                )
            })
        })
        .collect();
    let range_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let count_width = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let mut out = String::new();
    let mut totals = Vec::new();
    for (word, shown) in lists {
        if shown.is_empty() {
            out.push_str(&format!("{word}     none\n"));
        }
        for (_, range, count, at) in rows.iter().filter(|r| r.0 == *word) {
            out.push_str(&format!(
                "{word}     {range:<range_width$}  {count:>count_width$} ids  {at}\n"
            ));
        }
        let ids: u64 = shown.iter().map(|s| u64::from(s.range.count)).sum();
        let ranges = match shown.len() {
            1 => "1 range".to_string(),
            n => format!("{n} ranges"),
        };
        totals.push(format!("{ids} {word}s in {ranges}"));
    }
    out.push_str(&format!("total   {}\n", totals.join(", ")));
    out
}

pub(super) fn getsubids(name: &str, groups: bool) -> Result<Vec<crate::subid::SubRange>, Failure> {
    crate::userns::getsubids(name, groups).map_err(|e| {
        Failure::new("getsubids", e.to_string())
            .hint("check /etc/nsswitch.conf's subid line, or use --subid-source=files")
    })
}

/// The primary gid of login `name` in passwd text: the first line of that name.
fn primary_gid(passwd: &[u8], name: &[u8]) -> Option<u32> {
    passwd.split(|&b| b == b'\n').find_map(|line| {
        let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if fields.first() != Some(&name) {
            return None;
        }
        std::str::from_utf8(fields.get(3)?).ok()?.parse().ok()
    })
}

/// The `map` lines: the uid and gid maps become-root makes for the user under each `--map`
/// mode, as INNER:OUTER:COUNT entries (what --map-users and --map-groups take).
fn maps_text(ids: Option<(u32, u32)>, lists: &[(&str, Vec<Shown>)]) -> String {
    use crate::idmap::IdMap;
    let Some((uid, gid)) = ids else {
        return "map     none: no account, so no own uid and gid to map\n".into();
    };
    if uid == 0 {
        return "map     every mode but single: 0:0:4294967295 (root maps every id to itself)\n"
            .into();
    }
    let entries = |map: &IdMap| -> String {
        let parts: Vec<String> = map
            .ranges()
            .iter()
            .map(|r| format!("{}:{}:{}", r.inside(), r.outside(), r.count()))
            .collect();
        parts.join(" ")
    };
    type Make = fn(u32, &[crate::subid::SubRange]) -> Result<IdMap, crate::idmap::MapError>;
    let modes: [(&str, Make); 3] = [
        ("full", IdMap::full),
        ("keep-id", IdMap::keep_id),
        ("subids", IdMap::subids),
    ];
    let mut out = String::new();
    for (mode, make) in modes {
        for ((word, shown), own) in lists.iter().zip([uid, gid]) {
            let ranges: Vec<_> = shown.iter().filter(|s| s.mapped).map(|s| s.range).collect();
            let text = if ranges.is_empty() {
                format!("not possible: no subordinate {word}s")
            } else {
                match make(own, &ranges) {
                    Ok(map) => entries(&map),
                    Err(e) => format!("not possible: {e}"),
                }
            };
            out.push_str(&format!("map     {mode:<8} {word} {text}\n"));
        }
    }
    for ((word, _), own) in lists.iter().zip([uid, gid]) {
        out.push_str(&format!("map     single   {word} 0:{own}:1\n"));
    }
    let others: Vec<&str> = lists
        .iter()
        .flat_map(|(_, shown)| shown.iter().filter(|s| !s.mapped).map(|s| s.at.as_str()))
        .collect();
    if !others.is_empty() {
        out.push_str(&format!(
            "note    the maps leave out {}: newuidmap grants it under another login of the same \
             uid; become-root asks by name and uid only\n",
            others.join(", ")
        ));
    }
    out
}
