//! Who besides the caller may write to a directory become-root is to trust (a `--rootfs`, an
//! overlay's UPPER, its work directory and the directory holding them, the sessions' state
//! directory), judged from its mode and group (pure).
//!
//! Write access for others is never the caller's alone. Write access for a group is when the
//! group is the caller's user private group: its primary group, which no other account has as
//! its primary group (/etc/passwd) and whose /etc/group line names no other member. useradd
//! makes one for each user (USERGROUPS_ENAB), and pam_umask's `usergroups` then gives the
//! user umask 002 (Debian 13's default), so every directory it makes is group-writable by a
//! group that is nobody else's. The files are read as text, never through NSS (become-root
//! loads no NSS module): a group only a network service knows is not known to be private, and
//! a group that such a service also gives to other members (the same gid in LDAP) is beyond
//! what become-root can see, as it is beyond what `ls -l` shows.
#![forbid(unsafe_code)]

/// Whether the caller's primary group is its own alone, read from /etc/passwd and
/// /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateGroup {
    /// The caller's primary gid, when /etc/passwd has the caller.
    primary: Option<u32>,
    /// Why the primary group is not the caller's alone, if it is not.
    shared: Option<Shared>,
    /// Each group's name, for messages: (gid, name) in file order.
    names: Vec<(u32, String)>,
}

/// Why a group is not the caller's alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    /// /etc/passwd has no line for the caller.
    NoAccount,
    /// It is not the caller's primary group.
    NotPrimary,
    /// /etc/group has no line for it.
    NoGroupLine,
    /// It is the primary group of this other account too.
    PrimaryOf(String),
    /// Its /etc/group line names this other member.
    Member(String),
    /// /etc/group takes groups from NIS as well (a `+` line): their members are unknown.
    Nis,
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shared::NoAccount => write!(
                f,
                "you have no line in /etc/passwd, where become-root looks for your private group"
            ),
            Shared::NotPrimary => write!(f, "it is not your primary group"),
            Shared::NoGroupLine => write!(
                f,
                "/etc/group does not have it (become-root reads groups from /etc/group only)"
            ),
            Shared::PrimaryOf(name) => {
                write!(f, "it is also the primary group of {name} (/etc/passwd)")
            }
            Shared::Member(name) => write!(f, "it also has {name} as a member (/etc/group)"),
            Shared::Nis => write!(
                f,
                "/etc/group includes NIS groups (a '+' line), whose members become-root cannot \
                 see"
            ),
        }
    }
}

/// A group that is not the caller's alone: the group as messages name it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPrivate {
    /// "group staff (50)", or "group 50" when /etc/group does not name it.
    pub group: String,
    pub why: Shared,
}

/// The fields of each line of a passwd(5) or group(5) text, NIS lines (`+`, `-`) apart.
fn lines(text: &[u8]) -> impl Iterator<Item = Vec<&[u8]>> {
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"+") && !l.starts_with(b"-"))
        .map(|l| l.split(|&b| b == b':').collect())
}

fn number(field: Option<&&[u8]>) -> Option<u32> {
    std::str::from_utf8(field?).ok()?.parse().ok()
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).into_owned()
}

impl PrivateGroup {
    /// Judge the primary group of `uid` from the text of /etc/passwd and /etc/group.
    pub fn parse(passwd: &[u8], group: &[u8], uid: u32) -> PrivateGroup {
        let account = lines(passwd).find(|f| number(f.get(2)) == Some(uid));
        let names = lines(group)
            .filter_map(|f| Some((number(f.get(2))?, text(f[0]))))
            .collect();
        let Some((name, primary)) = account.and_then(|f| Some((f[0], number(f.get(3))?))) else {
            return PrivateGroup {
                primary: None,
                shared: Some(Shared::NoAccount),
                names,
            };
        };
        let shared = Self::sharer(passwd, group, uid, name, primary);
        PrivateGroup {
            primary: Some(primary),
            shared,
            names,
        }
    }

    /// Who else is in group `gid`, the primary group of the account `name` (uid `uid`).
    fn sharer(passwd: &[u8], group: &[u8], uid: u32, name: &[u8], gid: u32) -> Option<Shared> {
        if let Some(other) =
            lines(passwd).find(|f| number(f.get(3)) == Some(gid) && number(f.get(2)) != Some(uid))
        {
            return Some(Shared::PrimaryOf(text(other[0])));
        }
        if group.split(|&b| b == b'\n').any(|l| l.starts_with(b"+")) {
            return Some(Shared::Nis);
        }
        let mut found = false;
        for fields in lines(group).filter(|f| number(f.get(2)) == Some(gid)) {
            found = true;
            let members = fields.get(3).copied().unwrap_or_default();
            if let Some(other) = members
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .find(|m| !m.is_empty() && *m != name)
            {
                return Some(Shared::Member(text(other)));
            }
        }
        (!found).then_some(Shared::NoGroupLine)
    }

    /// The caller's private group, if its primary group is one.
    pub fn gid(&self) -> Option<u32> {
        self.primary.filter(|_| self.shared.is_none())
    }

    /// Whether group `gid` is the caller's alone; else the group and why not.
    pub fn check(&self, gid: u32) -> Result<(), NotPrivate> {
        let why = match (&self.shared, self.primary) {
            (Some(Shared::NoAccount), _) => Shared::NoAccount,
            (_, Some(primary)) if primary != gid => Shared::NotPrimary,
            (None, _) => return Ok(()),
            (Some(shared), _) => shared.clone(),
        };
        let group = match self.names.iter().find(|(g, _)| *g == gid) {
            Some((_, name)) => format!("group {name} ({gid})"),
            None => format!("group {gid}"),
        };
        Err(NotPrivate { group, why })
    }
}

/// Whether anyone but a directory's owner may write to it, by its mode and group: `group`
/// says whether a group is the caller's alone. Err says who, for a message ("mode 0775 makes
/// it writable by group staff (50), and it is not your primary group").
pub fn others_write(
    mode: u32,
    gid: u32,
    group: &dyn Fn(u32) -> Result<(), NotPrivate>,
) -> Result<(), String> {
    let shown = mode & 0o7777;
    if mode & 0o002 != 0 {
        return Err(format!("mode {shown:04o} makes it writable by others"));
    }
    if mode & 0o020 != 0 {
        group(gid).map_err(|n| {
            format!(
                "mode {shown:04o} makes it writable by {}, and {}",
                n.group, n.why
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{PrivateGroup, Shared, others_write};

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          alice:x:1000:1000::/home/alice:/bin/bash\n\
                          bob:x:1001:1001::/home/bob:/bin/bash\n\
                          carol:x:1002:1001::/home/carol:/bin/bash\n\
                          dave:x:1003:1003::/home/dave:/bin/bash\n\
                          erin:x:1004:1004::/home/erin:/bin/bash\n\
                          frank:x:1005:100::/home/frank:/bin/bash\n";
    const GROUP: &str = "root:x:0:\n\
                         users:x:100:alice,bob\n\
                         alice:x:1000:\n\
                         bob:x:1001:\n\
                         dave:x:1003:dave,erin\n\
                         erin:x:1004: erin \n\
                         alias:x:1004:\n";

    #[test]
    fn private_group_rows() {
        let rows: &[(u32, &str, Option<u32>, Option<Shared>)] = &[
            (1000, GROUP, Some(1000), None),
            (1001, GROUP, None, Some(Shared::PrimaryOf("carol".into()))),
            (1003, GROUP, None, Some(Shared::Member("erin".into()))),
            (1004, GROUP, Some(1004), None),
            (1005, GROUP, None, Some(Shared::Member("alice".into()))),
            (4242, GROUP, None, Some(Shared::NoAccount)),
            (1000, "alice:x:1000:\n+:::\n", None, Some(Shared::Nis)),
            (1000, "users:x:100:\n", None, Some(Shared::NoGroupLine)),
            (
                1000,
                "alice:x:1000:\nfriends:x:1000:bob\n",
                None,
                Some(Shared::Member("bob".into())),
            ),
        ];
        for (uid, group, gid, shared) in rows {
            let judged = PrivateGroup::parse(PASSWD.as_bytes(), group.as_bytes(), *uid);
            assert_eq!(judged.gid(), *gid, "{uid} {group:?}");
            assert_eq!(judged.shared, *shared, "{uid} {group:?}");
        }
    }

    #[test]
    fn check_and_others_write_rows() {
        let alice = PrivateGroup::parse(PASSWD.as_bytes(), GROUP.as_bytes(), 1000);
        let bob = PrivateGroup::parse(PASSWD.as_bytes(), GROUP.as_bytes(), 1001);
        let nobody = PrivateGroup::parse(PASSWD.as_bytes(), GROUP.as_bytes(), 4242);
        let rows: &[(&PrivateGroup, u32, u32, Result<(), &str>)] = &[
            (&alice, 0o40755, 1000, Ok(())),
            (&alice, 0o40775, 1000, Ok(())),
            (&alice, 0o40770, 1000, Ok(())),
            (
                &alice,
                0o40757,
                1000,
                Err("mode 0757 makes it writable by others"),
            ),
            (
                &alice,
                0o41777,
                1000,
                Err("mode 1777 makes it writable by others"),
            ),
            (
                &alice,
                0o40775,
                100,
                Err(
                    "mode 0775 makes it writable by group users (100), and it is not your primary group",
                ),
            ),
            (&alice, 0o40755, 100, Ok(())),
            (
                &bob,
                0o40775,
                1001,
                Err(
                    "mode 0775 makes it writable by group bob (1001), and it is also the primary \
                     group of carol (/etc/passwd)",
                ),
            ),
            (
                &nobody,
                0o40770,
                4242,
                Err(
                    "mode 0770 makes it writable by group 4242, and you have no line in \
                     /etc/passwd, where become-root looks for your private group",
                ),
            ),
        ];
        for (judged, mode, gid, want) in rows {
            let got = others_write(*mode, *gid, &|g| judged.check(g));
            assert_eq!(got, want.map_err(str::to_string), "{mode:o} {gid}");
        }
    }
}
