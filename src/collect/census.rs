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

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use std::sync::Arc;

use super::carry::{Carried, Read};
use super::events::Changes;
use super::read::{Interner, Prepared, Probe, ReadOptions};
use super::stages::Stages;
use super::walk::{Count, KeyWalk, Pacing};
use crate::conn::link::{Failure, Link};
use crate::conn::pace::{self, Kind};
use crate::conn::route::Router;
use crate::conn::topology::{LinkUse, Node, Topology};
use crate::engine::domain::{CensusTally, Millis, SessionRow, Subject, Ttl};
use crate::engine::layout::Layout;
use crate::engine::msg::Update;
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

/// What lets a watch's census read sessions light: keyspace events' record of the sessions
/// written, and the findings carried over from each session's last whole read.
pub struct LightReads<'a> {
    pub changes: &'a Changes,
    pub carried: &'a mut Carried,
}

impl LightReads<'_> {
    /// A pass begins: whether it may read sessions light (both the record and the carried
    /// findings are whole, and the server's setting makes the record proof).
    async fn turn(&mut self, router: &Router, layout: &Layout) -> bool {
        let kept = self.carried.turn();
        let heard = self.changes.turn();
        kept && heard && self.changes.confirmed(router, layout).await
    }

    /// How to read each of `ids`: whole, unless events heard nothing of it since it was last
    /// read (then as [`Carried::read`] says).
    fn which(&self, ids: &[SessionId]) -> Vec<Read> {
        let now = super::now_millis();
        let unchanged = self.changes.unchanged(ids);
        unchanged
            .into_iter()
            .zip(ids)
            .map(|(quiet, id)| if quiet { self.carried.read(id, now) } else { Read::Whole })
            .collect()
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
    pub orphan_ids: Vec<SessionId>,
    pub duration: Duration,
}

/// One page of ids from the index or the keyspace.
struct Page {
    ids: Vec<SessionId>,
    scores: Option<Vec<Option<f64>>>,
    /// Whether the walk is over.
    last: bool,
    /// Which walk it came from (one per primary for a keyspace walk of a cluster).
    walk: usize,
    fraction: Option<f64>,
}

/// Where a pass gets its ids from, and how far it has come.
enum Walk {
    /// The index, in score order. Walking by score rather than with
    /// `ZSCAN` costs Redis half as much per member, and misses no one: a session saved during
    /// the walk moves to a higher score and is met again (and counted once). The next page
    /// holds members with a score from `min` on, less the first `offset` of those scored
    /// exactly `min` (already returned).
    Index { key: String, min: String, offset: usize },
    /// The keyspace's session keys.
    Keys(KeyWalk),
}

impl Walk {
    /// The next page: the index's through `router` (which follows the index's slot wherever it
    /// moves), a node's keyspace's on `link`, its connection to the node.
    async fn next_page(
        &mut self,
        router: &Router,
        link: &mut Link,
        node: &Arc<Node>,
        layout: &Layout,
        max: usize,
    ) -> Result<Page, Failure> {
        let pacer = node.pacer();
        match self {
            Walk::Index { key, min, offset, .. } => {
                // A page is as large as it may be without one command costing Redis too much,
                // and is paid for before it is asked for.
                let count = pace::paced_page(pacer, Kind::Zrangebyscore, max).await;
                let flat: Vec<Vec<u8>> = router
                    .query(
                        redis::cmd("ZRANGEBYSCORE")
                            .arg(&*key)
                            .arg(&*min)
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
                let last = match last_score.map(|s| String::from_utf8_lossy(&s).into_owned()) {
                    Some(score) if returned == count => {
                        *offset = if score == *min { *offset + same_as_last } else { same_as_last };
                        *min = score;
                        false
                    }
                    _ => true,
                };
                Ok(Page { ids, scores: Some(scores), last, walk: 0, fraction: None })
            }
            Walk::Keys(walk) => {
                let found = walk.next(link, pacer, Count::UpTo(max), Pacing::Wait).await?;
                // On a cluster a node counts the keys of the slots it serves now: a key left in
                // a slot it gave up (or is still importing) is another node's, or no one's.
                let map = router.topology().map();
                let serves = |key: &[u8]| {
                    map.kind != crate::conn::topology::Kind::Cluster
                        || map.shard_of(crate::conn::slot::of(key)).is_some_and(|shard| {
                            shard.primary.iter().chain(&shard.replicas).any(|n| Arc::ptr_eq(&n.node, node))
                        })
                };
                let ids = found
                    .iter()
                    .filter(|k| serves(k))
                    .filter_map(|k| layout.session_id(k).map(SessionId::from))
                    .collect();
                Ok(Page { ids, scores: None, last: walk.is_done(), walk: 0, fraction: walk.fraction() })
            }
        }
    }
}

/// Pages the walker may run ahead of the reader.
const PAGES_AHEAD: usize = 2;
/// Batches of reads on the server at once.
const BATCHES_IN_FLIGHT: usize = 4;

/// A target's connections for the census: the reads, and the walks a few pages ahead of them
/// (each to the node it walks).
#[derive(Clone)]
pub struct CensusLinks {
    pub reads: Router,
    pub walk: Router,
}

impl CensusLinks {
    /// Opens the census's connections: the first of each now, the rest (on a cluster) as
    /// the pass needs them.
    pub async fn open(topology: &Arc<Topology>) -> Result<CensusLinks, Failure> {
        let reads = Router::discover(topology, LinkUse::CensusReads).await?;
        let walk = Router::discover(topology, LinkUse::CensusWalk).await?;
        Ok(CensusLinks { reads, walk })
    }
}

/// Runs one pass over the target's sessions, each node paced by its own pacer. `on_batch`
/// sees each batch's rows as they come (the dashboard shows the census filling in); rows carry
/// `generation`.
///
/// The walk over the index (or keyspace) runs on the walk connection a few pages ahead of the
/// reads; several batches of reads are on the server at once. So Redis is never idle waiting
/// for sessiontop to parse, and the next ids never queue behind a batch of replies.
pub async fn run_pass(
    links: &mut CensusLinks,
    layout: &Layout,
    options: CensusOptions,
    generation: u64,
    stages: Option<&Stages>,
    mut light: Option<LightReads<'_>>,
    mut on_batch: impl FnMut(Progress<'_>),
) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let light_ok = match light.as_mut() {
        Some(l) => l.turn(&links.reads, layout).await,
        None => false,
    };
    let read = ReadOptions { page: false, max_value_bytes: options.max_value_bytes, thresholds: options.thresholds };
    let (walks, index_size) = start_walks(&links.reads, layout).await?;
    let mut pass = Pass::new(layout, index_size);
    // Each primary walked, with the slots it served when its last walk began.
    let mut walked: Walked = Vec::new();
    let mut walks = Walks::start(walks, layout, links, options.scan_count, &mut walked).await?;
    let shared_layout = Arc::new(layout.clone());
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut walk_done = false;
    let mut rewalks = 0;
    loop {
        while !walk_done && in_flight.len() < BATCHES_IN_FLIGHT {
            let Some(page) = walks.pages.recv().await else {
                walk_done = true;
                break;
            };
            let mut page = page?;
            walks.progressed(&page);
            pass.admit(&mut page);
            let reads = match &light {
                Some(l) if light_ok => l.which(&page.ids),
                _ => Vec::new(),
            };
            for read in &reads {
                match read {
                    Read::Settled(_) => pass.tally.read_settled += 1,
                    Read::Light => pass.tally.read_light += 1,
                    Read::Whole => {}
                }
            }
            let task = send_batch(links, &shared_layout, &mut page, read, reads).await?;
            in_flight.push_back(task);
        }
        if let Some(task) = in_flight.pop_front() {
            let probe = task.await.map_err(|e| Failure::Protocol(format!("census read: {e}")))??;
            let rows = pass.take(probe, generation, stages, light.as_mut().map(|l| &mut *l.carried));
            let fraction = match index_size {
                Some(size) => Some((pass.tally.examined as f64 / size as f64).min(1.0)),
                None => walks.fraction(),
            };
            on_batch(Progress { rows, tally: &pass.tally, fraction });
            continue;
        }
        // Every walk has ended. Slots that reached a primary after its walk began may hold keys
        // no walk met: walk those primaries again (what was counted is not counted twice).
        if index_size.is_some() {
            break;
        }
        links.reads.refresh().await?;
        let gained = gained(links.reads.topology(), &links.reads.topology().map(), &walked);
        if gained.is_empty() || rewalks == MAX_REWALKS {
            break;
        }
        rewalks += 1;
        tracing::info!(nodes = gained.len(), rewalks, "slots moved during the census: walking again");
        let again = gained.into_iter().map(|node| (node, Walk::Keys(KeyWalk::matching(layout.session_scan_pattern()))));
        walks = Walks::start(again.collect(), layout, links, options.scan_count, &mut walked).await?;
        walk_done = false;
    }
    pass.tally.uncovered_slots = match index_size {
        Some(_) => links.reads.topology().map().uncovered(),
        None => uncovered(links.reads.topology(), &links.reads.topology().map(), &walked),
    };
    if let Some(l) = light {
        l.carried.pass_done();
    }
    Ok(Outcome { tally: pass.tally, orphan_ids: pass.orphan_ids, duration: started.elapsed() })
}

/// Each primary a pass walked, with the slots it served when its last walk began.
type Walked = Vec<(Arc<Node>, Vec<(u16, u16)>)>;

/// How many times a pass walks again the primaries that gained slots while it walked.
const MAX_REWALKS: usize = 3;

/// The walks of a pass (or of a second look at the primaries that gained slots), each on its
/// own task, together at most [`PAGES_AHEAD`] pages ahead of the reads.
struct Walks {
    pages: tokio::sync::mpsc::Receiver<Result<Page, Failure>>,
    /// Ends the walkers however the pass ends.
    _walkers: Vec<AbortOnDrop>,
    fractions: Vec<Option<f64>>,
}

impl Walks {
    async fn start(
        walks: Vec<(Arc<Node>, Walk)>,
        layout: &Layout,
        links: &CensusLinks,
        max: usize,
        walked: &mut Walked,
    ) -> Result<Walks, Failure> {
        let map = links.reads.topology().map();
        for (node, _) in &walks {
            walked.retain(|(n, _)| !Arc::ptr_eq(n, node));
            walked.push((node.clone(), map.slots_of(node)));
        }
        let fractions = vec![Some(0.0); walks.len()];
        let (pages, walkers) = spawn_walkers(walks, layout, links, max).await?;
        Ok(Walks { pages, _walkers: walkers.into_iter().map(AbortOnDrop).collect(), fractions })
    }

    fn progressed(&mut self, page: &Page) {
        if let Some(f) = self.fractions.get_mut(page.walk) {
            *f = if page.last { Some(1.0) } else { page.fraction };
        }
    }

    /// How far the walks have come together, when each knows.
    fn fraction(&self) -> Option<f64> {
        let sum = self.fractions.iter().copied().sum::<Option<f64>>()?;
        Some(sum / self.fractions.len().max(1) as f64)
    }
}

/// The nodes walked for each shard of `map` (its primary, or the replica `--read-from` picks)
/// that serve a slot their last walk did not start with, or that were not walked at all.
fn gained(topology: &Topology, map: &crate::conn::topology::Map, walked: &Walked) -> Vec<Arc<Node>> {
    map.shards
        .iter()
        .filter_map(|shard| topology.read_node(shard))
        .filter(|node| {
            let now = map.slots_of(node);
            match walked.iter().find(|(n, _)| Arc::ptr_eq(n, node)) {
                None => !now.is_empty(),
                Some((_, before)) => now.iter().any(|r| !covers(before, *r)),
            }
        })
        .collect()
}

/// The slots no finished walk covered: served by no primary, or by a node that gained them
/// after its last walk began.
fn uncovered(topology: &Topology, map: &crate::conn::topology::Map, walked: &Walked) -> Vec<(u16, u16)> {
    if map.kind != crate::conn::topology::Kind::Cluster {
        return Vec::new();
    }
    let gained = gained(topology, map, walked);
    let mut covered = vec![false; crate::conn::slot::SLOTS];
    let walked_now = map.shards.iter().filter_map(|shard| topology.read_node(shard));
    for node in walked_now.filter(|n| !gained.iter().any(|g| Arc::ptr_eq(g, n))) {
        for (a, b) in map.slots_of(&node) {
            for s in a..=b {
                covered[usize::from(s)] = true;
            }
        }
    }
    crate::conn::slot::ranges_where(|s| !covered[s])
}

/// Whether the ranges `outer` hold every slot of `inner`.
fn covers(outer: &[(u16, u16)], inner: (u16, u16)) -> bool {
    (inner.0..=inner.1).all(|s| outer.iter().any(|(a, b)| (*a..=*b).contains(&s)))
}

/// Where the pass walks: the index when it has members (and how many; on the node that holds
/// it), else the keyspace of every primary. An index that does not exist (yet) is no reason to
/// miss the sessions.
async fn start_walks(router: &Router, layout: &Layout) -> Result<(Vec<(Arc<Node>, Walk)>, Option<u64>), Failure> {
    let index_size: Option<u64> = match &layout.index {
        Some(index) => router.query::<Option<u64>>(redis::cmd("ZCARD").arg(&index.key)).await?.filter(|n| *n > 0),
        None => None,
    };
    if let (Some(index), Some(_)) = (&layout.index, index_size) {
        let walk = Walk::Index { key: index.key.clone(), min: "-inf".into(), offset: 0 };
        return Ok((vec![(router.node_for(index.key.as_bytes()), walk)], index_size));
    }
    let mut walks = Vec::new();
    let topology = router.topology();
    let map = topology.map();
    // Each shard's keyspace, on the node `--read-from` picks (its primary by default).
    let nodes: Vec<Arc<Node>> = map.shards.iter().filter_map(|shard| topology.read_node(shard)).collect();
    if nodes.len() < map.shards.len() {
        return Err(Failure::Server {
            command: "SCAN".into(),
            code: "NOREPLICA".into(),
            detail: "no replica is in sync to read from (--read-from replica): waiting for one".into(),
        });
    }
    for node in nodes {
        let keys = router.link(&node).await?.query::<u64>(&redis::cmd("DBSIZE")).await.ok();
        walks.push((node, Walk::Keys(KeyWalk::matching(layout.session_scan_pattern()).with_keyspace(keys))));
    }
    Ok((walks, None))
}

/// Runs each walk on its own task and its node's connection, together at most
/// [`PAGES_AHEAD`] pages ahead; the pages end when every walk has ended.
async fn spawn_walkers(
    walks: Vec<(Arc<Node>, Walk)>,
    layout: &Layout,
    links: &CensusLinks,
    max: usize,
) -> Result<(tokio::sync::mpsc::Receiver<Result<Page, Failure>>, Vec<JoinHandle<()>>), Failure> {
    let (pages_tx, pages) = tokio::sync::mpsc::channel::<Result<Page, Failure>>(PAGES_AHEAD);
    let mut walkers = Vec::with_capacity(walks.len());
    for (i, (node, mut walk)) in walks.into_iter().enumerate() {
        let (layout, pages_tx, router) = (layout.clone(), pages_tx.clone(), links.walk.clone());
        let mut link = links.walk.link(&node).await?;
        walkers.push(tokio::spawn(async move {
            loop {
                let mut page = walk.next_page(&router, &mut link, &node, &layout, max).await;
                if let Ok(p) = &mut page {
                    p.walk = i;
                }
                let last = page.as_ref().map_or(true, |p| p.last);
                if pages_tx.send(page).await.is_err() || last {
                    break;
                }
            }
        }));
    }
    Ok((pages, walkers))
}

/// Paces a page's reads by their cost and sends them: both round trips of a batch, and
/// decoding its payloads, run in the batch's own task.
async fn send_batch(
    links: &CensusLinks,
    layout: &Arc<Layout>,
    page: &mut Page,
    read: ReadOptions,
    reads: Vec<Read>,
) -> Result<JoinHandle<Result<Probe, Failure>>, Failure> {
    let (prepared, batch) = Prepared::with_reads(&links.reads, layout, &page.ids, page.scores.is_none(), read, reads);
    // The batch's cost to each node: its first round trip, and the fields its second will read
    // (shared out as the first round trip is).
    let costs = links.reads.costs(&batch);
    let fields = prepared.fields_read_later(page.ids.len()) as u64;
    for (node, cost, commands) in &costs {
        let share = fields * commands / batch.len().max(1) as u64;
        let field_cost = node.pacer().lock().map(|p| p.cost_us(Kind::Hmget, share, 1)).unwrap_or(0.0);
        pace::pace(node.pacer(), cost + field_cost, commands + share).await;
    }
    let reader = links.reads.clone();
    reader.sample_costs().await?;
    let (layout, ids, scores) = (layout.clone(), std::mem::take(&mut page.ids), page.scores.take());
    Ok(tokio::spawn(async move {
        // Each node's part of the first round trip is told to its pacer, for backing off.
        let replies = if batch.is_empty() { Vec::new() } else { reader.observing().send(batch).await? };
        let mut probe = prepared.probe(&layout, ids, scores, replies)?;
        probe.fetch_fields(&reader).await?;
        Ok(probe)
    }))
}

/// A batch whose reads are on the server.
type InFlight = JoinHandle<Result<Probe, Failure>>;

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
    /// Whether the pass walks the index (a member without its session is an orphan).
    walks_index: bool,
}

impl Pass {
    fn new(layout: &Layout, index_size: Option<u64>) -> Pass {
        Pass {
            tally: CensusTally::default(),
            seen: HashSet::with_capacity_and_hasher(index_size.unwrap_or(0).min(1 << 21) as usize, Default::default()),
            hasher: RandomState::new(),
            orphan_ids: Vec::new(),
            orphan_bytes: 0,
            interner: Interner::default(),
            markers: layout.fields.markers.iter().take(8).map(|m| m.name.clone()).collect(),
            walks_index: index_size.is_some(),
        }
    }

    /// A batch's rows, counted: every session read ends up live, orphaned or vanished. Where
    /// stages are watched, a stuck session is marked before it is counted.
    fn take(
        &mut self,
        probe: Probe,
        generation: u64,
        stages: Option<&Stages>,
        carried: Option<&mut Carried>,
    ) -> Vec<SessionRow> {
        let read_at = super::now_millis();
        let batch = probe.finish_carrying(&mut self.interner, read_at, carried);
        let mut rows = batch.rows;
        if let Some(stages) = stages {
            stages.pass_read(max_ttl_ms(&rows, read_at));
            stages.observe(&mut rows, read_at);
        }
        for row in &mut rows {
            row.generation = generation;
            self.count(row);
        }
        self.tally.oversized += batch.oversized;
        self.tally.undecodable += batch.undecodable;
        self.tally.max_ttl_ms = self.tally.max_ttl_ms.max(max_ttl_ms(&rows, read_at));
        // A session key that vanished between SCAN and the read is simply gone; only index
        // entries without keys are orphans.
        if self.walks_index {
            self.tally.orphaned += batch.missing.len() as u64;
            for id in batch.missing {
                if self.orphan_ids.len() < ORPHAN_IDS_KEPT && self.orphan_bytes + id.len() <= ORPHAN_ID_BYTES_KEPT {
                    self.orphan_bytes += id.len();
                    self.orphan_ids.push(id);
                }
            }
        } else {
            self.tally.vanished += batch.missing.len() as u64;
        }
        rows
    }

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
        for (i, found) in row.findings.iter().enumerate() {
            let kind = found.kind;
            if row.findings[..i].iter().any(|f| f.kind == kind) {
                continue;
            }
            t.evidence.note(kind, || {
                let of_kind = || row.findings[i..].iter().filter(|f| f.kind == kind);
                let why = of_kind().map(|f| f.why.as_str()).collect::<Vec<_>>().join("; ");
                // The key it is about: the first of its kind that names one.
                let key = of_kind().find_map(|f| f.key.clone());
                Subject { id: Some(row.id.clone()), key, detail: Some(why) }
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

/// The census task: pass after pass over the target's sessions, once the poller has found their
/// layout, with a rest between passes; a lost connection is retried with backoff and said.
pub(super) async fn census_loop(
    topology: Arc<Topology>,
    options: super::CollectOptions,
    updates: UnboundedSender<Update>,
    mut layout_rx: watch::Receiver<Option<super::Found>>,
    passes_done: watch::Sender<u64>,
    changes: Arc<Changes>,
) {
    let (layout, stages) = loop {
        if let Some(found) = layout_rx.borrow_and_update().clone() {
            break found;
        }
        if layout_rx.changed().await.is_err() {
            return;
        }
    };
    let send = |update: Update| {
        // The receiver is gone only when the program is ending.
        let _ = updates.send(update);
    };
    let blocked = |why: &str, failure: &Failure, delay: Duration| {
        send(Update::CensusBlocked(format!("{why}: {failure}; retrying in {}s", delay.as_secs_f64().ceil())));
    };
    let mut generation: u64 = 0;
    let mut attempt: u32 = 0;
    let mut carried = Carried::default();
    loop {
        let mut links = match CensusLinks::open(&topology).await {
            Ok(links) => links,
            Err(failure) => {
                attempt += 1;
                let delay = super::backoff(attempt);
                tracing::debug!(%failure, "census cannot connect");
                blocked("cannot connect", &failure, delay);
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        loop {
            generation += 1;
            // A replica's copy may lag the write an event told of: reads from replicas are
            // always whole.
            let light = (topology.read_from() == crate::conn::topology::ReadFrom::Primary)
                .then(|| LightReads { changes: &changes, carried: &mut carried });
            let result = run_pass(&mut links, &layout, options.census, generation, stages.as_deref(), light, |p| {
                send(Update::CensusBatch { generation, rows: p.rows, partial: p.tally.clone(), progress: p.fraction });
            })
            .await;
            match result {
                Ok(mut outcome) => {
                    attempt = 0;
                    outcome.tally.flow = stages.as_ref().and_then(|s| s.pass_done(super::now_millis()));
                    tracing::debug!(generation, duration = ?outcome.duration, total = outcome.tally.total, "census pass");
                    send(Update::CensusDone {
                        generation,
                        tally: outcome.tally,
                        duration_ms: outcome.duration.as_millis() as u64,
                        orphan_ids: outcome.orphan_ids,
                    });
                    passes_done.send_replace(generation);
                    tokio::time::sleep(options.census_pause).await;
                }
                Err(failure) if failure.is_connection() => {
                    attempt += 1;
                    let delay = super::backoff(attempt);
                    tracing::debug!(%failure, "census connection lost");
                    blocked("connection lost", &failure, delay);
                    tokio::time::sleep(delay).await;
                    break;
                }
                Err(failure) => {
                    attempt += 1;
                    send(Update::CensusBlocked(failure.to_string()));
                    tokio::time::sleep(options.census_pause.max(super::backoff(attempt))).await;
                }
            }
        }
    }
}
