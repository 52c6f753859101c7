//! Whom a line grants ids to, as newuidmap's `find_range` matches owners (by login name, or by
//! uid in plain decimal), and the findings about a granted range's owner and start:
//! ambiguous-owner, padded-owner, missing-owner, low-range. Each granted range is then kept
//! for the sweeps, and counted for its owner (for `maps`).
//!
//! `subid show` (`users::user_ranges`) lists a line for every account this module grants it
//! to: a test holds the two to the same answer.
#![forbid(unsafe_code)]

use std::borrow::Cow;

use super::accounts::{Accounts, FastMap};
use super::lines::{canonical_decimal, decimal};
use super::maps::MAY_NOT_FIT;
use super::overlaps::Granted;
use super::render::show_bytes;
use super::{FileCheck, Finding, ID_LIMIT, Kind, LOW_LIMIT, Span};

/// How one account's identity is compared: two owner fields are the same owner when both
/// name (or number) the same uid, as newuidmap's `find_range` matches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum OwnerKey {
    /// An account, by its index in `Accounts::users`, the first line with its uid: equal keys
    /// are equal uids, whichever login name or number a line uses.
    Account(u32),
    /// A uid in plain decimal that no account has.
    Uid(u32),
    /// An owner field that is no login name and no uid: compared as text (by its index in an
    /// interning table).
    Text(u32),
}

impl OwnerKey {
    fn account(index: usize) -> OwnerKey {
        OwnerKey::Account(u32::try_from(index).expect("accounts are indexed by u32"))
    }
}

/// Whom a line is granted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Resolved {
    pub(super) key: OwnerKey,
    /// The account whose uid the owner field spells, when the field is also the login name of
    /// an account with another uid (a user named 4343, another with uid 4343): `find_range`
    /// grants the line to both, the first by name, the second by uid. `key` is the first.
    pub(super) also: Option<OwnerKey>,
}

/// Resolves owner fields to [`OwnerKey`]s, interning the ones that are not accounts, and counts
/// the ranges granted to each account.
pub(super) struct Owners<'a, 'r> {
    accounts: &'r Accounts,
    /// Where in passwd order the next owner is expected.
    cursor: usize,
    texts: FastMap<Cow<'a, [u8]>, u32>,
    /// Ranges granted so far to each [`OwnerKey::Account`], by its index, counted up to 255:
    /// only whether there are [`MAY_NOT_FIT`] matters, and a byte an account keeps a million
    /// accounts at a megabyte.
    account_ranges: Vec<u8>,
    /// Whether some owner has [`MAY_NOT_FIT`] ranges or more, so that `maps` has work to do.
    pub(super) crowded: bool,
    /// Where in `granted` a line is also granted to a second account ([`Resolved::also`]), in
    /// order: `maps` lays those ranges out for both.
    pub(super) shared: Vec<(usize, OwnerKey)>,
}

impl<'a, 'r> Owners<'a, 'r> {
    pub(super) fn new(accounts: &'r Accounts) -> Self {
        Owners {
            accounts,
            cursor: 0,
            texts: FastMap::default(),
            // Zeroed pages cost nothing until a count touches them.
            account_ranges: vec![0; accounts.users.len()],
            crowded: false,
            shared: Vec::new(),
        }
    }

    /// Whom a line with this owner field is granted to.
    ///
    /// useradd and newusers append to passwd and to subuid/subgid together, so owners mostly
    /// come in passwd order: the passwd line after the last match is tried first, a sequential
    /// read. Only an owner found elsewhere costs a lookup in the name table (built then), which
    /// for a million accounts is a cache miss or three, several times slower than the rest of
    /// the line's checks together. (A name that passwd lists twice, which pwck(8) reports,
    /// may then resolve to its later line.)
    pub(super) fn resolve(&mut self, owner: Cow<'a, [u8]>) -> Resolved {
        let accounts = self.accounts;
        let named = match accounts.users.get(self.cursor) {
            Some(&account) if accounts.name(account) == &owner[..] => Some(self.cursor),
            _ => accounts.index_of(&owner),
        };
        if let Some(i) = named {
            self.cursor = i + 1;
            return Resolved {
                key: OwnerKey::account(accounts.first_of_uid(i)),
                also: second_grantee(accounts, &owner, accounts.users[i].id).map(OwnerKey::account),
            };
        }
        let key = if let Some(uid) = canonical_decimal(&owner).and_then(|n| u32::try_from(n).ok()) {
            match accounts.account_with_uid(uid) {
                Some(i) => OwnerKey::account(i),
                None => OwnerKey::Uid(uid),
            }
        } else if let Some(&index) = self.texts.get(&owner[..]) {
            OwnerKey::Text(index)
        } else {
            let index = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
            self.texts.insert(owner, index);
            OwnerKey::Text(index)
        };
        Resolved { key, also: None }
    }

    /// One more range for `key`. Only accounts are counted: for an owner that is none (a
    /// missing-owner note; network accounts are accounts with `--passwd <(getent passwd)`)
    /// there is no own id to lay a map out with, and counting every such number or name would
    /// take a hash table as large as the file.
    fn count(&mut self, key: OwnerKey) {
        if let OwnerKey::Account(i) = key {
            let n = &mut self.account_ranges[i as usize];
            *n = n.saturating_add(1);
            self.crowded |= *n >= MAY_NOT_FIT;
        }
    }

    /// Whether `key` has been granted [`MAY_NOT_FIT`] ranges or more.
    pub(super) fn may_not_fit(&self, key: OwnerKey) -> bool {
        match key {
            OwnerKey::Account(i) => self.account_ranges[i as usize] >= MAY_NOT_FIT,
            OwnerKey::Uid(_) | OwnerKey::Text(_) => false,
        }
    }
}

/// When `owner` is the login name of an account with uid `named_uid`: the first account with
/// the uid `owner` spells in plain decimal, if that is another uid. `find_range` compares a
/// line's owner with the login name first, then with `sprintf("%lu", uid)`, so both accounts
/// are granted the line.
pub(super) fn second_grantee(accounts: &Accounts, owner: &[u8], named_uid: u32) -> Option<usize> {
    // Checked first: most login names do not start with a digit.
    if !owner.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let uid = u32::try_from(canonical_decimal(owner)?).ok()?;
    (uid != named_uid)
        .then(|| accounts.account_with_uid(uid))
        .flatten()
}

/// The checks on a range newuidmap reads: its owner, where it starts; then keep it for the
/// sweeps, and count it for its owner.
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
    let Resolved { key, also } = state.owners.resolve(owner.clone());
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
    let accounts = state.owners.accounts;
    if let (OwnerKey::Account(named), Some(OwnerKey::Account(numbered))) = (key, also) {
        let (named, numbered) = (named as usize, numbered as usize);
        let numbered_name = accounts.name(accounts.users[numbered]);
        push(
            Kind::AmbiguousOwner,
            Some(format!(
                "newuidmap grants range {} both to {}, by login name, and to {}, by uid; each \
                 can act on files the other creates in a user namespace: write {} or {} \
                 instead, whichever is meant",
                Span { start, count },
                accounts.describe(named),
                accounts.describe(numbered),
                show_bytes(numbered_name),
                accounts.users[named].id
            )),
        );
    }
    match key {
        OwnerKey::Account(_) => {}
        // A login name with leading zeros is that account's, and no padded uid.
        _ if is_padded_uid(&owner) => push(
            Kind::PaddedOwner,
            Some(format!(
                "owner '{}' has leading zeros; newuidmap matches a uid only when it is written \
                 as '{}', so this range belongs to no one",
                show_bytes(&owner),
                decimal(&owner).unwrap_or(0)
            )),
        ),
        _ => push(Kind::MissingOwner, None),
    }
    if start < LOW_LIMIT {
        push(Kind::LowRange, None);
    }
    state.owners.count(key);
    if let Some(second) = also {
        state.owners.count(second);
        state.owners.shared.push((state.granted.len(), second));
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
    use super::super::tests::{PASSWD, Row, check_rows, kinds_with};

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
            (
                // Regression: decimal() refused more than 19 digits, zeros included, so this
                // was a missing owner here while become-root called it a padded uid.
                "padded owner of more than 19 digits",
                b"00000000000000000001000:100000:65536\n",
                vec![(1, "padded-owner")],
            ),
        ];
        check_rows(rows);
    }

    /// Issue 8, item 5: newuidmap grants a line to the account with that login name and to the
    /// account with that uid. (passwd, subuid, expected findings)
    #[test]
    fn ambiguous_owner_table() {
        let named_1001: &[u8] = b"1001:x:5000:5000::/:/bin/sh\n";
        let named_4242: &[u8] = b"4242:x:5000:5000::/:/bin/sh\n";
        let named_1000_uid_1000: &[u8] = b"1000:x:1000:1000::/:/bin/sh\n";
        type Row = (
            &'static str,
            &'static [u8],
            &'static [u8],
            Vec<(usize, &'static str)>,
        );
        let rows: Vec<Row> = vec![
            (
                "a login name that is another account's uid",
                named_1001,
                b"1001:100000:65536\n",
                vec![(1, "ambiguous-owner")],
            ),
            (
                "also when found by the passwd-order shortcut",
                named_1001,
                b"root:300000:10\n1001:100000:65536\n",
                vec![(2, "ambiguous-owner")],
            ),
            (
                "a numeric login name that no other account has as uid",
                named_4242,
                b"4242:100000:65536\n",
                vec![],
            ),
            (
                "a numeric login name that is its own uid",
                named_1000_uid_1000,
                b"1000:100000:65536\n",
                vec![],
            ),
            (
                "a padded uid that is a login name is that account's, not padded",
                b"01001:x:5000:5000::/:/bin/sh\n",
                b"01001:100000:65536\n",
                vec![],
            ),
        ];
        for (rule, extra, subuid, expected) in rows {
            let passwd = [PASSWD, extra].concat();
            assert_eq!(kinds_with(&passwd, subuid), expected, "{rule}");
        }
    }
}
