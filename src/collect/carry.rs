//! What a watch's census carries from one pass to the next, so that it reads again only what
//! keyspace events say was written (the events' record of it, `Changes`).
//!
//! A session nothing wrote to since its last whole read holds exactly what that read found,
//! but for its TTLs, which count down. So a census may read it *light* (without the reads whose
//! findings are carried here) or, where what it read is kept here, *settled*: only what its row
//! shows and cannot be kept small (a hash's fields, a string's payload), its TTLs, lengths and
//! size taken from its last whole read. Both are bounded: past their limits a session is read
//! as before, never memory grown.

use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::engine::domain::{Millis, RowFinding};
use crate::engine::names::SessionId;

/// How a census reads one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Every read.
    Whole,
    /// Without the reads that find only what a session keeps while nothing writes to it: the
    /// `PTTL` of its parts but the one that dates its creation, and the `EXISTS` of its related
    /// keys; their findings are carried over.
    Light,
    /// Only its hash fields or its payload; the rest as its last whole read found it.
    Settled(Kept),
}

/// The keys' ends a [`Kept`] holds: the session's own and at most this many less one parts.
pub const KEPT_ENDS: usize = 3;

/// What a session's last whole read found that a settled read takes as it is: when its key and
/// each part end, its history's length, its hash's length and size. 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// The pass that last met it.
    pass: u32,
    /// When the key, then each part, ends (epoch ms); [`NO_TTL`] or [`MISSING`].
    ends: [i64; KEPT_ENDS],
    history_len: u32,
    hash_len: u32,
    payload_bytes: u32,
}

/// An end that never comes (`PTTL` -1), and a key that does not exist (`PTTL` -2).
const NO_TTL: i64 = -1;
const MISSING: i64 = i64::MIN;
/// A length or size not read.
const UNREAD: u32 = u32::MAX;

/// A key whose TTL ends within this is read whole: it may have expired in Redis without the
/// expiry having been noticed (and told) yet.
const ENDING_MS: i64 = 2_000;

impl Kept {
    /// From what a whole read found at `now`: the `PTTL` of the key and each part, the history's
    /// length and the hash's. `None` where one of them was not read, or does not fit.
    pub fn new(
        now: Millis,
        pttls: impl IntoIterator<Item = Option<i64>>,
        history_len: Option<u64>,
        hash_len: Option<u64>,
        payload_bytes: Option<u64>,
    ) -> Option<Kept> {
        let mut ends = [MISSING; KEPT_ENDS];
        for (n, pttl) in pttls.into_iter().enumerate() {
            *ends.get_mut(n)? = match pttl? {
                -2 => MISSING,
                p if p < 0 => NO_TTL,
                p => now.saturating_add(p),
            };
        }
        let small = |v: Option<u64>| match v {
            None => Some(UNREAD),
            Some(v) => u32::try_from(v).ok().filter(|v| *v != UNREAD),
        };
        Some(Kept {
            pass: 0,
            ends,
            history_len: small(history_len)?,
            hash_len: small(hash_len)?,
            payload_bytes: small(payload_bytes)?,
        })
    }

    /// The `PTTL` key `i` (0 the session's own, then each part) would read at `now`.
    pub fn pttl(&self, i: usize, now: Millis) -> Option<i64> {
        match *self.ends.get(i)? {
            MISSING => Some(-2),
            NO_TTL => Some(-1),
            end => Some((end - now).max(0)),
        }
    }

    pub fn history_len(&self) -> Option<u64> {
        Some(self.history_len).filter(|n| *n != UNREAD).map(u64::from)
    }

    pub fn hash_len(&self) -> Option<u64> {
        Some(self.hash_len).filter(|n| *n != UNREAD).map(u64::from)
    }

    pub fn payload_bytes(&self) -> Option<u64> {
        Some(self.payload_bytes).filter(|n| *n != UNREAD).map(u64::from)
    }

    /// Whether a key of it ends soon after `now` (or has ended).
    fn ending(&self, now: Millis) -> bool {
        self.ends.iter().any(|end| *end >= 0 && *end <= now.saturating_add(ENDING_MS))
    }
}

/// What a census keeps of each session's last whole read for reading it light or settled later:
/// the findings of the reads a light read leaves out (a part's `PTTL`: no TTL, outliving the
/// session), which hold exactly while nothing writes to its keys; whether any of its related
/// keys existed (a lock, a rate-limit counter: their findings change with time alone, so such a
/// session is always read whole); and, for at most [`KEPT_MAX`] sessions, what a settled read
/// takes as it is ([`Kept`]). The findings are bounded too: sessions with either are few; past
/// [`CARRIED_MAX`] none more is kept and the next pass reads every session whole. Only a pass
/// that ended lets go of what it did not meet, and only after one may the next read light.
#[derive(Debug, Default)]
pub struct Carried {
    hasher: std::hash::RandomState,
    /// By the id's hash: the pass that last read it, its findings, and whether a related key
    /// of it existed.
    by_id: HashMap<u64, (u64, Vec<RowFinding>, bool)>,
    /// By the id's hash.
    kept: HashMap<u64, Kept>,
    pass: u64,
    /// The last pass ended, and nothing had to be let go for want of room.
    whole: bool,
    overflowed: bool,
}

/// The most sessions whose findings [`Carried`] keeps.
pub const CARRIED_MAX: usize = 50_000;

/// The most sessions [`Carried`] keeps a [`Kept`] of: 7/8 of a power of two, the most a table
/// of that many slots holds before it doubles (12.8 MB, 49 bytes a slot).
pub const KEPT_MAX: usize = (1 << 18) / 8 * 7;

impl Carried {
    /// A pass begins. Returns whether it may read sessions light.
    pub fn turn(&mut self) -> bool {
        self.pass += 1;
        let ended = std::mem::take(&mut self.whole);
        let overflowed = std::mem::take(&mut self.overflowed);
        ended && !overflowed
    }

    /// The pass ended: what it did not meet is let go (ended sessions), and the next may read
    /// light.
    pub fn pass_done(&mut self) {
        let pass = self.pass;
        self.by_id.retain(|_, (seen, _, _)| *seen == pass);
        self.kept.retain(|_, kept| kept.pass == pass as u32);
        self.whole = true;
    }

    /// How to read `id`, which nothing wrote to since its last read, at `now`: whole when a
    /// related key of it existed then; settled when what it read is kept and no key of it ends
    /// soon; else light.
    pub fn read(&self, id: &SessionId, now: Millis) -> Read {
        let hash = self.hasher.hash_one(id.as_bytes());
        if self.by_id.get(&hash).is_some_and(|(_, _, related)| *related) {
            return Read::Whole;
        }
        match self.kept.get(&hash) {
            Some(kept) if !kept.ending(now) => Read::Settled(*kept),
            _ => Read::Light,
        }
    }

    /// The findings kept for a session read light.
    pub fn of(&mut self, id: &SessionId) -> Vec<RowFinding> {
        let pass = self.pass;
        match self.by_id.get_mut(&self.hasher.hash_one(id.as_bytes())) {
            Some((seen, findings, _)) => {
                *seen = pass;
                findings.clone()
            }
            None => Vec::new(),
        }
    }

    /// A session read whole or settled: what the reads a light read leaves out found, whether a
    /// related key existed, and what a settled read may take as it is.
    pub fn keep(&mut self, id: &SessionId, findings: Vec<RowFinding>, related: bool, kept: Option<Kept>) {
        let key = self.hasher.hash_one(id.as_bytes());
        if findings.is_empty() && !related {
            self.by_id.remove(&key);
        } else if self.by_id.len() < CARRIED_MAX || self.by_id.contains_key(&key) {
            self.by_id.insert(key, (self.pass, findings, related));
        } else {
            self.overflowed = true;
        }
        match kept {
            Some(kept) if self.kept.len() < KEPT_MAX || self.kept.contains_key(&key) => {
                self.kept.insert(key, Kept { pass: self.pass as u32, ..kept });
            }
            _ => {
                self.kept.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_read_counts_its_ttls_down_and_says_what_it_did_not_read() {
        let kept = Kept::new(1_000, [Some(60_000), Some(-1), Some(-2)], Some(7), None, Some(512)).unwrap();
        assert_eq!(kept.pttl(0, 21_000), Some(40_000));
        assert_eq!((kept.pttl(1, 21_000), kept.pttl(2, 21_000), kept.pttl(3, 21_000)), (Some(-1), Some(-2), None));
        assert_eq!((kept.history_len(), kept.hash_len(), kept.payload_bytes()), (Some(7), None, Some(512)));
        assert!(!kept.ending(58_000) && kept.ending(59_500) && kept.ending(70_000));
        // A reply not read, more keys than it holds, or a size that does not fit: not kept.
        assert_eq!(Kept::new(0, [Some(1), None], None, None, None), None);
        assert_eq!(Kept::new(0, [Some(1); KEPT_ENDS + 1], None, None, None), None);
        assert_eq!(Kept::new(0, [Some(1)], None, None, Some(u64::from(u32::MAX))), None);
        assert_eq!(std::mem::size_of::<Kept>(), 40);
    }

    #[test]
    fn a_session_is_read_settled_only_while_kept_whole_and_not_ending() {
        let mut carried = Carried::default();
        let (a, b, c) = (SessionId::from("a"), SessionId::from("b"), SessionId::from("c"));
        let kept = |pttl| Kept::new(0, [Some(pttl)], None, None, None);
        assert!(!carried.turn(), "nothing carried before a pass ended");
        carried.keep(&a, Vec::new(), false, kept(60_000));
        carried.keep(&b, Vec::new(), true, kept(60_000));
        carried.keep(&c, Vec::new(), false, None);
        carried.pass_done();
        assert!(carried.turn());
        assert!(matches!(carried.read(&a, 10_000), Read::Settled(k) if k.pttl(0, 10_000) == Some(50_000)));
        assert_eq!(carried.read(&a, 59_000), Read::Light, "ending: read");
        assert_eq!(carried.read(&b, 10_000), Read::Whole, "a related key existed");
        assert_eq!(carried.read(&c, 10_000), Read::Light);
        // Not met in a pass that ended: let go.
        carried.keep(&b, Vec::new(), false, kept(60_000));
        carried.pass_done();
        carried.turn();
        assert_eq!(carried.read(&a, 10_000), Read::Light);
        assert!(matches!(carried.read(&b, 10_000), Read::Settled(_)));
    }
}
