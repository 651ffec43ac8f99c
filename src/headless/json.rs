//! `--json` output: the snapshot and the inspect report as JSON values (the README lists every
//! field). Unknown values are `null`, never invented; ids and keys are in their escaped form.

use serde_json::{Value as J, json};

use crate::decode::Value;
use crate::engine::domain::{Decodedish, SessionReport, SessionRow, Ttl};
use crate::engine::layout::Layout;
use crate::engine::model::Model;
use crate::headless::SnapshotData;
use crate::setup::Setup;
use crate::util::text;

pub fn rfc3339(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

fn rfc3339_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A cluster's nodes, or `null` for one server.
fn topology(view: Option<&crate::engine::domain::NodesView>) -> J {
    let Some(view) = view else { return J::Null };
    json!({
        "kind": view.kind,
        "epoch": view.epoch,
        "uncovered_slots": crate::conn::slot::ranges_text(&view.uncovered),
        "reads": view.reads,
        "nodes": view.nodes.iter().map(|n| {
            let s = n.stats.as_deref();
            json!({
                "address": n.address,
                "id": n.id,
                "role": if n.primary { "primary" } else { "replica" },
                "replica_of": n.replica_of,
                "health": n.health,
                "slots": crate::conn::slot::ranges_text(&n.slots),
                "slot_count": n.slot_count(),
                "error": n.error,
                "db_keys": s.and_then(|s| s.db_keys),
                "used_memory_bytes": s.and_then(|s| s.used_memory_bytes),
                "maxmemory_bytes": s.and_then(|s| s.maxmemory_bytes),
                "connected_clients": s.and_then(|s| s.connected_clients),
                "ops_per_sec": s.and_then(|s| s.ops_per_sec),
                "lag_bytes": n.lag_bytes,
                "commands_sent": n.commands_sent,
                "redis_cpu_share": n.own_share,
            })
        }).collect::<Vec<_>>(),
    })
}

/// TTL in seconds as Redis counts it: -1 for no TTL, `null` when unknown.
fn ttl_json(ttl: Ttl, now: i64) -> J {
    match ttl {
        Ttl::Persistent => json!(-1),
        Ttl::Unknown => J::Null,
        Ttl::ExpiresAt(_) => json!(ttl.seconds_left(now)),
    }
}

fn row_json(model: &Model, row: &SessionRow) -> J {
    json!({
        "id": row.id,
        "stage": row.stage.as_deref(),
        "substate": row.substate.as_deref(),
        "status": row.status.as_deref(),
        "last_interaction": row.last_interaction.and_then(rfc3339),
        "idle_seconds": model.idle_seconds(row),
        "ttl_seconds": ttl_json(row.ttl, model.now),
        "history_len": row.history_len,
        "memory_bytes": row.memory_bytes,
        "stalled": model.is_stalled(row),
        "decode_error": row.decode_error,
    })
}

/// The snapshot as JSON (the README lists every field).
pub fn snapshot(data: &SnapshotData, setup: &Setup) -> J {
    let m = &data.model;
    let s = m.server.clone().unwrap_or_default();
    let totals = m.census.totals();
    let counted = data.census_duration_ms.is_some();
    // Counts only a census gives are `null` without one (`--no-census`).
    let count = |n: J| if counted { n } else { J::Null };
    let layout = data.layout.as_ref().map(|layout| {
        json!({
            "kind": layout.kind.name(),
            "name": layout.name,
            "prefix": layout.prefix,
            "index": layout.index.as_ref().map(|i| i.key.clone()),
            "detection": data.detection,
        })
    });
    let sessions = data.layout.as_ref().map(|_| {
        json!({
            "total": count(json!(totals.total)),
            "by_stage": count(json!(totals.by_stage)),
            "by_substate": count(json!(totals.by_substate)),
            "no_stage": count(json!(totals.no_stage)),
            "no_ttl": count(json!(totals.no_ttl)),
            "orphaned": count(json!(totals.orphaned)),
            "undecodable": count(json!(totals.undecodable)),
            "oversized": count(json!(totals.oversized)),
            "vanished": count(json!(totals.vanished)),
            "stalled": data.stalled,
            "stalled_after_seconds": m.settings.stalled_after_s,
            "lifetime_seconds": m.lifetime_s(),
            "lifetime_source": m.lifetime().map(|(_, source)| source.describe()),
            "by_marker": count(json!(totals.by_marker)),
            "orphan_ids": count(json!(m.census.orphan_ids)),
            "unavailable": m.session_unavailable,
            "items": data.items.iter().map(|r| row_json(m, r)).collect::<Vec<_>>(),
        })
    });
    let census = data.census_duration_ms.map(|_| {
        json!({
            "examined": totals.examined,
            "uncovered_slots": crate::conn::slot::ranges_text(&totals.uncovered_slots),
            "duration_ms": data.census_duration_ms,
            "scan_count": setup.collect.census.scan_count,
            "budget": data.budget,
            "flow": totals.flow.as_ref().map(flow_json),
        })
    });
    json!({
        "sessiontop_version": env!("CARGO_PKG_VERSION"),
        "taken_at": rfc3339_ms(m.now),
        "target": {
            "url": m.target.url,
            "name": m.target.name,
            "db": setup.first().target.db(),
            "read_only": m.target.read_only,
        },
        "layout": layout,
        "detection": data.detection,
        "server": {
            "redis_version": s.redis_version,
            "redis_mode": s.redis_mode,
            "role": s.role,
            "uptime_seconds": s.uptime_seconds,
            "used_memory_bytes": s.used_memory_bytes,
            "used_memory_peak_bytes": s.used_memory_peak_bytes,
            "used_memory_rss_bytes": s.used_memory_rss_bytes,
            "maxmemory_bytes": s.maxmemory_bytes,
            "maxmemory_policy": s.maxmemory_policy,
            "mem_fragmentation_ratio": s.mem_fragmentation_ratio,
            "connected_clients": s.connected_clients,
            "blocked_clients": s.blocked_clients,
            "ops_per_sec": s.ops_per_sec,
            "keyspace_hits": s.keyspace_hits,
            "keyspace_misses": s.keyspace_misses,
            "hit_rate": s.hit_rate(),
            "evicted_keys": s.evicted_keys,
            "expired_keys": s.expired_keys,
            "db_keys": s.db_keys,
            "run_id": s.run_id,
            "keyspace": s.keyspace.iter().map(|k| json!({
                "db": k.db, "keys": k.keys, "expires": k.expires, "avg_ttl_ms": k.avg_ttl_ms,
            })).collect::<Vec<_>>(),
            "unavailable": m.server_unavailable,
        },
        "topology": topology(m.nodes.as_ref()),
        "clients": m.clients.as_ref().map(clients_json),
        "sessions": sessions,
        "census": census,
        "own_load": {
            "commands_sent": data.commands_sent,
            "redis_cpu_share": data.redis_cpu_share,
            "budget": data.budget,
        },
        "findings": findings(&data.model.findings),
    })
}

/// Who is connected, by source host.
fn clients_json(c: &crate::engine::domain::ClientsView) -> J {
    let counts = |v: &[(String, u64)]| v.iter().map(|(k, n)| json!({"name": k, "count": n})).collect::<Vec<_>>();
    json!({
        "listed_at": rfc3339_ms(c.at),
        "total": c.total,
        "own": c.own,
        "unavailable": c.unavailable,
        "hosts": c.hosts.iter().map(|h| json!({
            "host": h.host,
            "connections": h.connections,
            "names": counts(&h.names),
            "idle_seconds": {"min": h.idle_s.0, "max": h.idle_s.1},
            "commands": counts(&h.commands),
        })).collect::<Vec<_>>(),
    })
}

/// How sessions arrived and moved through their stages, as watched.
fn flow_json(f: &crate::engine::domain::FlowSummary) -> J {
    let a = &f.arrivals;
    json!({
        "watched_seconds": (f.at - f.since) / 1000,
        "baseline": f.baseline.map(rfc3339_ms),
        "new_sessions": {
            "window_seconds": f.arrivals_window_ms / 1000,
            "watched_seconds": a.span_ms / 1000,
            "created": a.born,
            "judged": a.judged,
            "never_used_again": a.unused,
            "before": {
                "watched_seconds": a.before_span_ms / 1000,
                "created": a.before_born,
                "never_used_again": a.before_unused,
            },
        },
        "stages_window_seconds": f.stages_window_ms / 1000,
        "stages": f.stages.iter().map(|s| json!({
            "stage": s.stage,
            "entered": s.entered,
            "left": s.left,
            "before": {
                "entered": s.before_entered,
                "left": s.before_left,
                "left_within_seconds": s.before_dwell_ms.map(|d| d / 1000),
            },
        })).collect::<Vec<_>>(),
    })
}

fn content_json(content: &Option<Decodedish>) -> (J, J, J) {
    match content {
        Some(Decodedish::Value { format, value }) => (value.to_json(), json!(format.map(|f| f.name())), J::Null),
        Some(Decodedish::Undecodable { reason, raw, total_len }) => (
            json!({ "raw": text::escape_bytes(raw), "raw_bytes": raw.len(), "total_bytes": total_len }),
            J::Null,
            json!(reason),
        ),
        None => (J::Null, J::Null, J::Null),
    }
}

/// The inspect report as JSON.
pub fn inspect(report: &SessionReport, model: &Model, layout: &Layout) -> J {
    let primary = report.keys.iter().find(|k| k.role == "primary");
    let (state, format, decode_error) = content_json(&primary.and_then(|k| k.content.clone()));
    let parts: serde_json::Map<String, J> = report
        .keys
        .iter()
        .filter(|k| k.role != "primary" && k.content.is_some())
        .map(|k| (k.key.escaped(), content_json(&k.content).0))
        .collect();
    json!({
        "id": report.id,
        "layout": { "kind": layout.kind.name(), "prefix": layout.prefix },
        "orphaned": report.is_orphan(),
        "index_score": report.index_score,
        "session": row_json(model, &report.row),
        "keys": report.keys.iter().map(|k| json!({
            "key": k.key,
            "role": k.role,
            "type": k.redis_type,
            "ttl_seconds": ttl_json(k.ttl, report.observed_at),
            "memory_bytes": k.memory_bytes,
            "node": k.node.as_ref().map(|(address, _)| address),
            "slot": k.node.as_ref().map(|(_, slot)| slot),
            "length": k.length,
            "truncated": k.truncated,
        })).collect::<Vec<_>>(),
        "state": state,
        "payload_format": format,
        "decode_error": decode_error,
        "parts": parts,
        "history_total": report.history_total,
        "history": report.history.iter().map(Value::to_json).collect::<Vec<_>>(),
        "unavailable": report.unavailable,
    })
}

/// Findings as JSON: `[{kind, severity, count, summary, by_stage, sample: [{id, key, detail}]}]`.
pub fn findings(findings: &[crate::engine::domain::Finding]) -> J {
    J::Array(
        findings
            .iter()
            .map(|f| {
                json!({
                    "kind": f.kind.name(),
                    "severity": f.severity.word(),
                    "count": f.count,
                    "summary": f.summary,
                    "by_stage": f.by_stage.iter().map(|(stage, n)| json!({"stage": stage, "count": n})).collect::<Vec<_>>(),
                    "sample": f.sample.iter().map(|s| json!({"id": s.id, "key": s.key, "detail": s.detail})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// `check --json`: the verdict, its exit code, the sessions counted and every finding.
pub fn check(verdict: &crate::headless::Verdict, data: &SnapshotData, setup: &Setup) -> J {
    json!({
        "sessiontop_version": env!("CARGO_PKG_VERSION"),
        "taken_at": rfc3339_ms(data.model.now),
        "target": {"url": data.model.target.url, "name": data.model.target.name, "db": setup.first().target.db()},
        "status": verdict.status(),
        "exit_code": verdict.exit_code(),
        "sessions": data.layout.as_ref().map(|_| data.model.census.totals().total),
        "unjudged": verdict.unjudged,
        "observed_seconds": verdict.observed_s,
        "flow": data.model.census.totals().flow.as_ref().map(flow_json),
        "findings": findings(&data.model.findings),
    })
}
