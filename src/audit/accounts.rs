//! The passwd and group tables `check` and `next` look ids up in: [`Accounts`], read a line at
//! a time, with its id index and its name table. Only names and ids are kept, because that is
//! all a subordinate range can collide with (CVE-2024-56433) or be granted by.
#![forbid(unsafe_code)]

use std::cell::OnceCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;

use super::Which;
use super::lines::decimal;
use super::render::show_bytes;

/// FxHash's multiply-rotate, then a finalizer: the name tables hold a line per account, so a million-line passwd
/// is hashed a million times, and an administrator's own files need no protection from keys
/// chosen to collide (which is what the standard library's SipHash pays for).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    /// murmur3's fmix64: the multiply leaves the low bits depending on the low bytes only,
    /// and the table picks buckets by the low bits ("user1234" and "user1299" would share
    /// one).
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Account and group names and ids, from passwd(5) and group(5) text. Only the name and the id
/// field of each line are kept (lines that have no number there, and NIS `+`/`-` lines, are
/// skipped), in one buffer of names and 12 bytes per account (4 more for `check` when a uid
/// has two login names): a passwd of a million accounts takes about a third of its own size.
#[derive(Debug, Default)]
pub struct Accounts {
    /// Every name, one after the other.
    names: Vec<u8>,
    /// Each passwd line's account, in file order.
    pub(super) users: Vec<Account>,
    /// Each group line's group, in file order.
    groups: Vec<Account>,
    /// (uid, index in `users`), sorted.
    uids: Vec<(u32, u32)>,
    /// (gid, index in `groups`), sorted.
    gids: Vec<(u32, u32)>,
    /// Login name to index in `users`. Built on first use: see
    /// [`Owners::resolve`](super::owners::Owners::resolve) for why it is often never needed.
    by_name: OnceCell<NameTable>,
    /// For each index in `users`, the first index with the same uid: one number per uid, the
    /// same for every login name of it, that `check` keys owners by and indexes vectors with.
    /// Built on first use, and only when some uid has two login names (`None` otherwise: each
    /// index is its own).
    first_of_uid: OnceCell<Option<Vec<u32>>>,
}

/// Which account file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Passwd,
    Group,
}

/// A name (in [`Accounts::names`]) and an id.
#[derive(Debug, Clone, Copy)]
pub(super) struct Account {
    at: u32,
    len: u32,
    pub(super) id: u32,
}

impl Accounts {
    /// From passwd and group text in memory.
    pub fn parse(passwd: &[u8], group: &[u8]) -> Accounts {
        Accounts::read(passwd, group).expect("reading from memory cannot fail")
    }

    /// From passwd and group files, a line at a time, so that neither is ever held whole.
    /// An error says which of the two could not be read.
    pub fn read(
        passwd: impl io::BufRead,
        group: impl io::BufRead,
    ) -> Result<Accounts, (Table, io::Error)> {
        let mut accounts = Accounts::default();
        accounts
            .read_table(passwd, Table::Passwd)
            .map_err(|e| (Table::Passwd, e))?;
        accounts
            .read_table(group, Table::Group)
            .map_err(|e| (Table::Group, e))?;
        let sorted = |list: &[Account]| {
            let mut ids: Vec<(u32, u32)> = (0..).zip(list).map(|(i, a)| (a.id, i)).collect();
            ids.sort_unstable();
            ids
        };
        accounts.uids = sorted(&accounts.users);
        accounts.gids = sorted(&accounts.groups);
        Ok(accounts)
    }

    fn read_table(&mut self, mut reader: impl io::BufRead, table: Table) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let Some((name, id)) = id_line(line.strip_suffix(b"\n").unwrap_or(&line)) else {
                continue;
            };
            let (Ok(at), Ok(len)) = (u32::try_from(self.names.len()), u32::try_from(name.len()))
            else {
                return Err(io::Error::other("more than 4 GiB of names"));
            };
            self.names.extend_from_slice(name);
            let list = match table {
                Table::Passwd => &mut self.users,
                Table::Group => &mut self.groups,
            };
            list.push(Account { at, len, id });
        }
    }

    pub(super) fn name(&self, account: Account) -> &[u8] {
        &self.names[account.at as usize..][..account.len as usize]
    }

    /// Index in `users` of login `name`: the first line of that name, as getpwnam(3) finds.
    pub(super) fn index_of(&self, name: &[u8]) -> Option<usize> {
        self.by_name
            .get_or_init(|| NameTable::new(self))
            .find(self, name)
    }

    /// The uid of login `name`.
    pub fn uid_of(&self, name: &[u8]) -> Option<u32> {
        self.index_of(name).map(|i| self.users[i].id)
    }

    /// The login names with uid `uid`, in file order.
    pub fn names_of(&self, uid: u32) -> Vec<&[u8]> {
        let i = self.uids.partition_point(|&(u, _)| u < uid);
        let mut found: Vec<u32> = self.uids[i..]
            .iter()
            .take_while(|&&(u, _)| u == uid)
            .map(|&(_, index)| index)
            .collect();
        found.sort_unstable();
        found
            .iter()
            .map(|&i| self.name(self.users[i as usize]))
            .collect()
    }

    /// The first login name with uid `uid`.
    pub fn name_of(&self, uid: u32) -> Option<&[u8]> {
        self.names_of(uid).first().copied()
    }

    /// Index in `users` of the first account with uid `uid`.
    pub(super) fn account_with_uid(&self, uid: u32) -> Option<usize> {
        let i = self.uids.partition_point(|&(u, _)| u < uid);
        // Sorted by (uid, index): the first of a uid is its first line.
        match self.uids.get(i) {
            Some(&(u, index)) if u == uid => Some(index as usize),
            _ => None,
        }
    }

    /// [`Accounts::account_with_uid`] of the uid of `users[index]`, without a search.
    pub(super) fn first_of_uid(&self, index: usize) -> usize {
        let first = self.first_of_uid.get_or_init(|| {
            if !self.uids.windows(2).any(|pair| pair[0].0 == pair[1].0) {
                return None;
            }
            let mut first = vec![0; self.users.len()];
            let mut run = (None, 0);
            for &(uid, index) in &self.uids {
                if run.0 != Some(uid) {
                    run = (Some(uid), index);
                }
                first[index as usize] = run.1;
            }
            Some(first)
        });
        match first {
            Some(first) => first[index] as usize,
            None => index,
        }
    }

    /// The account at `index` in `users`, as `name (uid N)`, for messages.
    pub(super) fn describe(&self, index: usize) -> String {
        let account = self.users[index];
        format!("{} (uid {})", show_bytes(self.name(account)), account.id)
    }

    /// The sorted uids (for the subuid file) or gids (subgid), with the accounts they index.
    pub(super) fn ids(&self, which: Which) -> (&[(u32, u32)], &[Account]) {
        match which {
            Which::Subuid => (&self.uids, &self.users),
            Which::Subgid => (&self.gids, &self.groups),
        }
    }

    /// Every uid and gid, sorted (with repeats).
    pub(super) fn all_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.uids.iter().chain(&self.gids).map(|p| p.0).collect();
        ids.sort_unstable();
        ids
    }
}

/// An open-addressing table from login name to index in [`Accounts::users`]: half the slots
/// empty, each slot 8 bytes holding the index and 32 bits of the name's hash, so a probe reads
/// a name (a cache miss, for a million accounts) only when the hash bits match. Smaller than a
/// `HashMap` of slices, which would also borrow from the struct that owns it.
#[derive(Debug)]
struct NameTable {
    /// (high 32 bits of the hash) << 32 | (index + 1); 0 for an empty slot.
    slots: Vec<u64>,
}

impl NameTable {
    fn new(accounts: &Accounts) -> NameTable {
        let size = (accounts.users.len() * 2).next_power_of_two().max(16);
        let mut table = NameTable {
            slots: vec![0; size],
        };
        for (index, &account) in (1..).zip(&accounts.users) {
            let name = accounts.name(account);
            let (slot, tag) = table.probe(accounts, name);
            // The first line of a name wins.
            if table.slots[slot] == 0 {
                table.slots[slot] = tag | index;
            }
        }
        table
    }

    /// The slot holding `name`, or the empty slot where it would go; and the name's tag.
    fn probe(&self, accounts: &Accounts, name: &[u8]) -> (usize, u64) {
        let mask = self.slots.len() - 1;
        let mut hasher = FastHasher::default();
        hasher.write(name);
        let hash = hasher.finish();
        let tag = hash & 0xffff_ffff_0000_0000;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                0 => return (slot, tag),
                entry
                    if entry & 0xffff_ffff_0000_0000 == tag
                        && accounts.name(accounts.users[(entry as u32 - 1) as usize]) == name =>
                {
                    return (slot, tag);
                }
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    fn find(&self, accounts: &Accounts, name: &[u8]) -> Option<usize> {
        match self.slots[self.probe(accounts, name).0] {
            0 => None,
            entry => Some((entry as u32 - 1) as usize),
        }
    }
}

/// (name, id) of a `name:x:id:...` line.
fn id_line(line: &[u8]) -> Option<(&[u8], u32)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || matches!(name[0], b'+' | b'-') {
        return None;
    }
    let rest = &line[colon + 1..];
    let rest = &rest[rest.iter().position(|&b| b == b':')? + 1..];
    let end = rest.iter().position(|&b| b == b':').unwrap_or(rest.len());
    let id = decimal(&rest[..end])?;
    Some((name, u32::try_from(id).ok()?))
}
