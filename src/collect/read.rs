//! Reading sessions' rows: one pipelined round trip for a whole batch of ids, the same for the
//! census, the visible page and the inspector, so that every view agrees on what a field means.

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
    /// Also read `MEMORY USAGE` of every key of the session (the visible page only).
    pub memory: bool,
    /// The most bytes of a payload to read.
    pub max_value_bytes: u64,
}

/// Reads the rows of `ids` in one pipeline. `scores` are index scores already known (from a
/// `ZSCAN`); when absent and the index scores last interaction, `ZSCORE` is read too.
pub async fn read_rows(
    link: &mut Link,
    schema: &Schema,
    ids: &[String],
    scores: Option<&[Option<f64>]>,
    options: ReadOptions,
    interner: &mut Interner,
    now: Millis,
) -> Result<Batch, Failure> {
    let plan = Plan::new(schema, options, scores.is_none());
    let mut pipe = redis::pipe();
    for id in ids {
        plan.add(&mut pipe, schema, id, options);
    }
    let replies = link.pipeline(&pipe).await?;
    // A denied read of the session's own keys makes every row meaningless; only MEMORY USAGE
    // (the one optional read) may be denied.
    if let Some(failure) = replies.iter().find_map(|r| match r {
        Err(f @ Failure::Denied { command, .. }) if command != "MEMORY USAGE" => Some(f.clone()),
        _ => None,
    }) {
        return Err(failure);
    }
    let mut replies = replies.into_iter();
    let mut batch = Batch::default();
    for (i, id) in ids.iter().enumerate() {
        let own: Vec<Reply> = replies.by_ref().take(plan.per_session).collect();
        let known_score = scores.and_then(|s| s.get(i).copied().flatten());
        plan.parse(schema, id, own, known_score, options, interner, now, &mut batch);
    }
    Ok(batch)
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
        let fields = hash_fields(schema);
        let zscore = need_score && schema.index.as_ref().is_some_and(|i| i.score == ScoreMeaning::LastInteraction);
        let history = schema.history().is_some();
        let memory_keys = if options.memory { 1 + schema.parts.len() } else { 0 };
        let primary = match schema.session_type {
            KeyType::Hash if !fields.is_empty() => 2, // HMGET, PTTL
            KeyType::String => 3,                     // PTTL, STRLEN, GETRANGE
            _ => 1,                                   // PTTL
        };
        let per_session = primary + usize::from(zscore) + usize::from(history) + memory_keys;
        Plan { fields, zscore, history, memory_keys, per_session }
    }

    fn add(&self, pipe: &mut redis::Pipeline, schema: &Schema, id: &str, options: ReadOptions) {
        let key = schema.session_key(id);
        match schema.session_type {
            KeyType::Hash if !self.fields.is_empty() => {
                pipe.cmd("HMGET").arg(&key).arg(&self.fields);
                pipe.cmd("PTTL").arg(&key);
            }
            KeyType::String => {
                pipe.cmd("PTTL").arg(&key);
                pipe.cmd("STRLEN").arg(&key);
                pipe.cmd("GETRANGE").arg(&key).arg(0).arg(options.max_value_bytes.saturating_sub(1));
            }
            _ => {
                pipe.cmd("PTTL").arg(&key);
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
            pipe.cmd("MEMORY").arg("USAGE").arg(&key);
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
        replies: Vec<Reply>,
        known_score: Option<f64>,
        options: ReadOptions,
        interner: &mut Interner,
        now: Millis,
        batch: &mut Batch,
    ) {
        let mut replies = replies.into_iter();
        let mut next = || replies.next().unwrap_or(Err(Failure::Protocol("pipeline".into())));
        let mut row = SessionRow::new(id);
        let mut source: Option<Value> = None;
        let pttl;
        match schema.session_type {
            KeyType::Hash if !self.fields.is_empty() => {
                let values = reply::byte_list(next()).unwrap_or_default();
                pttl = reply::int(&next());
                let map = self
                    .fields
                    .iter()
                    .zip(values)
                    .filter_map(|(f, v)| Some((Value::Str(f.clone()), decode::decode_text(&v?))))
                    .collect();
                source = Some(Value::Map(map));
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
                            Ok(decoded) => source = Some(decoded.value),
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
                match &r {
                    Err(f) if f.is_unavailable() => note_unavailable(&mut batch.unavailable, f),
                    _ => {}
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
        if let Some(source) = &source {
            let field = |paths: &[String]| first_text(source, paths);
            row.stage = field(&schema.fields.stage).map(|s| interner.get(&s));
            row.substate = field(&schema.fields.substate).map(|s| interner.get(&s));
            row.status = field(&schema.fields.status).map(|s| interner.get(&s));
            row.last_interaction =
                field(&schema.fields.last_interaction).and_then(|t| parse_time(&t, schema.fields.naive_time));
        }
        // The index score is exact epoch time; the field may be naive local time.
        if let Some(score) = score.filter(|s| s.is_finite() && *s > 0.0) {
            row.last_interaction = Some((score * 1000.0) as Millis);
        }
        batch.rows.push(row);
    }
}

fn note_unavailable(list: &mut Vec<String>, failure: &Failure) {
    let text = failure.to_string();
    if !list.contains(&text) {
        list.push(text);
    }
}

/// Hash fields to `HMGET`: each path, and the head of a dotted path (`a` for `a.b`), whose JSON
/// value the rest of the path is looked up in.
fn hash_fields(schema: &Schema) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in schema.fields.all() {
        for candidate in [Some(path), path.split_once('.').map(|(head, _)| head)].into_iter().flatten() {
            if !out.iter().any(|f| f == candidate) {
                out.push(candidate.to_string());
            }
        }
    }
    out
}

/// The first of `paths` that holds a non-empty scalar in `source`.
fn first_text(source: &Value, paths: &[String]) -> Option<String> {
    paths.iter().find_map(|path| {
        let value = source.get(path).or_else(|| source.get_path(path))?;
        value.as_scalar_text().filter(|s| !s.is_empty())
    })
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
        let fields = hash_fields(&schema);
        assert!(fields.contains(&"stage_1_completion".to_string()));
        assert!(fields.contains(&"stage_1_completion.phase".to_string()));
        let source = Value::Map(vec![(
            Value::Str("stage_1_completion".into()),
            decode::decode_text(br#"{"phase": "body"}"#),
        )]);
        assert_eq!(first_text(&source, &schema.fields.stage).as_deref(), Some("body"));
    }
}
