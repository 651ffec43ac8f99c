//! The census: one pass over every session of the layout, in bounded batches under a
//! commands-per-second budget, counting sessions by stage and substate, keys without TTL,
//! undecodable payloads and orphaned index entries.
//!
//! Layouts with an index are walked with `ZSCAN` over the index (which also finds the orphans);
//! others with `SCAN MATCH` over the session key pattern. Either way each batch of ids costs one
//! pipelined round trip for their fields. Never `KEYS`, never a whole-keyspace read at once.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use super::read::{Interner, ReadOptions, read_rows};
use crate::link::{Failure, Link};
use crate::model::{CensusTally, Millis, SessionRow, Ttl};
use crate::schema::Schema;

/// How many orphaned ids a pass keeps for display (all are counted).
pub const ORPHAN_IDS_KEPT: usize = 1000;

/// Limits on the Redis work a census does.
#[derive(Debug, Clone, Copy)]
pub struct CensusOptions {
    /// `COUNT` for `SCAN`/`ZSCAN`: the batch size.
    pub scan_count: usize,
    /// Commands per second the census may send; 0 for no limit.
    pub budget_per_sec: u32,
    pub max_value_bytes: u64,
}

/// A token bucket over commands: `take(n)` waits until `n` commands fit in the budget.
#[derive(Debug)]
pub struct Budget {
    rate: f64,
    available: f64,
    last: Instant,
}

impl Budget {
    pub fn new(per_sec: u32) -> Self {
        Budget { rate: f64::from(per_sec), available: f64::from(per_sec), last: Instant::now() }
    }

    /// Waits until `n` more commands are within the budget. A batch larger than one second's
    /// budget is let through and paid for by waiting afterwards, so batches never stall.
    pub async fn take(&mut self, n: usize) {
        if self.rate <= 0.0 {
            return;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.available = (self.available + elapsed * self.rate).min(self.rate);
        self.available -= n as f64;
        if self.available < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.available / self.rate)).await;
        }
    }
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
    pub orphan_ids: Vec<String>,
    pub duration: Duration,
}

/// Runs one pass. `on_batch` sees each batch's rows as they come (the dashboard shows the
/// census filling in); rows carry `generation`.
pub async fn run_pass(
    link: &mut Link,
    schema: &Schema,
    options: CensusOptions,
    generation: u64,
    now: impl Fn() -> Millis,
    mut on_batch: impl FnMut(Progress<'_>),
) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let mut pass = Pass {
        tally: CensusTally::default(),
        seen: HashSet::new(),
        hasher: RandomState::new(),
        orphan_ids: Vec::new(),
        interner: Interner::default(),
        budget: Budget::new(options.budget_per_sec),
    };
    let read = ReadOptions { memory: false, max_value_bytes: options.max_value_bytes };
    let index = schema.index.as_ref().map(|i| i.key.clone());
    // An index that does not exist (yet) is no reason to miss the sessions: fall back to SCAN.
    let index_size: Option<u64> = match &index {
        Some(key) => link.query::<Option<u64>>(redis::cmd("ZCARD").arg(key)).await?.filter(|n| *n > 0),
        None => None,
    };
    let db_size: Option<u64> = match index_size {
        Some(_) => None,
        None => link.query::<u64>(&redis::cmd("DBSIZE")).await.ok(),
    };

    let mut cursor: u64 = 0;
    loop {
        pass.budget.take(1).await;
        let (ids, scores, fraction) = match (&index, index_size) {
            (Some(key), Some(size)) => {
                let (next, flat): (u64, Vec<Vec<u8>>) =
                    link.query(redis::cmd("ZSCAN").arg(key).arg(cursor).arg("COUNT").arg(options.scan_count)).await?;
                cursor = next;
                let mut ids = Vec::with_capacity(flat.len() / 2);
                let mut scores = Vec::with_capacity(flat.len() / 2);
                for pair in flat.chunks(2) {
                    let (Some(member), score) = (pair.first(), pair.get(1)) else { continue };
                    let Ok(id) = String::from_utf8(member.clone()) else { continue };
                    if pass.first_sighting(&id) {
                        ids.push(id);
                        scores.push(score.and_then(|s| std::str::from_utf8(s).ok()?.parse::<f64>().ok()));
                    }
                }
                pass.tally.examined += ids.len() as u64;
                let fraction = Some((pass.tally.examined as f64 / size as f64).min(1.0));
                (ids, Some(scores), fraction)
            }
            _ => {
                let (next, keys): (u64, Vec<Vec<u8>>) = link
                    .query(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(schema.session_scan_pattern())
                            .arg("COUNT")
                            .arg(options.scan_count),
                    )
                    .await?;
                cursor = next;
                pass.tally.examined += keys.len() as u64;
                let ids: Vec<String> = keys
                    .iter()
                    .filter_map(|k| schema.session_id(std::str::from_utf8(k).ok()?).map(str::to_string))
                    .filter(|id| pass.first_sighting(id))
                    .collect();
                let fraction = if cursor == 0 { Some(1.0) } else { db_size.map(|n| scan_fraction(cursor, n)) };
                (ids, None, fraction)
            }
        };

        if !ids.is_empty() {
            let commands = ids.len() * commands_per_session(schema);
            pass.budget.take(commands).await;
            let read_at = now();
            let batch = read_rows(link, schema, &ids, scores.as_deref(), read, &mut pass.interner, read_at).await?;
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
            if index_size.is_some() {
                pass.tally.orphaned += batch.missing.len() as u64;
                let room = ORPHAN_IDS_KEPT.saturating_sub(pass.orphan_ids.len());
                pass.orphan_ids.extend(batch.missing.into_iter().take(room));
            }
            on_batch(Progress { rows, tally: &pass.tally, fraction });
        } else {
            on_batch(Progress { rows: Vec::new(), tally: &pass.tally, fraction });
        }
        if cursor == 0 {
            break;
        }
    }
    Ok(Outcome { tally: pass.tally, orphan_ids: pass.orphan_ids, duration: started.elapsed() })
}

/// The commands [`read_rows`] sends per session without `MEMORY USAGE`, for the budget.
fn commands_per_session(schema: &Schema) -> usize {
    let primary = match schema.session_type {
        crate::schema::KeyType::String => 3,
        crate::schema::KeyType::Hash => 2,
        _ => 1,
    };
    primary + usize::from(schema.history().is_some())
}

struct Pass {
    tally: CensusTally,
    /// Hashes of ids already counted: `SCAN` and `ZSCAN` may return an element twice.
    seen: HashSet<u64>,
    hasher: RandomState,
    orphan_ids: Vec<String>,
    interner: Interner,
    budget: Budget,
}

impl Pass {
    fn first_sighting(&mut self, id: &str) -> bool {
        self.seen.insert(self.hasher.hash_one(id))
    }

    fn count(&mut self, row: &SessionRow) {
        let t = &mut self.tally;
        t.total += 1;
        match &row.stage {
            Some(stage) => *t.by_stage.entry(stage.to_string()).or_default() += 1,
            None => t.no_stage += 1,
        }
        if let Some(sub) = &row.substate {
            *t.by_substate.entry(sub.to_string()).or_default() += 1;
        }
        if row.ttl == Ttl::Persistent {
            t.no_ttl += 1;
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
            Ttl::ExpiresAt(at) => Some(at - now),
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

    #[tokio::test]
    async fn budget_makes_work_wait() {
        let mut b = Budget::new(1000);
        let start = Instant::now();
        b.take(1000).await; // the first second's budget
        b.take(100).await; // a tenth of a second more
        assert!(start.elapsed() >= Duration::from_millis(90), "{:?}", start.elapsed());
        let mut unlimited = Budget::new(0);
        let start = Instant::now();
        unlimited.take(1_000_000).await;
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
