//! The census: one pass over every session of the layout, in bounded batches paced by what
//! they cost Redis ([`crate::conn::pace`]), counting sessions by stage and substate, keys without
//! TTL, undecodable payloads and orphaned index entries.
//!
//! Layouts with an index are walked over the index in score order (which also finds the orphans);
//! others with `SCAN MATCH` over the session key pattern. Either way each batch of ids costs one
//! pipelined round trip for their fields. Never `KEYS`, never a whole-keyspace read at once.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::read::{Interner, Prepared, Probe, ReadOptions};
use crate::conn::link::{Failure, Link};
use crate::conn::pace::{self, Kind, Pacer};
use crate::engine::domain::{CensusTally, Millis, SessionRow, Subject, Ttl};
use crate::engine::layout::Layout;
use crate::engine::names::SessionId;

/// How many orphaned ids a pass keeps for display (all are counted), and how many bytes of ids
/// in all (an index can hold members of any size).
pub const ORPHAN_IDS_KEPT: usize = 1000;
pub const ORPHAN_ID_BYTES_KEPT: usize = 1 << 20;

/// Limits on the Redis work a census does; how fast it may go is the [`Pacer`]'s.
#[derive(Debug, Clone, Copy)]
pub struct CensusOptions {
    /// The largest batch: `COUNT` for `SCAN`, `LIMIT` for the index walk (smaller when the
    /// pacer measures that a page that large would cost Redis too much at once).
    pub scan_count: usize,
    pub max_value_bytes: u64,
    pub thresholds: crate::engine::domain::Thresholds,
}

/// What one pass reports after each batch.
#[derive(Debug)]
pub struct Progress<'a> {
    pub rows: Vec<SessionRow>,
    pub tally: &'a CensusTally,
    /// 0.0 to 1.0 when known (`SCAN` progress is estimated from its cursor).
    pub fraction: Option<f64>,
}

/// What a finished pass found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub tally: CensusTally,
    pub orphan_ids: Vec<SessionId>,
    pub duration: Duration,
}

/// One page of ids from the index or the keyspace.
struct Page {
    ids: Vec<SessionId>,
    scores: Option<Vec<Option<f64>>>,
    /// Where the next page starts; `None` after the last page.
    next: Option<Position>,
    fraction: Option<f64>,
}

/// Where a walk resumes.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    /// A `SCAN` cursor.
    Cursor(u64),
    /// In the index: members with a score from `min` on, skipping the first `offset` of those
    /// scored exactly `min` (already returned).
    Score { min: String, offset: usize },
}

/// Where a pass gets its ids from.
#[derive(Clone)]
enum Walk {
    /// The index, in score order, which has `size` members. Walking by score rather than with
    /// `ZSCAN` costs Redis half as much per member, and misses no one: a session saved during
    /// the walk moves to a higher score and is met again (and counted once).
    Index { key: String, size: u64 },
    /// `SCAN MATCH` over the keyspace of `keys` keys.
    Keys { pattern: Vec<u8>, keys: Option<u64> },
}

impl Walk {
    fn start(&self) -> Position {
        match self {
            Walk::Index { .. } => Position::Score { min: "-inf".into(), offset: 0 },
            Walk::Keys { .. } => Position::Cursor(0),
        }
    }

    async fn fetch(
        &self,
        link: &mut Link,
        layout: &Layout,
        at: &Position,
        max: usize,
        pacer: &std::sync::Mutex<Pacer>,
    ) -> Result<Page, Failure> {
        // A page is as large as it may be without one command costing Redis too much, and is
        // paid for before it is asked for.
        let kind = if matches!(self, Walk::Index { .. }) { Kind::Zrangebyscore } else { Kind::Scan };
        let count = pace::paced_page(pacer, kind, max).await;
        match (self, at) {
            (Walk::Index { key, .. }, Position::Score { min, offset }) => {
                let flat: Vec<Vec<u8>> = link
                    .query(
                        redis::cmd("ZRANGEBYSCORE")
                            .arg(key)
                            .arg(min)
                            .arg("+inf")
                            .arg("WITHSCORES")
                            .arg("LIMIT")
                            .arg(*offset)
                            .arg(count),
                    )
                    .await?;
                let returned = flat.len() / 2;
                let last_score = flat.last().cloned();
                let mut ids = Vec::with_capacity(returned);
                let mut scores = Vec::with_capacity(returned);
                let mut same_as_last = 0;
                let mut pairs = flat.into_iter();
                while let (Some(member), Some(score)) = (pairs.next(), pairs.next()) {
                    if Some(&score) == last_score.as_ref() {
                        same_as_last += 1;
                    }
                    ids.push(SessionId::from(member));
                    scores.push(std::str::from_utf8(&score).ok().and_then(|s| s.parse::<f64>().ok()));
                }
                let next = match last_score.map(|s| String::from_utf8_lossy(&s).into_owned()) {
                    Some(last) if returned == count => {
                        let offset = if last == *min { offset + same_as_last } else { same_as_last };
                        Some(Position::Score { min: last, offset })
                    }
                    _ => None,
                };
                Ok(Page { ids, scores: Some(scores), next, fraction: None })
            }
            (Walk::Keys { pattern, keys }, Position::Cursor(cursor)) => {
                let (next, found): (u64, Vec<Vec<u8>>) = link
                    .query(redis::cmd("SCAN").arg(*cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count))
                    .await?;
                let ids = found.iter().filter_map(|k| layout.session_id(k).map(SessionId::from)).collect();
                let fraction = if next == 0 { Some(1.0) } else { keys.map(|n| scan_fraction(next, n)) };
                let next = (next != 0).then_some(Position::Cursor(next));
                Ok(Page { ids, scores: None, next, fraction })
            }
            _ => Err(Failure::Protocol("census walk position".into())),
        }
    }
}

/// Pages the walker may run ahead of the reader.
const PAGES_AHEAD: usize = 2;
/// Batches of reads on the server at once.
const BATCHES_IN_FLIGHT: usize = 4;

/// Runs one pass. `on_batch` sees each batch's rows as they come (the dashboard shows the
/// census filling in); rows carry `generation`.
///
/// The walk over the index (or keyspace) runs on `walk_link`, a second connection, a few pages
/// ahead of the reads on `link`; two batches of reads are on the server at once. So Redis is
/// never idle waiting for sessiontop to parse, and the next ids never queue behind a batch of
/// replies.
pub async fn run_pass(
    link: &mut Link,
    walk_link: Link,
    layout: &Layout,
    options: CensusOptions,
    generation: u64,
    pacer: std::sync::Arc<std::sync::Mutex<Pacer>>,
    mut on_batch: impl FnMut(Progress<'_>),
) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let read = ReadOptions { page: false, max_value_bytes: options.max_value_bytes, thresholds: options.thresholds };
    // An index that does not exist (yet) is no reason to miss the sessions: fall back to SCAN.
    let index_size: Option<u64> = match &layout.index {
        Some(index) => link.query::<Option<u64>>(redis::cmd("ZCARD").arg(&index.key)).await?.filter(|n| *n > 0),
        None => None,
    };
    let mut pass = Pass {
        tally: CensusTally::default(),
        seen: HashSet::with_capacity_and_hasher(index_size.unwrap_or(0).min(1 << 21) as usize, Default::default()),
        hasher: RandomState::new(),
        orphan_ids: Vec::new(),
        orphan_bytes: 0,
        interner: Interner::default(),
        markers: layout.fields.markers.iter().take(8).map(|m| m.name.clone()).collect(),
    };
    let walk = match (&layout.index, index_size) {
        (Some(index), Some(size)) => Walk::Index { key: index.key.clone(), size },
        _ => Walk::Keys {
            pattern: layout.session_scan_pattern(),
            keys: link.query::<u64>(&redis::cmd("DBSIZE")).await.ok(),
        },
    };
    let is_index = matches!(walk, Walk::Index { .. });
    let shared_layout = std::sync::Arc::new(layout.clone());

    let (pages_tx, mut pages) = tokio::sync::mpsc::channel::<Result<Page, Failure>>(PAGES_AHEAD);
    let walker = tokio::spawn({
        let (walk, layout, mut walk_link, pacer) = (walk.clone(), layout.clone(), walk_link, pacer.clone());
        async move {
            let mut at = walk.start();
            loop {
                let page = walk.fetch(&mut walk_link, &layout, &at, options.scan_count, &pacer).await;
                let next = page.as_ref().ok().and_then(|p| p.next.clone());
                if pages_tx.send(page).await.is_err() {
                    break;
                }
                match next {
                    Some(position) => at = position,
                    None => break,
                }
            }
        }
    });
    // Ends the walker however this function returns.
    let _stop_walker = AbortOnDrop(walker);

    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut walk_done = false;
    loop {
        while !walk_done && in_flight.len() < BATCHES_IN_FLIGHT {
            let Some(page) = pages.recv().await else {
                walk_done = true;
                break;
            };
            let mut page = page?;
            walk_done = page.next.is_none();
            pass.admit(&mut page);
            let (prepared, pipe) = Prepared::new(layout, &page.ids, page.scores.is_none(), read);
            // The batch's cost: its first round trip, and the fields its second will read.
            let (cost, commands) = pacer
                .lock()
                .map(|p| {
                    let (c, n) = crate::conn::link::pipeline_cost(&pipe, &p);
                    let fields = if prepared.reads_fields() { page.ids.len() as u64 } else { 0 };
                    (c + p.cost_us(Kind::Hmget, fields, 1), n + fields)
                })
                .unwrap_or((0.0, 0));
            pace::pace(&pacer, cost, commands).await;
            link.sample_costs(&pacer).await?;
            let mut reader = link.clone();
            let task_pacer = pacer.clone();
            let (task_layout, ids, scores) = (shared_layout.clone(), std::mem::take(&mut page.ids), page.scores.take());
            // Both round trips of a batch, and decoding its payloads, run in the batch's own task.
            let task = tokio::spawn(async move {
                let sent = Instant::now();
                let replies = if pipe.is_empty() { Vec::new() } else { reader.pipeline(&pipe).await? };
                if let Ok(mut p) = task_pacer.lock() {
                    p.observe(pipe.len() as u64, sent.elapsed());
                }
                let mut probe = prepared.probe(&task_layout, ids, scores, replies)?;
                probe.fetch_fields(&mut reader).await?;
                Ok(probe)
            });
            in_flight.push_back((page, task));
        }
        let Some((page, task)) = in_flight.pop_front() else { break };
        let probe = task.await.map_err(|e| Failure::Protocol(format!("census read: {e}")))??;
        let read_at = super::now_millis();
        let batch = probe.finish(&mut pass.interner, read_at);
        let mut rows = batch.rows;
        for row in &mut rows {
            row.generation = generation;
            pass.count(row);
        }
        pass.tally.oversized += batch.oversized;
        pass.tally.undecodable += batch.undecodable;
        pass.tally.max_ttl_ms = pass.tally.max_ttl_ms.max(max_ttl_ms(&rows, read_at));
        // A session key that vanished between SCAN and the read is simply gone; only index
        // entries without keys are orphans.
        if is_index {
            pass.tally.orphaned += batch.missing.len() as u64;
            for id in batch.missing {
                if pass.orphan_ids.len() < ORPHAN_IDS_KEPT && pass.orphan_bytes + id.len() <= ORPHAN_ID_BYTES_KEPT {
                    pass.orphan_bytes += id.len();
                    pass.orphan_ids.push(id);
                }
            }
        } else {
            pass.tally.vanished += batch.missing.len() as u64;
        }
        let fraction = match (&walk, page.fraction) {
            (Walk::Index { size, .. }, _) => Some((pass.tally.examined as f64 / *size as f64).min(1.0)),
            (_, fraction) => fraction,
        };
        on_batch(Progress { rows, tally: &pass.tally, fraction });
    }
    Ok(Outcome { tally: pass.tally, orphan_ids: pass.orphan_ids, duration: started.elapsed() })
}

/// A page whose reads are on the server.
type InFlight = (Page, JoinHandle<Result<Probe, Failure>>);

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Hashes a `u64` that is already a hash by using it as it is.
#[derive(Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Pass {
    tally: CensusTally,
    /// Hashes of ids already counted: `SCAN` may return a key twice, and the index walk meets a
    /// session again when it is saved during the pass.
    seen: HashSet<u64, std::hash::BuildHasherDefault<IdentityHasher>>,
    hasher: RandomState,
    orphan_ids: Vec<SessionId>,
    orphan_bytes: usize,
    interner: Interner,
    /// The layout's marker names, in bit order.
    markers: Vec<String>,
}

impl Pass {
    /// Drops ids this pass has already seen and counts the rest as examined, so that every id
    /// examined ends up live, orphaned or vanished, exactly once.
    fn admit(&mut self, page: &mut Page) {
        let mut keep = Vec::with_capacity(page.ids.len());
        for id in &page.ids {
            keep.push(self.seen.insert(self.hasher.hash_one(id)));
        }
        self.tally.examined += keep.iter().filter(|k| **k).count() as u64;
        let mut flags = keep.iter();
        page.ids.retain(|_| *flags.next().unwrap_or(&false));
        if let Some(scores) = &mut page.scores {
            let mut flags = keep.iter();
            scores.retain(|_| *flags.next().unwrap_or(&false));
        }
    }

    fn count(&mut self, row: &SessionRow) {
        let t = &mut self.tally;
        t.total += 1;
        match &row.stage {
            Some(stage) => bump(&mut t.by_stage, stage),
            None => t.no_stage += 1,
        }
        if let Some(sub) = &row.substate {
            bump(&mut t.by_substate, sub);
        }
        if row.ttl == Ttl::Persistent {
            t.no_ttl += 1;
        }
        // A session counts once for each kind, with every reason of that kind.
        for (i, (kind, _)) in row.problems.iter().enumerate() {
            if row.problems[..i].iter().any(|(k, _)| k == kind) {
                continue;
            }
            t.evidence.note(*kind, || {
                let why = row.problems[i..].iter().filter(|(k, _)| k == kind).map(|(_, w)| w.as_str());
                Subject::session(row.id.clone(), Some(why.collect::<Vec<_>>().join("; ")))
            });
        }
        for (i, name) in self.markers.iter().enumerate() {
            if row.markers & (1 << i) != 0 {
                bump(&mut t.by_marker, name);
            }
        }
    }
}

/// Counts one more of `key`, allocating its text only the first time it is seen.
fn bump(counts: &mut std::collections::BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
}

/// How far a `SCAN` has come, estimated from its cursor: Redis walks its hash table in
/// reverse-binary order, so the cursor's bits reversed over the table size are the share done.
/// The table size is taken as the power of two at or above the key count.
pub fn scan_fraction(cursor: u64, keys: u64) -> f64 {
    let bits = 64 - keys.max(2).saturating_sub(1).leading_zeros();
    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let reversed = (cursor & mask).reverse_bits() >> (64 - bits);
    (reversed as f64 / (1u64 << bits.min(63)) as f64).min(1.0)
}

/// The largest TTL among rows read at `now`, for the session-lifetime default.
fn max_ttl_ms(rows: &[SessionRow], now: Millis) -> i64 {
    rows.iter()
        .filter_map(|r| match r.ttl {
            Ttl::ExpiresAt(at) => Some(at.saturating_sub(now)),
            _ => None,
        })
        .max()
        .unwrap_or(0)
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
}
