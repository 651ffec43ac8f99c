//! Reading sessions' rows: one pipelined round trip for a whole batch of ids, the same for the
//! census, the visible page and the inspector, so that every view agrees on what a field means.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};

use crate::decode::{self, Value};
use crate::link::{Failure, Link, Reply, reply};
use crate::model::{Millis, SessionRow, Ttl};
use crate::schema::{KeyType, NaiveTime, Schema, ScoreMeaning};
use crate::text;

/// Shares the text of values that repeat across sessions (stages, substates, statuses), so a
/// census of many sessions holds each distinct stage once.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashMap<Box<str>, Arc<str>>,
}

/// Distinct values kept shared; beyond this (a field that is unique per session) values are
/// simply allocated.
const INTERNER_CAPACITY: usize = 10_000;

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
    pub missing: Vec<String>,
    /// Payloads over the read cap (also in `rows`, with a decode error).
    pub oversized: u64,
    /// Payloads that did not decode (also in `rows`, with a decode error).
    pub undecodable: u64,
    /// Fields that could not be read, once each (`MEMORY USAGE denied: …`).
    pub unavailable: Vec<String>,
}

/// Options for reading rows.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// A page read (the visible sessions, a snapshot's items, the inspector): also read
    /// `MEMORY USAGE` of every key and the status field. The census reads neither: it counts
    /// neither, and leaving them out keeps a pass over every session cheap.
    pub page: bool,
    /// The most bytes of a payload to read.
    pub max_value_bytes: u64,
}

/// Reads the rows of `ids` in one pipeline. `scores` are index scores already known (from a
/// walk of the index); when absent and the index scores last interaction, `ZSCORE` is read too.
pub async fn read_rows(
    link: &mut Link,
    schema: &Schema,
    ids: &[String],
    scores: Option<&[Option<f64>]>,
    options: ReadOptions,
    interner: &mut Interner,
    now: Millis,
) -> Result<Batch, Failure> {
    let (prepared, pipe) = Prepared::new(schema, ids, scores.is_none(), options);
    let replies = link.pipeline(&pipe).await?;
    prepared.parse(schema, ids, scores, replies, interner, now)
}

/// The pipeline that reads a batch of sessions, ready to send; [`Prepared::parse`] reads its
/// replies. Split so that a census can have one batch on the server while it parses another.
pub struct Prepared {
    plan: Plan,
    options: ReadOptions,
}

impl Prepared {
    /// The reader and the pipeline to send.
    pub fn new(schema: &Schema, ids: &[String], need_score: bool, options: ReadOptions) -> (Prepared, redis::Pipeline) {
        let plan = Plan::new(schema, options, need_score);
        let mut pipe = crate::link::pipe();
        let mut key = String::new();
        for id in ids {
            plan.add(&mut pipe, schema, id, options, &mut key);
        }
        (Prepared { plan, options }, pipe)
    }

    /// Turns the replies into rows.
    pub fn parse(
        &self,
        schema: &Schema,
        ids: &[String],
        scores: Option<&[Option<f64>]>,
        mut replies: Vec<Reply>,
        interner: &mut Interner,
        now: Millis,
    ) -> Result<Batch, Failure> {
        // A denied read of the session's own keys makes every row meaningless; only MEMORY
        // USAGE (the one optional read) may be denied.
        if let Some(failure) = replies.iter().find_map(|r| match r {
            Err(f @ Failure::Denied { command, .. }) if command != "MEMORY USAGE" => Some(f.clone()),
            _ => None,
        }) {
            return Err(failure);
        }
        let plan = &self.plan;
        let mut batch = Batch::default();
        batch.rows.reserve(ids.len());
        for (i, (id, own)) in ids.iter().zip(replies.chunks_mut(plan.per_session)).enumerate() {
            let known_score = scores.and_then(|s| s.get(i).copied().flatten());
            plan.parse(schema, id, own, known_score, self.options, interner, now, &mut batch);
        }
        Ok(batch)
    }
}

/// The commands read for each session, in order.
struct Plan {
    fields: Vec<String>,
    zscore: bool,
    history: bool,
    memory_keys: usize,
    per_session: usize,
}

impl Plan {
    fn new(schema: &Schema, options: ReadOptions, need_score: bool) -> Plan {
        let scored = schema.index.as_ref().is_some_and(|i| i.score == ScoreMeaning::LastInteraction);
        let fields = hash_fields(schema, !scored, options.page);
        let zscore = need_score && scored;
        let history = schema.history().is_some();
        let memory_keys = if options.page { 1 + schema.parts.len() } else { 0 };
        let primary = match schema.session_type {
            KeyType::Hash if !fields.is_empty() => 2, // HMGET, PTTL
            KeyType::String => 3,                     // PTTL, STRLEN, GETRANGE
            _ => 1,                                   // PTTL
        };
        let per_session = primary + usize::from(zscore) + usize::from(history) + memory_keys;
        Plan { fields, zscore, history, memory_keys, per_session }
    }

    fn add(&self, pipe: &mut redis::Pipeline, schema: &Schema, id: &str, options: ReadOptions, key: &mut String) {
        key.clear();
        schema.session_key.write_key(key, &schema.prefix, id);
        let key = key.as_str();
        match schema.session_type {
            KeyType::Hash if !self.fields.is_empty() => {
                let size = key.len() + self.fields.iter().map(String::len).sum::<usize>() + 8;
                let mut hmget = redis::Cmd::with_capacity(2 + self.fields.len(), size);
                hmget.arg("HMGET").arg(key).arg(&self.fields);
                pipe.add_command(hmget);
                let mut pttl = redis::Cmd::with_capacity(2, key.len() + 4);
                pttl.arg("PTTL").arg(key);
                pipe.add_command(pttl);
            }
            KeyType::String => {
                pipe.cmd("PTTL").arg(key);
                pipe.cmd("STRLEN").arg(key);
                pipe.cmd("GETRANGE").arg(key).arg(0).arg(options.max_value_bytes.saturating_sub(1));
            }
            _ => {
                pipe.cmd("PTTL").arg(key);
            }
        }
        if self.zscore
            && let Some(index) = &schema.index
        {
            pipe.cmd("ZSCORE").arg(&index.key).arg(id);
        }
        if self.history
            && let Some(part) = schema.history()
        {
            pipe.cmd("LLEN").arg(part.template.key(&schema.prefix, id));
        }
        if self.memory_keys > 0 {
            pipe.cmd("MEMORY").arg("USAGE").arg(key);
            for part in &schema.parts {
                pipe.cmd("MEMORY").arg("USAGE").arg(part.template.key(&schema.prefix, id));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn parse(
        &self,
        schema: &Schema,
        id: &str,
        replies: &mut [Reply],
        known_score: Option<f64>,
        options: ReadOptions,
        interner: &mut Interner,
        now: Millis,
        batch: &mut Batch,
    ) {
        let mut replies = replies.iter_mut();
        let mut next = || replies.next().map_or_else(|| Err(Failure::Protocol("pipeline".into())), take_reply);
        let mut row = SessionRow::new(id);
        let mut source: Option<Source<'_>> = None;
        let pttl;
        match schema.session_type {
            KeyType::Hash if !self.fields.is_empty() => {
                let values = reply::byte_list(next()).unwrap_or_default();
                pttl = reply::int(&next());
                source = Some(Source::Hash { names: &self.fields, values });
            }
            KeyType::String => {
                pttl = reply::int(&next());
                let len = reply::int(&next()).unwrap_or(0).max(0) as u64;
                let bytes = reply::bytes(next()).unwrap_or_default();
                if pttl != Some(-2) {
                    if len > options.max_value_bytes {
                        batch.oversized += 1;
                        row.decode_error = Some(format!(
                            "payload of {} exceeds the read cap of {}; not decoded",
                            text::human_bytes(len),
                            text::human_bytes(options.max_value_bytes)
                        ));
                    } else {
                        match decode::decode_payload(&bytes) {
                            Ok(decoded) => source = Some(Source::Payload(decoded.value)),
                            Err(e) => {
                                batch.undecodable += 1;
                                row.decode_error = Some(e.reason);
                            }
                        }
                    }
                }
            }
            _ => pttl = reply::int(&next()),
        }
        let score = if self.zscore { reply::float(&next()) } else { known_score };
        if self.history {
            row.history_len = reply::int(&next()).map(|n| n.max(0) as u64);
        }
        if self.memory_keys > 0 {
            let mut total: Option<u64> = None;
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
            row.memory_bytes = total;
        }

        if pttl == Some(-2) {
            batch.missing.push(id.to_string());
            return;
        }
        row.ttl = Ttl::from_pttl(pttl, now);
        // The index score is exact epoch time; the field may be naive local time.
        let score = score.filter(|s| s.is_finite() && *s > 0.0);
        if let Some(source) = &source {
            row.stage = source.text(&schema.fields.stage).map(|s| interner.get(&s));
            row.substate = source.text(&schema.fields.substate).map(|s| interner.get(&s));
            if options.page {
                row.status = source.text(&schema.fields.status).map(|s| interner.get(&s));
            }
            if score.is_none() {
                row.last_interaction =
                    source.text(&schema.fields.last_interaction).and_then(|t| parse_time(&t, schema.fields.naive_time));
            }
        }
        if let Some(score) = score {
            row.last_interaction = Some((score * 1000.0) as Millis);
        }
        batch.rows.push(row);
    }
}

/// Where a session's fields are read from.
enum Source<'a> {
    /// Hash fields as read by `HMGET` (absent fields are `None`), in the order of `names`.
    Hash { names: &'a [String], values: Vec<Option<Vec<u8>>> },
    /// A decoded payload.
    Payload(Value),
}

impl Source<'_> {
    /// The first of `paths` that holds a non-empty scalar. A plain hash field is read as text
    /// (borrowed, so interning it costs no allocation); a dotted path `a.b` looks up `b` in the
    /// JSON held by field `a`.
    fn text(&self, paths: &[String]) -> Option<Cow<'_, str>> {
        paths.iter().find_map(|path| match self {
            Source::Hash { names, values } => {
                let field = |name: &str| names.iter().position(|n| n == name).and_then(|i| values.get(i)?.as_deref());
                match field(path) {
                    Some(bytes) => Some(String::from_utf8_lossy(bytes)),
                    None => {
                        let (head, rest) = path.split_once('.')?;
                        decode::decode_text(field(head)?).get_path(rest)?.as_scalar_text().map(Cow::Owned)
                    }
                }
                .filter(|s| !s.is_empty())
            }
            Source::Payload(value) => value
                .get(path)
                .or_else(|| value.get_path(path))?
                .as_scalar_text()
                .filter(|s| !s.is_empty())
                .map(Cow::Owned),
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
/// value the rest of the path is looked up in. The last-interaction fields are read only when
/// the index does not score last interaction (its score is exact; the field may be naive);
/// the status fields only for a page read.
fn hash_fields(schema: &Schema, last_interaction: bool, status: bool) -> Vec<String> {
    let f = &schema.fields;
    let mut paths: Vec<&String> = f.stage.iter().chain(&f.substate).collect();
    if status {
        paths.extend(&f.status);
    }
    if last_interaction {
        paths.extend(&f.last_interaction);
    }
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

/// Reads a timestamp as applications write it: epoch seconds (or milliseconds), RFC 3339, or
/// ISO 8601 without an offset (read as local time or UTC, per the layout).
pub fn parse_time(text: &str, naive: NaiveTime) -> Option<Millis> {
    let text = text.trim();
    if let Ok(n) = text.parse::<f64>() {
        if !n.is_finite() || n <= 0.0 {
            return None;
        }
        return Some(if n > 1e11 { n as Millis } else { (n * 1000.0) as Millis });
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    let parsed = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())?;
    match naive {
        NaiveTime::Utc => Some(Utc.from_utc_datetime(&parsed).timestamp_millis()),
        NaiveTime::Local => Local.from_local_datetime(&parsed).earliest().map(|t| t.timestamp_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_shape_applications_write() {
        assert_eq!(parse_time("1715949296", NaiveTime::Utc), Some(1_715_949_296_000));
        assert_eq!(parse_time("1715949296.5", NaiveTime::Utc), Some(1_715_949_296_500));
        assert_eq!(parse_time("1715949296500", NaiveTime::Utc), Some(1_715_949_296_500));
        assert_eq!(parse_time("2024-05-17T12:34:56.789+00:00", NaiveTime::Local), Some(1_715_949_296_789));
        assert_eq!(parse_time("2024-05-17T12:34:56.789000", NaiveTime::Utc), Some(1_715_949_296_789));
        assert_eq!(parse_time("2024-05-17 12:34:56", NaiveTime::Utc), Some(1_715_949_296_000));
        assert_eq!(parse_time("yesterday", NaiveTime::Utc), None);
        assert_eq!(parse_time("-5", NaiveTime::Utc), None);
    }

    #[test]
    fn dotted_stage_paths_read_their_head_field() {
        let schema = crate::schema::Schema::builtin(
            crate::schema::SchemaKind::Trt,
            &crate::schema::Overrides { stage_field: Some("stage_1_completion.phase".into()), ..Default::default() },
        )
        .unwrap();
        let fields = hash_fields(&schema, false, true);
        assert!(fields.contains(&"stage_1_completion".to_string()));
        assert!(fields.contains(&"stage_1_completion.phase".to_string()));
        assert!(!fields.contains(&"last_interaction".to_string()), "the index score is read instead");
        let names = ["stage_1_completion".to_string(), "stage_1_completion.phase".to_string()];
        let source = Source::Hash { names: &names, values: vec![Some(br#"{"phase": "body"}"#.to_vec()), None] };
        assert_eq!(source.text(&schema.fields.stage).as_deref(), Some("body"));
    }
}
