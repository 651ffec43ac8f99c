//! The dashboard's figures for Prometheus (`--metrics-listen ADDR:PORT`), in its text format
//! (version 0.0.4) at `/metrics`, so that a team that watches Redis with Grafana sees the
//! sessions beside it.
//!
//! The page is rendered from the model by the dashboard's loop (a pure function,
//! [`exposition`]) and served as it was last rendered: a scrape never waits for Redis or for
//! the screen. The HTTP side is a few lines of our own rather than a web framework: one
//! read-only endpoint, a request head capped at [`MAX_REQUEST_BYTES`] and read within
//! [`REQUEST_TIMEOUT`], one response, the connection closed.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::engine::domain::{FindingKind, LinkState};
use crate::engine::model::Model;

/// The most bytes of a request head read before it is refused.
pub const MAX_REQUEST_BYTES: usize = 8192;
/// How long a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The page a scrape gets, as last rendered.
#[derive(Debug, Clone, Default)]
pub struct Page(Arc<RwLock<String>>);

impl Page {
    pub fn set(&self, text: String) {
        if let Ok(mut page) = self.0.write() {
            *page = text;
        }
    }

    fn get(&self) -> String {
        self.0.read().map(|p| p.clone()).unwrap_or_default()
    }
}

/// Why `--metrics-listen` names no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not PORT or ADDR:PORT (127.0.0.1:9187, [::1]:9187)")]
pub struct ListenError(String);

/// `--metrics-listen`: `PORT` (on loopback) or `ADDR:PORT`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, ListenError> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse::<SocketAddr>().map_err(|_| ListenError(text.to_string()))
}

/// Binds the metrics address (before the terminal is taken, so a busy port is said plainly).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `page` until the listener's task is dropped.
pub async fn serve(listener: TcpListener, page: Page) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let page = page.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &page)).await;
        });
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, page: &Page) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST_BYTES {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
                true,
            )
            .await;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let body_too = method != "HEAD";
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let text = page.get();
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &text, body_too).await
        }
        ("GET" | "HEAD", "/") => {
            respond(&mut stream, "200 OK", "text/plain; charset=utf-8", "sessiontop: metrics at /metrics\n", body_too)
                .await
        }
        ("GET" | "HEAD", _) => respond(&mut stream, "404 Not Found", "text/plain", "not found\n", body_too).await,
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "GET only\n", true).await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str, with_body: bool) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// A label value as the text format writes it: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The metric names, their type and help, in the order the page lists them.
pub const METRICS: [(&str, &str, &str); 39] = [
    ("sessiontop_up", "gauge", "1 while sessiontop is connected to the target"),
    ("sessiontop_live_sessions", "gauge", "live sessions counted by the last census pass"),
    (
        "sessiontop_live_sessions_now",
        "gauge",
        "live sessions now: the last pass's count with the sessions session events said were created or ended since",
    ),
    ("sessiontop_sessions", "gauge", "live sessions by stage (or substate), last census pass"),
    ("sessiontop_stalled_sessions", "gauge", "sessions idle past their stage's threshold short of a final stage"),
    ("sessiontop_stuck_sessions", "gauge", "sessions whose users keep trying while their workflow does not advance"),
    ("sessiontop_orphaned_index_entries", "gauge", "index entries whose session keys are gone"),
    ("sessiontop_findings", "gauge", "what a finding counts, by kind and severity"),
    ("sessiontop_census_duration_seconds", "gauge", "how long the last census pass took"),
    ("sessiontop_census_completed_timestamp_seconds", "gauge", "when the last census pass ended"),
    (
        "sessiontop_census_sessions_read",
        "gauge",
        "sessions the last census pass read, by how: whole, or settled and light where keyspace events proved them unwritten",
    ),
    ("sessiontop_redis_used_memory_bytes", "gauge", "INFO used_memory"),
    ("sessiontop_redis_maxmemory_bytes", "gauge", "INFO maxmemory (0: no limit)"),
    ("sessiontop_redis_rss_bytes", "gauge", "INFO used_memory_rss"),
    ("sessiontop_redis_fragmentation_ratio", "gauge", "INFO mem_fragmentation_ratio"),
    ("sessiontop_redis_connected_clients", "gauge", "INFO connected_clients"),
    ("sessiontop_redis_blocked_clients", "gauge", "INFO blocked_clients"),
    ("sessiontop_redis_ops_per_second", "gauge", "INFO instantaneous_ops_per_sec"),
    ("sessiontop_redis_hit_ratio", "gauge", "keyspace hits over hits and misses since start"),
    ("sessiontop_redis_evicted_keys_total", "counter", "INFO evicted_keys"),
    ("sessiontop_redis_expired_keys_total", "counter", "INFO expired_keys"),
    ("sessiontop_redis_keys", "gauge", "DBSIZE of the watched database"),
    ("sessiontop_redis_uptime_seconds", "gauge", "INFO uptime_in_seconds"),
    ("sessiontop_own_commands_per_second", "gauge", "commands sessiontop sends the target"),
    ("sessiontop_own_redis_cpu_share", "gauge", "share of one Redis core sessiontop's commands cost"),
    ("sessiontop_host_cpu_share", "gauge", "CPU use of the host sessiontop runs on, of all its CPUs"),
    ("sessiontop_host_memory_used_bytes", "gauge", "memory in use on the host sessiontop runs on"),
    ("sessiontop_watched_processes", "gauge", "processes a --watch-process pattern matches"),
    ("sessiontop_watched_processes_rss_bytes", "gauge", "resident memory of the processes a pattern matches"),
    ("sessiontop_node_up", "gauge", "1 while a cluster's or a sentinel's node answers sessiontop, by node and role"),
    ("sessiontop_node_slots", "gauge", "hash slots a cluster's primary serves"),
    ("sessiontop_node_keys", "gauge", "DBSIZE of the node"),
    ("sessiontop_node_used_memory_bytes", "gauge", "INFO used_memory of the node"),
    ("sessiontop_node_maxmemory_bytes", "gauge", "INFO maxmemory of the node (0: no limit)"),
    ("sessiontop_node_connected_clients", "gauge", "INFO connected_clients of the node"),
    ("sessiontop_node_ops_per_second", "gauge", "INFO instantaneous_ops_per_sec of the node"),
    ("sessiontop_node_replication_lag_bytes", "gauge", "how far a replica is behind its primary"),
    ("sessiontop_node_own_redis_cpu_share", "gauge", "share of the node's core sessiontop's commands cost"),
    ("sessiontop_cluster_uncovered_slots", "gauge", "hash slots no primary serves"),
];

/// The page for the targets watched (each model with its target's name), from what the models
/// hold: one family a metric, a sample a target. Figures not known are left out.
pub fn exposition(targets: &[(&Model, &str)]) -> String {
    let mut values: Vec<(&str, String, f64)> = Vec::new();
    for (model, target) in targets {
        samples(model, &label(target), &mut values);
    }
    let mut out = String::with_capacity(4096);
    for (name, kind, help) in METRICS {
        let mut lines = values.iter().filter(|(n, _, _)| *n == name).peekable();
        if lines.peek().is_none() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (_, labels, v) in lines {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
    out
}

/// One target's samples: (metric, its labels, value).
fn samples(model: &Model, t: &str, values: &mut Vec<(&'static str, String, f64)>) {
    let mut one = |name: &'static str, extra: String, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            values.push((name, format!("target=\"{t}\"{extra}"), v));
        }
    };
    let connected = matches!(model.link, LinkState::Connected { .. });
    one("sessiontop_up", String::new(), Some(if connected { 1.0 } else { 0.0 }));
    if let Some(c) = model.census.complete.as_ref() {
        one("sessiontop_live_sessions", String::new(), Some(c.total as f64));
        if matches!(model.events_state, crate::engine::domain::EventsState::On { .. }) {
            one("sessiontop_live_sessions_now", String::new(), model.live_now().map(|n| n as f64));
        }
        let by = if c.by_substate.is_empty() { &c.by_stage } else { &c.by_substate };
        for (stage, n) in by {
            one("sessiontop_sessions", format!(",stage=\"{}\"", label(stage)), Some(*n as f64));
        }
        one("sessiontop_stuck_sessions", String::new(), Some(c.evidence.count(FindingKind::Stuck) as f64));
        one("sessiontop_orphaned_index_entries", String::new(), Some(c.orphaned as f64));
    }
    if let Some((_, by)) = model.stalled.as_ref() {
        for (stage, n) in by {
            one("sessiontop_stalled_sessions", format!(",stage=\"{}\"", label(stage)), Some(*n as f64));
        }
    }
    for f in &model.findings {
        let extra = format!(",kind=\"{}\",severity=\"{}\"", f.kind.name(), f.severity.word());
        one("sessiontop_findings", extra, Some(f.count as f64));
    }
    one(
        "sessiontop_census_duration_seconds",
        String::new(),
        model.census.last_duration_ms.map(|ms| ms as f64 / 1000.0),
    );
    one(
        "sessiontop_census_completed_timestamp_seconds",
        String::new(),
        model.census.completed_at.map(|ms| ms as f64 / 1000.0),
    );
    if let Some(c) = model.census.complete.as_ref() {
        let whole = c.examined.saturating_sub(c.read_settled + c.read_light);
        for (how, n) in [("whole", whole), ("settled", c.read_settled), ("light", c.read_light)] {
            one("sessiontop_census_sessions_read", format!(",how=\"{how}\""), Some(n as f64));
        }
    }
    if let Some(s) = model.server.as_ref() {
        let n = |v: Option<u64>| v.map(|v| v as f64);
        one("sessiontop_redis_used_memory_bytes", String::new(), n(s.used_memory_bytes));
        one("sessiontop_redis_maxmemory_bytes", String::new(), n(s.maxmemory_bytes));
        one("sessiontop_redis_rss_bytes", String::new(), n(s.used_memory_rss_bytes));
        one("sessiontop_redis_fragmentation_ratio", String::new(), s.mem_fragmentation_ratio);
        one("sessiontop_redis_connected_clients", String::new(), n(s.connected_clients));
        one("sessiontop_redis_blocked_clients", String::new(), n(s.blocked_clients));
        one("sessiontop_redis_ops_per_second", String::new(), n(s.ops_per_sec));
        one("sessiontop_redis_hit_ratio", String::new(), s.hit_rate());
        one("sessiontop_redis_evicted_keys_total", String::new(), n(s.evicted_keys));
        one("sessiontop_redis_expired_keys_total", String::new(), n(s.expired_keys));
        one("sessiontop_redis_keys", String::new(), n(s.db_keys));
        one("sessiontop_redis_uptime_seconds", String::new(), n(s.uptime_seconds));
    }
    if let Some(view) = model.nodes.as_ref() {
        node_samples(view, &mut one);
    }
    one("sessiontop_own_commands_per_second", String::new(), model.own.commands_per_sec);
    one("sessiontop_own_redis_cpu_share", String::new(), model.own.redis_share);
    if let Some(h) = model.host.as_ref() {
        one("sessiontop_host_cpu_share", String::new(), Some(f64::from(h.cpu_percent) / 100.0));
        one("sessiontop_host_memory_used_bytes", String::new(), Some(h.memory_used_bytes as f64));
        for p in &h.processes {
            let extra = format!(",pattern=\"{}\"", label(&p.pattern));
            one("sessiontop_watched_processes", extra.clone(), Some(p.count as f64));
            one("sessiontop_watched_processes_rss_bytes", extra, Some(p.rss_bytes as f64));
        }
    }
}

/// A cluster's or a sentinel's nodes, a sample each with `node` and `role` labels (families of
/// their own, so that a sum over a target's samples never counts a figure twice).
fn node_samples(view: &crate::engine::domain::NodesView, one: &mut impl FnMut(&'static str, String, Option<f64>)) {
    let uncovered: u32 = view.uncovered.iter().map(|(a, b)| u32::from(*b) - u32::from(*a) + 1).sum();
    if view.kind == "cluster" {
        one("sessiontop_cluster_uncovered_slots", String::new(), Some(f64::from(uncovered)));
    }
    for n in &view.nodes {
        let extra =
            format!(",node=\"{}\",role=\"{}\"", label(&n.address), if n.primary { "primary" } else { "replica" });
        let s = n.stats.as_deref();
        let v = |x: Option<u64>| x.map(|x| x as f64);
        one("sessiontop_node_up", extra.clone(), Some(if s.is_some() { 1.0 } else { 0.0 }));
        if n.primary && view.kind == "cluster" {
            one("sessiontop_node_slots", extra.clone(), Some(f64::from(n.slot_count())));
        }
        one("sessiontop_node_keys", extra.clone(), v(s.and_then(|s| s.db_keys)));
        one("sessiontop_node_used_memory_bytes", extra.clone(), v(s.and_then(|s| s.used_memory_bytes)));
        one("sessiontop_node_maxmemory_bytes", extra.clone(), v(s.and_then(|s| s.maxmemory_bytes)));
        one("sessiontop_node_connected_clients", extra.clone(), v(s.and_then(|s| s.connected_clients)));
        one("sessiontop_node_ops_per_second", extra.clone(), v(s.and_then(|s| s.ops_per_sec)));
        one("sessiontop_node_replication_lag_bytes", extra.clone(), v(n.lag_bytes));
        one("sessiontop_node_own_redis_cpu_share", extra, n.own_share);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_default_to_loopback() {
        assert_eq!(parse_listen("9187").unwrap(), "127.0.0.1:9187".parse().unwrap());
        assert_eq!(parse_listen("0.0.0.0:9187").unwrap(), "0.0.0.0:9187".parse().unwrap());
        assert_eq!(parse_listen("[::1]:9187").unwrap(), "[::1]:9187".parse().unwrap());
        assert!(parse_listen("localhost:x").is_err());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_page_has_help_and_type_for_each_metric_it_lists() {
        let target = crate::engine::domain::TargetInfo { url: "redis://x".into(), name: None, read_only: false };
        let mut m = Model::new(target, crate::engine::model::ModelSettings::default(), 1_000);
        m.apply(crate::engine::msg::Update::Link(LinkState::Connected { since: 0 }));
        let stats = crate::conn::info::ServerStats::from_info("used_memory:1024\r\nmaxmemory:0\r\nevicted_keys:3\r\n");
        m.apply(crate::engine::msg::Update::Server { stats: Box::new(stats), unavailable: vec![] });
        let mut tally = crate::engine::domain::CensusTally {
            total: 5,
            examined: 6,
            read_settled: 3,
            read_light: 1,
            ..Default::default()
        };
        tally.by_stage.insert("odd \"stage\"".into(), 5);
        m.apply(crate::engine::msg::Update::CensusDone { generation: 1, tally, duration_ms: 1500, orphan_ids: vec![] });
        let page = exposition(&[(&m, "prod \"eu\""), (&m, "staging")]);
        assert_eq!(page.matches("# TYPE sessiontop_up gauge").count(), 1, "one family for both targets");
        assert!(page.contains("sessiontop_up{target=\"staging\"} 1\n"), "{page}");
        assert!(page.contains("sessiontop_up{target=\"prod \\\"eu\\\"\"} 1\n"), "{page}");
        assert!(page.contains("sessiontop_live_sessions{target=\"prod \\\"eu\\\"\"} 5\n"), "{page}");
        assert!(page.contains("stage=\"odd \\\"stage\\\"\"} 5\n"), "{page}");
        assert!(page.contains("# TYPE sessiontop_redis_evicted_keys_total counter\n"), "{page}");
        assert!(page.contains("sessiontop_redis_used_memory_bytes{target=\"prod \\\"eu\\\"\"} 1024\n"), "{page}");
        assert!(page.contains("sessiontop_census_duration_seconds{target=\"prod \\\"eu\\\"\"} 1.5\n"), "{page}");
        for (how, n) in [("whole", 2), ("settled", 3), ("light", 1)] {
            let line = format!("sessiontop_census_sessions_read{{target=\"staging\",how=\"{how}\"}} {n}\n");
            assert!(page.contains(&line), "{line} not in {page}");
        }
        assert!(!page.contains("sessiontop_redis_rss_bytes"), "unknown figures are left out");
        // A cluster's nodes, labelled by node and role.
        let mut node = crate::engine::domain::NodeStatus {
            address: "10.0.0.1:6379".into(),
            primary: true,
            slots: vec![(0, 8191)],
            stats: Some(Box::new(crate::conn::info::ServerStats { used_memory_bytes: Some(77), ..Default::default() })),
            ..Default::default()
        };
        let replica = crate::engine::domain::NodeStatus {
            address: "10.0.0.2:6379".into(),
            lag_bytes: Some(12),
            ..Default::default()
        };
        node.id = "a".into();
        let view = crate::engine::domain::NodesView {
            kind: "cluster".into(),
            nodes: vec![node, replica],
            uncovered: vec![(8192, 16383)],
            ..Default::default()
        };
        m.apply(crate::engine::msg::Update::Nodes(Box::new(view)));
        let page = exposition(&[(&m, "c")]);
        assert!(
            page.contains(
                "sessiontop_node_used_memory_bytes{target=\"c\",node=\"10.0.0.1:6379\",role=\"primary\"} 77\n"
            ),
            "{page}"
        );
        assert!(
            page.contains("sessiontop_node_slots{target=\"c\",node=\"10.0.0.1:6379\",role=\"primary\"} 8192\n"),
            "{page}"
        );
        assert!(
            page.contains("sessiontop_node_up{target=\"c\",node=\"10.0.0.2:6379\",role=\"replica\"} 0\n"),
            "{page}"
        );
        assert!(page.contains(
            "sessiontop_node_replication_lag_bytes{target=\"c\",node=\"10.0.0.2:6379\",role=\"replica\"} 12\n"
        ));
        assert!(page.contains("sessiontop_cluster_uncovered_slots{target=\"c\"} 8192\n"), "{page}");
        // Every sample line's metric has its HELP and TYPE before it.
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(page.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
