//! The sessions table's rows, kept off the UI thread.
//!
//! A [`Store`] holds one compact row per session (48 bytes: ids in one arena of bytes, stages
//! and substates as indices into a table of distinct labels, times and sizes as fixed-size
//! numbers), found by id through a hash table of row indices. Past `--max-rows` it keeps the
//! most recently active sessions; the census still counts every one.
//!
//! An [`Engine`] owns the store and answers what the table shows: it sorts and filters all rows
//! (an order of row indices), counts the stalled, and cuts a window of rows around what is on
//! screen. [`spawn`] runs an engine on its own thread: the dashboard sends it rows and view
//! requests and gets [`TableView`]s back, so no key press ever waits for work over all sessions on
//! the UI thread; on the engine's thread a view request is answered before the rows queued
//! ahead of it, and a data-driven re-sort happens at most every [`RESORT_INTERVAL`] (the order
//! shown is never staler than that plus one sort). Tests run an engine inline.
//!
//! Must never do I/O, and never block on the UI.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use crate::engine::domain::{self, FindingKind, Micros, Millis, SessionRow, Ttl};
use crate::engine::layout::IdleSource;
use crate::engine::names::SessionId;

/// How often rows that changed may re-sort the table (a key press re-sorts at once).
pub const RESORT_INTERVAL: Duration = Duration::from_millis(500);
/// How long the engine takes rows in before it looks for a view request again.
const APPLY_SLICE: Duration = Duration::from_millis(5);
/// How often the stalled counts are taken again as time passes.
const STALLED_INTERVAL: Duration = Duration::from_secs(1);
/// Rows kept when `--max-rows` is not given.
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;
/// The longest id the table keeps (longer ones are counted by the census, not listed).
const MAX_ID_BYTES: usize = 4096;
/// The most bytes of ids the table keeps in all.
const MAX_ARENA_BYTES: usize = 256 << 20;
/// Distinct stages, substates and statuses the table tells apart; beyond, one shared label.
const MAX_LABELS: usize = u16::MAX as usize - 1;
/// Read errors whose text is kept (a store where every payload fails keeps the first ones).
const MAX_ERROR_TEXTS: usize = 20_000;
/// Rows around the visible ones that a view carries, so most moves need no new view.
const WINDOW_MARGIN: usize = 100;

/// The table's columns, in the order `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortColumn {
    #[default]
    Idle,
    Ttl,
    History,
    Memory,
    Id,
    Stage,
    Substate,
}

impl SortColumn {
    pub const ALL: [SortColumn; 7] = [
        SortColumn::Idle,
        SortColumn::Ttl,
        SortColumn::History,
        SortColumn::Memory,
        SortColumn::Id,
        SortColumn::Stage,
        SortColumn::Substate,
    ];

    pub fn title(self) -> &'static str {
        match self {
            SortColumn::Id => "ID",
            SortColumn::Stage => "STAGE",
            SortColumn::Substate => "SUBSTATE",
            SortColumn::Idle => "IDLE",
            SortColumn::Ttl => "TTL",
            SortColumn::History => "HIST",
            SortColumn::Memory => "MEMORY",
        }
    }

    pub fn next(self) -> SortColumn {
        let i = SortColumn::ALL.iter().position(|c| *c == self).unwrap_or(0);
        SortColumn::ALL[(i + 1) % SortColumn::ALL.len()]
    }
}

/// What the rules for idle time and stalled sessions need, sent when they change.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub idle: IdleSource,
    pub lifetime_s: Option<i64>,
    pub stalled_after_s: i64,
    /// Stages or substates with their own stalled threshold.
    pub stage_limits: Vec<(String, i64)>,
    pub finals: Vec<String>,
    /// Count stalled sessions by substate (the layout has substates) rather than by stage.
    pub by_substate: bool,
    /// The layout's marker names, in bit order (the filter `is:NAME` shows their sessions).
    pub markers: Vec<String>,
    /// The layout's id fields (the filter `FIELD=VALUE` finds a session by one).
    pub id_fields: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            idle: IdleSource::LastInteraction,
            lifetime_s: None,
            stalled_after_s: domain::DEFAULT_STALLED_AFTER_S,
            stage_limits: Vec::new(),
            finals: Vec::new(),
            by_substate: false,
            markers: Vec::new(),
            id_fields: Vec::new(),
        }
    }
}

/// What the table should show: the order and which part of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableRequest {
    pub sort: SortColumn,
    pub reverse: bool,
    pub filter: String,
    /// The first row on screen, and how many rows fit.
    pub offset: usize,
    pub rows: usize,
    /// The selected session; with `follow`, the window moves to keep it on screen.
    pub selected: Option<SessionId>,
    pub follow: bool,
    /// Echoed in the view that answers it.
    pub serial: u64,
}

/// What the table shows, as the engine last worked it out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableView {
    /// The request this answers.
    pub serial: u64,
    pub sort: SortColumn,
    pub reverse: bool,
    pub filter: String,
    /// Rows in the order (after the filter).
    pub len: usize,
    /// Rows kept in all.
    pub stored: usize,
    /// Sessions seen but not kept: past `--max-rows`, or ids too long to list.
    pub unlisted: u64,
    /// The first row on screen (the request's, moved to follow the selection).
    pub offset: usize,
    /// Where `window` starts in the order.
    pub window_start: usize,
    pub window: Vec<SessionRow>,
    /// Where the selected session is in the order.
    pub selected_index: Option<usize>,
    /// Stalled sessions among those kept, in all and by stage (or substate).
    pub stalled: usize,
    pub stalled_by: BTreeMap<String, usize>,
    /// The census pass whose every row the stalled counts include (the last one ended before
    /// they were counted), if any: counts made while a pass pours in are of part of it.
    pub stalled_pass: Option<u64>,
    /// How long the last full sort took, for the footer and the benchmark.
    pub sort_ms: f64,
}

impl TableView {
    /// The row at a position of the order, if the window holds it.
    pub fn row_at(&self, index: usize) -> Option<&SessionRow> {
        index.checked_sub(self.window_start).and_then(|i| self.window.get(i))
    }

    /// Where a session is in the order, if the window holds it.
    pub fn index_of(&self, id: &SessionId) -> Option<usize> {
        self.window.iter().position(|r| &r.id == id).map(|i| self.window_start + i)
    }
}

/// A message to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Rows read by the census (with the pass's generation) or the page poll (`None`).
    Rows {
        rows: Vec<SessionRow>,
        generation: Option<u64>,
    },
    /// Sessions found gone.
    Gone(Vec<SessionId>),
    /// A census pass finished: rows it did not see are gone.
    PassDone {
        generation: u64,
    },
    Rules(Rules),
    /// The clock moved (idle times and TTLs count from it).
    Clock(Millis),
    Request(TableRequest),
    /// Forget every row (a new layout).
    Clear,
}

/// A row, compact.
#[derive(Debug, Clone, Copy)]
struct Row {
    id_at: u32,
    id_len: u32,
    /// Microseconds; `i64::MIN` when unknown.
    last_us: i64,
    /// Milliseconds; `i64::MIN` unknown, `i64::MAX` no TTL.
    expires_ms: i64,
    /// `u32::MAX` when unknown.
    history: u32,
    /// Bytes, saturating; `u32::MAX` when unknown.
    memory: u32,
    generation: u32,
    stage: u16,
    substate: u16,
    status: u16,
    /// The findings this session counts towards, one bit per kind (see [`finding_bits`]).
    findings: u16,
    /// The layout's markers the session carries, one bit each.
    markers: u8,
    flags: u8,
    /// Counts the sessions a slot has held, so an entry of the app-id index that names a slot
    /// whose session is gone is known to be stale.
    epoch: u16,
}

const OCCUPIED: u8 = 1;
const HAS_ERROR: u8 = 2;
/// The id is shown escaped (it is not plain printable text), so a filter also matches that form.
const ESCAPED: u8 = 4;
const UNKNOWN_U32: u32 = u32::MAX;

impl Row {
    fn ttl(&self) -> Ttl {
        match self.expires_ms {
            i64::MIN => Ttl::Unknown,
            i64::MAX => Ttl::Persistent,
            at => Ttl::ExpiresAt(at),
        }
    }

    fn last(&self) -> Option<Micros> {
        (self.last_us != i64::MIN).then_some(self.last_us)
    }
}

/// Distinct label texts, by small index (0 is "none").
#[derive(Debug, Default)]
struct Labels {
    texts: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u16>,
}

impl Labels {
    fn id(&mut self, text: Option<&Arc<str>>) -> u16 {
        let Some(text) = text else { return 0 };
        if let Some(id) = self.index.get(text) {
            return *id;
        }
        if self.texts.len() >= MAX_LABELS {
            return u16::MAX;
        }
        self.texts.push(text.clone());
        let id = self.texts.len() as u16;
        self.index.insert(text.clone(), id);
        id
    }

    fn text(&self, id: u16) -> Option<Arc<str>> {
        match id {
            0 => None,
            u16::MAX => Some(Arc::from("(one of too many distinct values)")),
            id => self.texts.get(usize::from(id) - 1).cloned(),
        }
    }
}

/// The rows.
#[derive(Debug, Default)]
pub struct Store {
    arena: Vec<u8>,
    /// Bytes of the arena that belong to removed rows.
    garbage: usize,
    rows: Vec<Row>,
    /// Each slot's id's hash: a table that grows, or that rehashes in place after many rows
    /// came and went, reads them instead of hashing every id again (a million ids took 300 ms).
    hashes: Vec<u64>,
    free: Vec<u32>,
    table: HashTable<u32>,
    hasher: std::hash::RandomState,
    labels: Labels,
    errors: HashMap<u32, Box<str>>,
    live: usize,
    max_rows: usize,
    /// Below this activity a new row is not kept while the store is full.
    floor: Option<i64>,
    unlisted: u64,
    generation: u32,
    /// The first id taken in (its first [`PREFIX_PROBE`] bytes), and how many leading bytes every
    /// id taken in since shares with it: sorting by id compares only what follows.
    prefix_probe: Vec<u8>,
    common_prefix: usize,
    /// Sessions by their application ids (`session_id=…`): (id key, slot, the slot's epoch).
    /// 8 bytes an entry: the low half of the id key, and the slot with its epoch's low byte.
    app_index: HashTable<(u32, u32)>,
}

/// The most entries the app-id index keeps (8 bytes each, and a control byte); past it, ids
/// are not indexed.
const APP_INDEX_MAX: usize = 1 << 20;

/// An app-id entry: the key's low half, and the slot (below 2^24) with its epoch's low byte.
fn app_entry(key: u64, slot: u32, epoch: u16) -> Option<(u32, u32)> {
    (slot < 1 << 24).then(|| (key as u32, slot << 8 | u32::from(epoch & 0xff)))
}

/// Whether an app-id entry still names the session it was made for.
fn app_entry_live(rows: &[Row], packed: u32) -> bool {
    let (slot, epoch) = (packed >> 8, packed & 0xff);
    rows.get(slot as usize).is_some_and(|r| u32::from(r.epoch & 0xff) == epoch && r.flags & OCCUPIED != 0)
}

/// The table hash of an entry, from the half of the key it keeps (spread over 64 bits).
fn app_hash(half: u32) -> u64 {
    u64::from(half).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// How many leading bytes of ids are checked for a prefix they all share.
const PREFIX_PROBE: usize = 64;

impl Store {
    pub fn new(max_rows: usize) -> Store {
        Store { max_rows: max_rows.max(1), ..Store::default() }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn id_bytes(&self, row: &Row) -> &[u8] {
        &self.arena[row.id_at as usize..(row.id_at + row.id_len) as usize]
    }

    fn find(&self, id: &[u8]) -> Option<u32> {
        self.find_hashed(id, self.hasher.hash_one(id))
    }

    fn find_hashed(&self, id: &[u8], hash: u64) -> Option<u32> {
        self.table.find(hash, |slot| self.id_bytes(&self.rows[*slot as usize]) == id).copied()
    }

    /// Adds or replaces a session's row. A census row carries its pass's generation; a page row
    /// keeps the newest generation and the memory it does not read.
    pub fn upsert(&mut self, row: SessionRow, census: Option<u64>, rules: &Rules) {
        let id = row.id.as_bytes();
        if census.is_some() {
            self.generation = self.generation.max(census.unwrap_or(0) as u32);
        }
        let generation = census.map_or(self.generation, |g| g as u32);
        let compact = |store: &mut Store, id_at: u32, id_len: u32, old: Option<&Row>| Row {
            id_at,
            id_len,
            last_us: row.last_interaction.unwrap_or(i64::MIN),
            expires_ms: match row.ttl {
                Ttl::Unknown => i64::MIN,
                Ttl::Persistent => i64::MAX,
                Ttl::ExpiresAt(at) => at.clamp(i64::MIN + 1, i64::MAX - 1),
            },
            history: row.history_len.map_or(UNKNOWN_U32, |n| n.min(u64::from(UNKNOWN_U32 - 1)) as u32),
            memory: row
                .memory_bytes
                .map(|n| n.min(u64::from(UNKNOWN_U32 - 1)) as u32)
                .or_else(|| old.map(|o| o.memory))
                .unwrap_or(UNKNOWN_U32),
            generation: generation.max(old.map_or(0, |o| if census.is_some() { 0 } else { o.generation })),
            stage: store.labels.id(row.stage.as_ref()),
            substate: store.labels.id(row.substate.as_ref()),
            status: store.labels.id(row.status.as_ref()),
            findings: finding_bits(&row.findings),
            markers: row.markers,
            epoch: old.map_or(0, |o| o.epoch),
            flags: OCCUPIED
                | if row.decode_error.is_some() { HAS_ERROR } else { 0 }
                | old.map_or_else(|| if shown_escaped(id) { ESCAPED } else { 0 }, |o| o.flags & ESCAPED),
        };
        let hash = self.hasher.hash_one(id);
        let slot = match self.find_hashed(id, hash) {
            Some(slot) => {
                let old = self.rows[slot as usize];
                self.rows[slot as usize] = compact(self, old.id_at, old.id_len, Some(&old));
                slot
            }
            None => {
                let activity = domain::activity(rules.idle, row.last_interaction, row.ttl);
                let below_floor = self.floor.is_some_and(|f| activity.is_none_or(|a| a < f));
                let full = self.live >= self.max_rows && below_floor;
                if id.len() > MAX_ID_BYTES || self.arena.len() + id.len() > MAX_ARENA_BYTES || full {
                    self.unlisted += 1;
                    return;
                }
                self.note_prefix(id);
                let id_at = self.arena.len() as u32;
                self.arena.extend_from_slice(id);
                let new = compact(self, id_at, id.len() as u32, None);
                let slot = match self.free.pop() {
                    Some(slot) => {
                        let epoch = self.rows[slot as usize].epoch;
                        self.rows[slot as usize] = Row { epoch, ..new };
                        self.hashes[slot as usize] = hash;
                        slot
                    }
                    None => {
                        self.rows.push(new);
                        self.hashes.push(hash);
                        (self.rows.len() - 1) as u32
                    }
                };
                let hashes = &self.hashes;
                self.table.insert_unique(hash, slot, |s| hashes[*s as usize]);
                self.live += 1;
                slot
            }
        };
        let epoch = self.rows[slot as usize].epoch;
        for key in row.app_ids.iter().copied().filter(|k| *k != 0) {
            let Some(entry) = app_entry(key, slot, epoch) else { continue };
            let hash = app_hash(entry.0);
            if self.app_index.len() < APP_INDEX_MAX && self.app_index.find(hash, |e| *e == entry).is_none() {
                self.app_index.insert_unique(hash, entry, |e| app_hash(e.0));
            }
        }
        match row.decode_error {
            Some(e) if self.errors.len() < MAX_ERROR_TEXTS || self.errors.contains_key(&slot) => {
                self.errors.insert(slot, crate::util::text::clip(&e, 300).into_boxed_str());
            }
            Some(_) => {}
            None => {
                self.errors.remove(&slot);
            }
        }
    }

    /// Narrows the prefix every id shares to what `id` shares too.
    fn note_prefix(&mut self, id: &[u8]) {
        if self.live == 0 && self.prefix_probe.is_empty() {
            self.prefix_probe = id[..id.len().min(PREFIX_PROBE)].to_vec();
            self.common_prefix = self.prefix_probe.len();
            return;
        }
        let shared = self.prefix_probe.iter().zip(id).take(self.common_prefix).take_while(|(a, b)| a == b).count();
        self.common_prefix = shared;
    }

    /// Removes a session's row.
    pub fn remove(&mut self, id: &[u8]) -> bool {
        let hash = self.hasher.hash_one(id);
        let Some(slot) = self.find_hashed(id, hash) else { return false };
        self.remove_slot(slot);
        true
    }

    /// Removes the row in `slot` (occupied), found again in the hash table by the hash kept
    /// beside it: no id is copied or hashed.
    fn remove_slot(&mut self, slot: u32) {
        if let Ok(entry) = self.table.find_entry(self.hashes[slot as usize], |s| *s == slot) {
            entry.remove();
        }
        let row = &mut self.rows[slot as usize];
        self.garbage += row.id_len as usize;
        row.flags = 0;
        row.epoch = row.epoch.wrapping_add(1);
        self.free.push(slot);
        self.errors.remove(&slot);
        self.live -= 1;
    }

    /// Removes the rows a census pass did not see (expired or deleted since).
    pub fn drop_older_than(&mut self, generation: u64) -> usize {
        let generation = generation as u32;
        let stale: Vec<u32> =
            self.occupied().filter(|(_, r)| r.generation < generation).map(|(slot, _)| slot).collect();
        for slot in &stale {
            self.remove_slot(*slot);
        }
        self.compact_arena();
        self.prune_app_index();
        stale.len()
    }

    /// Keeps the `max_rows` most recently active rows when there are more.
    pub fn trim(&mut self, rules: &Rules) -> usize {
        if self.live <= self.max_rows {
            return 0;
        }
        let mut activities: Vec<i64> =
            self.occupied().map(|(_, r)| self.activity(r, rules).unwrap_or(i64::MIN)).collect();
        let cut = activities.len() - self.max_rows;
        let (_, threshold, _) = activities.select_nth_unstable(cut);
        let threshold = *threshold;
        let mut over = self.live - self.max_rows;
        let evict: Vec<u32> = self
            .occupied()
            .filter(|(_, r)| self.activity(r, rules).unwrap_or(i64::MIN) < threshold)
            .map(|(slot, _)| slot)
            .collect();
        for slot in &evict {
            if over == 0 {
                break;
            }
            self.remove_slot(*slot);
            self.unlisted += 1;
            over -= 1;
        }
        // Rows at the threshold itself, when too many share it.
        if over > 0 {
            let more: Vec<u32> = self
                .occupied()
                .filter(|(_, r)| self.activity(r, rules).unwrap_or(i64::MIN) == threshold)
                .take(over)
                .map(|(slot, _)| slot)
                .collect();
            for slot in &more {
                self.remove_slot(*slot);
                self.unlisted += 1;
            }
        }
        self.floor = Some(threshold);
        self.compact_arena();
        evict.len()
    }

    /// The slots of the sessions an application id names (`app_id_key` of `session_id=…`).
    fn find_app_id(&self, key: u64) -> Vec<u32> {
        let half = key as u32;
        let mut slots: Vec<u32> = self
            .app_index
            .iter_hash(app_hash(half))
            .filter(|(k, packed)| *k == half && self.app_entry_live(*packed))
            .map(|(_, packed)| packed >> 8)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// Forgets app-id entries of sessions that are gone.
    fn prune_app_index(&mut self) {
        let rows = &self.rows;
        self.app_index.retain(|(_, packed)| app_entry_live(rows, *packed));
    }

    fn app_entry_live(&self, packed: u32) -> bool {
        app_entry_live(&self.rows, packed)
    }

    /// Rewrites the id arena without the bytes of removed rows, once they are half of it.
    fn compact_arena(&mut self) {
        if self.garbage < (1 << 20) || self.garbage * 2 < self.arena.len() {
            return;
        }
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        for row in self.rows.iter_mut().filter(|r| r.flags & OCCUPIED != 0) {
            let at = arena.len() as u32;
            arena.extend_from_slice(&self.arena[row.id_at as usize..(row.id_at + row.id_len) as usize]);
            row.id_at = at;
        }
        self.arena = arena;
        self.garbage = 0;
    }

    pub fn clear(&mut self) {
        *self = Store::new(self.max_rows);
    }

    fn occupied(&self) -> impl Iterator<Item = (u32, &Row)> {
        self.rows.iter().enumerate().filter(|(_, r)| r.flags & OCCUPIED != 0).map(|(i, r)| (i as u32, r))
    }

    fn activity(&self, row: &Row, rules: &Rules) -> Option<i64> {
        domain::activity(rules.idle, row.last(), row.ttl())
    }

    /// The row of a slot as the views read it.
    fn session_row(&self, slot: u32) -> SessionRow {
        let r = &self.rows[slot as usize];
        SessionRow {
            id: SessionId::from_bytes(self.id_bytes(r)),
            stage: self.labels.text(r.stage),
            substate: self.labels.text(r.substate),
            status: self.labels.text(r.status),
            last_interaction: r.last(),
            ttl: r.ttl(),
            history_len: (r.history != UNKNOWN_U32).then_some(u64::from(r.history)),
            // What only the watch of arrivals needs; the table does not keep it.
            created_expiry: None,
            memory_bytes: (r.memory != UNKNOWN_U32).then_some(u64::from(r.memory)),
            decode_error: (r.flags & HAS_ERROR != 0).then(|| {
                self.errors.get(&slot).map_or_else(|| "not read or not decoded".to_string(), |e| e.to_string())
            }),
            generation: u64::from(r.generation),
            findings: finding_kinds(r.findings).map(|k| domain::RowFinding::new(k, String::new())).collect(),
            markers: r.markers,
            app_ids: [0; domain::APP_ID_FIELDS],
        }
    }

    /// Bytes the store holds, roughly, for the README's figures.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.rows.capacity() * std::mem::size_of::<Row>()
            + self.hashes.capacity() * std::mem::size_of::<u64>()
            + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.app_index.capacity() * (std::mem::size_of::<(u32, u32)>() + 1)
            + self.free.capacity() * 4
    }
}

/// The order of the table and what it needs to answer views.
#[derive(Debug, Default)]
pub struct Engine {
    store: Store,
    rules: Rules,
    now: Millis,
    /// Row slots in display order, and each slot's position in it (`u32::MAX`: not shown).
    order: Vec<u32>,
    position: Vec<u32>,
    ordered_by: Option<(SortColumn, bool, String)>,
    dirty: bool,
    sorted_at: Option<Instant>,
    sort_ms: f64,
    request: TableRequest,
    stalled: usize,
    stalled_by: BTreeMap<String, usize>,
    counted_at: Option<Instant>,
    /// The last pass that ended, and the one the stalled counts were made after.
    pass_done: Option<u64>,
    stalled_pass: Option<u64>,
    /// Whether anything a view shows changed since the last one.
    changed: bool,
    /// Re-sort and count at once, never waiting (an engine run inline, in tests).
    immediate: bool,
}

impl Engine {
    pub fn new(max_rows: usize) -> Engine {
        Engine { store: Store::new(max_rows), changed: true, ..Engine::default() }
    }

    /// Works out every view at once instead of every [`RESORT_INTERVAL`]: for an engine run
    /// inline, whose caller wants the answer now.
    pub fn set_immediate(&mut self) {
        self.immediate = true;
    }

    /// Applies a message; nothing is worked out until [`Engine::view`].
    pub fn apply(&mut self, message: Message) {
        match message {
            Message::Rows { rows, generation } => {
                for row in rows {
                    self.store.upsert(row, generation, &self.rules);
                }
                if self.store.len() > self.store.max_rows + self.store.max_rows / 16 {
                    self.store.trim(&self.rules);
                }
                self.dirty = true;
            }
            Message::Gone(ids) => {
                for id in ids {
                    self.dirty |= self.store.remove(id.as_bytes());
                }
            }
            Message::PassDone { generation } => {
                if self.store.drop_older_than(generation) > 0 {
                    self.dirty = true;
                }
                // Counted again over the whole pass at the next view.
                self.pass_done = Some(generation);
                self.counted_at = None;
                self.store.trim(&self.rules);
                crate::util::memory::release_freed_memory();
            }
            Message::Rules(rules) => {
                if rules != self.rules {
                    self.rules = rules;
                    self.dirty = true;
                    self.counted_at = None;
                }
            }
            Message::Clock(now) => self.now = now,
            Message::Request(request) => {
                self.changed = true;
                self.request = request;
            }
            Message::Clear => {
                self.store.clear();
                self.dirty = true;
            }
        }
    }

    /// Works out what changed and answers with a view when the table should be redrawn. The
    /// order is recomputed at once when the sort or filter changed, or when the table is
    /// empty; otherwise at most every [`RESORT_INTERVAL`] after rows changed.
    pub fn view(&mut self, now: Instant) -> Option<TableView> {
        let wanted = (self.request.sort, self.request.reverse, self.request.filter.clone());
        let inputs_changed = self.ordered_by.as_ref() != Some(&wanted);
        let resort_due = self.dirty
            && (self.immediate
                || self.order.is_empty()
                || self.sorted_at.is_none_or(|at| now.duration_since(at) >= RESORT_INTERVAL));
        // A filter typed one more character narrows the order as it is; rows that changed in
        // the meantime wait for the next re-sort, as they would have anyway.
        // A finding's or an id's filter is not a text to search for: it never narrows.
        let exact = |text: &str| {
            text.trim().starts_with(KIND_FILTER)
                || text.split_once('=').is_some_and(|(f, _)| self.rules.id_fields.iter().any(|i| i == f.trim()))
        };
        let narrows = inputs_changed
            && !exact(&wanted.2)
            && self.ordered_by.as_ref().is_some_and(|(column, reverse, filter)| {
                (*column, *reverse) == (wanted.0, wanted.1) && wanted.2.to_lowercase().contains(&filter.to_lowercase())
            });
        if resort_due || inputs_changed {
            let started = Instant::now();
            if narrows && !resort_due {
                self.narrow(&wanted.2);
            } else {
                self.sort(&wanted);
                self.sorted_at = Some(now);
                self.dirty = false;
            }
            self.sort_ms = started.elapsed().as_secs_f64() * 1000.0;
            self.ordered_by = Some(wanted);
            self.changed = true;
        }
        if self.immediate || self.counted_at.is_none_or(|at| now.duration_since(at) >= STALLED_INTERVAL) {
            let before = (self.stalled, self.stalled_by.clone(), self.stalled_pass);
            self.count_stalled();
            self.counted_at = Some(now);
            self.changed |= before != (self.stalled, self.stalled_by.clone(), self.stalled_pass);
        }
        if !self.changed {
            return None;
        }
        self.changed = false;
        Some(self.window())
    }

    /// When the engine next has work that is not waiting for a message.
    pub fn next_due(&self, now: Instant) -> Duration {
        let mut due =
            STALLED_INTERVAL.saturating_sub(self.counted_at.map_or(STALLED_INTERVAL, |at| now.duration_since(at)));
        if self.dirty {
            let resort =
                RESORT_INTERVAL.saturating_sub(self.sorted_at.map_or(RESORT_INTERVAL, |at| now.duration_since(at)));
            due = due.min(resort);
        }
        due
    }

    /// Orders every row that matches the filter. Each row gets a key of two numbers (the
    /// column's value, and the bytes of its id after the prefix all ids share), so that the sort
    /// itself never reads the ids; only rows whose keys tie are then ordered by their whole ids.
    fn sort(&mut self, (column, reverse, filter): &(SortColumn, bool, String)) {
        let store = &self.store;
        let filter = Filter::new(store, filter, &self.rules, self.now);
        // Label ranks, so text columns sort by number.
        let ranks: Vec<u32> = match column {
            SortColumn::Stage | SortColumn::Substate => {
                let mut sorted: Vec<(usize, &Arc<str>)> = store.labels.texts.iter().enumerate().collect();
                sorted.sort_by(|a, b| a.1.cmp(b.1));
                let mut ranks = vec![0u32; store.labels.texts.len() + 1];
                for (rank, (i, _)) in sorted.into_iter().enumerate() {
                    ranks[i + 1] = rank as u32;
                }
                ranks
            }
            _ => Vec::new(),
        };
        let descending = matches!(column, SortColumn::History | SortColumn::Memory) != *reverse;
        let now = self.now;
        let idle = self.rules.idle;
        let skip = store.common_prefix;
        let id_reverse = *column == SortColumn::Id && *reverse;
        // (the column's value, then the id), unknown values last either way.
        let key = |row: &Row| -> (u64, u64) {
            let id = store.id_bytes(row);
            let value: Option<u64> = match column {
                SortColumn::Idle => domain::activity(idle, row.last(), row.ttl()).map(|a| !(a as u64 ^ (1 << 63))),
                SortColumn::Ttl => match row.ttl() {
                    Ttl::Persistent => Some(u64::MAX - 1),
                    Ttl::ExpiresAt(at) => Some(at.saturating_sub(now).max(0) as u64),
                    Ttl::Unknown => None,
                },
                SortColumn::History => (row.history != UNKNOWN_U32).then_some(u64::from(row.history)),
                SortColumn::Memory => (row.memory != UNKNOWN_U32).then_some(u64::from(row.memory)),
                SortColumn::Stage => {
                    (row.stage != 0).then(|| u64::from(ranks.get(usize::from(row.stage)).copied().unwrap_or(u32::MAX)))
                }
                SortColumn::Substate => (row.substate != 0)
                    .then(|| u64::from(ranks.get(usize::from(row.substate)).copied().unwrap_or(u32::MAX))),
                SortColumn::Id => {
                    let (first, second) = (id_chunk(id, skip), id_chunk(id, skip + 8));
                    return if id_reverse { (!first, !second) } else { (first, second) };
                }
            };
            let value = match value {
                None => u64::MAX,
                Some(v) if descending => (u64::MAX - 1) - v.min(u64::MAX - 1),
                Some(v) => v.min(u64::MAX - 1),
            };
            (value, id_chunk(id, skip))
        };
        let mut keyed: Vec<(u64, u64, u32)> = store
            .occupied()
            .filter(|(slot, r)| filter.matches(store, *slot, r))
            .map(|(slot, r)| {
                let (a, b) = key(r);
                (a, b, slot)
            })
            .collect();
        keyed.sort_unstable_by_key(|k| (u128::from(k.0) << 64) | u128::from(k.1));
        // Runs of equal keys: by the whole id.
        let by_id = |a: &(u64, u64, u32), b: &(u64, u64, u32)| {
            let order = store.id_bytes(&store.rows[a.2 as usize]).cmp(store.id_bytes(&store.rows[b.2 as usize]));
            if id_reverse { order.reverse() } else { order }
        };
        for run in keyed.chunk_by_mut(|a, b| (a.0, a.1) == (b.0, b.1)) {
            if run.len() > 1 {
                run.sort_unstable_by(by_id);
            }
        }
        self.order.clear();
        self.order.extend(keyed.iter().map(|k| k.2));
        drop(keyed);
        self.index_positions();
    }

    /// Narrows the order to the rows that match `filter`, which asks for more than the filter
    /// the order was made with: what does not match that one cannot match this one, and a
    /// subset of an ordered list is in order.
    fn narrow(&mut self, filter: &str) {
        let store = &self.store;
        let filter = Filter::new(store, filter, &self.rules, self.now);
        // Which rows match, found in the order they are stored (the order shown would visit
        // them, and their ids, at random), then kept in the order shown.
        // A short order is checked as it is.
        if self.order.len() < store.live / 8 {
            self.order.retain(|slot| filter.matches(store, *slot, &store.rows[*slot as usize]));
        } else {
            let mut matching = vec![0u64; store.rows.len().div_ceil(64)];
            for (slot, row) in store.occupied() {
                if filter.matches(store, slot, row) {
                    matching[slot as usize / 64] |= 1 << (slot % 64);
                }
            }
            self.order.retain(|slot| matching[*slot as usize / 64] & (1 << (slot % 64)) != 0);
        }
        self.index_positions();
    }

    fn index_positions(&mut self) {
        self.position.clear();
        self.position.resize(self.store.rows.len(), u32::MAX);
        for (i, slot) in self.order.iter().enumerate() {
            self.position[*slot as usize] = i as u32;
        }
    }

    fn count_stalled(&mut self) {
        self.stalled_pass = self.pass_done;
        let store = &self.store;
        let rules = &self.rules;
        let stalled = Stalled::new(store, rules, self.now);
        let mut by: HashMap<u16, usize> = HashMap::new();
        let mut total = 0;
        for (_, row) in store.occupied() {
            if stalled.is(row) {
                total += 1;
                let label = if rules.by_substate { row.substate } else { row.stage };
                if label != 0 {
                    *by.entry(label).or_insert(0) += 1;
                }
            }
        }
        self.stalled = total;
        self.stalled_by = by.into_iter().filter_map(|(id, n)| Some((store.labels.text(id)?.to_string(), n))).collect();
    }

    fn window(&self) -> TableView {
        let r = &self.request;
        let len = self.order.len();
        let selected_index = r
            .selected
            .as_ref()
            .and_then(|id| self.store.find(id.as_bytes()))
            .and_then(|slot| self.position.get(slot as usize).copied())
            .filter(|p| *p != u32::MAX)
            .map(|p| p as usize);
        let rows = r.rows.max(1);
        let mut offset = r.offset.min(len.saturating_sub(rows));
        if r.follow
            && let Some(i) = selected_index
        {
            if i < offset {
                offset = i;
            } else if i >= offset + rows {
                offset = i + 1 - rows;
            }
        }
        let start = offset.saturating_sub(WINDOW_MARGIN);
        let end = (offset + rows + WINDOW_MARGIN).min(len);
        let window = self.order[start.min(end)..end].iter().map(|slot| self.store.session_row(*slot)).collect();
        TableView {
            serial: r.serial,
            sort: r.sort,
            reverse: r.reverse,
            filter: r.filter.clone(),
            len,
            stored: self.store.len(),
            unlisted: self.store.unlisted,
            offset,
            window_start: start.min(end),
            window,
            selected_index,
            stalled: self.stalled,
            stalled_by: self.stalled_by.clone(),
            stalled_pass: self.stalled_pass,
            sort_ms: self.sort_ms,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The session findings a row can count towards, in bit order: the kinds before the server's.
const ROW_FINDINGS: &[FindingKind] = FindingKind::ALL.split_at(FindingKind::SESSION_KINDS).0;

/// A row's findings as bits.
fn finding_bits(findings: &[domain::RowFinding]) -> u16 {
    findings.iter().filter_map(|f| ROW_FINDINGS.iter().position(|r| *r == f.kind)).fold(0, |bits, i| bits | 1 << i)
}

fn finding_kinds(bits: u16) -> impl Iterator<Item = FindingKind> {
    ROW_FINDINGS.iter().copied().enumerate().filter(move |(i, _)| bits & (1 << i) != 0).map(|(_, k)| k)
}

/// Eight bytes of an id from `at` as a number that sorts as the bytes do (zeros past its end).
fn id_chunk(id: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    if let Some(rest) = id.get(at..) {
        let n = rest.len().min(8);
        buf[..n].copy_from_slice(&rest[..n]);
    }
    u64::from_be_bytes(buf)
}

/// The stalled rule, ready to judge rows: by stage label, whether it is final and its own
/// threshold; and the idle rule.
struct Stalled<'a> {
    finals: Vec<bool>,
    limits: Vec<Option<i64>>,
    rules: &'a Rules,
    now: Millis,
}

impl<'a> Stalled<'a> {
    fn new(store: &Store, rules: &'a Rules, now: Millis) -> Stalled<'a> {
        let finals = std::iter::once(false)
            .chain(store.labels.texts.iter().map(|t| rules.finals.iter().any(|f| **f == **t)))
            .collect();
        let limits = std::iter::once(None)
            .chain(
                store.labels.texts.iter().map(|t| rules.stage_limits.iter().find(|(n, _)| **n == **t).map(|(_, s)| *s)),
            )
            .collect();
        Stalled { finals, limits, rules, now }
    }

    fn is(&self, row: &Row) -> bool {
        let is_final = |id: u16| self.finals.get(usize::from(id)).copied().unwrap_or(false);
        let in_workflow = row.stage != 0 || row.substate != 0;
        if !in_workflow || is_final(row.stage) || is_final(row.substate) {
            return false;
        }
        let limit = |id: u16| self.limits.get(usize::from(id)).copied().flatten();
        let after = limit(row.substate).or(limit(row.stage)).unwrap_or(self.rules.stalled_after_s);
        let idle = domain::idle_seconds(self.rules.idle, row.last(), row.ttl(), self.now, self.rules.lifetime_s);
        domain::stalled(true, false, idle, after)
    }
}

/// A filter that starts with this names a finding (`is:stuck`): the rows it is about.
pub const KIND_FILTER: &str = "is:";

/// Whether an id is shown escaped rather than as it is.
fn shown_escaped(id: &[u8]) -> bool {
    let plain_ascii = id.iter().all(|b| (0x20..0x7f).contains(b) && *b != b'\\');
    !plain_ascii && crate::util::text::escape_bytes(id).as_bytes() != id
}

/// The table's filter: a text that an id (ignoring ASCII case, and as shown when it is shown
/// escaped), a stage or a substate (ignoring case) contains.
struct Filter<'a> {
    needle: Vec<u8>,
    finder: memchr::memmem::Finder<'static>,
    /// Which labels match, by label index.
    labels: Vec<bool>,
    /// `is:KIND`: the rows counted towards a finding (its bit, or the stalled rule).
    kind: Option<KindFilter<'a>>,
}

enum KindFilter<'a> {
    Bit(u16),
    Marker(u8),
    /// `FIELD=VALUE`: the sessions whose application id it is.
    Slots(Vec<u32>),
    Stalled(Stalled<'a>),
    /// A finding no row counts towards (or no finding by that name).
    Nothing,
}

impl<'a> Filter<'a> {
    fn new(store: &Store, text: &str, rules: &'a Rules, now: Millis) -> Filter<'a> {
        if let Some((field, value)) = text.trim().split_once('=')
            && rules.id_fields.iter().take(domain::APP_ID_FIELDS).any(|f| f == field.trim())
        {
            let slots = store.find_app_id(domain::app_id_key(field.trim(), value.trim().as_bytes()));
            let finder = memchr::memmem::Finder::new(b"").into_owned();
            return Filter { needle: Vec::new(), finder, labels: Vec::new(), kind: Some(KindFilter::Slots(slots)) };
        }
        if let Some(name) = text.trim().strip_prefix(KIND_FILTER) {
            let name = name.trim().to_lowercase();
            let marker = rules.markers.iter().position(|m| m.to_lowercase() == name);
            let kind = match ROW_FINDINGS.iter().position(|k| k.name() == name) {
                _ if name == FindingKind::Stalled.name() => KindFilter::Stalled(Stalled::new(store, rules, now)),
                Some(bit) => KindFilter::Bit(1 << bit),
                None => match marker {
                    Some(bit) if bit < 8 => KindFilter::Marker(1 << bit),
                    _ => KindFilter::Nothing,
                },
            };
            let finder = memchr::memmem::Finder::new(b"").into_owned();
            return Filter { needle: Vec::new(), finder, labels: Vec::new(), kind: Some(kind) };
        }
        let needle = text.to_lowercase();
        let labels = if needle.is_empty() {
            Vec::new()
        } else {
            std::iter::once(false)
                .chain(store.labels.texts.iter().map(|t| t.to_lowercase().contains(&needle)))
                .collect()
        };
        let finder = memchr::memmem::Finder::new(needle.as_bytes()).into_owned();
        Filter { needle: needle.into_bytes(), finder, labels, kind: None }
    }

    fn matches(&self, store: &Store, slot: u32, row: &Row) -> bool {
        match &self.kind {
            Some(KindFilter::Slots(slots)) => return slots.binary_search(&slot).is_ok(),
            Some(KindFilter::Bit(bit)) => return row.findings & bit != 0,
            Some(KindFilter::Marker(bit)) => return row.markers & bit != 0,
            Some(KindFilter::Stalled(stalled)) => return stalled.is(row),
            Some(KindFilter::Nothing) => return false,
            None => {}
        }
        let label = |id: u16| self.labels.get(usize::from(id)).copied().unwrap_or(false);
        self.needle.is_empty()
            || label(row.stage)
            || label(row.substate)
            || self.id_contains(store.id_bytes(row), row.flags & ESCAPED != 0)
    }

    fn id_contains(&self, id: &[u8], escaped: bool) -> bool {
        // Lower-case the id into a buffer on the stack (ids are short) and search it whole.
        let mut buf = [0u8; 128];
        let found = match buf.get_mut(..id.len()) {
            Some(lower) => {
                lower.copy_from_slice(id);
                lower.make_ascii_lowercase();
                self.finder.find(lower).is_some()
            }
            None => self.finder.find(&id.to_ascii_lowercase()).is_some(),
        };
        found || escaped && self.finder.find(crate::util::text::escape_bytes(id).to_lowercase().as_bytes()).is_some()
    }
}

/// An engine on its own thread: messages in, views out.
pub struct Worker {
    pub messages: mpsc::Sender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the thread.
        let (closed, _) = mpsc::channel();
        self.messages = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts an engine thread. Views go to `views` (a closure, so the caller chooses the channel
/// and can wake its own event loop).
pub fn spawn(max_rows: usize, views: impl Fn(TableView) -> bool + Send + 'static) -> Worker {
    let (messages, inbox) = mpsc::channel::<Message>();
    let thread = std::thread::Builder::new()
        .name("sessiontop-table".into())
        .spawn(move || {
            let mut engine = Engine::new(max_rows);
            let mut queue = VecDeque::new();
            loop {
                if queue.is_empty() {
                    let wait = engine.next_due(Instant::now());
                    match inbox.recv_timeout(wait.max(Duration::from_millis(1))) {
                        Ok(message) => queue.push_back(message),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                queue.extend(inbox.try_iter());
                // A view request is answered before the rows that wait, so a key press never
                // queues behind data; the newest request wins.
                if queue.iter().any(|m| matches!(m, Message::Request(_))) {
                    let (asks, rows): (VecDeque<Message>, VecDeque<Message>) = queue
                        .drain(..)
                        .partition(|m| matches!(m, Message::Request(_) | Message::Rules(_) | Message::Clock(_)));
                    queue = rows;
                    asks.into_iter().for_each(|m| engine.apply(m));
                    if let Some(view) = engine.view(Instant::now())
                        && !views(view)
                    {
                        return;
                    }
                }
                // Then the rows, a slice of time at a time, looking for requests in between.
                let slice_end = Instant::now() + APPLY_SLICE;
                while let Some(message) = queue.pop_front() {
                    engine.apply(message);
                    if Instant::now() >= slice_end {
                        break;
                    }
                }
                if let Some(view) = engine.view(Instant::now())
                    && !views(view)
                {
                    return;
                }
            }
        })
        .ok();
    Worker { messages, thread }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, idle_s: i64, stage: &str) -> SessionRow {
        SessionRow {
            stage: Some(Arc::from("stage_1")),
            substate: Some(Arc::from(stage)),
            last_interaction: Some((1_000_000 - idle_s * 1000) * 1000),
            ttl: Ttl::ExpiresAt(1_000_000 + 3_600_000),
            history_len: Some(idle_s as u64),
            ..SessionRow::new(id)
        }
    }

    fn engine(rows: Vec<SessionRow>) -> Engine {
        let mut e = Engine::new(DEFAULT_MAX_ROWS);
        e.apply(Message::Clock(1_000_000));
        e.apply(Message::Rows { rows, generation: Some(1) });
        e
    }

    fn ids(v: &TableView) -> Vec<String> {
        v.window.iter().map(|r| r.id.escaped()).collect()
    }

    #[test]
    fn rows_are_compact() {
        assert_eq!(std::mem::size_of::<Row>(), 48);
    }

    #[test]
    fn sorts_filters_and_follows_the_selection() {
        let mut e = engine(vec![row("b", 30, "x"), row("a", 10, "y"), row("c", 20, "x"), row("bad\u{1b}", 5, "z")]);
        e.apply(Message::Request(TableRequest { rows: 10, ..TableRequest::default() }));
        let v = e.view(Instant::now()).unwrap();
        assert_eq!(ids(&v), ["bad\\x1b", "a", "c", "b"], "least idle first");
        e.apply(Message::Request(TableRequest { sort: SortColumn::Id, rows: 10, ..TableRequest::default() }));
        assert_eq!(ids(&e.view(Instant::now()).unwrap()), ["a", "b", "bad\\x1b", "c"]);
        e.apply(Message::Request(TableRequest { sort: SortColumn::History, rows: 10, ..TableRequest::default() }));
        assert_eq!(ids(&e.view(Instant::now()).unwrap()), ["b", "c", "a", "bad\\x1b"], "history longest first");
        e.apply(Message::Request(TableRequest { filter: "Y".into(), rows: 10, ..TableRequest::default() }));
        assert_eq!(ids(&e.view(Instant::now()).unwrap()), ["a"], "by substate, any case");
        e.apply(Message::Request(TableRequest { filter: "\\x1b".into(), rows: 10, ..TableRequest::default() }));
        assert_eq!(ids(&e.view(Instant::now()).unwrap()), ["bad\\x1b"], "an escaped id matches as shown");
        // Following the selection moves the window.
        let many: Vec<SessionRow> = (0..500).map(|i| row(&format!("u{i:03}"), i, "x")).collect();
        let mut e = engine(many);
        let selected = Some(SessionId::from("u400"));
        e.apply(Message::Request(TableRequest { rows: 10, selected, follow: true, ..TableRequest::default() }));
        let v = e.view(Instant::now()).unwrap();
        assert_eq!(v.selected_index, Some(400));
        assert_eq!(v.offset, 391);
        assert_eq!(v.row_at(400).map(|r| r.id.escaped()), Some("u400".into()));
        assert!(v.window.len() <= 10 + 2 * WINDOW_MARGIN);
    }

    #[test]
    fn data_re_sorts_are_throttled_and_sort_changes_are_not() {
        let mut e = engine(vec![row("a", 10, "x")]);
        e.apply(Message::Request(TableRequest { rows: 10, ..TableRequest::default() }));
        let t0 = Instant::now();
        assert_eq!(e.view(t0).unwrap().len, 1);
        e.apply(Message::Rows { rows: vec![row("b", 1, "x")], generation: None });
        let v = e.view(t0 + Duration::from_millis(10));
        assert!(v.is_none_or(|v| v.len == 1), "rows that change wait for the next re-sort");
        let v = e.view(t0 + RESORT_INTERVAL).unwrap();
        assert_eq!(ids(&v), ["b", "a"]);
        e.apply(Message::Rows { rows: vec![row("c", 0, "x")], generation: None });
        e.apply(Message::Request(TableRequest { reverse: true, rows: 10, ..TableRequest::default() }));
        let v = e.view(t0 + RESORT_INTERVAL + Duration::from_millis(1)).unwrap();
        assert_eq!(ids(&v), ["a", "b", "c"], "a changed sort re-sorts at once, with the new rows");
    }

    #[test]
    fn a_row_saved_again_between_passes_moves_to_the_top_when_idle_comes_from_the_ttl() {
        // Flask-Session: idle is lifetime - TTL; a save renews the TTL.
        let flask = |id: &str, expires_in_s: i64| SessionRow {
            ttl: Ttl::ExpiresAt(1_000_000 + expires_in_s * 1000),
            last_interaction: None,
            ..SessionRow::new(id)
        };
        let mut e = engine(vec![flask("a", 86_380), flask("b", 86_370), flask("c", 86_390)]);
        e.apply(Message::Rules(Rules { idle: IdleSource::Ttl, lifetime_s: Some(86_400), ..Rules::default() }));
        e.apply(Message::Request(TableRequest { rows: 10, ..TableRequest::default() }));
        let t0 = Instant::now();
        assert_eq!(ids(&e.view(t0).unwrap()), ["c", "a", "b"]);
        e.apply(Message::PassDone { generation: 1 });
        e.apply(Message::Clock(1_005_000));
        e.apply(Message::Rows { rows: vec![flask("b", 86_400 - 5)], generation: None });
        let v = e.view(t0 + RESORT_INTERVAL).unwrap();
        assert_eq!(ids(&v), ["b", "c", "a"]);
        // Read again with the rest of the page (the rows on screen), then a new one.
        e.apply(Message::Clock(1_010_000));
        e.apply(Message::Rows {
            rows: vec![flask("c", 86_390), flask("a", 86_380), flask("d", 86_400 - 10 + 10)],
            generation: None,
        });
        let v = e.view(t0 + RESORT_INTERVAL * 2).unwrap();
        assert_eq!(ids(&v), ["d", "b", "c", "a"]);
    }

    #[test]
    fn passes_drop_what_they_did_not_see_and_max_rows_keeps_the_most_recent() {
        let mut e = engine((0..10).map(|i| row(&format!("u{i}"), i * 10, "x")).collect());
        e.apply(Message::Rows { rows: vec![row("u1", 10, "x"), row("u2", 20, "x")], generation: Some(2) });
        e.apply(Message::PassDone { generation: 2 });
        e.apply(Message::Request(TableRequest { rows: 10, ..TableRequest::default() }));
        assert_eq!(ids(&e.view(Instant::now()).unwrap()), ["u1", "u2"]);

        let mut e = Engine::new(100);
        e.apply(Message::Clock(1_000_000));
        for chunk in (0..1000).collect::<Vec<i64>>().chunks(50) {
            e.apply(Message::Rows {
                rows: chunk.iter().map(|i| row(&format!("u{i}"), *i, "x")).collect(),
                generation: Some(1),
            });
        }
        e.apply(Message::PassDone { generation: 1 });
        e.apply(Message::Request(TableRequest {
            rows: 10,
            sort: SortColumn::Idle,
            reverse: true,
            ..TableRequest::default()
        }));
        let v = e.view(Instant::now()).unwrap();
        assert_eq!(v.stored, 100);
        assert_eq!(v.unlisted, 900);
        assert_eq!(v.window.first().map(|r| r.id.escaped()), Some("u99".into()), "the 100 most recent are kept");
        // A row older than what was kept is not taken in again.
        e.apply(Message::Rows { rows: vec![row("ancient", 5000, "x")], generation: Some(2) });
        assert_eq!(e.store().len(), 100);
    }

    #[test]
    fn stalled_counts_follow_the_rules_and_the_clock() {
        let mut e = engine(vec![row("a", 10, "x"), row("b", 2000, "x"), row("c", 3000, "done")]);
        e.apply(Message::Rules(Rules { finals: vec!["done".into()], by_substate: true, ..Rules::default() }));
        e.apply(Message::Request(TableRequest { rows: 10, ..TableRequest::default() }));
        let v = e.view(Instant::now()).unwrap();
        assert_eq!(v.stalled, 1);
        assert_eq!(v.stalled_by.get("x"), Some(&1));
        e.apply(Message::Clock(1_000_000 + 1_000_000));
        let v = e.view(Instant::now() + STALLED_INTERVAL).unwrap();
        assert_eq!(v.stalled, 2, "a is idle long enough now");
    }

    /// Every row in the order a view holds (the whole order of a small table).
    fn all_ids(e: &mut Engine, sort: SortColumn, reverse: bool, filter: &str) -> Vec<String> {
        e.apply(Message::Request(TableRequest {
            sort,
            reverse,
            filter: filter.into(),
            rows: 1000,
            ..TableRequest::default()
        }));
        ids(&e.view(Instant::now()).unwrap())
    }

    #[test]
    fn ids_sort_in_byte_order_past_a_prefix_they_all_share() {
        // A long shared prefix, ids equal for 16 bytes after it, one id the start of another.
        let shared = "0".repeat(30);
        let tails =
            ["b", "a", "ab", "a\u{0}", "aaaaaaaaaaaaaaaaZ", "aaaaaaaaaaaaaaaaY", "aaaaaaaaaaaaaaaa", "Zz", "zz\u{1b}"];
        let ids_in: Vec<String> = tails.iter().map(|t| format!("{shared}{t}")).collect();
        let mut e = engine(ids_in.iter().enumerate().map(|(i, id)| row(id, i as i64, "x")).collect());
        let mut expected: Vec<Vec<u8>> = ids_in.iter().map(|id| id.as_bytes().to_vec()).collect();
        expected.sort();
        let expected: Vec<String> = expected.iter().map(|b| crate::util::text::escape_bytes(b)).collect();
        assert_eq!(all_ids(&mut e, SortColumn::Id, false, ""), expected);
        let reversed: Vec<String> = expected.iter().rev().cloned().collect();
        assert_eq!(all_ids(&mut e, SortColumn::Id, true, ""), reversed);
        // Ties of a column are broken by the whole id.
        let mut e = engine(ids_in.iter().map(|id| row(id, 7, "x")).collect());
        assert_eq!(all_ids(&mut e, SortColumn::History, false, ""), expected);
        assert_eq!(all_ids(&mut e, SortColumn::Substate, true, ""), expected, "ties ascending by id either way");
    }

    #[test]
    fn a_filter_typed_key_by_key_shows_what_it_shows_typed_at_once() {
        let mut rng = fastrand::Rng::with_seed(11);
        let stages = ["Upload", "tpr_analysis", "risk"];
        let rows: Vec<SessionRow> = (0..3000)
            .map(|i| {
                let id: String =
                    (0..rng.usize(3..12)).map(|_| rng.choice(b"abcAB_:9\\x").map_or('a', |b| *b as char)).collect();
                SessionRow { stage: Some(Arc::from(stages[i % 3])), ..row(&format!("{id}{i}"), rng.i64(0..5000), "s") }
            })
            .collect();
        for typed in ["ab_", "AB", "tpr", "up", "x\\", "a:9b"] {
            for column in [SortColumn::Idle, SortColumn::Id, SortColumn::Stage] {
                let mut stepwise = engine(rows.clone());
                for end in 0..=typed.len() {
                    let seen = all_ids(&mut stepwise, column, false, &typed[..end]);
                    let at_once = all_ids(&mut engine(rows.clone()), column, false, &typed[..end]);
                    assert_eq!(seen, at_once, "{column:?} filtered by {:?}", &typed[..end]);
                }
            }
        }
        // Rows that arrive while a filter is typed are in the order at the next re-sort.
        let mut e = engine(rows.clone());
        all_ids(&mut e, SortColumn::Idle, false, "a");
        e.apply(Message::Rows { rows: vec![row("zzz-ab-new", 0, "s")], generation: None });
        all_ids(&mut e, SortColumn::Idle, false, "ab");
        let later = Instant::now() + RESORT_INTERVAL;
        e.apply(Message::Request(TableRequest { filter: "ab".into(), rows: 1000, ..TableRequest::default() }));
        let v = e.view(later).unwrap();
        assert_eq!(v.window.first().map(|r| r.id.escaped()), Some("zzz-ab-new".into()));
    }

    #[test]
    fn a_session_is_found_by_its_application_id_and_its_markers() {
        let with_ids = |id: &str, app: &str, user: &str, markers: u8| SessionRow {
            app_ids: [
                domain::app_id_key("session_id", app.as_bytes()),
                domain::app_id_key("user_id", user.as_bytes()),
                0,
            ],
            markers,
            ..row(id, 10, "x")
        };
        let mut e = engine(vec![with_ids("a", "9b2f", "u1", 1), with_ids("b", "77aa", "u1", 0), row("c", 5, "x")]);
        e.apply(Message::Rules(Rules {
            id_fields: vec!["session_id".into(), "user_id".into()],
            markers: vec!["TPR".into()],
            ..Rules::default()
        }));
        assert_eq!(all_ids(&mut e, SortColumn::Id, false, "session_id=9b2f"), ["a"]);
        assert_eq!(all_ids(&mut e, SortColumn::Id, false, "session_id = 77aa"), ["b"]);
        assert_eq!(all_ids(&mut e, SortColumn::Id, false, "user_id=u1"), ["a", "b"]);
        assert!(all_ids(&mut e, SortColumn::Id, false, "session_id=9b2").is_empty(), "ids match whole");
        assert_eq!(all_ids(&mut e, SortColumn::Id, false, "is:tpr"), ["a"]);
        // A session that is gone is not found, even when its slot is taken by another.
        e.apply(Message::Gone(vec![SessionId::from("a")]));
        e.apply(Message::Rows { rows: vec![row("d", 1, "x")], generation: None });
        assert!(all_ids(&mut e, SortColumn::Id, false, "session_id=9b2f").is_empty());
        assert_eq!(all_ids(&mut e, SortColumn::Id, false, "user_id=u1"), ["b"]);
    }

    #[test]
    fn removed_rows_free_their_slots_and_their_ids() {
        let mut s = Store::new(10);
        let rules = Rules::default();
        for i in 0..5 {
            s.upsert(row(&format!("id{i}"), 1, "x"), Some(1), &rules);
        }
        assert!(s.remove(b"id2"));
        assert!(!s.remove(b"id2"));
        assert_eq!(s.len(), 4);
        s.upsert(row("again", 1, "x"), Some(1), &rules);
        assert_eq!(s.rows.len(), 5, "the slot was reused");
        assert!(s.find(b"again").is_some() && s.find(b"id2").is_none());
    }
}
