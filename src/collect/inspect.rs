//! One session in full: every key with its type, TTL and memory, the decoded state, meta and
//! payload, and the history newest first. Also finds a session's keys for the writes, so that
//! what `delete` removes is exactly what `inspect` shows.
//!
//! Every read is capped, and the cut is stated:
//! - a string: `GETRANGE` of at most `max_value_bytes`;
//! - a hash: read whole when its measured memory fits the cap; otherwise its field names (at
//!   most [`MAX_ITEMS`]), each field's size (`HSTRLEN`), and only the fields within the cap, up
//!   to [`READ_BUDGET_FACTOR`] times the cap in all;
//! - a list, set or sorted set: a window of at most [`MAX_ITEMS`] items, read only when its
//!   measured memory (`MEMORY USAGE … SAMPLES`, exact up to [`MAX_ITEMS`] items) fits the cap;
//!   Redis has no per-item size for these types, so a larger one is not read.
//!
//! A key of a wildcard family (`{prefix}ratelimit:{id}:*`) that could also belong to a longer
//! id which is a live session is that session's, not this one's.

use std::collections::HashSet;

use super::read::{ReadOptions, read_rows};
use super::walk::{Count, KeyWalk, KeyspaceWalk, Pacing};
use crate::conn::link::{Failure, Reply, reply};
use crate::conn::route::Router;
use crate::decode::{self, Value};
use crate::engine::domain::{Decodedish, KeyReport, Micros, Millis, SessionKey, SessionReport, SessionRow, Ttl};
use crate::engine::layout::{KeyTemplate, KeyType, Layout, Lifecycle, PartRole};
use crate::engine::names::{Key, SessionId};
use crate::util::text;

/// The most fields, entries or members read from one key.
pub const MAX_ITEMS: usize = 1000;
/// All the hash fields read from one key may add up to this many times the read cap.
pub const READ_BUDGET_FACTOR: u64 = 4;
/// Keys longer than this are not searched for the other ids they could belong to; a wildcard
/// key that long is left out of the session rather than risk taking another session's key.
const MAX_AMBIGUOUS_KEY_LEN: usize = 1024;

/// A session's keys that exist now, and its index score. Related families with a `*` are
/// found by a `SCAN MATCH` over the keyspace (paced by each node's pacer), unless `known_related` already
/// lists them.
pub async fn find_keys(
    router: &Router,
    layout: &Layout,
    id: &SessionId,
    scan_count: usize,
    known_related: Option<&[SessionKey]>,
) -> Result<(Vec<SessionKey>, Option<f64>), Failure> {
    let raw = id.as_bytes();
    let mut candidates = vec![SessionKey {
        key: layout.session_key(id),
        role: "primary".into(),
        part: None,
        lifecycle: Lifecycle::Session,
    }];
    for part in &layout.parts {
        candidates.push(SessionKey {
            key: part.template.key(&layout.prefix, raw),
            role: part.name.clone(),
            part: Some(part.role),
            lifecycle: Lifecycle::Session,
        });
    }
    let exact: Vec<_> = layout.related.iter().filter(|r| r.template.is_exact()).collect();
    let fields = if exact.iter().any(|r| !r.template.field_names().is_empty()) {
        session_fields(router, layout, id).await?
    } else {
        Vec::new()
    };
    for related in exact {
        let Some(key) = related.template.key_for(&layout.prefix, raw, &fields) else { continue };
        candidates.push(SessionKey { key, role: related.name.clone(), part: None, lifecycle: related.lifecycle });
    }
    match known_related {
        Some(known) => candidates.extend(known.iter().cloned()),
        None => candidates.extend(scan_related(router, layout, id, scan_count).await?),
    }
    let mut seen = HashSet::new();
    candidates.retain(|c| seen.insert(c.key.clone()));

    let mut pipe = crate::conn::link::pipe();
    for c in &candidates {
        pipe.cmd("EXISTS").arg(&c.key);
    }
    if let Some(index) = &layout.index {
        pipe.cmd("ZSCORE").arg(&index.key).arg(id);
    }
    let replies = router.pipeline(&pipe).await?;
    if let Some(failure) = replies.iter().find_map(|r| r.as_ref().err().filter(|f| f.is_unavailable())) {
        return Err(failure.clone());
    }
    let score = layout.index.as_ref().and_then(|_| replies.last().and_then(reply::float));
    let keys: Vec<SessionKey> =
        candidates.into_iter().zip(&replies).filter(|(_, r)| reply::int(r) == Some(1)).map(|(c, _)| c).collect();
    let keys = drop_keys_of_longer_ids(router, layout, id, keys).await?;
    Ok((keys, score))
}

/// The template a session key was named by.
fn template_of<'s>(layout: &'s Layout, key: &SessionKey) -> Option<&'s KeyTemplate> {
    if key.role == "primary" {
        return None;
    }
    layout
        .parts
        .iter()
        .filter(|p| Some(p.role) == key.part && p.name == key.role)
        .map(|p| &p.template)
        .chain(layout.related.iter().filter(|r| r.name == key.role).map(|r| &r.template))
        .next()
}

/// Leaves out keys that could also be named for a longer id which is a live session (its
/// primary key or index entry exists): `trt:ratelimit:abc:def:7` is `abc:def`'s when that
/// session exists, not `abc`'s. One pipelined round trip, only when such ids are possible.
async fn drop_keys_of_longer_ids(
    router: &Router,
    layout: &Layout,
    id: &SessionId,
    keys: Vec<SessionKey>,
) -> Result<Vec<SessionKey>, Failure> {
    // For each key, the longer ids it could belong to (or None: too long to tell).
    let mut rivals: Vec<Option<Vec<SessionId>>> = Vec::with_capacity(keys.len());
    let mut asked: Vec<SessionId> = Vec::new();
    for key in &keys {
        let Some(template) = template_of(layout, key) else {
            rivals.push(Some(Vec::new()));
            continue;
        };
        if key.key.len() > MAX_AMBIGUOUS_KEY_LEN {
            rivals.push(if template.is_exact() { Some(Vec::new()) } else { None });
            continue;
        }
        let longer: Vec<SessionId> = template
            .possible_ids(&layout.prefix, key.key.as_bytes(), &layout.id_excludes)
            .into_iter()
            .filter(|other| other.len() > id.len())
            .map(SessionId::from)
            .collect();
        for other in &longer {
            if !asked.contains(other) {
                asked.push(other.clone());
            }
        }
        rivals.push(Some(longer));
    }
    let mut live: HashSet<SessionId> = HashSet::new();
    if !asked.is_empty() {
        let mut pipe = crate::conn::link::pipe();
        for other in &asked {
            pipe.cmd("EXISTS").arg(layout.session_key(other));
            if let Some(index) = &layout.index {
                pipe.cmd("ZSCORE").arg(&index.key).arg(other);
            }
        }
        let replies = router.pipeline(&pipe).await?;
        let per = 1 + usize::from(layout.index.is_some());
        for (other, r) in asked.into_iter().zip(replies.chunks(per)) {
            let exists = r.first().and_then(reply::int) == Some(1);
            let indexed = r.get(1).and_then(reply::float).is_some();
            if exists || indexed {
                live.insert(other);
            }
        }
    }
    Ok(keys
        .into_iter()
        .zip(rivals)
        .filter(|(_, rivals)| rivals.as_ref().is_some_and(|r| !r.iter().any(|o| live.contains(o))))
        .map(|(k, _)| k)
        .collect())
}

/// Keys of the session's wildcard related families (`{prefix}ratelimit:{id}:*`), found by a
/// `SCAN MATCH` over the whole keyspace: the one search sessiontop cannot bound by the session's
/// size. It is paced like the census, in `SCAN`s sized to cost Redis little each, and it can be
/// taken a few calls at a time ([`RelatedSearch::step`]) so that the dashboard's poll goes on
/// while it runs.
#[derive(Debug, Clone)]
pub struct RelatedSearch {
    pub id: SessionId,
    /// The session's own field values that families name (`{field:session_id}`), once read.
    fields: Option<Vec<(String, Vec<u8>)>>,
    /// The wildcard family being searched, and the walk over its keys.
    family: usize,
    walk: Option<KeyspaceWalk>,
    pub found: Vec<SessionKey>,
    pub done: bool,
    /// Keys the search has looked at, and the keyspace's size when it began, for progress.
    pub seen: u64,
    pub keyspace: Option<u64>,
}

impl RelatedSearch {
    pub fn new(layout: &Layout, id: &SessionId) -> RelatedSearch {
        let done = !layout.related.iter().any(|r| !r.template.is_exact());
        RelatedSearch {
            id: id.clone(),
            fields: None,
            family: 0,
            walk: None,
            found: Vec::new(),
            done,
            seen: 0,
            keyspace: None,
        }
    }

    /// How far the search is, 0 to 1, when known.
    pub fn progress(&self) -> Option<f64> {
        if self.done {
            return Some(1.0);
        }
        self.keyspace.filter(|k| *k > 0).map(|k| (self.seen as f64 / k as f64).min(0.99))
    }

    /// Runs at most `calls` `SCAN`s; returns whether the search is done.
    pub async fn step(
        &mut self,
        router: &Router,
        layout: &Layout,
        max_count: usize,
        calls: usize,
    ) -> Result<bool, Failure> {
        let families: Vec<_> = layout.related.iter().filter(|r| !r.template.is_exact()).collect();
        if self.keyspace.is_none() && !self.done {
            self.keyspace = router.keyspace_size().await;
        }
        if self.fields.is_none() && !self.done {
            let named = families.iter().any(|r| !r.template.field_names().is_empty());
            self.fields = Some(if named { session_fields(router, layout, &self.id).await? } else { Vec::new() });
        }
        let fields = self.fields.clone().unwrap_or_default();
        for _ in 0..calls {
            let Some(related) = families.get(self.family) else {
                self.done = true;
                break;
            };
            // A family named by a field the session does not have has no keys to look for.
            let Some(pattern) = related.template.scan_pattern_for(&layout.prefix, self.id.as_bytes(), &fields) else {
                self.family += 1;
                self.walk = None;
                continue;
            };
            let walk = self.walk.get_or_insert_with(|| KeyspaceWalk::new(router, KeyWalk::matching(pattern)));
            let before = walk.looked_at();
            let keys = walk.next(router, Count::UpTo(max_count), Pacing::Wait).await?;
            self.seen += (walk.looked_at() - before) / families.len().max(1) as u64;
            for key in keys {
                if related.template.matches_for(&layout.prefix, self.id.as_bytes(), &fields, &key)
                    && !self.found.iter().any(|k| k.key.as_bytes() == key.as_slice())
                {
                    self.found.push(SessionKey {
                        key: Key::from(key),
                        role: related.name.clone(),
                        part: None,
                        lifecycle: related.lifecycle,
                    });
                }
            }
            if walk.is_done() {
                self.family += 1;
                self.walk = None;
                if self.family >= families.len() {
                    self.done = true;
                    break;
                }
            }
        }
        Ok(self.done)
    }
}

/// Bytes of a payload read to find the fields that name a session's related keys.
const FIELD_READ_CAP: u64 = 1 << 20;
/// The longest field value that names keys.
const FIELD_VALUE_MAX: usize = 1024;

/// The session's own values of the fields its layout's related keys are named by
/// (`{field:session_id}`): read from its payload (a string, decoded) or its hash. A payload
/// over [`FIELD_READ_CAP`], a field that is not a short scalar, or a session without the field
/// gives no value, and the keys named by it are not looked for.
pub async fn session_fields(
    router: &Router,
    layout: &Layout,
    id: &SessionId,
) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let mut names: Vec<String> = Vec::new();
    for r in &layout.related {
        for name in r.template.field_names() {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let key = layout.session_key(id);
    let keep = |name: &str, text: Option<String>| {
        text.filter(|t| !t.is_empty() && t.len() <= FIELD_VALUE_MAX).map(|t| (name.to_string(), t.into_bytes()))
    };
    match layout.session_type {
        KeyType::String => {
            let mut pipe = crate::conn::link::pipe();
            pipe.cmd("STRLEN").arg(&key).cmd("GETRANGE").arg(&key).arg(0).arg(FIELD_READ_CAP - 1);
            let mut replies = router.pipeline(&pipe).await?.into_iter();
            let len = replies.next().as_ref().and_then(reply::int).unwrap_or(0);
            let bytes = replies.next().and_then(reply::bytes).unwrap_or_default();
            if len as u64 > FIELD_READ_CAP {
                return Ok(Vec::new());
            }
            let Ok(decoded) = crate::decode::decode_payload(&bytes) else { return Ok(Vec::new()) };
            Ok(names
                .iter()
                .filter_map(|n| {
                    let v = decoded.value.get(n).or_else(|| decoded.value.get_path(n));
                    keep(n, v.and_then(|v| v.as_scalar_text()))
                })
                .collect())
        }
        KeyType::Hash => {
            let mut sizes = crate::conn::link::pipe();
            for n in &names {
                sizes.cmd("HSTRLEN").arg(&key).arg(n);
            }
            let fitting: Vec<&String> = names
                .iter()
                .zip(router.pipeline(&sizes).await?)
                .filter(|(_, r)| reply::int(r).is_some_and(|n| n > 0 && n as usize <= FIELD_VALUE_MAX))
                .map(|(n, _)| n)
                .collect();
            if fitting.is_empty() {
                return Ok(Vec::new());
            }
            let mut get = redis::cmd("HMGET");
            get.arg(&key);
            for n in &fitting {
                get.arg(n.as_str());
            }
            let values: Vec<Option<Vec<u8>>> = router.query(&get).await?;
            Ok(fitting
                .into_iter()
                .zip(values)
                .filter_map(|(n, v)| keep(n, v.map(|v| String::from_utf8_lossy(&v).into_owned())))
                .collect())
        }
        _ => Ok(Vec::new()),
    }
}

/// Keys of the session's wildcard related families, the whole search at once (paced).
pub async fn scan_related(
    router: &Router,
    layout: &Layout,
    id: &SessionId,
    scan_count: usize,
) -> Result<Vec<SessionKey>, Failure> {
    let mut search = RelatedSearch::new(layout, id);
    while !search.step(router, layout, scan_count, 64).await? {}
    Ok(search.found)
}

/// What round trip 1 said of a key.
struct Seen {
    report: KeyReport,
    part: Option<PartRole>,
    memory: Option<u64>,
}

/// The last session payload the inspector decoded, kept so that one that has not changed (the
/// same key, the same bytes) is not decoded again on every poll: a large payload's decoding is
/// most of what an open inspector costs.
#[derive(Default)]
pub struct Decoded {
    key: Option<Key>,
    raw: Vec<u8>,
    content: Option<Decodedish>,
    /// The reader of the session's row, which decodes the payload for its labels.
    reader: crate::collect::read::Reader,
}

impl Decoded {
    /// `bytes`, the whole payload of `key`, decoded: as last time when they are the same.
    fn payload(&mut self, key: &Key, bytes: &[u8], length: u64) -> Decodedish {
        if let Some(content) = self.content.as_ref().filter(|_| self.key.as_ref() == Some(key) && self.raw == bytes) {
            return content.clone();
        }
        let content = match decode::decode_payload(bytes) {
            Ok(d) => Decodedish::Value { format: Some(d.format), value: d.value },
            Err(e) => Decodedish::Undecodable { reason: e.reason, raw: bytes.to_vec(), total_len: length },
        };
        (self.key, self.raw, self.content) = (Some(key.clone()), bytes.to_vec(), Some(content.clone()));
        content
    }
}

/// Reads everything about one session. `keys` and `score` come from [`find_keys`]; `decoded`
/// is what the last look decoded (see [`Decoded`]).
#[expect(clippy::too_many_arguments, reason = "the inspector's one entry point, called from two places")]
pub async fn inspect(
    router: &Router,
    layout: &Layout,
    id: &SessionId,
    keys: &[SessionKey],
    score: Option<f64>,
    max_value_bytes: u64,
    now: Millis,
    decoded: &mut Decoded,
) -> Result<SessionReport, Failure> {
    let mut unavailable: Vec<String> = Vec::new();
    let mut seen = what_keys_are(router, keys, now, &mut unavailable).await?;
    let history = read_contents(router, &mut seen, max_value_bytes, &mut unavailable, decoded).await?;
    let options = ReadOptions { page: true, max_value_bytes, thresholds: crate::engine::domain::Thresholds::default() };
    let batch = read_rows(router, layout, vec![id.clone()], None, options, &mut decoded.reader, now).await?;
    for u in batch.unavailable {
        note(&mut unavailable, u);
    }
    let mut row = batch.rows.into_iter().next().unwrap_or_else(|| SessionRow::new(id.clone()));
    if row.last_interaction.is_none() {
        row.last_interaction = score.filter(|s| s.is_finite() && *s > 0.0).map(|s| (s * 1e6) as Micros);
    }
    Ok(SessionReport {
        id: id.clone(),
        row,
        keys: seen.into_iter().map(|s| s.report).collect(),
        index_score: score,
        history: history.entries,
        history_raw: history.raw,
        history_total: history.total,
        observed_at: now,
        unavailable,
        related_search: None,
    })
}

/// A session's history as the inspector read it: its newest entries decoded and as stored,
/// and how many it has.
#[derive(Default)]
struct HistoryRead {
    entries: Vec<Value>,
    raw: Vec<Vec<u8>>,
    total: u64,
}

/// Round trip 1: what each key is, its TTL, and how much memory it takes (exact up to
/// [`MAX_ITEMS`] items, which is what bounds the reads of lists, sets and sorted sets).
async fn what_keys_are(
    router: &Router,
    keys: &[SessionKey],
    now: Millis,
    unavailable: &mut Vec<String>,
) -> Result<Vec<Seen>, Failure> {
    let samples = MAX_ITEMS.to_string();
    let mut pipe = crate::conn::link::pipe();
    for k in keys {
        pipe.cmd("TYPE").arg(&k.key).cmd("PTTL").arg(&k.key);
        pipe.cmd("MEMORY").arg("USAGE").arg(&k.key).arg("SAMPLES").arg(&samples);
    }
    let replies = router.pipeline(&pipe).await?;
    let map = router.topology().map();
    let mut seen: Vec<Seen> = Vec::new();
    for (k, r) in keys.iter().zip(replies.chunks(3)) {
        let redis_type = r.first().and_then(|t| reply::string(t.clone())).unwrap_or_else(|| "unknown".into());
        if redis_type == "none" {
            continue; // expired between the two reads
        }
        let memory = r.get(2).and_then(|m| {
            if let Err(f) = m
                && f.is_unavailable()
            {
                note(unavailable, f.to_string());
            }
            reply::int(m).map(|n| n.max(0) as u64)
        });
        let report = KeyReport {
            key: k.key.clone(),
            role: k.role.clone(),
            redis_type,
            ttl: Ttl::from_pttl(r.get(1).and_then(reply::int), now),
            memory_bytes: memory,
            length: None,
            content: None,
            truncated: false,
            raw: Vec::new(),
            node: (map.kind == crate::conn::topology::Kind::Cluster).then(|| {
                let slot = crate::conn::slot::of(k.key.as_bytes());
                (router.node_for(k.key.as_bytes()).address().to_string(), slot)
            }),
        };
        // The history part is only read as history when it is the list the layout says.
        let part = k.part.filter(|p| *p != PartRole::History || report.redis_type == "list");
        if k.part == Some(PartRole::History) && part.is_none() {
            note(
                unavailable,
                format!(
                    "history key {} is a {}, not a list: shown as a key, not as history",
                    k.key.escaped(),
                    text::escape_str(&report.redis_type)
                ),
            );
        }
        seen.push(Seen { report, part, memory });
    }
    Ok(seen)
}

/// Round trip 2: each key's length and, where its size allows, its contents; then the hashes
/// over the cap, field by field. Returns the history, when one of the keys is.
async fn read_contents(
    router: &Router,
    seen: &mut [Seen],
    max_value_bytes: u64,
    unavailable: &mut Vec<String>,
    decoded: &mut Decoded,
) -> Result<HistoryRead, Failure> {
    let mut pipe = crate::conn::link::pipe();
    let mut plans: Vec<ContentPlan> = Vec::with_capacity(seen.len());
    for s in seen.iter() {
        let plan = ContentPlan::new(&s.report.redis_type, s.memory, max_value_bytes);
        plan.add(&mut pipe, &s.report.redis_type, &s.report.key, max_value_bytes);
        plans.push(plan);
    }
    let replies = router.pipeline(&pipe).await?;
    let mut history = HistoryRead::default();
    let mut pending_hashes: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    for (i, ((s, plan), pair)) in seen.iter_mut().zip(&plans).zip(replies.chunks(2)).enumerate() {
        let (Some(len), content) = (pair.first(), pair.get(1)) else { continue };
        let report = &mut s.report;
        report.length = reply::int(len).map(|n| n.max(0) as u64);
        let length = report.length.unwrap_or(0);
        match plan {
            ContentPlan::Whole if report.redis_type == "list" && s.part == Some(PartRole::History) => {
                let entries: Vec<Vec<u8>> =
                    content.cloned().and_then(reply::byte_list).unwrap_or_default().into_iter().flatten().collect();
                report.truncated = (entries.len() as u64) < length;
                history.entries = entries.iter().map(|e| decode::decode_text(e)).collect();
                history.raw = entries;
                history.total = length;
            }
            ContentPlan::Whole => {
                let Some(content) = content else { continue };
                let primary = (report.role == "primary").then_some(&mut *decoded);
                let read = read_content(&report.redis_type, &report.key, primary, content, length, max_value_bytes);
                report.content = read.content;
                report.truncated = read.truncated;
                report.raw = read.raw;
            }
            ContentPlan::FieldsByName => {
                let names: Vec<Vec<u8>> =
                    content.cloned().and_then(reply::byte_list).unwrap_or_default().into_iter().flatten().collect();
                if let Some(Err(f)) = content
                    && f.is_unavailable()
                {
                    report.content = Some(not_read(format!("fields not listed: {f}"), length));
                    report.truncated = length > 0;
                    continue;
                }
                pending_hashes.push((i, names));
            }
            ContentPlan::Unread { reason } => {
                if s.part == Some(PartRole::History) {
                    history.total = length;
                    note(unavailable, format!("history not read: {reason}"));
                }
                report.content = Some(not_read(reason.clone(), length));
                report.truncated = length > 0;
            }
        }
    }
    for (i, names) in pending_hashes {
        let report = &mut seen[i].report;
        read_hash_by_field(router, report, names, max_value_bytes).await?;
    }
    Ok(history)
}

fn note(list: &mut Vec<String>, text: String) {
    if !list.contains(&text) {
        list.push(text);
    }
}

/// A value that was not read, with why: shown in place of the contents.
fn not_read(reason: String, total_len: u64) -> Decodedish {
    Decodedish::Undecodable { reason, raw: Vec::new(), total_len }
}

/// How a key's contents are read in round trip 2.
#[derive(Debug, Clone, PartialEq)]
enum ContentPlan {
    /// The whole value (a string up to the cap; a collection that fits the cap).
    Whole,
    /// A hash over the cap: its field names now, then each field's size, then the fields that fit.
    FieldsByName,
    /// Not read, for this reason.
    Unread { reason: String },
}

impl ContentPlan {
    fn new(redis_type: &str, memory: Option<u64>, cap: u64) -> ContentPlan {
        let fits = memory.is_some_and(|m| m <= cap);
        match redis_type {
            "string" => ContentPlan::Whole,
            "hash" if fits => ContentPlan::Whole,
            "hash" => ContentPlan::FieldsByName,
            "list" | "set" | "zset" if fits => ContentPlan::Whole,
            "list" | "set" | "zset" => ContentPlan::Unread {
                reason: match memory {
                    Some(m) => format!(
                        "{} in all, over the read cap of {}; not read (Redis has no size per {} item; raise --max-value-bytes to read it)",
                        text::human_bytes(m),
                        text::human_bytes(cap),
                        redis_type
                    ),
                    None => "its size cannot be measured (MEMORY USAGE is unavailable), so it is not read".into(),
                },
            },
            _ => ContentPlan::Unread { reason: format!("a {} key is not read", text::escape_str(redis_type)) },
        }
    }

    /// The length command and the content command: two commands per key, always.
    fn add(&self, pipe: &mut redis::Pipeline, redis_type: &str, key: &Key, cap: u64) {
        let last = MAX_ITEMS - 1;
        match (redis_type, self) {
            ("string", _) => pipe.cmd("STRLEN").arg(key).cmd("GETRANGE").arg(key).arg(0).arg(cap.saturating_sub(1)),
            ("hash", ContentPlan::Whole) => {
                pipe.cmd("HLEN").arg(key).cmd("HSCAN").arg(key).arg(0).arg("COUNT").arg(MAX_ITEMS)
            }
            ("hash", ContentPlan::FieldsByName) => pipe.cmd("HLEN").arg(key).cmd("HRANDFIELD").arg(key).arg(MAX_ITEMS),
            ("list", ContentPlan::Whole) => pipe.cmd("LLEN").arg(key).cmd("LRANGE").arg(key).arg(0).arg(last),
            ("set", ContentPlan::Whole) => {
                pipe.cmd("SCARD").arg(key).cmd("SSCAN").arg(key).arg(0).arg("COUNT").arg(MAX_ITEMS)
            }
            ("zset", ContentPlan::Whole) => {
                pipe.cmd("ZCARD").arg(key).cmd("ZRANGE").arg(key).arg(0).arg(last).arg("WITHSCORES")
            }
            ("list", _) => pipe.cmd("LLEN").arg(key).cmd("EXISTS").arg(key),
            ("set", _) => pipe.cmd("SCARD").arg(key).cmd("EXISTS").arg(key),
            ("zset", _) => pipe.cmd("ZCARD").arg(key).cmd("EXISTS").arg(key),
            _ => pipe.cmd("EXISTS").arg(key).cmd("EXISTS").arg(key),
        };
    }
}

/// Round trip 3 and 4 for a hash over the cap: each field's size, then the fields that fit.
async fn read_hash_by_field(
    router: &Router,
    report: &mut KeyReport,
    mut names: Vec<Vec<u8>>,
    cap: u64,
) -> Result<(), Failure> {
    names.sort();
    names.dedup();
    let length = report.length.unwrap_or(0);
    let mut pipe = crate::conn::link::pipe();
    for name in &names {
        pipe.cmd("HSTRLEN").arg(&report.key).arg(name);
    }
    let sizes: Vec<u64> =
        router.pipeline(&pipe).await?.iter().map(|r| reply::int(r).unwrap_or(0).max(0) as u64).collect();
    let budget = cap.saturating_mul(READ_BUDGET_FACTOR);
    let mut spent = 0u64;
    let mut wanted = Vec::new();
    for (name, size) in names.iter().zip(&sizes) {
        if *size <= cap && spent + size <= budget {
            spent += size;
            wanted.push(name.clone());
        }
    }
    let mut values: Vec<Option<Vec<u8>>> = Vec::new();
    if !wanted.is_empty() {
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(&report.key);
        for name in &wanted {
            hmget.arg(name);
        }
        values = router.query::<Vec<Option<Vec<u8>>>>(&hmget).await?;
    }
    let mut read = values.into_iter();
    let mut map = Vec::with_capacity(names.len());
    let mut raw = Vec::with_capacity(names.len());
    let mut cut = 0;
    for (name, size) in names.iter().zip(&sizes) {
        let label = text::escape_bytes(name);
        let value = if wanted.contains(name) { read.next().flatten() } else { None };
        match value {
            Some(bytes) => {
                map.push((decode::decode_text(name), decode::decode_text(&bytes)));
                raw.push((Some(label), bytes));
            }
            None => {
                cut += 1;
                let why = if *size > cap {
                    format!("<{}: not read, over the read cap of {}>", text::human_bytes(*size), text::human_bytes(cap))
                } else {
                    format!("<{}: not read, the key's read budget is spent>", text::human_bytes(*size))
                };
                map.push((decode::decode_text(name), Value::Str(why.clone())));
                raw.push((Some(label), why.into_bytes()));
            }
        }
    }
    report.truncated = cut > 0 || (names.len() as u64) < length;
    report.content = Some(Decodedish::Value { format: None, value: Value::Map(map) });
    report.raw = raw;
    Ok(())
}

/// A key's contents, decoded and as stored.
struct Read {
    content: Option<Decodedish>,
    truncated: bool,
    raw: Vec<(Option<String>, Vec<u8>)>,
}

/// Decodes a key's contents by type. A primary string is a session payload; other strings and
/// hash fields are text that may hold JSON.
/// `primary` is given for the session's own key, and keeps what it decoded.
fn read_content(
    redis_type: &str,
    key: &Key,
    primary: Option<&mut Decoded>,
    content: &Reply,
    length: u64,
    max_value_bytes: u64,
) -> Read {
    match redis_type {
        "string" => {
            let bytes = reply::bytes(content.clone()).unwrap_or_default();
            let raw = vec![(None, bytes.clone())];
            if length > bytes.len() as u64 {
                let reason = format!(
                    "{} exceeds the read cap of {}; showing the first {} undecoded",
                    text::human_bytes(length),
                    text::human_bytes(max_value_bytes),
                    text::human_bytes(bytes.len() as u64)
                );
                let content = Some(Decodedish::Undecodable { reason, raw: bytes, total_len: length });
                return Read { content, truncated: true, raw };
            }
            let content = match primary {
                Some(decoded) => decoded.payload(key, &bytes, length),
                None => Decodedish::Value { format: None, value: decode::decode_text(&bytes) },
            };
            Read { content: Some(content), truncated: false, raw }
        }
        "hash" | "zset" | "set" | "list" => {
            let items = reply::array(content.clone()).unwrap_or_default();
            // HSCAN/SSCAN reply [cursor, items]; LRANGE/ZRANGE reply items.
            let items = match redis_type {
                "hash" | "set" => match items.into_iter().nth(1) {
                    Some(redis::Value::Array(inner)) => inner,
                    _ => Vec::new(),
                },
                _ => items,
            };
            let items: Vec<Vec<u8>> = items.into_iter().map(|v| reply::bytes(Ok(v)).unwrap_or_default()).collect();
            let text = |b: &[u8]| decode::decode_text(b);
            let (value, raw) = match redis_type {
                "hash" | "zset" => {
                    let pairs: Vec<(&Vec<u8>, &Vec<u8>)> =
                        items.chunks(2).filter_map(|c| Some((c.first()?, c.get(1)?))).collect();
                    let value = Value::Map(pairs.iter().map(|(k, v)| (text(k), text(v))).collect());
                    let raw =
                        pairs.iter().map(|(k, v)| (Some(crate::util::text::escape_bytes(k)), (*v).clone())).collect();
                    (value, raw)
                }
                "set" => (
                    Value::Set(items.iter().map(|b| text(b)).collect()),
                    items.iter().map(|b| (None, b.clone())).collect(),
                ),
                _ => (
                    Value::List(items.iter().map(|b| text(b)).collect()),
                    items.iter().enumerate().map(|(i, b)| (Some(i.to_string()), b.clone())).collect(),
                ),
            };
            let shown = value.len() as u64;
            Read { content: Some(Decodedish::Value { format: None, value }), truncated: shown < length, raw }
        }
        _ => Read { content: None, truncated: false, raw: Vec::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inspectors_payload_is_decoded_again_only_when_its_bytes_change() {
        let key = Key::from("chatmrpt:s");
        let bytes = br#"{"stage": "tpr_analysis"}"#;
        let mut decoded = Decoded::default();
        let first = decoded.payload(&key, bytes, bytes.len() as u64);
        assert!(matches!(first, Decodedish::Value { .. }), "{first:?}");
        // Marked, to tell what is remembered from a fresh decode.
        let marked = Decodedish::Value { format: None, value: Value::Str("remembered".into()) };
        decoded.content = Some(marked.clone());
        assert_eq!(decoded.payload(&key, bytes, bytes.len() as u64), marked, "the same bytes: not decoded again");
        assert_ne!(decoded.payload(&key, br#"{"stage": "risk"}"#, 17), marked, "changed bytes are decoded");
        decoded.content = Some(marked.clone());
        let other = Key::from("chatmrpt:t");
        assert_ne!(decoded.payload(&other, br#"{"stage": "risk"}"#, 17), marked, "another key's are its own");
    }
}
