//! One session in full: every key with its type, TTL and memory, the decoded state, meta and
//! payload, and the history newest first. Also finds a session's keys for the writes, so that
//! what `delete` removes is exactly what `inspect` shows.
//!
//! Every read is capped: at most [`MAX_ITEMS`] fields, entries or members per key and
//! `max_value_bytes` of a string, with the cut stated.

use super::census::Budget;
use super::read::{Interner, ReadOptions, read_rows};
use crate::decode::{self, Value};
use crate::link::{Failure, Link, Reply, reply};
use crate::model::{Decodedish, KeyReport, Millis, SessionReport, SessionRow, Ttl};
use crate::schema::{Lifecycle, PartRole, Schema};

/// The most fields, entries or members read from one key.
pub const MAX_ITEMS: usize = 1000;

/// A key that belongs to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub key: String,
    /// `primary`, a part name or a related family name.
    pub role: String,
    pub part: Option<PartRole>,
    pub lifecycle: Lifecycle,
}

/// A session's keys that exist now, and its index score. Related families with a `*` are
/// found by a `SCAN MATCH` over the keyspace (under `budget`), unless `known_related` already
/// lists them.
pub async fn find_keys(
    link: &mut Link,
    schema: &Schema,
    id: &str,
    budget: &mut Budget,
    scan_count: usize,
    known_related: Option<&[SessionKey]>,
) -> Result<(Vec<SessionKey>, Option<f64>), Failure> {
    let mut candidates = vec![SessionKey {
        key: schema.session_key(id),
        role: "primary".into(),
        part: None,
        lifecycle: Lifecycle::Session,
    }];
    for part in &schema.parts {
        candidates.push(SessionKey {
            key: part.template.key(&schema.prefix, id),
            role: part.name.clone(),
            part: Some(part.role),
            lifecycle: Lifecycle::Session,
        });
    }
    for related in schema.related.iter().filter(|r| r.template.is_exact()) {
        candidates.push(SessionKey {
            key: related.template.key(&schema.prefix, id),
            role: related.name.clone(),
            part: None,
            lifecycle: related.lifecycle,
        });
    }
    match known_related {
        Some(known) => candidates.extend(known.iter().cloned()),
        None => candidates.extend(scan_related(link, schema, id, budget, scan_count).await?),
    }
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|c| seen.insert(c.key.clone()));

    let mut pipe = crate::link::pipe();
    for c in &candidates {
        pipe.cmd("EXISTS").arg(&c.key);
    }
    if let Some(index) = &schema.index {
        pipe.cmd("ZSCORE").arg(&index.key).arg(id);
    }
    let replies = link.pipeline(&pipe).await?;
    if let Some(failure) = replies.iter().find_map(|r| r.as_ref().err().filter(|f| f.is_unavailable())) {
        return Err(failure.clone());
    }
    let score = schema.index.as_ref().and_then(|_| replies.last().and_then(reply::float));
    let keys = candidates.into_iter().zip(&replies).filter(|(_, r)| reply::int(r) == Some(1)).map(|(c, _)| c).collect();
    Ok((keys, score))
}

/// Keys of the session's wildcard related families (`{prefix}ratelimit:{id}:*`).
pub async fn scan_related(
    link: &mut Link,
    schema: &Schema,
    id: &str,
    budget: &mut Budget,
    scan_count: usize,
) -> Result<Vec<SessionKey>, Failure> {
    let mut found = Vec::new();
    for related in schema.related.iter().filter(|r| !r.template.is_exact()) {
        let pattern = related.template.scan_pattern(&schema.prefix, Some(id));
        let mut cursor: u64 = 0;
        loop {
            budget.take(1).await;
            let (next, keys): (u64, Vec<Vec<u8>>) = link
                .query(redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(scan_count))
                .await?;
            cursor = next;
            for key in keys {
                let Ok(key) = String::from_utf8(key) else { continue };
                if related.template.matches(&schema.prefix, id, &key)
                    && !found.iter().any(|k: &SessionKey| k.key == key)
                {
                    found.push(SessionKey {
                        key,
                        role: related.name.clone(),
                        part: None,
                        lifecycle: related.lifecycle,
                    });
                }
            }
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(found)
}

/// Reads everything about one session. `keys` and `score` come from [`find_keys`].
pub async fn inspect(
    link: &mut Link,
    schema: &Schema,
    id: &str,
    keys: &[SessionKey],
    score: Option<f64>,
    max_value_bytes: u64,
    now: Millis,
) -> Result<SessionReport, Failure> {
    let mut unavailable: Vec<String> = Vec::new();

    // Round trip 1: what each key is.
    let mut pipe = crate::link::pipe();
    for k in keys {
        pipe.cmd("TYPE").arg(&k.key).cmd("PTTL").arg(&k.key).cmd("MEMORY").arg("USAGE").arg(&k.key);
    }
    let replies = link.pipeline(&pipe).await?;
    let mut reports: Vec<(KeyReport, Option<PartRole>)> = Vec::new();
    for (k, r) in keys.iter().zip(replies.chunks(3)) {
        let redis_type = r.first().and_then(|t| reply::string(t.clone())).unwrap_or_else(|| "unknown".into());
        if redis_type == "none" {
            continue; // expired between the two reads
        }
        let memory = r.get(2).and_then(|m| {
            if let Err(f) = m
                && f.is_unavailable()
                && !unavailable.contains(&f.to_string())
            {
                unavailable.push(f.to_string());
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
        };
        reports.push((report, k.part));
    }

    // Round trip 2: each key's length and (capped) contents, by type.
    let mut pipe = crate::link::pipe();
    for (r, _) in &reports {
        let key = &r.key;
        match r.redis_type.as_str() {
            "string" => {
                pipe.cmd("STRLEN").arg(key).cmd("GETRANGE").arg(key).arg(0).arg(max_value_bytes.saturating_sub(1))
            }
            "hash" => pipe.cmd("HLEN").arg(key).cmd("HSCAN").arg(key).arg(0).arg("COUNT").arg(MAX_ITEMS),
            "list" => pipe.cmd("LLEN").arg(key).cmd("LRANGE").arg(key).arg(0).arg(MAX_ITEMS - 1),
            "set" => pipe.cmd("SCARD").arg(key).cmd("SSCAN").arg(key).arg(0).arg("COUNT").arg(MAX_ITEMS),
            "zset" => pipe.cmd("ZCARD").arg(key).cmd("ZRANGE").arg(key).arg(0).arg(MAX_ITEMS - 1).arg("WITHSCORES"),
            _ => pipe.cmd("EXISTS").arg(key).cmd("EXISTS").arg(key),
        };
    }
    let replies = link.pipeline(&pipe).await?;
    let mut history = Vec::new();
    let mut history_raw = Vec::new();
    let mut history_total = 0;
    for ((report, part), pair) in reports.iter_mut().zip(replies.chunks(2)) {
        let (Some(len), Some(content)) = (pair.first(), pair.get(1)) else { continue };
        report.length = reply::int(len).map(|n| n.max(0) as u64);
        let length = report.length.unwrap_or(0);
        if *part == Some(PartRole::History) {
            let entries: Vec<Vec<u8>> =
                reply::byte_list(content.clone()).unwrap_or_default().into_iter().flatten().collect();
            report.truncated = (entries.len() as u64) < length;
            history = entries.iter().map(|e| decode::decode_text(e)).collect();
            history_raw = entries;
            history_total = length;
            continue;
        }
        let read = read_content(&report.redis_type, report.role == "primary", content, length, max_value_bytes);
        report.content = read.content;
        report.truncated = read.truncated;
        report.raw = read.raw;
    }

    let batch = read_rows(
        link,
        schema,
        &[id.to_string()],
        None,
        ReadOptions { page: true, max_value_bytes },
        &mut Interner::default(),
        now,
    )
    .await?;
    for u in batch.unavailable {
        if !unavailable.contains(&u) {
            unavailable.push(u);
        }
    }
    let mut row = batch.rows.into_iter().next().unwrap_or_else(|| SessionRow::new(id));
    if row.last_interaction.is_none() {
        row.last_interaction = score.filter(|s| s.is_finite() && *s > 0.0).map(|s| (s * 1000.0) as Millis);
    }
    Ok(SessionReport {
        id: id.to_string(),
        row,
        keys: reports.into_iter().map(|(r, _)| r).collect(),
        index_score: score,
        history,
        history_raw,
        history_total,
        observed_at: now,
        unavailable,
    })
}

/// A key's contents, decoded and as stored.
struct Read {
    content: Option<Decodedish>,
    truncated: bool,
    raw: Vec<(Option<String>, Vec<u8>)>,
}

/// Decodes a key's contents by type. A primary string is a session payload; other strings and
/// hash fields are text that may hold JSON.
fn read_content(redis_type: &str, is_primary: bool, content: &Reply, length: u64, max_value_bytes: u64) -> Read {
    match redis_type {
        "string" => {
            let bytes = reply::bytes(content.clone()).unwrap_or_default();
            let raw = vec![(None, bytes.clone())];
            if length > bytes.len() as u64 {
                let reason = format!(
                    "{} exceeds the read cap of {}; showing the first {} bytes undecoded",
                    crate::text::human_bytes(length),
                    crate::text::human_bytes(max_value_bytes),
                    bytes.len()
                );
                let content = Some(Decodedish::Undecodable { reason, raw: bytes, total_len: length });
                return Read { content, truncated: true, raw };
            }
            let content = if is_primary {
                match decode::decode_payload(&bytes) {
                    Ok(d) => Decodedish::Value { format: Some(d.format), value: d.value },
                    Err(e) => Decodedish::Undecodable { reason: e.reason, raw: bytes, total_len: length },
                }
            } else {
                Decodedish::Value { format: None, value: decode::decode_text(&bytes) }
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
                    let raw = pairs.iter().map(|(k, v)| (Some(crate::text::escape_bytes(k)), (*v).clone())).collect();
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
