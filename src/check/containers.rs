//! `--check`: the containers namespaces (containers::namespace) that run, and whether each
//! still maps the subordinate ids /etc/subuid and /etc/subgid grant. A namespace keeps the
//! maps it was made with: after the administrator changes the grants, its containers (and
//! files they make) keep the old ids until it is made again, as rootless podman's own
//! namespace does until `podman system migrate`.

use super::Item;
use crate::idmap::IdMap;
use crate::options::{MapMode, SubidSource};
use crate::userns;
use crate::userns::Caller;

/// One item per containers namespace that runs.
pub(super) fn containers_items(caller: &Caller) -> Vec<Item> {
    crate::session::containers::namespaces()
        .into_iter()
        .map(|(record, uid_map, gid_map)| item(caller, &record, &uid_map, &gid_map))
        .collect()
}

fn item(caller: &Caller, record: &crate::session::Record, uid_map: &str, gid_map: &str) -> Item {
    let what = format!("containers namespace {}", record.name);
    let asked = record
        .containers
        .as_ref()
        .map_or("auto", |c| c.map.as_str());
    let pid = record.holder.map_or(0, |h| h.pid);
    let made = crate::session::utc(record.created);
    let found = format!("pid {pid}, made {made} for --map={asked}");
    let Ok(map) = <MapMode as clap::ValueEnum>::from_str(asked, false) else {
        return Item::warn(
            &what,
            format!("{found}, a map this become-root does not know"),
            None,
        );
    };
    // What a namespace made now would map (a fallback warning is --check's own item).
    let now = match userns::plan_mapping(
        &userns::Ask::mode(map),
        SubidSource::Auto,
        caller,
        &mut Vec::new(),
    ) {
        Ok(mapping) => mapping,
        Err(e) => {
            return Item::warn(
                &what,
                format!("{found}; a new one could not be made: {e}"),
                None,
            );
        }
    };
    let changed: Vec<String> = [
        ("/etc/subuid", uid_map, &now.uid, caller.uid),
        ("/etc/subgid", gid_map, &now.gid, caller.gid),
    ]
    .into_iter()
    .filter(|(_, live, now, _)| parse_map(live) != ranges(now))
    .map(|(file, live, now, own)| {
        format!(
            "made when {file} granted {}, which now grants {}",
            grants(&parse_map(live), own),
            grants(&ranges(now), own)
        )
    })
    .collect();
    if changed.is_empty() {
        return Item::ok(
            &what,
            format!("{found}, with the ids /etc/subuid and /etc/subgid grant"),
        );
    }
    Item::warn(
        &what,
        format!(
            "{found}, {}: what runs there keeps the old ids",
            changed.join("; ")
        ),
        format!(
            "become-root --stop={} ends it and everything in it (as podman system migrate \
             does); the next call makes it again with the ids granted now",
            record.name
        ),
    )
}

/// (inside, outside, count) of each line of a /proc/PID/uid_map, in order.
fn parse_map(text: &str) -> Vec<(u32, u32, u32)> {
    let mut out: Vec<(u32, u32, u32)> = text
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().map(str::parse::<u32>);
            Some((f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?))
        })
        .collect();
    out.sort();
    out
}

fn ranges(map: &IdMap) -> Vec<(u32, u32, u32)> {
    let mut out: Vec<(u32, u32, u32)> = map
        .ranges()
        .iter()
        .map(|r| (r.inside(), r.outside(), r.count()))
        .collect();
    out.sort();
    out
}

/// The subordinate ranges a map holds (all but the caller's own id), as /etc/subuid writes
/// them: `START:COUNT, ...`, or `none`.
fn grants(map: &[(u32, u32, u32)], own: u32) -> String {
    let mut subs: Vec<(u32, u32)> = map
        .iter()
        .filter(|(_, outside, count)| !(*outside == own && *count == 1))
        .map(|(_, outside, count)| (*outside, *count))
        .collect();
    subs.sort();
    if subs.is_empty() {
        return "none".into();
    }
    let text: Vec<String> = subs.iter().map(|(s, c)| format!("{s}:{c}")).collect();
    text.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_grants() {
        let live = "         0       1000          1\n         1     100000      65536\n";
        let map = parse_map(live);
        assert_eq!(map, [(0, 1000, 1), (1, 100000, 65536)]);
        assert_eq!(grants(&map, 1000), "100000:65536");
        let keep_id = parse_map("0 100000 1000\n1000 1000 1\n1001 101000 64536\n");
        assert_eq!(grants(&keep_id, 1000), "100000:1000, 101000:64536");
        assert_eq!(grants(&parse_map("0 1000 1\n"), 1000), "none");
        assert_eq!(parse_map("garbage\n"), []);
    }
}
