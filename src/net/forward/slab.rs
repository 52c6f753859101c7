//! The event loop's bookkeeping: a [`Slab`] of entries under generational [`Key`]s, and the
//! [`Token`] that names an epoll event's subject in its 64 bits of data.

/// A slot of a [`Slab`] and its generation: a key outlives its entry harmlessly, and an
/// event still queued for a closed connection finds nothing rather than its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) index: u32,
    pub(super) generation: u32,
}

/// A vector of entries with reusable slots. (At most 2^24 of them fit a [`Token`]: more than
/// the descriptors a process may have.)
pub(super) struct Slab<T> {
    entries: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    pub(super) fn insert(&mut self, value: T) -> Key {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.entries.push((0, None));
                (self.entries.len() - 1) as u32
            }
        };
        let entry = &mut self.entries[index as usize];
        entry.1 = Some(value);
        Key {
            index,
            generation: entry.0,
        }
    }

    pub(super) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.entries.get_mut(key.index as usize) {
            Some((generation, value)) if *generation == key.generation => value.as_mut(),
            _ => None,
        }
    }

    pub(super) fn remove(&mut self, key: Key) -> Option<T> {
        let (generation, value) = self.entries.get_mut(key.index as usize)?;
        if *generation != key.generation || value.is_none() {
            return None;
        }
        *generation = generation.wrapping_add(1);
        self.free.push(key.index);
        value.take()
    }

    /// How many entries there are.
    pub(super) fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = (Key, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, (generation, v))| {
                let key = Key {
                    index: i as u32,
                    generation: *generation,
                };
                v.as_ref().map(|v| (key, v))
            })
    }
}

/// What an epoll event is about, carried in its 64 bits of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    Listener(u32),
    UdpHost(u32),
    Channel,
    /// The host side of a TCP connection (the client's).
    Host(Key),
    /// The inside side of a TCP connection (the server's).
    Inside(Key),
    /// A UDP flow's socket inside.
    Flow(Key),
    /// Live ports: changes to carry out (control.rs).
    Changes,
}

impl Token {
    /// Kind in the top 8 bits, then a 24-bit index, then a 32-bit generation.
    pub(super) fn encode(self) -> u64 {
        let (kind, index, generation) = match self {
            Token::Listener(i) => (1, i, 0),
            Token::UdpHost(i) => (2, i, 0),
            Token::Channel => (3, 0, 0),
            Token::Host(k) => (4, k.index, k.generation),
            Token::Inside(k) => (5, k.index, k.generation),
            Token::Flow(k) => (6, k.index, k.generation),
            Token::Changes => (7, 0, 0),
        };
        (kind << 56) | (u64::from(index & 0xff_ffff) << 32) | u64::from(generation)
    }

    pub(super) fn decode(data: u64) -> Option<Token> {
        let index = ((data >> 32) & 0xff_ffff) as u32;
        let key = Key {
            index,
            generation: data as u32,
        };
        Some(match data >> 56 {
            1 => Token::Listener(index),
            2 => Token::UdpHost(index),
            3 => Token::Channel,
            4 => Token::Host(key),
            5 => Token::Inside(key),
            6 => Token::Flow(key),
            7 => Token::Changes,
            _ => return None,
        })
    }
}
