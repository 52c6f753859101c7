//! Who COMMAND runs as inside, and with which capabilities: `--cap-add`, `--cap-drop`,
//! `--uid`, `--gid`, `--no-new-privs`. Applied last, just before exec, after every mount.
//!
//! As uid 0 (the default) COMMAND gets every capability over the namespace unless some are
//! dropped; the bounding set is cut to the same set, so that no exec (a set-user-ID root
//! binary inside included) can regain a dropped one. As another uid, COMMAND gets only the
//! capabilities added with `--cap-add`: they are kept across the change of uid
//! (PR_SET_KEEPCAPS) and raised in the ambient set, the only way capabilities survive the
//! exec of a program that is neither set-user-ID nor has file capabilities (capabilities(7)).
//! The effective, permitted, inheritable and ambient sets are always left consistent.

use std::collections::HashSet;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};

use crate::error::Error;

/// The identity COMMAND gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub add: Vec<Capability>,
    /// `None` in the list stands for ALL.
    pub drop: Vec<Option<Capability>>,
    pub no_new_privs: bool,
    /// Keep the supplementary groups when the ids change: COMMAND runs as the caller
    /// (--map=keep-id, --map=subids), so it keeps what the caller's own processes have.
    pub keep_groups: bool,
}

/// Parse a capability name: `NET_ADMIN`, `cap_net_admin` and `CAP_NET_ADMIN` all work.
pub fn parse_cap(name: &str) -> Result<Capability, Error> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<Capability>().map_err(|_| {
        let mut known: Vec<String> = caps::all()
            .iter()
            .map(|c| {
                c.to_string()
                    .trim_start_matches("CAP_")
                    .to_ascii_lowercase()
            })
            .collect();
        known.sort();
        Error::usage(
            format!("unknown capability '{name}'"),
            format!("one of: {} (or ALL for --cap-drop)", known.join(", ")),
        )
    })
}

/// Who COMMAND should run as, as the command line says it (parsed by
/// [`Identity::from_asked`]): the options' one definition, which the command line flattens.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Asked {
    /// Give COMMAND capability CAP over the namespace (repeatable; NET_ADMIN, net_admin and
    /// CAP_NET_ADMIN are the same). With --uid, the only capabilities COMMAND gets
    #[arg(long, value_name = "CAP", help_heading = "Identity inside")]
    pub cap_add: Vec<String>,

    /// Take capability CAP away from COMMAND, or ALL (repeatable; --cap-add wins). Dropped
    /// from the bounding set too, so no exec inside can regain it
    #[arg(long, value_name = "CAP|ALL", help_heading = "Identity inside")]
    pub cap_drop: Vec<String>,

    /// Run COMMAND as uid N inside (a mapped id) instead of 0, after every mount is made
    #[arg(long, value_name = "N", help_heading = "Identity inside")]
    pub uid: Option<u32>,

    /// Run COMMAND as gid N inside (a mapped id) instead of 0
    #[arg(long, value_name = "N", help_heading = "Identity inside")]
    pub gid: Option<u32>,

    /// Set no_new_privs for COMMAND: no exec inside gains privilege (set-user-ID bits and
    /// file capabilities are ignored)
    #[arg(long, help_heading = "Identity inside")]
    pub no_new_privs: bool,
}

impl Identity {
    /// From what the command line asks.
    pub fn from_asked(asked: &Asked) -> Result<Identity, Error> {
        Identity::new(
            asked.uid,
            asked.gid,
            &asked.cap_add,
            &asked.cap_drop,
            asked.no_new_privs,
        )
    }

    /// From the command line's values.
    pub fn new(
        uid: Option<u32>,
        gid: Option<u32>,
        add: &[String],
        drop: &[String],
        no_new_privs: bool,
    ) -> Result<Identity, Error> {
        let add = add
            .iter()
            .map(|c| parse_cap(c))
            .collect::<Result<Vec<_>, _>>()?;
        let drop = drop
            .iter()
            .map(|c| {
                if c.eq_ignore_ascii_case("all") {
                    Ok(None)
                } else {
                    parse_cap(c).map(Some)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Identity {
            uid,
            gid,
            add,
            drop,
            no_new_privs,
            keep_groups: false,
        })
    }

    /// Whether anything differs from the default (root with every capability).
    pub fn is_default(&self) -> bool {
        *self == Identity::default()
    }

    /// The capabilities COMMAND ends up with.
    pub fn final_caps(&self) -> CapsHashSet {
        let root = self.uid.unwrap_or(0) == 0;
        let mut set: CapsHashSet = if root { caps::all() } else { HashSet::new() };
        for drop in &self.drop {
            match drop {
                None => set.clear(),
                Some(cap) => {
                    set.remove(cap);
                }
            }
        }
        // Adds come last: an added capability is there whatever was dropped.
        set.extend(self.add.iter().copied());
        set
    }

    /// Apply, in the namespace process, just before exec.
    pub fn apply(&self) -> Result<(), Error> {
        if self.is_default() {
            return Ok(());
        }
        let fail = |what: &str| {
            let what = what.to_string();
            move |e: caps::errors::CapsError| Error::new(what.clone(), e.to_string())
        };
        let sys = |what: &'static str| move |errno| Error::sys(what, errno);
        let want = self.final_caps();
        // The bounding set first: a capability dropped from it can never come back.
        for cap in caps::all() {
            if !want.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(fail("dropping from the bounding set"))?;
            }
        }
        let uid = self.uid.unwrap_or(0);
        let gid = self.gid.unwrap_or(0);
        if gid != 0 {
            let g = Gid::from_raw(gid);
            nix::unistd::setresgid(g, g, g).map_err(sys("setting the gid"))?;
        }
        if (uid != 0 || gid != 0) && !self.keep_groups {
            // Leave the caller's supplementary groups behind; allowed only where setgroups
            // is (a single self map denies it, and the groups then stay as they were).
            let _ = nix::unistd::setgroups(&[Gid::from_raw(gid)]);
        }
        if uid != 0 {
            // Keep the permitted set across the change of uid (capabilities(7)).
            nix::sys::prctl::set_keepcaps(true).map_err(sys("PR_SET_KEEPCAPS"))?;
            let u = Uid::from_raw(uid);
            nix::unistd::setresuid(u, u, u).map_err(sys("setting the uid"))?;
        }
        // capset(2) wants effective within permitted at every step: effective shrinks first.
        caps::set(None, CapSet::Effective, &want).map_err(fail("setting the effective set"))?;
        caps::set(None, CapSet::Permitted, &want).map_err(fail("setting the permitted set"))?;
        caps::set(None, CapSet::Inheritable, &want).map_err(fail("setting the inheritable set"))?;
        caps::clear(None, CapSet::Ambient).map_err(fail("clearing the ambient set"))?;
        if uid != 0 {
            for cap in &want {
                caps::raise(None, CapSet::Ambient, *cap)
                    .map_err(fail("raising an ambient capability"))?;
            }
        }
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs().map_err(sys("setting no_new_privs"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use caps::Capability;

    use super::{Identity, parse_cap};

    #[test]
    fn names_parse_in_every_spelling() {
        for name in [
            "NET_ADMIN",
            "net_admin",
            "CAP_NET_ADMIN",
            "cap_net_admin",
            " Net_Admin ",
        ] {
            assert_eq!(
                parse_cap(name).unwrap(),
                Capability::CAP_NET_ADMIN,
                "{name}"
            );
        }
        let err = parse_cap("net_adm").unwrap_err();
        assert!(
            err.why().contains("unknown capability 'net_adm'"),
            "{}",
            err.why()
        );
        assert!(
            err.hint().unwrap().contains("net_admin"),
            "lists the valid ones"
        );
    }

    #[test]
    fn final_caps_rows() {
        use Capability::*;
        let id = |uid: Option<u32>, add: &[&str], drop: &[&str]| {
            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            Identity::new(uid, None, &s(add), &s(drop), false).unwrap()
        };
        let all = caps::all();
        assert_eq!(
            id(None, &[], &[]).final_caps(),
            all,
            "root keeps everything"
        );
        assert!(id(None, &[], &[]).is_default());
        let mut without = all.clone();
        without.remove(&CAP_SYS_ADMIN);
        assert_eq!(id(None, &[], &["sys_admin"]).final_caps(), without);
        assert_eq!(
            id(None, &["net_admin"], &["ALL"]).final_caps(),
            HashSet::from([CAP_NET_ADMIN]),
            "drop all, add one"
        );
        assert_eq!(
            id(Some(1000), &[], &[]).final_caps(),
            HashSet::new(),
            "another uid: none"
        );
        assert_eq!(
            id(Some(1000), &["net_bind_service"], &[]).final_caps(),
            HashSet::from([CAP_NET_BIND_SERVICE])
        );
        assert_eq!(
            id(None, &["chown"], &["chown"]).final_caps(),
            all,
            "an explicit add wins over a drop of the same"
        );
    }
}
