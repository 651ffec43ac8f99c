//! What `INFO` and `DBSIZE` say about the server, parsed into typed fields.

use std::collections::{BTreeMap, HashMap};

/// The keyspace line of one database (`db0:keys=3,expires=3,avg_ttl=1729782`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceLine {
    pub db: u32,
    pub keys: u64,
    pub expires: u64,
    pub avg_ttl_ms: u64,
}

/// What `INFO` and `DBSIZE` said. Every field is optional: a field the server does not report
/// (or a section the user may not read) stays `None` and is shown as unavailable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStats {
    pub redis_version: Option<String>,
    pub redis_mode: Option<String>,
    pub os: Option<String>,
    pub role: Option<String>,
    pub run_id: Option<String>,
    pub uptime_seconds: Option<u64>,
    pub used_memory_bytes: Option<u64>,
    pub used_memory_peak_bytes: Option<u64>,
    pub used_memory_rss_bytes: Option<u64>,
    pub maxmemory_bytes: Option<u64>,
    pub maxmemory_policy: Option<String>,
    pub mem_fragmentation_ratio: Option<f64>,
    pub connected_clients: Option<u64>,
    pub blocked_clients: Option<u64>,
    pub ops_per_sec: Option<u64>,
    pub total_commands_processed: Option<u64>,
    pub keyspace_hits: Option<u64>,
    pub keyspace_misses: Option<u64>,
    pub evicted_keys: Option<u64>,
    /// Connections refused since start (`maxclients` reached).
    pub rejected_connections: Option<u64>,
    pub expired_keys: Option<u64>,
    pub connected_slaves: Option<u64>,
    pub master_link_status: Option<String>,
    /// The replication stream's offset: a primary's own (`master_repl_offset`), or how far a
    /// replica has read its primary's (`slave_repl_offset`).
    pub repl_offset: Option<u64>,
    /// A replica's primary, as `host:port` (`master_host`, `master_port`).
    pub master_address: Option<String>,
    /// A primary's replicas, as `host:port` (its `slaveN:ip=…,port=…` lines).
    pub replicas: Vec<String>,
    pub keyspace: Vec<KeyspaceLine>,
    /// `DBSIZE` of the selected database.
    pub db_keys: Option<u64>,
    /// Whether the append-only file is on (`aof_enabled`).
    pub aof_enabled: Option<bool>,
    /// Keys loaded from disk when the server started (`rdb_last_load_keys_loaded`, 7.0+).
    pub loaded_keys: Option<u64>,
}

impl ServerStats {
    /// Parses the text of `INFO`. Unknown lines are ignored; malformed numbers stay `None`.
    pub fn from_info(text: &str) -> ServerStats {
        let fields: HashMap<&str, &str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.trim_end_matches('\r').split_once(':'))
            .collect();
        let s = |k: &str| fields.get(k).map(|v| v.to_string());
        let n = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        let keyspace = fields
            .iter()
            .filter_map(|(k, v)| parse_keyspace(k, v))
            .collect::<BTreeMap<u32, KeyspaceLine>>()
            .into_values()
            .collect();
        ServerStats {
            redis_version: s("redis_version"),
            redis_mode: s("redis_mode"),
            os: s("os"),
            role: s("role"),
            run_id: s("run_id"),
            uptime_seconds: n("uptime_in_seconds"),
            used_memory_bytes: n("used_memory"),
            used_memory_peak_bytes: n("used_memory_peak"),
            used_memory_rss_bytes: n("used_memory_rss"),
            maxmemory_bytes: n("maxmemory"),
            maxmemory_policy: s("maxmemory_policy"),
            mem_fragmentation_ratio: fields.get("mem_fragmentation_ratio").and_then(|v| v.parse().ok()),
            connected_clients: n("connected_clients"),
            blocked_clients: n("blocked_clients"),
            ops_per_sec: n("instantaneous_ops_per_sec"),
            total_commands_processed: n("total_commands_processed"),
            keyspace_hits: n("keyspace_hits"),
            keyspace_misses: n("keyspace_misses"),
            evicted_keys: n("evicted_keys"),
            rejected_connections: n("rejected_connections"),
            expired_keys: n("expired_keys"),
            connected_slaves: n("connected_slaves"),
            master_link_status: s("master_link_status"),
            repl_offset: n("slave_repl_offset").or_else(|| n("master_repl_offset")),
            master_address: match (fields.get("master_host"), fields.get("master_port")) {
                (Some(h), Some(p)) => Some(format!("{h}:{p}")),
                _ => None,
            },
            replicas: replica_lines(&fields),
            keyspace,
            db_keys: None,
            aof_enabled: n("aof_enabled").map(|n| n == 1),
            loaded_keys: n("rdb_last_load_keys_loaded"),
        }
    }

    /// Hits over lookups, when any lookups happened.
    pub fn hit_rate(&self) -> Option<f64> {
        let (h, m) = (self.keyspace_hits?, self.keyspace_misses?);
        (h + m > 0).then(|| h as f64 / (h + m) as f64)
    }

    /// Used memory over `maxmemory`; `None` when there is no limit (0) or it is unknown.
    pub fn memory_fraction(&self) -> Option<f64> {
        let (used, max) = (self.used_memory_bytes?, self.maxmemory_bytes?);
        (max > 0).then(|| used as f64 / max as f64)
    }
}

/// Adds up what the nodes of a cluster say, as one server's figures: what is about the data
/// (memory, keys, expiries, evictions, the keyspace) over the primaries, what is about traffic
/// (clients, commands, hits) over every node. A figure no node gives stays unknown; a figure
/// of which one node says nothing is the sum of the rest. `identity` stands in for the run id
/// (one cluster seen through two targets is one server).
pub fn combine(primaries: &[&ServerStats], all: &[&ServerStats], identity: Option<String>) -> ServerStats {
    fn sum(stats: &[&ServerStats], field: impl Fn(&ServerStats) -> Option<u64>) -> Option<u64> {
        stats.iter().filter_map(|s| field(s)).reduce(|a, b| a.saturating_add(b))
    }
    let first = |field: fn(&ServerStats) -> Option<String>| primaries.iter().find_map(|s| field(s));
    let used = sum(primaries, |s| s.used_memory_bytes);
    let rss = sum(primaries, |s| s.used_memory_rss_bytes);
    // A limit is the cluster's only when every primary has one.
    let maxmemory = match sum(primaries, |s| s.maxmemory_bytes) {
        Some(_) if primaries.iter().any(|s| s.maxmemory_bytes == Some(0)) => Some(0),
        other => other,
    };
    let mut keyspace: BTreeMap<u32, KeyspaceLine> = BTreeMap::new();
    for line in primaries.iter().flat_map(|s| &s.keyspace) {
        let entry = keyspace.entry(line.db).or_insert(KeyspaceLine { db: line.db, keys: 0, expires: 0, avg_ttl_ms: 0 });
        // The average TTL weighted by each node's keys with one.
        let weighted = entry.avg_ttl_ms.saturating_mul(entry.expires) + line.avg_ttl_ms.saturating_mul(line.expires);
        entry.keys += line.keys;
        entry.expires += line.expires;
        entry.avg_ttl_ms = weighted.checked_div(entry.expires).unwrap_or(0);
    }
    let mut versions: Vec<&String> = all.iter().filter_map(|s| s.redis_version.as_ref()).collect();
    versions.sort_by_key(|v| v.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>());
    ServerStats {
        redis_version: versions.first().map(|v| (*v).clone()),
        redis_mode: Some("cluster".into()),
        os: first(|s| s.os.clone()),
        role: Some("cluster".into()),
        run_id: identity,
        uptime_seconds: all.iter().filter_map(|s| s.uptime_seconds).min(),
        used_memory_bytes: used,
        used_memory_peak_bytes: sum(primaries, |s| s.used_memory_peak_bytes),
        used_memory_rss_bytes: rss,
        maxmemory_bytes: maxmemory,
        maxmemory_policy: first(|s| s.maxmemory_policy.clone()),
        mem_fragmentation_ratio: match (rss, used) {
            (Some(rss), Some(used)) if used > 0 => Some(rss as f64 / used as f64),
            _ => None,
        },
        connected_clients: sum(all, |s| s.connected_clients),
        blocked_clients: sum(all, |s| s.blocked_clients),
        ops_per_sec: sum(all, |s| s.ops_per_sec),
        total_commands_processed: sum(all, |s| s.total_commands_processed),
        keyspace_hits: sum(all, |s| s.keyspace_hits),
        keyspace_misses: sum(all, |s| s.keyspace_misses),
        evicted_keys: sum(primaries, |s| s.evicted_keys),
        rejected_connections: sum(all, |s| s.rejected_connections),
        expired_keys: sum(primaries, |s| s.expired_keys),
        connected_slaves: sum(primaries, |s| s.connected_slaves),
        master_link_status: None,
        repl_offset: None,
        master_address: None,
        replicas: Vec::new(),
        keyspace: keyspace.into_values().collect(),
        db_keys: sum(primaries, |s| s.db_keys),
        // On only when every primary keeps one.
        aof_enabled: primaries
            .iter()
            .map(|s| s.aof_enabled)
            .collect::<Option<Vec<bool>>>()
            .map(|v| v.iter().all(|on| *on)),
        loaded_keys: sum(primaries, |s| s.loaded_keys),
    }
}

/// A primary's replicas from its `slave0:ip=10.0.0.2,port=6380,state=online,…` lines, in order.
fn replica_lines(fields: &HashMap<&str, &str>) -> Vec<String> {
    let mut lines: Vec<(u32, String)> = fields
        .iter()
        .filter_map(|(k, v)| {
            let n: u32 = k.strip_prefix("slave")?.parse().ok()?;
            let get = |name: &str| v.split(',').find_map(|p| p.strip_prefix(name)?.strip_prefix('='));
            Some((n, format!("{}:{}", get("ip")?, get("port")?)))
        })
        .collect();
    lines.sort();
    lines.into_iter().map(|(_, a)| a).collect()
}

fn parse_keyspace(key: &str, value: &str) -> Option<(u32, KeyspaceLine)> {
    let db: u32 = key.strip_prefix("db")?.parse().ok()?;
    let mut line = KeyspaceLine { db, keys: 0, expires: 0, avg_ttl_ms: 0 };
    for pair in value.split(',') {
        let (k, v) = pair.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        match k {
            "keys" => line.keys = v,
            "expires" => line.expires = v,
            "avg_ttl" => line.avg_ttl_ms = v,
            _ => {}
        }
    }
    Some((db, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nrun_id:abc\r\nuptime_in_seconds:42\r\n\
        # Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\n# Memory\r\nused_memory:1048576\r\nused_memory_peak:2097152\r\n\
        maxmemory:0\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:5.61\r\n# Stats\r\ninstantaneous_ops_per_sec:12\r\n\
        keyspace_hits:3\r\nkeyspace_misses:1\r\nevicted_keys:0\r\nexpired_keys:7\r\n# Replication\r\nrole:master\r\n\
        slave1:ip=10.0.0.3,port=6381,state=online,offset=90,lag=1\r\nslave0:ip=10.0.0.2,port=6380,state=online,offset=99,lag=0\r\n\
        master_repl_offset:100\r\n\
        # Keyspace\r\ndb0:keys=3,expires=2,avg_ttl=1729782\r\ndb1:keys=1,expires=0,avg_ttl=0\r\n";

    #[test]
    fn info_parses_into_stats() {
        let s = ServerStats::from_info(INFO);
        assert_eq!(s.redis_version.as_deref(), Some("7.0.15"));
        assert_eq!(s.role.as_deref(), Some("master"));
        assert_eq!(s.used_memory_bytes, Some(1_048_576));
        assert_eq!(s.maxmemory_bytes, Some(0));
        assert_eq!(s.memory_fraction(), None, "maxmemory 0 means no limit");
        assert_eq!(s.mem_fragmentation_ratio, Some(5.61));
        assert_eq!(s.hit_rate(), Some(0.75));
        assert_eq!(s.keyspace.len(), 2);
        assert_eq!(s.keyspace[0], KeyspaceLine { db: 0, keys: 3, expires: 2, avg_ttl_ms: 1_729_782 });
        assert_eq!(s.evicted_keys, Some(0));
        assert_eq!(s.os, None, "absent fields stay unknown");
        assert_eq!(s.replicas, vec!["10.0.0.2:6380", "10.0.0.3:6381"]);
        assert_eq!(s.repl_offset, Some(100));
    }

    #[test]
    fn a_clusters_figures_add_up_data_over_primaries_and_traffic_over_all() {
        let node = |used, clients, keys, ttl, version: &str| ServerStats {
            redis_version: Some(version.into()),
            used_memory_bytes: Some(used),
            used_memory_rss_bytes: Some(used * 2),
            maxmemory_bytes: Some(1000),
            connected_clients: Some(clients),
            db_keys: Some(keys),
            uptime_seconds: Some(100 + used),
            keyspace: vec![KeyspaceLine { db: 0, keys, expires: keys, avg_ttl_ms: ttl }],
            ..ServerStats::default()
        };
        let (a, b, r) =
            (node(100, 2, 10, 1000, "7.2.4"), node(300, 3, 30, 2000, "7.0.15"), node(100, 5, 10, 1000, "7.2.4"));
        let c = combine(&[&a, &b], &[&a, &b, &r], Some("cluster:x".into()));
        assert_eq!(c.used_memory_bytes, Some(400), "replicas hold copies: data is counted on primaries");
        assert_eq!(c.connected_clients, Some(10), "clients connect to replicas too");
        assert_eq!(c.db_keys, Some(40));
        assert_eq!(c.maxmemory_bytes, Some(2000));
        assert_eq!(c.mem_fragmentation_ratio, Some(2.0));
        assert_eq!(c.keyspace[0], KeyspaceLine { db: 0, keys: 40, expires: 40, avg_ttl_ms: 1750 });
        assert_eq!(c.redis_version.as_deref(), Some("7.0.15"), "the oldest node says what every node can do");
        assert_eq!(c.uptime_seconds, Some(200));
        assert_eq!(c.run_id.as_deref(), Some("cluster:x"));
        let unlimited = ServerStats { maxmemory_bytes: Some(0), ..a.clone() };
        assert_eq!(combine(&[&unlimited, &b], &[], None).maxmemory_bytes, Some(0));
        assert_eq!(combine(&[], &[], None).used_memory_bytes, None);
    }
}
