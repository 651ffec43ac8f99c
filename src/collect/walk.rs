//! The one walk over a node's keyspace: `SCAN`, a call at a time, resumable, with its
//! progress, each call sized and paced by the node's [`Pacer`]. Layout detection, the first
//! page and the census of a layout without an index, and the search for a session's wildcard
//! related keys (for the inspector and for a write's plan) all walk with it; nothing else in
//! sessiontop sends `SCAN`.
//!
//! A [`KeyWalk`] belongs to one node: its cursor means nothing to another. A [`KeyspaceWalk`]
//! walks a whole target, each primary in turn (a standalone server is its only one). `SCAN`
//! may return a key twice and keys written during the walk may be missed or met; the callers
//! count each key once.

use std::sync::{Arc, Mutex};

use crate::conn::link::{Failure, Link};
use crate::conn::pace::{self, Kind, Pacer};
use crate::conn::route::Router;
use crate::conn::topology::Node;

/// How many keys one `SCAN` looks at (its `COUNT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Always this many (a bounded sample: detection).
    Fixed(usize),
    /// As many as one command may look at without costing the server more than
    /// [`pace::COMMAND_TARGET_US`], by the node's measured cost, and at most this many.
    UpTo(usize),
}

/// Whether a call waits for the node's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Wait until the call's cost fits the budget: work that can wait (the census, searches).
    Wait,
    /// Go at once: someone is waiting for the first screen (detection, the first page).
    Now,
}

/// A `SCAN` over one node's keyspace, optionally `MATCH`ing a pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyWalk {
    pattern: Option<Vec<u8>>,
    cursor: u64,
    done: bool,
    calls: u64,
    /// `COUNT` units asked for so far: about how many keys the walk has looked at.
    looked_at: u64,
    /// The node's keyspace when the walk began (`DBSIZE`), for progress.
    keyspace: Option<u64>,
}

impl KeyWalk {
    /// A walk over every key.
    pub fn all() -> KeyWalk {
        KeyWalk { pattern: None, cursor: 0, done: false, calls: 0, looked_at: 0, keyspace: None }
    }

    /// A walk over the keys that match a glob pattern.
    pub fn matching(pattern: Vec<u8>) -> KeyWalk {
        KeyWalk { pattern: Some(pattern), ..KeyWalk::all() }
    }

    /// The keyspace's size when the walk began, for progress.
    pub fn with_keyspace(mut self, keys: Option<u64>) -> KeyWalk {
        self.keyspace = keys;
        self
    }

    pub fn keyspace(&self) -> Option<u64> {
        self.keyspace
    }

    /// Whether the cursor has come back to 0: every key that lived throughout was returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// `SCAN` calls made.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// About how many keys the walk has looked at (the `COUNT`s asked for).
    pub fn looked_at(&self) -> u64 {
        self.looked_at
    }

    /// How far the walk has come, 0 to 1, estimated from its cursor: Redis walks its hash table
    /// in reverse-binary order, so the cursor's bits reversed over the table size are the share
    /// done. `None` without the keyspace's size.
    pub fn fraction(&self) -> Option<f64> {
        if self.done {
            return Some(1.0);
        }
        self.keyspace.map(|keys| scan_fraction(self.cursor, keys))
    }

    /// One `SCAN` call: the keys it returned (none once the walk is done).
    pub async fn next(
        &mut self,
        link: &mut Link,
        pacer: &Mutex<Pacer>,
        count: Count,
        pacing: Pacing,
    ) -> Result<Vec<Vec<u8>>, Failure> {
        if self.done {
            return Ok(Vec::new());
        }
        let count = match (count, pacing) {
            (Count::Fixed(n), Pacing::Now) => n,
            (Count::Fixed(n), Pacing::Wait) => {
                let cost = pacer.lock().map(|p| p.cost_us(Kind::Scan, 1, n as u64)).unwrap_or(0.0);
                pace::pace(pacer, cost, 1).await;
                n
            }
            (Count::UpTo(max), Pacing::Now) => pacer.lock().map(|p| p.page_size(Kind::Scan, max)).unwrap_or(max),
            (Count::UpTo(max), Pacing::Wait) => pace::paced_page(pacer, Kind::Scan, max).await,
        };
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(self.cursor);
        if let Some(pattern) = &self.pattern {
            cmd.arg("MATCH").arg(pattern);
        }
        cmd.arg("COUNT").arg(count);
        let (next, keys): (u64, Vec<Vec<u8>>) = link.query(&cmd).await?;
        self.calls += 1;
        self.looked_at += count as u64;
        self.cursor = next;
        self.done = next == 0;
        Ok(keys)
    }
}

/// A walk over a target's keyspace: every shard's, one after the other.
#[derive(Debug, Clone)]
pub struct KeyspaceWalk {
    /// The primaries when the walk began, each with its walk.
    nodes: Vec<(Arc<Node>, KeyWalk)>,
    /// The node being walked.
    at: usize,
    /// Whether each node's keyspace is asked for (`DBSIZE`) as its walk begins, for progress.
    sized: bool,
}

impl KeyspaceWalk {
    /// A walk over `router`'s target, with `walk` (every key, or those matching) on each
    /// shard's node: its primary, or the replica `--read-from` picks.
    pub fn new(router: &Router, walk: KeyWalk) -> KeyspaceWalk {
        let nodes = router.read_nodes().into_iter().map(|n| (n, walk.clone())).collect();
        KeyspaceWalk { nodes, at: 0, sized: false }
    }

    /// Asks each node's keyspace size as its walk begins, so that progress can be estimated.
    pub fn sized(mut self) -> KeyspaceWalk {
        self.sized = true;
        self
    }

    pub fn is_done(&self) -> bool {
        self.at >= self.nodes.len()
    }

    /// `SCAN` calls made, on every node.
    pub fn calls(&self) -> u64 {
        self.nodes.iter().map(|(_, w)| w.calls()).sum()
    }

    /// About how many keys the walk has looked at, on every node.
    pub fn looked_at(&self) -> u64 {
        self.nodes.iter().map(|(_, w)| w.looked_at()).sum()
    }

    /// How far the walk has come, 0 to 1: the nodes done, and the share of the one being walked.
    pub fn fraction(&self) -> Option<f64> {
        if self.nodes.is_empty() || self.is_done() {
            return Some(1.0);
        }
        let current = self.nodes.get(self.at).and_then(|(_, w)| w.fraction())?;
        Some((self.at as f64 + current) / self.nodes.len() as f64)
    }

    /// One `SCAN` call on the node being walked, paced by that node's pacer.
    pub async fn next(&mut self, router: &Router, count: Count, pacing: Pacing) -> Result<Vec<Vec<u8>>, Failure> {
        let Some((node, walk)) = self.nodes.get_mut(self.at) else { return Ok(Vec::new()) };
        let mut link = router.link(node).await?;
        if self.sized && walk.calls() == 0 && walk.keyspace().is_none() {
            walk.keyspace = link.query::<u64>(&redis::cmd("DBSIZE")).await.ok();
        }
        let keys = walk.next(&mut link, node.pacer(), count, pacing).await?;
        if walk.is_done() {
            self.at += 1;
        }
        Ok(keys)
    }
}

/// How far a `SCAN` has come, estimated from its cursor over a table sized as the power of two
/// at or above the key count.
pub fn scan_fraction(cursor: u64, keys: u64) -> f64 {
    let bits = 64 - keys.max(2).saturating_sub(1).leading_zeros();
    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let reversed = (cursor & mask).reverse_bits() >> (64 - bits);
    (reversed as f64 / (1u64 << bits.min(63)) as f64).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_fraction_walks_reverse_binary() {
        // Table of 8 slots: cursor order 0,4,2,6,1,5,3,7.
        assert_eq!(scan_fraction(0, 8), 0.0);
        assert_eq!(scan_fraction(4, 8), 0.125);
        assert_eq!(scan_fraction(6, 8), 0.375);
        assert_eq!(scan_fraction(7, 8), 0.875);
        assert!(scan_fraction(12345, 1_000_000) < 1.0);
    }

    #[test]
    fn a_walk_that_is_done_says_so() {
        let mut walk = KeyWalk::matching(b"trt:*".to_vec()).with_keyspace(Some(8));
        assert_eq!(walk.fraction(), Some(0.0));
        walk.cursor = 6;
        assert_eq!(walk.fraction(), Some(0.375));
        walk.done = true;
        assert_eq!(walk.fraction(), Some(1.0));
        assert_eq!(KeyWalk::all().fraction(), None, "no size, no estimate");
    }
}
