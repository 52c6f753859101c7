//! Whom a line grants ids to, as newuidmap's `find_range` matches owners (by login name, or by
//! uid in plain decimal), and the findings about a granted range's owner and start:
//! padded-owner, missing-owner, low-range. Each granted range is then kept for the sweeps.
#![forbid(unsafe_code)]

use std::borrow::Cow;

use super::accounts::{Accounts, FastMap};
use super::lines::{canonical_decimal, decimal};
use super::overlaps::Granted;
use super::render::show_bytes;
use super::{FileCheck, Finding, ID_LIMIT, Kind, LOW_LIMIT, Span};

/// How one account's identity is compared: two owner fields are the same owner when both
/// name (or number) the same uid, as newuidmap's `find_range` matches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum OwnerKey {
    Uid(u32),
    /// An owner field that is no login name and no uid: compared as text (by its index in an
    /// interning table).
    Text(u32),
}

/// Resolves owner fields to [`OwnerKey`]s, interning the ones that are not accounts.
pub(super) struct Owners<'a, 'r> {
    accounts: &'r Accounts,
    /// Where in passwd order the next owner is expected.
    cursor: usize,
    texts: FastMap<Cow<'a, [u8]>, u32>,
}

impl<'a, 'r> Owners<'a, 'r> {
    pub(super) fn new(accounts: &'r Accounts) -> Self {
        Owners {
            accounts,
            cursor: 0,
            texts: FastMap::default(),
        }
    }

    /// The owner's key and whether it is an account.
    ///
    /// useradd and newusers append to passwd and to subuid/subgid together, so owners mostly
    /// come in passwd order: the passwd line after the last match is tried first, a sequential
    /// read. Only an owner found elsewhere costs a lookup in the name table (built then), which
    /// for a million accounts is a cache miss or three, several times slower than the rest of
    /// the line's checks together. (A name that passwd lists twice, which pwck(8) reports,
    /// may then resolve to its later line.)
    pub(super) fn resolve(&mut self, owner: Cow<'a, [u8]>) -> (OwnerKey, bool) {
        let accounts = self.accounts;
        if let Some(&account) = accounts.users.get(self.cursor)
            && accounts.name(account) == &owner[..]
        {
            self.cursor += 1;
            return (OwnerKey::Uid(account.id), true);
        }
        if let Some(i) = accounts.index_of(&owner) {
            self.cursor = i + 1;
            return (OwnerKey::Uid(accounts.users[i].id), true);
        }
        if let Some(uid) = canonical_decimal(&owner).and_then(|n| u32::try_from(n).ok()) {
            return (OwnerKey::Uid(uid), self.accounts.has_uid(uid));
        }
        if let Some(&index) = self.texts.get(&owner[..]) {
            return (OwnerKey::Text(index), false);
        }
        let index = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        self.texts.insert(owner, index);
        (OwnerKey::Text(index), false)
    }
}

/// The checks on a range newuidmap reads: its owner, where it starts; then keep it for the
/// sweeps.
pub(super) fn grant<'a>(
    state: &mut FileCheck<'a, '_>,
    number: usize,
    owner: Cow<'a, [u8]>,
    start: u64,
    count: u64,
) {
    if count == 0 {
        return;
    }
    let (key, exists) = state.owners.resolve(owner.clone());
    let range = Some(Span { start, count });
    let mut push = |kind: Kind, detail: Option<String>| {
        state.out.push(Finding {
            kind,
            file: state.which,
            line: number,
            owner: Some(owner.clone()).filter(|o| !o.is_empty()),
            range,
            other: None,
            account: None,
            detail: detail.map(String::into_boxed_str),
        })
    };
    if is_padded_uid(&owner) {
        push(
            Kind::PaddedOwner,
            Some(format!(
                "owner '{}' has leading zeros; newuidmap matches a uid only when it is written \
                 as '{}', so this range belongs to no one",
                show_bytes(&owner),
                decimal(&owner).unwrap_or(0)
            )),
        );
    } else if !exists {
        push(Kind::MissingOwner, None);
    }
    if start < LOW_LIMIT {
        push(Kind::LowRange, None);
    }
    state.granted.push(Granted {
        start: start.min(ID_LIMIT + 1),
        end: start.saturating_add(count).min(ID_LIMIT + 1),
        count,
        key,
        owner,
        line: number,
    });
}

/// "01000": digits with a leading zero. newuidmap compares owners to `sprintf("%lu", uid)`.
pub(super) fn is_padded_uid(owner: &[u8]) -> bool {
    owner.len() > 1 && owner[0] == b'0' && decimal(owner).is_some()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Row, check_rows};

    #[test]
    fn owner_table() {
        let rows: Vec<Row> = vec![
            (
                "missing owner",
                b"dave:100000:65536\n4242:165536:10\n",
                vec![(1, "missing-owner"), (2, "missing-owner")],
            ),
            (
                "padded owner",
                b"01000:100000:65536\n",
                vec![(1, "padded-owner")],
            ),
        ];
        check_rows(rows);
    }
}
