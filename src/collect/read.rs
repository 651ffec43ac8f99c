//! Reading sessions' rows, the same for the census, the visible page and the inspector, so that
//! every view agrees on what a field means.
//!
//! A batch of ids costs one pipelined round trip that reads each session's TTL, list lengths,
//! index score and, for a hash, its *size* (`HLEN` and `MEMORY USAGE … SAMPLES 16`), and, for
//! hash layouts, a second that reads only the fields within `--max-value-bytes` (`HMGET`), in
//! chunks of a bounded number of bytes. A hash of at most 16 fields whose whole size fits the cap
//! has fields that fit it too (most sessions); only a larger one, or one whose size could not be
//! read, has each field measured first (`HSTRLEN`). A string payload is read in the first round trip only as far as
//! [`PAYLOAD_PEEK_BYTES`] (`GETRANGE`), which holds a whole session of most applications; a
//! longer one is measured (`STRLEN`) and read in later round trips when it fits the cap, in
//! chunks of a bounded number of bytes too. So no value larger than the cap is ever sent by
//! Redis, and what a batch holds in memory is bounded too: the labels a row keeps (stage,
//! substate, status) are cut to [`LABEL_MAX_CHARS`], with their size.

use std::collections::HashMap;
use std::sync::Arc;

use super::carry::{Carried, Kept, Read};
use crate::conn::link::{Failure, Reply, reply};
use crate::conn::pace::Kind;
use crate::conn::route::{Commands, Router};
use crate::decode::{self, Value};
use crate::engine::diagnose::{self, About, KeyTtl, RowFacts};
use crate::engine::domain::{
    APP_ID_FIELDS, FindingKind, Micros, Millis, RowFinding, SessionRow, Thresholds, Ttl, app_id_key, parse_time,
};
use crate::engine::layout::{
    Fields, KeyTemplate, KeyType, Layout, NaiveTime, PartRole, RelatedRole, ScoreMeaning, StuckRule,
};
use crate::engine::names::{Key, SessionId};
use crate::util::text;

/// Shares the text of values that repeat across sessions (stages, substates, statuses), so a
/// census of many sessions holds each distinct stage once.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashMap<Box<str>, Arc<str>>,
}

/// Distinct values kept shared; beyond this (a field that is unique per session) values are
/// simply allocated.
const INTERNER_CAPACITY: usize = 10_000;

/// The longest stage, substate or status a row keeps, in characters; longer values are cut and
/// say how long they were, so a hostile value costs a bounded row.
pub const LABEL_MAX_CHARS: usize = 48;

/// Bytes of hash fields asked for in one round trip of the second read: a batch whose fields are
/// large is read in several smaller round trips rather than one huge reply.
const FIELD_CHUNK_BYTES: u64 = 4 << 20;

/// `MEMORY USAGE … SAMPLES`: a hash of at most this many fields is measured exactly (and then,
/// when it fits the read cap, so does each of its fields); a larger one is estimated from this
/// many, at a bounded cost.
const HASH_SAMPLES: u64 = 16;

/// The most fields of an oversized hash whose names are read to say which are largest.
const SIZED_FIELDS_MAX: u64 = 512;

/// Bytes of a string payload read in a batch's first round trip. Typical Flask sessions are a
/// few hundred bytes, so most are read whole by two commands (`PTTL`, `GETRANGE`); a batch of a
/// thousand sessions holds at most 4 MiB of them.
pub const PAYLOAD_PEEK_BYTES: u64 = 4096;

impl Interner {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        if self.strings.len() < INTERNER_CAPACITY {
            self.strings.insert(Box::from(s), shared.clone());
        }
        shared
    }
}

/// What reading a batch of sessions found.
#[derive(Debug, Default)]
pub struct Batch {
    /// Sessions whose primary key exists.
    pub rows: Vec<SessionRow>,
    /// Ids whose primary key is gone.
    pub missing: Vec<SessionId>,
    /// Sessions with a payload or field over the read cap (also in `rows`, with the reason).
    pub oversized: u64,
    /// Payloads that did not decode (also in `rows`, with a decode error).
    pub undecodable: u64,
    /// Fields that could not be read, once each (`MEMORY USAGE denied: …`).
    pub unavailable: Vec<String>,
}

/// The keys written one after another into `buf`, each ending at the offset `ends` gives.
fn keys_at<'b>(buf: &'b [u8], ends: &[usize]) -> Vec<&'b [u8]> {
    let mut start = 0;
    ends.iter()
        .map(|end| {
            let key = &buf[start..*end];
            start = *end;
            key
        })
        .collect()
}

/// The buffers one batch's commands are built in, reused from session to session.
#[derive(Default)]
struct KeyBuffers {
    /// The session's own key.
    key: Vec<u8>,
    /// One of its parts.
    other: Vec<u8>,
    /// Its exactly named related keys, one after another, each ending where `ends` says.
    related: Vec<u8>,
    ends: Vec<usize>,
}

/// Options for reading rows.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// A page read (the visible sessions, a snapshot's items, the inspector): also read
    /// `MEMORY USAGE` of every key and the status field. The census reads neither: it counts
    /// neither, and leaving them out keeps a pass over every session cheap.
    pub page: bool,
    /// The most bytes of one value to read.
    pub max_value_bytes: u64,
    /// Where the per-session findings start.
    pub thresholds: Thresholds,
}

/// Reads the rows of `ids`. `scores` are index scores already known (from a walk of the index);
/// when absent and the index scores last interaction, `ZSCORE` is read too.
pub async fn read_rows(
    router: &Router,
    layout: &Layout,
    ids: Vec<SessionId>,
    scores: Option<Vec<Option<f64>>>,
    options: ReadOptions,
    reader: &mut Reader,
    now: Millis,
) -> Result<Batch, Failure> {
    let Reader { interner, memo } = reader;
    let (prepared, batch) = Prepared::new(router, layout, &ids, scores.is_none(), options);
    let replies = router.send(batch).await?;
    let mut probe = prepared.probe(layout, ids, scores, replies)?;
    probe.memo = std::mem::take(memo);
    let fetched = probe.fetch_fields(router).await;
    *memo = std::mem::take(&mut probe.memo);
    fetched?;
    Ok(probe.finish(interner, now))
}

/// The first round trip of a batch, ready to send; [`Prepared::probe`] reads its replies. Split
/// so that a census can have one batch on the server while it reads another.
pub struct Prepared {
    plan: Arc<ReadPlan>,
    options: ReadOptions,
    /// How each session is read (see [`Prepared::with_reads`]); empty when every one is whole.
    reads: Vec<Read>,
}

impl Prepared {
    /// The reader and the batch to send through `router`.
    pub fn new(
        router: &Router,
        layout: &Layout,
        ids: &[SessionId],
        need_score: bool,
        options: ReadOptions,
    ) -> (Prepared, crate::conn::route::Batch) {
        Prepared::with_reads(router, layout, ids, need_score, options, Vec::new())
    }

    /// [`Prepared::new`], reading each session as `reads` says: light, without the reads that
    /// find only what a session keeps while nothing writes to it (the `PTTL` of its parts but
    /// the one that dates its creation, and the `EXISTS` of its related keys); or settled, only
    /// its hash fields or payload, the rest taken from its last whole read. A census reads so
    /// the sessions keyspace events have heard nothing of since it last read them whole, and
    /// carries over what those reads found ([`Carried`]).
    pub fn with_reads(
        router: &Router,
        layout: &Layout,
        ids: &[SessionId],
        need_score: bool,
        options: ReadOptions,
        reads: Vec<Read>,
    ) -> (Prepared, crate::conn::route::Batch) {
        let plan = ReadPlan::new(layout, options, need_score);
        let mut pipe = router.batch();
        let mut bufs = KeyBuffers::default();
        for (i, id) in ids.iter().enumerate() {
            plan.add(&mut pipe, layout, id, options, reads.get(i).copied().unwrap_or(Read::Whole), &mut bufs);
        }
        (Prepared { plan: Arc::new(plan), options, reads }, pipe)
    }

    /// How many sessions a second round trip reads the hash fields of (payloads longer than
    /// the peek are rare and are not counted here): all but those read settled, whose fields
    /// the first reads.
    pub fn fields_read_later(&self, sessions: usize) -> usize {
        if self.plan.primary != Primary::Hash || self.plan.fields.is_empty() {
            return 0;
        }
        sessions - self.reads.iter().filter(|r| matches!(r, Read::Settled(_))).count()
    }

    /// Reads the first round trip's replies: TTLs, lengths, sizes, and any payloads (decoded).
    pub fn probe(
        &self,
        layout: &Layout,
        ids: Vec<SessionId>,
        scores: Option<Vec<Option<f64>>>,
        mut replies: Vec<Reply>,
    ) -> Result<Probe, Failure> {
        // A denied read of the session's own keys makes every row meaningless; only the sizes
        // (`MEMORY USAGE`, and `HLEN`, which `HSTRLEN` stands in for) may be denied, and the
        // fields of a session read settled, which cost their labels as in a second round trip.
        if let Some(failure) = replies.iter().find_map(|r| match r {
            Err(f @ Failure::Denied { command, .. })
                if command != "MEMORY USAGE" && command != "HLEN" && command != "HMGET" =>
            {
                Some(f.clone())
            }
            _ => None,
        }) {
            return Err(failure);
        }
        let plan = &self.plan;
        let mut probe = Probe {
            plan: plan.clone(),
            options: self.options,
            sessions: Vec::with_capacity(ids.len()),
            oversized: 0,
            undecodable: 0,
            unavailable: Vec::new(),
            fields: layout.fields.clone(),
            key_template: layout.session_key.clone(),
            prefix: layout.prefix.clone(),
            stuck_rule: layout.stuck.clone(),
            history: layout.history().map(|p| p.template.clone()),
            finals: layout.finals.clone(),
            memo: PayloadMemo::default(),
        };
        let read = |i: usize| self.reads.get(i).copied().unwrap_or(Read::Whole);
        let width = |i: usize| match read(i) {
            Read::Whole => plan.per_session,
            Read::Light => plan.per_light,
            Read::Settled(_) => plan.per_settled,
        };
        let now = super::now_millis();
        if replies.len() < (0..ids.len()).map(width).sum::<usize>() {
            return Err(Failure::Protocol("pipeline".into()));
        }
        let mut rest = replies.as_mut_slice();
        for (i, id) in ids.into_iter().enumerate() {
            let (own, tail) = std::mem::take(&mut rest).split_at_mut(width(i));
            rest = tail;
            let known_score = scores.as_ref().and_then(|s| s.get(i).copied().flatten());
            let probed = plan.probe(id, own, known_score, self.options, (read(i), now), &mut probe);
            probe.sessions.push(probed);
        }
        Ok(probe)
    }
}

/// A batch after its first round trip: what is known of each session, and which hash fields
/// are still to be read.
pub struct Probe {
    plan: Arc<ReadPlan>,
    options: ReadOptions,
    sessions: Vec<Probed>,
    oversized: u64,
    undecodable: u64,
    unavailable: Vec<String>,
    fields: Fields,
    key_template: crate::engine::layout::KeyTemplate,
    prefix: String,
    /// What a history needs to show to call a session stuck, the history, and the final stages.
    stuck_rule: Option<StuckRule>,
    history: Option<KeyTemplate>,
    finals: Vec<String>,
    /// What large payloads decoded to, for a reader that reads the same ones again.
    memo: PayloadMemo,
}

/// What a reader keeps from one read to the next: the label texts rows share, and what large
/// payloads decoded to.
#[derive(Default)]
pub struct Reader {
    pub interner: Interner,
    pub memo: PayloadMemo,
}

/// What large payloads decoded to, by their bytes, so that a reader that reads the same
/// sessions poll after poll (the visible page, the inspector) decodes a large payload again
/// only when it changed: decoding is most of what reading one costs sessiontop. Bounded; one
/// reader's, for one layout.
#[derive(Default)]
pub struct PayloadMemo {
    hasher: std::hash::RandomState,
    decoded: HashMap<(u64, usize), Remembered>,
}

/// A payload's labels and largest fields, or why it did not decode.
type Remembered = Result<(Labels, Option<String>), String>;

/// The smallest payload worth remembering, and how many are remembered at most.
const MEMO_MIN_BYTES: usize = 16 << 10;
const MEMO_ENTRIES: usize = 64;

/// One session after the first round trip.
struct Probed {
    id: SessionId,
    /// Read light: its findings of the reads left out are carried over.
    light: bool,
    /// Read settled: what it took from its last whole read (its fields or payload were read).
    settled: Option<Kept>,
    pttl: Option<i64>,
    score: Option<f64>,
    history_len: Option<u64>,
    memory_bytes: Option<u64>,
    /// `HSTRLEN` of each of the plan's hash fields, when the hash's size did not tell that they
    /// all fit the cap (else empty).
    field_lens: Vec<u64>,
    /// `HLEN` of a hash session.
    hash_len: Option<u64>,
    /// A string payload longer than the first round trip read, still to be read.
    long_payload: bool,
    /// A payload or field over the read cap, not read (`problem` says which and how large).
    over_cap: bool,
    /// The payload's length, when the session is a string; `MEMORY USAGE` of the hash, when it
    /// is a hash.
    payload_bytes: Option<u64>,
    /// The largest top-level fields of a decoded payload, with their sizes (for oversized ones).
    largest_fields: Option<String>,
    /// `PTTL` of each of the plan's parts.
    other_ttls: Vec<Option<i64>>,
    /// Whether any of the plan's ephemeral keys exists, and then the `PTTL` of each.
    ephemeral_present: bool,
    ephemeral_ttls: Vec<Option<i64>>,
    /// The rate-limit counter of the current minute.
    counter: Option<i64>,
    /// Why the history shows a user going round in circles, when it does.
    stuck: Option<String>,
    labels: Labels,
    /// Why the session's data could not be read or decoded.
    decode_error: Option<String>,
}

impl Probed {
    fn new(id: SessionId, pttl: Option<i64>, score: Option<f64>) -> Probed {
        Probed {
            id,
            light: false,
            settled: None,
            pttl,
            score,
            history_len: None,
            memory_bytes: None,
            field_lens: Vec::new(),
            hash_len: None,
            long_payload: false,
            over_cap: false,
            payload_bytes: None,
            largest_fields: None,
            other_ttls: Vec::new(),
            ephemeral_present: false,
            ephemeral_ttls: Vec::new(),
            counter: None,
            stuck: None,
            labels: Labels::default(),
            decode_error: None,
        }
    }
}

/// The texts a row is made of, already cut to [`LABEL_MAX_CHARS`].
#[derive(Debug, Default, Clone)]
struct Labels {
    stage: Option<String>,
    substate: Option<String>,
    status: Option<String>,
    last_interaction: Option<String>,
    markers: u8,
    app_ids: [u64; APP_ID_FIELDS],
}

impl Probe {
    /// The second round trip(s): the hash fields within the cap, in chunks of at most
    /// [`FIELD_CHUNK_BYTES`]. Nothing to do for other layouts.
    pub async fn fetch_fields(&mut self, router: &Router) -> Result<(), Failure> {
        let plan = self.plan.clone();
        if plan.primary == Primary::String {
            self.fetch_long_payloads(router).await?;
        }
        if plan.primary == Primary::Hash && !plan.fields.is_empty() {
            self.fetch_hash_fields(router).await?;
            self.fetch_largest_hash_fields(router).await?;
        }
        self.fetch_ephemerals(router).await?;
        self.fetch_histories(router).await
    }

    /// The `PTTL` of the exactly named related keys and the rate-limit counter, for the sessions
    /// that have any of them.
    async fn fetch_ephemerals(&mut self, router: &Router) -> Result<(), Failure> {
        let plan = self.plan.clone();
        let present: Vec<usize> = (0..self.sessions.len()).filter(|i| self.sessions[*i].ephemeral_present).collect();
        if present.is_empty() {
            return Ok(());
        }
        let per = plan.ephemeral.len() + usize::from(plan.counter.is_some());
        let mut pipe = crate::conn::link::pipe();
        for i in &present {
            let keys = plan.ephemeral_keys(&self.prefix, &self.sessions[*i].id);
            for key in &keys[..plan.ephemeral.len()] {
                pipe.cmd("PTTL").arg(key);
            }
            if let Some(counter) = keys.get(plan.ephemeral.len()) {
                pipe.cmd("GET").arg(counter);
            }
        }
        let replies = router.pipeline(&pipe).await?;
        for (i, own) in present.into_iter().zip(replies.chunks(per)) {
            let s = &mut self.sessions[i];
            s.ephemeral_ttls = own.iter().take(plan.ephemeral.len()).map(reply::int).collect();
            if plan.counter.is_some() {
                s.counter = own.get(plan.ephemeral.len()).and_then(reply::int);
            }
        }
        Ok(())
    }

    /// For hash sessions over the size threshold (rare): which fields make them large. Their
    /// field names (`HKEYS`, only for hashes of at most [`SIZED_FIELDS_MAX`] fields whose whole
    /// size is within the read cap, so the reply is bounded) and each field's `HSTRLEN`. A hash
    /// whose length is not known (`HLEN` denied) is not listed.
    async fn fetch_largest_hash_fields(&mut self, router: &Router) -> Result<(), Failure> {
        let t = self.options.thresholds;
        let cap = self.options.max_value_bytes;
        let large: Vec<usize> = (0..self.sessions.len())
            .filter(|i| self.sessions[*i].settled.is_none())
            .filter(|i| self.sessions[*i].payload_bytes.is_some_and(|b| b > t.large_session_bytes))
            .collect();
        if large.is_empty() {
            return Ok(());
        }
        let mut key = Vec::new();
        let mut named = Vec::new();
        let mut pipe = crate::conn::link::pipe();
        for i in large {
            // Its length came with its size in the first round trip.
            let n = self.sessions[i].hash_len.unwrap_or(0);
            let bytes = self.sessions[i].payload_bytes.unwrap_or(0);
            if n == 0 || n > SIZED_FIELDS_MAX || bytes > cap {
                self.sessions[i].largest_fields = Some(format!("{} fields, not listed", text::grouped(n)));
                continue;
            }
            self.write_key(i, &mut key);
            pipe.cmd("HKEYS").arg(&key);
            named.push(i);
        }
        if named.is_empty() {
            return Ok(());
        }
        let names: Vec<Vec<Vec<u8>>> = router
            .pipeline(&pipe)
            .await?
            .into_iter()
            .map(|r| reply::byte_list(r).unwrap_or_default().into_iter().flatten().collect())
            .collect();
        let mut pipe = crate::conn::link::pipe();
        for (i, fields) in named.iter().zip(&names) {
            self.write_key(*i, &mut key);
            for f in fields {
                pipe.cmd("HSTRLEN").arg(&key).arg(f);
            }
        }
        let mut sizes = router.pipeline(&pipe).await?.into_iter().map(|r| reply::int(&r).unwrap_or(0).max(0) as u64);
        for (i, fields) in named.into_iter().zip(names) {
            let mut by_size: Vec<(u64, &[u8])> =
                fields.iter().map(|f| (sizes.next().unwrap_or(0), f.as_slice())).collect();
            by_size.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            let listed = by_size
                .iter()
                .take(3)
                .map(|(n, f)| {
                    let name = text::escape_bytes(f);
                    format!("{} ({})", text::clip_sized(&name, LABEL_MAX_CHARS), text::human_bytes(*n))
                })
                .collect::<Vec<_>>()
                .join(", ");
            self.sessions[i].largest_fields = Some(listed);
        }
        Ok(())
    }

    /// Whether a hash's size, as read, says that every field of it fits the cap: all its fields
    /// were measured and together they fit.
    fn fits_whole(&self, s: &Probed) -> bool {
        s.hash_len.is_some_and(|n| n <= HASH_SAMPLES)
            && s.payload_bytes.is_some_and(|b| b <= self.options.max_value_bytes)
    }

    /// The `HSTRLEN` of each field of the hashes whose size did not tell that they fit the cap
    /// (large, or not measured): a round trip that a store of ordinary sessions never needs.
    async fn fetch_field_sizes(&mut self, router: &Router) -> Result<(), Failure> {
        let plan = self.plan.clone();
        let unmeasured: Vec<usize> = (0..self.sessions.len())
            .filter(|i| {
                let s = &self.sessions[*i];
                s.pttl != Some(-2)
                    && s.decode_error.is_none()
                    && s.hash_len != Some(0)
                    && s.settled.is_none()
                    && !self.fits_whole(s)
            })
            .collect();
        if unmeasured.is_empty() {
            return Ok(());
        }
        let mut key = Vec::new();
        let mut pipe = crate::conn::link::pipe();
        for i in &unmeasured {
            self.write_key(*i, &mut key);
            for field in &plan.fields {
                pipe.cmd("HSTRLEN").arg(&key).arg(field);
            }
        }
        let replies = router.pipeline(&pipe).await?;
        for (i, own) in unmeasured.into_iter().zip(replies.chunks(plan.fields.len().max(1))) {
            let s = &mut self.sessions[i];
            for r in own {
                if let Err(Failure::Server { code, .. }) = r
                    && code == "WRONGTYPE"
                {
                    s.decode_error.get_or_insert_with(|| "the session key is not a hash".into());
                }
            }
            s.field_lens = own.iter().map(|r| reply::int(r).unwrap_or(0).max(0) as u64).collect();
        }
        Ok(())
    }

    /// The hash fields within the cap, in chunks of at most [`FIELD_CHUNK_BYTES`].
    async fn fetch_hash_fields(&mut self, router: &Router) -> Result<(), Failure> {
        self.fetch_field_sizes(router).await?;
        let plan = self.plan.clone();
        let cap = self.options.max_value_bytes;
        // (session, fields to read, their bytes at most) in order, grouped into chunks by size.
        let mut wanted: Vec<(usize, Vec<usize>, u64)> = Vec::new();
        for i in 0..self.sessions.len() {
            let whole = self.fits_whole(&self.sessions[i]);
            let s = &mut self.sessions[i];
            if s.pttl == Some(-2) || s.decode_error.is_some() || s.hash_len == Some(0) || s.settled.is_some() {
                continue;
            }
            if whole {
                wanted.push((i, (0..plan.fields.len()).collect(), s.payload_bytes.unwrap_or(0)));
                continue;
            }
            let mut fields = Vec::new();
            for (f, len) in s.field_lens.iter().enumerate() {
                match *len {
                    0 => {}
                    n if n > cap => {
                        s.decode_error.get_or_insert_with(|| {
                            format!(
                                "field '{}' is {}, over the read cap of {}; not read",
                                text::escape_str(&plan.fields[f]),
                                text::human_bytes(n),
                                text::human_bytes(cap)
                            )
                        });
                    }
                    _ => fields.push(f),
                }
            }
            if s.decode_error.is_some() {
                self.oversized += 1;
                s.over_cap = true;
            }
            if !fields.is_empty() {
                let bytes = fields.iter().map(|f| s.field_lens[*f]).sum::<u64>();
                wanted.push((i, fields, bytes));
            }
        }
        let mut start = 0;
        while start < wanted.len() {
            let mut end = start;
            let mut bytes = 0u64;
            let mut pipe = crate::conn::link::pipe();
            let mut key = Vec::new();
            while end < wanted.len() && (end == start || bytes < FIELD_CHUNK_BYTES) {
                let (i, fields, size) = &wanted[end];
                let s = &self.sessions[*i];
                bytes += size;
                key.clear();
                self.key_template.write_key(&mut key, &self.prefix, s.id.as_bytes());
                let mut hmget = redis::cmd("HMGET");
                hmget.arg(&key);
                for f in fields {
                    hmget.arg(&plan.fields[*f]);
                }
                pipe.add_command(hmget);
                end += 1;
            }
            let replies = router.pipeline(&pipe).await?;
            for ((i, fields, _), r) in wanted[start..end].iter().zip(replies) {
                let names: Vec<&str> = fields.iter().map(|f| plan.fields[*f].as_str()).collect();
                take_fields(&mut self.sessions[*i], r, &names, &self.fields, self.options.page);
            }
            start = end;
        }
        Ok(())
    }

    /// Payloads longer than the first round trip's peek: their lengths, then those within the
    /// cap, whole, in chunks of at most [`FIELD_CHUNK_BYTES`].
    async fn fetch_long_payloads(&mut self, router: &Router) -> Result<(), Failure> {
        let long: Vec<usize> = (0..self.sessions.len()).filter(|i| self.sessions[*i].long_payload).collect();
        if long.is_empty() {
            return Ok(());
        }
        let cap = self.options.max_value_bytes;
        let mut key = Vec::new();
        let mut pipe = crate::conn::link::pipe();
        for i in &long {
            self.write_key(*i, &mut key);
            pipe.cmd("STRLEN").arg(&key);
        }
        let lens: Vec<Option<i64>> = router.pipeline(&pipe).await?.iter().map(reply::int).collect();
        // (session, length) of the payloads that fit the cap.
        let mut fitting: Vec<(usize, u64)> = Vec::new();
        for (i, len) in long.into_iter().zip(lens) {
            let s = &mut self.sessions[i];
            s.long_payload = false;
            match len {
                Some(n) if n as u64 > cap => {
                    self.oversized += 1;
                    s.over_cap = true;
                    s.payload_bytes = Some(n as u64);
                    s.decode_error = Some(format!(
                        "payload of {} exceeds the read cap of {}; not decoded",
                        text::human_bytes(n as u64),
                        text::human_bytes(cap)
                    ));
                }
                Some(n) if n > 0 => fitting.push((i, n as u64)),
                // Deleted or rewritten since the first read.
                _ => s.decode_error = Some("the payload changed while it was read; not decoded".into()),
            }
        }
        let mut start = 0;
        while start < fitting.len() {
            let mut end = start;
            let mut bytes = 0u64;
            let mut pipe = crate::conn::link::pipe();
            while end < fitting.len() && (end == start || bytes + fitting[end].1 <= FIELD_CHUNK_BYTES) {
                let (i, len) = fitting[end];
                bytes += len;
                self.write_key(i, &mut key);
                pipe.cmd("GETRANGE").arg(&key).arg(0).arg(cap.saturating_sub(1));
                end += 1;
            }
            let replies = router.pipeline(&pipe).await?;
            for ((i, _), r) in fitting[start..end].iter().zip(replies) {
                let bytes = reply::bytes(r).unwrap_or_default();
                let memo = Some(&mut self.memo);
                if !decode_payload_into(&mut self.sessions[*i], &bytes, &self.fields, self.options, memo) {
                    self.undecodable += 1;
                }
            }
            start = end;
        }
        Ok(())
    }

    /// The primary key of session `i`, into `key`.
    fn write_key(&self, i: usize, key: &mut Vec<u8>) {
        key.clear();
        self.key_template.write_key(key, &self.prefix, self.sessions[i].id.as_bytes());
    }

    /// The rows, with repeating labels shared through `interner`.
    pub fn finish(self, interner: &mut Interner, now: Millis) -> Batch {
        self.finish_carrying(interner, now, None)
    }

    /// [`Probe::finish`] for a census: a session read light is given the findings its last
    /// whole read found in the reads left out, and one read whole or settled leaves its own in
    /// `carried`, with what a settled read may take as it is.
    pub fn finish_carrying(mut self, interner: &mut Interner, now: Millis, mut carried: Option<&mut Carried>) -> Batch {
        let sessions = std::mem::take(&mut self.sessions);
        let mut batch = Batch {
            rows: Vec::with_capacity(sessions.len()),
            missing: Vec::new(),
            oversized: self.oversized,
            undecodable: self.undecodable,
            unavailable: std::mem::take(&mut self.unavailable),
        };
        let naive = self.fields.naive_time;
        for s in sessions {
            if s.pttl == Some(-2) {
                batch.missing.push(s.id);
                continue;
            }
            let last = last_interaction(&s, naive);
            let (mut findings, left_out) = self.findings(&s, last, now);
            if let Some(carried) = carried.as_deref_mut() {
                if s.light {
                    findings.extend(carried.of(&s.id));
                } else {
                    // A session read settled keeps what it took (its ends as they were).
                    let kept = s.settled.or_else(|| self.kept_of(&s, now));
                    carried.keep(&s.id, left_out, s.ephemeral_present, kept);
                }
            }
            let mut row = SessionRow::new(s.id);
            row.ttl = Ttl::from_pttl(s.pttl, now);
            row.history_len = s.history_len;
            row.created_expiry = self
                .plan
                .meta
                .and_then(|i| s.other_ttls.get(i).copied().flatten())
                .filter(|pttl| *pttl > 0)
                .map(|pttl| now + pttl);
            row.memory_bytes = s.memory_bytes;
            row.decode_error = s.decode_error;
            row.stage = s.labels.stage.map(|t| interner.get(&t));
            row.substate = s.labels.substate.map(|t| interner.get(&t));
            row.status = s.labels.status.map(|t| interner.get(&t));
            // The index score is exact epoch time; the field may be naive local time.
            row.last_interaction = last;
            row.findings = findings;
            row.markers = s.labels.markers;
            row.app_ids = s.labels.app_ids;
            batch.rows.push(row);
        }
        batch
    }

    /// What a settled read of a session read whole may take as it is ([`Kept`]): for a census
    /// read (not a page's), of a session whose related keys did not exist and whose payload or
    /// fields read and decoded whole; for a hash, only when its size says its fields fit the
    /// cap (so that they may be read without measuring them first) and it is not large (whose
    /// largest fields are listed afresh). The index score, where read per session, is not kept:
    /// such a session is not either.
    fn kept_of(&self, s: &Probed, now: Millis) -> Option<Kept> {
        let plan = &self.plan;
        let read_whole = !s.light && s.settled.is_none() && !s.ephemeral_present && s.counter.is_none();
        let sound = s.decode_error.is_none() && !s.over_cap && s.largest_fields.is_none();
        let hash_fits = plan.primary != Primary::Hash
            || (self.fits_whole(s)
                && s.payload_bytes.is_some_and(|b| b <= self.options.thresholds.large_session_bytes));
        let lengths = !plan.history || s.history_len.is_some();
        if !read_whole || !sound || !hash_fits || !lengths || plan.zscore || self.options.page {
            return None;
        }
        let pttls = std::iter::once(s.pttl).chain(s.other_ttls.iter().copied());
        Kept::new(now, pttls, s.history_len, s.hash_len, s.payload_bytes)
    }

    /// What is wrong with one session, as [`diagnose::row_findings`] judges what was read, each
    /// naming the key it is about (worked out only for the few sessions with a finding); and,
    /// apart, those of them that a light read would not find (see [`Prepared::with_reads`]).
    fn findings(&self, s: &Probed, last: Option<Micros>, now: Millis) -> (Vec<RowFinding>, Vec<RowFinding>) {
        let found = self.judge(s, last, now);
        if found.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let id = s.id.as_bytes();
        let plan = &self.plan;
        let key_of = |about: About| -> Option<Key> {
            match about {
                About::Session => Some(self.key_template.key(&self.prefix, id)),
                About::Key(i) => {
                    plan.other_keys.iter().chain(&plan.ephemeral).nth(i).map(|o| o.template.key(&self.prefix, id))
                }
                About::History => {
                    plan.other_keys.iter().find(|o| o.cap.is_some()).map(|o| o.template.key(&self.prefix, id))
                }
                About::Counter => {
                    plan.counter.as_ref().map(|(template, _)| template.key_with(&self.prefix, id, &plan.minute))
                }
                About::Nothing => None,
            }
        };
        let parts = plan.other_keys.len();
        // A session with a related key is always read whole: only its parts' are left out.
        let left_out = |about: About| matches!(about, About::Key(i) if i < parts && Some(i) != plan.meta);
        // A light read made none of the reads left out, so found none of their findings.
        let mut all = Vec::with_capacity(found.len());
        let mut apart = Vec::new();
        for (kind, why, about) in found {
            let finding = RowFinding { kind, why, key: key_of(about) };
            if left_out(about) {
                apart.push(finding.clone());
            }
            all.push(finding);
        }
        (all, apart)
    }

    fn judge(&self, s: &Probed, last: Option<Micros>, now: Millis) -> Vec<(FindingKind, String, About)> {
        let facts = RowFacts {
            pttl: s.pttl,
            history_len: s.history_len,
            history_cap: self.plan.other_keys.iter().find_map(|o| o.cap),
            counter: s.counter.zip(self.plan.counter.as_ref().map(|(_, limit)| *limit)),
            payload_bytes: s.payload_bytes,
            hash: self.plan.primary == Primary::Hash,
            largest_fields: s.largest_fields.as_deref(),
            over_cap: s.over_cap,
            decode_error: s.decode_error.as_deref(),
            last_interaction: last,
            score: s.score,
            last_interaction_text: s.labels.last_interaction.as_deref(),
            naive: self.fields.naive_time,
            stuck: s.stuck.as_deref(),
        };
        let others = self.plan.other_keys.iter().zip(&s.other_ttls);
        let keys = others.chain(self.plan.ephemeral.iter().zip(&s.ephemeral_ttls)).map(|(o, pttl)| KeyTtl {
            name: &o.name,
            lock: o.lock,
            pttl: *pttl,
        });
        diagnose::row_findings(&facts, keys, &self.options.thresholds, now)
    }

    /// Reads the newest history entries of the sessions that look like a user still trying
    /// (active within the window, not at a final stage, with enough history), and marks those
    /// whose last turns all stayed in one stage with the same decision. A history is read only
    /// when `MEMORY USAGE` says those entries fit the read cap.
    async fn fetch_histories(&mut self, router: &Router) -> Result<(), Failure> {
        let (Some(rule), Some(history)) = (self.stuck_rule.clone(), self.history.clone()) else { return Ok(()) };
        let t = self.options.thresholds;
        let turns = t.stuck_turns.max(2);
        let now = super::now_millis();
        let naive = self.fields.naive_time;
        let candidates: Vec<usize> = (0..self.sessions.len())
            .filter(|i| {
                let s = &self.sessions[*i];
                let recent = last_interaction(s, naive).is_some_and(|at| now - at / 1000 <= t.active_window_s * 1000);
                let at_final = [&s.labels.stage, &s.labels.substate]
                    .into_iter()
                    .flatten()
                    .any(|l| self.finals.iter().any(|f| f == l));
                s.pttl.is_some_and(|p| p != -2) && recent && !at_final && s.history_len.unwrap_or(0) >= turns as u64
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let key = |i: usize| history.key(&self.prefix, self.sessions[i].id.as_bytes());
        let mut sizes = crate::conn::link::pipe();
        for i in &candidates {
            sizes.cmd("MEMORY").arg("USAGE").arg(key(*i)).arg("SAMPLES").arg(turns);
        }
        let replies = router.pipeline(&sizes).await?;
        let mut readable = Vec::new();
        for (i, r) in candidates.into_iter().zip(replies) {
            match (reply::int(&r), reply::failure(&r)) {
                // MEMORY USAGE estimates the whole list from the sampled entries.
                (Some(bytes), _) => {
                    let len = self.sessions[i].history_len.unwrap_or(1).max(1);
                    if (bytes.max(0) as u64 / len) * turns as u64 <= self.options.max_value_bytes {
                        readable.push(i);
                    }
                }
                (None, Some(f)) if f.is_unavailable() => note_unavailable(&mut self.unavailable, f),
                _ => {}
            }
        }
        let mut reads = crate::conn::link::pipe();
        for i in &readable {
            reads.cmd("LRANGE").arg(key(*i)).arg(0).arg(turns - 1);
        }
        let replies = if readable.is_empty() { Vec::new() } else { router.pipeline(&reads).await? };
        for (i, r) in readable.into_iter().zip(replies) {
            let entries = reply::byte_list(r).unwrap_or_default();
            self.sessions[i].stuck = going_round(&entries, &rule, turns, &self.finals);
        }
        Ok(())
    }
}

/// When a session was last active: the index score (exact epoch time), else its own field
/// (which may be naive local time).
fn last_interaction(s: &Probed, naive: NaiveTime) -> Option<Micros> {
    match s.score.filter(|s| s.is_finite() && *s > 0.0) {
        Some(score) => Some((score * 1e6) as Micros),
        None => s.labels.last_interaction.as_deref().and_then(|t| parse_time(t, naive)),
    }
}

/// Why the newest `turns` history entries (newest first) show a user going round in circles:
/// all in the same stage, not a final one, with the same decision each time (when the layout
/// records decisions). `None` when they do not.
fn going_round(entries: &[Option<Vec<u8>>], rule: &StuckRule, turns: usize, finals: &[String]) -> Option<String> {
    if entries.len() < turns {
        return None;
    }
    // Each entry decoded once, the newest first; the first that breaks the pattern ends it.
    let fields = |entry: &Option<Vec<u8>>| -> (Option<String>, Option<String>) {
        let Some(bytes) = entry.as_deref() else { return (None, None) };
        let value = decode::decode_text(bytes);
        let text = |name: &str| value.get(name).and_then(|v| v.as_scalar_text());
        (text(&rule.history_stage), rule.history_decision.as_deref().and_then(text))
    };
    let (stage, decision) = fields(&entries[0]);
    let stage = stage?;
    if finals.contains(&stage) {
        return None;
    }
    if rule.history_decision.is_some() && decision.is_none() {
        return None;
    }
    if entries[1..].iter().any(|e| fields(e) != (Some(stage.clone()), decision.clone())) {
        return None;
    }
    let stage = text::clip_sized(&stage, LABEL_MAX_CHARS);
    match decision {
        Some(decision) => Some(format!(
            "the last {turns} turns stayed in {stage}, deciding {} each time",
            text::clip_sized(&decision, LABEL_MAX_CHARS)
        )),
        None => Some(format!("the last {turns} turns stayed in {stage}")),
    }
}

/// The largest top-level fields of a payload by their size as JSON, for saying what makes a
/// session large.
fn largest_fields(value: &Value) -> String {
    let Some(entries) = value.entries() else { return "not a map".into() };
    let mut sizes: Vec<(String, usize)> =
        entries.map(|(name, v)| (text::clip_sized(&name, LABEL_MAX_CHARS).into_owned(), v.approx_size())).collect();
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sizes.iter().take(3).map(|(n, b)| format!("{n} ({})", text::human_bytes(*b as u64))).collect::<Vec<_>>().join(", ")
}

/// How a session's primary key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Primary {
    /// `PTTL` and `HSTRLEN` of each field; the fields themselves in the second round trip.
    Hash,
    /// `PTTL` and `GETRANGE` of the first [`PAYLOAD_PEEK_BYTES`]; a longer payload's
    /// `STRLEN`, and then the payload up to the cap, in later round trips.
    String,
    /// `PTTL` only.
    TtlOnly,
}

/// The commands read for each session, in order.
struct ReadPlan {
    /// Hash fields that may be read.
    fields: Vec<String>,
    primary: Primary,
    zscore: bool,
    history: bool,
    /// `MEMORY USAGE` of the session's other keys (and of a string session's key) on the page.
    memory_keys: usize,
    /// The session's parts, whose `PTTL` is read: for keys without TTL and parts that expire
    /// apart.
    other_keys: Vec<OtherKey>,
    /// The related keys a layout names exactly (a lock). Applications write them seldom, so one
    /// `EXISTS` of them and the rate-limit counter tells whether to read their `PTTL` (and the
    /// counter) in a later round trip.
    ephemeral: Vec<OtherKey>,
    probe_ephemeral: bool,
    /// The rate-limit counter of the current minute (`GET`), and its limit.
    counter: Option<(KeyTemplate, u64)>,
    /// The epoch minute the counter is read for.
    minute: Vec<u8>,
    per_session: usize,
    /// The commands of a session read light, and settled.
    per_light: usize,
    per_settled: usize,
    /// Which of `other_keys` is written once at creation with the session's lifetime (the
    /// layout's meta): when it expires says when the session was created.
    meta: Option<usize>,
}

/// One of a session's other keys whose TTL is read.
struct OtherKey {
    name: String,
    template: KeyTemplate,
    lock: bool,
    /// The application trims this list to so many entries.
    cap: Option<u64>,
}

impl ReadPlan {
    fn new(layout: &Layout, options: ReadOptions, need_score: bool) -> ReadPlan {
        let scored = layout.index.as_ref().is_some_and(|i| i.score == ScoreMeaning::LastInteraction);
        // The last-interaction field is read even where the index score gives the time: the two
        // disagreeing is a finding (clock trouble).
        let fields = hash_fields(layout, options.page);
        let zscore = need_score && scored;
        let history = layout.history().is_some();
        let (primary, commands) = match layout.session_type {
            KeyType::Hash if !fields.is_empty() => (Primary::Hash, 3), // PTTL, HLEN, MEMORY USAGE
            KeyType::String => (Primary::String, 2),                   // PTTL, GETRANGE
            _ => (Primary::TtlOnly, 1),                                // PTTL
        };
        let other_keys: Vec<OtherKey> = layout
            .parts
            .iter()
            .map(|p| OtherKey {
                name: p.name.clone(),
                template: p.template.clone(),
                lock: false,
                cap: p.cap.filter(|_| p.role == PartRole::History),
            })
            .collect();
        let ephemeral: Vec<OtherKey> = layout
            .related
            .iter()
            .filter(|r| r.template.is_exact() && r.template.field_names().is_empty())
            .map(|r| OtherKey {
                name: r.name.clone(),
                template: r.template.clone(),
                lock: r.role == RelatedRole::Lock,
                cap: None,
            })
            .collect();
        let counter = layout
            .related
            .iter()
            .find(|r| r.role == RelatedRole::RateLimit)
            .and_then(|r| Some((r.template.clone(), r.limit?)));
        let minute = (super::now_millis() / 60_000).to_string().into_bytes();
        let probe_ephemeral = !ephemeral.is_empty() || counter.is_some();
        // A hash session's own size is read with its length in every case.
        let own_memory = usize::from(primary != Primary::Hash);
        let memory_keys = if options.page { own_memory + layout.parts.len() } else { 0 };
        let per_session = commands
            + usize::from(zscore)
            + usize::from(history)
            + memory_keys
            + other_keys.len()
            + usize::from(probe_ephemeral);
        let meta = layout.parts.iter().position(|p| p.role == PartRole::Meta);
        let per_light = per_session
            - other_keys.iter().enumerate().filter(|(i, _)| Some(*i) != meta).count()
            - usize::from(probe_ephemeral);
        // Its hash fields (`HMGET`), or its payload's peek (`GETRANGE`).
        let per_settled = usize::from(primary != Primary::TtlOnly);
        ReadPlan {
            per_light,
            per_settled,
            fields,
            primary,
            zscore,
            history,
            memory_keys,
            other_keys,
            ephemeral,
            counter,
            probe_ephemeral,
            minute,
            per_session,
            meta,
        }
    }

    fn add(
        &self,
        pipe: &mut impl Commands,
        layout: &Layout,
        id: &SessionId,
        options: ReadOptions,
        read: Read,
        bufs: &mut KeyBuffers,
    ) {
        let KeyBuffers { key, other, related, ends } = bufs;
        key.clear();
        layout.session_key.write_key(key, &layout.prefix, id.as_bytes());
        let key = key.as_slice();
        if let Read::Settled(_) = read {
            // Its size said, when it was last read whole, that its fields fit the cap; nothing
            // wrote to it since.
            match self.primary {
                Primary::Hash => {
                    let fields: Vec<&[u8]> = self.fields.iter().map(|f| f.as_bytes()).collect();
                    pipe.push_read(read_cmd(&[b"HMGET"], key, &fields), key, Kind::Hmget);
                }
                Primary::String => push_peek(pipe, key, options),
                Primary::TtlOnly => {}
            }
            return;
        }
        let light = read == Read::Light;
        // Each read names its one key and its kind, so that a cluster places it by the key.
        pipe.push_read(read_cmd(&[b"PTTL"], key, &[]), key, Kind::Pttl);
        match self.primary {
            Primary::Hash => {
                // Its size: exact when it has at most HASH_SAMPLES fields, sampled (and bounded
                // in cost) when it has more.
                pipe.push_read(read_cmd(&[b"HLEN"], key, &[]), key, Kind::Hlen);
                let samples = HASH_SAMPLES.to_string();
                let usage = read_cmd(&[b"MEMORY", b"USAGE"], key, &[b"SAMPLES", samples.as_bytes()]);
                pipe.push_read(usage, key, Kind::MemoryUsage);
            }
            Primary::String => push_peek(pipe, key, options),
            Primary::TtlOnly => {}
        }
        if self.zscore
            && let Some(index) = &layout.index
        {
            let index_key = index.key.as_bytes();
            pipe.push_read(read_cmd(&[b"ZSCORE"], index_key, &[id.as_bytes()]), index_key, Kind::Zscore);
        }
        if self.history
            && let Some(part) = layout.history()
        {
            other.clear();
            part.template.write_key(other, &layout.prefix, id.as_bytes());
            pipe.push_read(read_cmd(&[b"LLEN"], other, &[]), other, Kind::Llen);
        }
        if self.memory_keys > 0 {
            if self.primary != Primary::Hash {
                pipe.push_read(read_cmd(&[b"MEMORY", b"USAGE"], key, &[]), key, Kind::MemoryUsage);
            }
            for part in &layout.parts {
                other.clear();
                part.template.write_key(other, &layout.prefix, id.as_bytes());
                pipe.push_read(read_cmd(&[b"MEMORY", b"USAGE"], other, &[]), other, Kind::MemoryUsage);
            }
        }
        for (i, o) in self.other_keys.iter().enumerate() {
            if light && Some(i) != self.meta {
                continue;
            }
            other.clear();
            o.template.write_key(other, &layout.prefix, id.as_bytes());
            pipe.push_read(read_cmd(&[b"PTTL"], other, &[]), other, Kind::Pttl);
        }
        if self.probe_ephemeral && !light {
            self.write_ephemeral_keys(&layout.prefix, id, related, ends);
            pipe.push_count(b"EXISTS", &keys_at(related, ends), Kind::Exists);
        }
    }

    /// The session's exactly named related keys, then its rate-limit counter of this minute.
    fn ephemeral_keys(&self, prefix: &str, id: &SessionId) -> Vec<crate::engine::names::Key> {
        let mut keys: Vec<_> = self.ephemeral.iter().map(|e| e.template.key(prefix, id.as_bytes())).collect();
        if let Some((template, _)) = &self.counter {
            keys.push(template.key_with(prefix, id.as_bytes(), &self.minute));
        }
        keys
    }

    /// [`Self::ephemeral_keys`] written one after another into `out` (cleared first), where
    /// each ends at the offset `ends` gives: a batch's commands are built without a key allocated
    /// for each.
    fn write_ephemeral_keys(&self, prefix: &str, id: &SessionId, out: &mut Vec<u8>, ends: &mut Vec<usize>) {
        out.clear();
        ends.clear();
        for e in &self.ephemeral {
            e.template.write_key(out, prefix, id.as_bytes());
            ends.push(out.len());
        }
        if let Some((template, _)) = &self.counter {
            template.write_key_with(out, prefix, id.as_bytes(), &self.minute);
            ends.push(out.len());
        }
    }

    fn probe(
        &self,
        id: SessionId,
        replies: &mut [Reply],
        known_score: Option<f64>,
        options: ReadOptions,
        (read, now): (Read, Millis),
        batch: &mut Probe,
    ) -> Probed {
        let mut replies = replies.iter_mut();
        let mut next = || replies.next().map_or_else(|| Err(Failure::Protocol("pipeline".into())), take_reply);
        if let Read::Settled(kept) = read {
            let mut probed = Probed::new(id, kept.pttl(0, now), known_score);
            probed.settled = Some(kept);
            probed.history_len = kept.history_len();
            probed.hash_len = kept.hash_len();
            probed.payload_bytes = kept.payload_bytes();
            probed.other_ttls = (0..self.other_keys.len()).map(|i| kept.pttl(i + 1, now)).collect();
            match self.primary {
                Primary::Hash => {
                    let names: Vec<&str> = self.fields.iter().map(String::as_str).collect();
                    take_fields(&mut probed, next(), &names, &batch.fields, options.page);
                }
                Primary::String => take_peek(&mut probed, next(), options, batch),
                Primary::TtlOnly => {}
            }
            return probed;
        }
        let light = read == Read::Light;
        let pttl = reply::int(&next());
        let mut probed = Probed::new(id, pttl, known_score);
        match self.primary {
            Primary::Hash => {
                let len = next();
                if let Err(Failure::Server { code, .. }) = &len
                    && code == "WRONGTYPE"
                    && pttl != Some(-2)
                {
                    probed.decode_error.get_or_insert_with(|| "the session key is not a hash".into());
                }
                let memory = next();
                for r in [&len, &memory] {
                    if let Err(f) = r
                        && f.is_unavailable()
                    {
                        note_unavailable(&mut batch.unavailable, f);
                    }
                }
                probed.hash_len = reply::int(&len).map(|n| n.max(0) as u64);
                probed.payload_bytes = reply::int(&memory).map(|n| n.max(0) as u64);
            }
            Primary::String => take_peek(&mut probed, next(), options, batch),
            Primary::TtlOnly => {}
        }
        if self.zscore {
            probed.score = reply::float(&next());
        }
        if self.history {
            probed.history_len = reply::int(&next()).map(|n| n.max(0) as u64);
        }
        if options.page {
            let mut total: Option<u64> = if self.primary == Primary::Hash { probed.payload_bytes } else { None };
            for _ in 0..self.memory_keys {
                let r = next();
                if let Err(f) = &r
                    && f.is_unavailable()
                {
                    note_unavailable(&mut batch.unavailable, f);
                }
                if let Some(n) = reply::int(&r) {
                    total = Some(total.unwrap_or(0) + n.max(0) as u64);
                }
            }
            probed.memory_bytes = total;
        }
        probed.light = light;
        probed.other_ttls = (0..self.other_keys.len())
            .map(|i| if light && Some(i) != self.meta { None } else { reply::int(&next()) })
            .collect();
        if self.probe_ephemeral && !light {
            probed.ephemeral_present = reply::int(&next()).is_some_and(|n| n > 0);
        }
        probed
    }
}

/// A string session's payload as far as the peek: decoded when it is all there, else left for
/// a later round trip.
fn take_peek(probed: &mut Probed, r: Reply, options: ReadOptions, batch: &mut Probe) {
    let bytes = reply::bytes(r).unwrap_or_default();
    if probed.pttl != Some(-2) {
        if bytes.len() as u64 > peek_bytes(options) {
            probed.long_payload = true;
        } else if !decode_payload_into(probed, &bytes, &batch.fields, options, None) {
            batch.undecodable += 1;
        }
    }
}

/// A hash session's fields `names`, read (`HMGET`), into its labels.
fn take_fields(probed: &mut Probed, r: Reply, names: &[&str], fields: &Fields, page: bool) {
    if let Err(Failure::Server { code, .. }) = &r
        && code == "WRONGTYPE"
    {
        // Rewritten as another type since its size was read.
        probed.decode_error.get_or_insert_with(|| "the session key is not a hash".into());
        return;
    }
    let values = reply::byte_list(r).unwrap_or_default();
    probed.labels = labels(&Source::Hash { names, values }, fields, page);
}

/// Decodes a whole payload into a session's labels; `false` (and the reason in the session)
/// when it does not decode.
fn decode_payload_into(
    probed: &mut Probed,
    bytes: &[u8],
    fields: &Fields,
    options: ReadOptions,
    memo: Option<&mut PayloadMemo>,
) -> bool {
    probed.payload_bytes = Some(bytes.len() as u64);
    let decode = || match decode::decode_payload(bytes) {
        Ok(decoded) => {
            let largest =
                (bytes.len() as u64 > options.thresholds.large_session_bytes).then(|| largest_fields(&decoded.value));
            Ok((labels(&Source::Payload(decoded.value), fields, options.page), largest))
        }
        Err(e) => Err(e.reason),
    };
    let outcome = match memo.filter(|_| bytes.len() >= MEMO_MIN_BYTES) {
        Some(memo) => {
            use std::hash::BuildHasher;
            let key = (memo.hasher.hash_one(bytes), bytes.len());
            if memo.decoded.len() >= MEMO_ENTRIES && !memo.decoded.contains_key(&key) {
                memo.decoded.clear();
            }
            memo.decoded.entry(key).or_insert_with(decode).clone()
        }
        None => decode(),
    };
    match outcome {
        Ok((labels, largest)) => {
            probed.labels = labels;
            probed.largest_fields = largest;
            true
        }
        Err(reason) => {
            probed.decode_error = Some(reason);
            false
        }
    }
}

/// How far the first round trip reads a string payload: the peek, or less under a smaller cap.
/// A string session's payload, as far as the peek and one byte past it, which tells a payload
/// that fits it from one that does not.
fn push_peek(pipe: &mut impl Commands, key: &[u8], options: ReadOptions) {
    let end = peek_bytes(options).to_string();
    pipe.push_read(read_cmd(&[b"GETRANGE"], key, &[b"0", end.as_bytes()]), key, Kind::Getrange);
}

fn peek_bytes(options: ReadOptions) -> u64 {
    PAYLOAD_PEEK_BYTES.min(options.max_value_bytes)
}

/// The row's texts from where the session keeps them.
fn labels(source: &Source<'_>, fields: &Fields, page: bool) -> Labels {
    let cut = |t: String| text::clip_sized(&t, LABEL_MAX_CHARS).into_owned();
    let markers = fields.markers.iter().enumerate().fold(0u8, |bits, (i, marker)| {
        let holds =
            marker.any.iter().any(|c| c.holds(source.text(std::slice::from_ref(&c.field().to_string())).as_deref()));
        if holds && i < 8 { bits | 1 << i } else { bits }
    });
    let mut app_ids = [0u64; APP_ID_FIELDS];
    for (slot, field) in app_ids.iter_mut().zip(&fields.ids) {
        if let Some(value) = source.text(std::slice::from_ref(field)) {
            *slot = app_id_key(field, value.as_bytes());
        }
    }
    Labels {
        stage: source.text(&fields.stage).map(cut),
        substate: source.text(&fields.substate).map(cut),
        status: if page { source.text(&fields.status).map(cut) } else { None },
        last_interaction: source.text(&fields.last_interaction).map(cut),
        markers,
        app_ids,
    }
}

/// Where a session's fields are read from.
enum Source<'a> {
    /// Hash fields as read by `HMGET` (absent fields are `None`), in the order of `names`.
    Hash { names: &'a [&'a str], values: Vec<Option<Vec<u8>>> },
    /// A decoded payload.
    Payload(Value),
}

impl Source<'_> {
    /// The first of `paths` that holds a non-empty scalar. A plain hash field is read as text; a
    /// dotted path `a.b` looks up `b` in the JSON held by field `a`.
    fn text(&self, paths: &[String]) -> Option<String> {
        paths.iter().find_map(|path| match self {
            Source::Hash { names, values } => {
                let field = |name: &str| names.iter().position(|n| *n == name).and_then(|i| values.get(i)?.as_deref());
                match field(path) {
                    Some(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                    None => {
                        let (head, rest) = path.split_once('.')?;
                        decode::decode_text(field(head)?).get_path(rest)?.as_scalar_text()
                    }
                }
                .filter(|s| !s.is_empty())
            }
            Source::Payload(value) => {
                value.get(path).or_else(|| value.get_path(path))?.as_scalar_text().filter(|s| !s.is_empty())
            }
        })
    }
}

/// Moves a reply out of the batch's reply list.
fn take_reply(r: &mut Reply) -> Reply {
    std::mem::replace(r, Ok(redis::Value::Nil))
}

fn note_unavailable(list: &mut Vec<String>, failure: &Failure) {
    let text = failure.to_string();
    if !list.contains(&text) {
        list.push(text);
    }
}

/// Hash fields to `HMGET`: each path, and the head of a dotted path (`a` for `a.b`), whose JSON
/// value the rest of the path is looked up in. The last-interaction fields are read even when
/// the index scores last interaction (the score is the time shown; the two are compared); the
/// status fields only for a page read.
fn hash_fields(layout: &Layout, status: bool) -> Vec<String> {
    let f = &layout.fields;
    let marker_fields: Vec<String> =
        f.markers.iter().flat_map(|m| m.any.iter().map(|c| c.field().to_string())).collect();
    let mut paths: Vec<&String> =
        f.stage.iter().chain(&f.substate).chain(&marker_fields).chain(f.ids.iter().take(APP_ID_FIELDS)).collect();
    if status {
        paths.extend(&f.status);
    }
    paths.extend(&f.last_interaction);
    let mut out: Vec<String> = Vec::new();
    for path in paths {
        for candidate in [Some(path.as_str()), path.split_once('.').map(|(head, _)| head)].into_iter().flatten() {
            if !out.iter().any(|f| f == candidate) {
                out.push(candidate.to_string());
            }
        }
    }
    out
}

/// A command of `before`, then `key`, then `after`, built in one allocation of each kind.
fn read_cmd(before: &[&[u8]], key: &[u8], after: &[&[u8]]) -> redis::Cmd {
    let words = before.iter().chain(after).map(|w| w.len()).sum::<usize>();
    let mut cmd = redis::Cmd::with_capacity(before.len() + 1 + after.len(), words + key.len());
    for w in before {
        cmd.arg(*w);
    }
    cmd.arg(key);
    for w in after {
        cmd.arg(*w);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn going_round_needs_every_turn_in_one_stage_with_one_decision() {
        let rule = StuckRule { history_stage: "stage".into(), history_decision: Some("decision".into()) };
        let finals = vec!["done".to_string()];
        let turn = |stage: &str, decision: &str| {
            Some(format!(r#"{{"stage":"{stage}","decision":"{decision}"}}"#).into_bytes())
        };
        let same = vec![turn("tpr", "retry"), turn("tpr", "retry"), turn("tpr", "retry")];
        assert_eq!(
            going_round(&same, &rule, 3, &finals).as_deref(),
            Some("the last 3 turns stayed in tpr, deciding retry each time")
        );
        let moved = vec![turn("tpr", "retry"), turn("tpr", "retry"), turn("upload", "retry")];
        assert_eq!(going_round(&moved, &rule, 3, &finals), None);
        let decided = vec![turn("tpr", "retry"), turn("tpr", "next"), turn("tpr", "retry")];
        assert_eq!(going_round(&decided, &rule, 3, &finals), None);
        let finished = vec![turn("done", "x"), turn("done", "x"), turn("done", "x")];
        assert_eq!(going_round(&finished, &rule, 3, &finals), None);
        assert_eq!(going_round(&same[..2], &rule, 3, &finals), None, "fewer turns than asked");
        let gone = vec![turn("tpr", "retry"), None, turn("tpr", "retry")];
        assert_eq!(going_round(&gone, &rule, 3, &finals), None);
        let stage_only = StuckRule { history_decision: None, ..rule.clone() };
        assert_eq!(going_round(&decided, &stage_only, 3, &finals).as_deref(), Some("the last 3 turns stayed in tpr"));
    }

    /// A built-in layout with no overrides.
    fn builtin(kind: crate::engine::layout::LayoutKind) -> Layout {
        Layout::builtin(kind, &crate::engine::layout::Overrides::default()).unwrap()
    }

    /// Options with the default cap and thresholds, for a page read or not.
    fn read_options(page: bool) -> ReadOptions {
        ReadOptions { page, max_value_bytes: 1 << 20, thresholds: Thresholds::default() }
    }

    #[test]
    fn a_batch_names_the_same_related_keys_in_its_buffer_as_one_by_one() {
        let layout = builtin(crate::engine::layout::LayoutKind::Trt);
        let options = read_options(false);
        let plan = ReadPlan::new(&layout, options, false);
        assert!(plan.probe_ephemeral, "the TRT layout names a lock and a rate-limit counter");
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        // Ids that are prefixes of one another, and one with the template's own separator.
        for id in ["user_7", "user_77", "org:acme:user7", ""] {
            let id = SessionId::from(id);
            plan.write_ephemeral_keys(&layout.prefix, &id, &mut out, &mut ends);
            let one_by_one = plan.ephemeral_keys(&layout.prefix, &id);
            let written = keys_at(&out, &ends);
            let expected: Vec<&[u8]> = one_by_one.iter().map(|k| k.as_bytes()).collect();
            assert_eq!(written, expected);
            assert_eq!(written.len(), 2);
            assert!(written[0].starts_with(b"trt:lock:"), "{:?}", String::from_utf8_lossy(written[0]));
        }
    }

    #[test]
    fn a_large_payload_read_again_unchanged_is_not_decoded_again() {
        let layout = builtin(crate::engine::layout::LayoutKind::Flask);
        let options = read_options(true);
        let payload =
            |stage: &str| format!(r#"{{"stage": "{stage}", "data": [{}1]}}"#, "1,".repeat(20_000)).into_bytes();
        let read = |memo: &mut PayloadMemo, bytes: &[u8]| {
            let mut probed = Probed::new(SessionId::from("s"), Some(1000), None);
            assert!(decode_payload_into(&mut probed, bytes, &layout.fields, options, Some(memo)));
            probed.labels.stage
        };
        let mut memo = PayloadMemo::default();
        let first = payload("tpr_analysis");
        assert_eq!(read(&mut memo, &first).as_deref(), Some("tpr_analysis"));
        // What it remembers is what is used for the same bytes (marked, to tell it from a
        // fresh decode); changed bytes are decoded.
        for (labels, _) in memo.decoded.values_mut().flatten() {
            labels.stage = Some("remembered".into());
        }
        assert_eq!(read(&mut memo, &first).as_deref(), Some("remembered"));
        assert_eq!(read(&mut memo, &payload("risk_analysis")).as_deref(), Some("risk_analysis"));
        // Bounded: a reader of many large payloads keeps at most MEMO_ENTRIES.
        for i in 0..(MEMO_ENTRIES * 2) {
            read(&mut memo, &payload(&format!("stage_{i}")));
            assert!(memo.decoded.len() <= MEMO_ENTRIES);
        }
        // Small payloads are cheap to decode and not remembered.
        let before = memo.decoded.len();
        read(&mut memo, br#"{"stage": "uploaded"}"#);
        assert_eq!(memo.decoded.len(), before);
    }

    #[test]
    fn dotted_stage_paths_read_their_head_field() {
        let layout = crate::engine::layout::Layout::builtin(
            crate::engine::layout::LayoutKind::Trt,
            &crate::engine::layout::Overrides {
                stage_field: Some("stage_1_completion.phase".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let fields = hash_fields(&layout, true);
        assert!(fields.contains(&"stage_1_completion".to_string()));
        assert!(fields.contains(&"stage_1_completion.phase".to_string()));
        assert!(fields.contains(&"last_interaction".to_string()), "read beside the index score, to compare");
        let names = ["stage_1_completion", "stage_1_completion.phase"];
        let source = Source::Hash { names: &names, values: vec![Some(br#"{"phase": "body"}"#.to_vec()), None] };
        assert_eq!(source.text(&layout.fields.stage).as_deref(), Some("body"));
    }

    #[test]
    fn labels_are_cut_with_their_size() {
        let layout = builtin(crate::engine::layout::LayoutKind::Trt);
        let names = ["current_stage", "current_substate"];
        let long = "s".repeat(70_000).into_bytes();
        let source = Source::Hash { names: &names, values: vec![Some(b"stage".to_vec()), Some(long)] };
        let l = labels(&source, &layout.fields, true);
        assert_eq!(l.stage.as_deref(), Some("stage"));
        let sub = l.substate.unwrap();
        assert!(sub.chars().count() < LABEL_MAX_CHARS + 20 && sub.ends_with("(70,000 chars)"), "{sub}");
    }
}
