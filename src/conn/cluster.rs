//! What a Redis Cluster says about itself: `CLUSTER SHARDS` (Redis 7.0+, Valkey), or `CLUSTER
//! SLOTS` before it, read into shards of slot ranges with their primary and replicas. Pure:
//! the replies come in, the shards go out.

use redis::Value;

/// A node's part in its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// What the cluster says of a node's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Online,
    /// Marked failed by the cluster (`fail`).
    Failed,
    /// A replica that has not yet said it holds any data (`loading`: its replication offset is
    /// still 0 as the cluster knows it).
    Loading,
    /// `CLUSTER SLOTS` says nothing of health.
    Unknown,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Online => "online",
            Health::Failed => "failed",
            Health::Loading => "loading",
            Health::Unknown => "unknown",
        }
    }
}

/// One node as the cluster announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub id: String,
    /// The endpoint the cluster prefers clients to use (an IP or a hostname).
    pub host: String,
    pub port: u16,
    pub role: Role,
    pub offset: Option<u64>,
    pub health: Health,
}

impl Announced {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Slot ranges and the nodes that serve them: one primary (or none, while it is failed over)
/// and its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shard {
    pub slots: Vec<(u16, u16)>,
    pub nodes: Vec<Announced>,
}

impl Shard {
    pub fn primary(&self) -> Option<&Announced> {
        self.nodes.iter().find(|n| n.role == Role::Primary)
    }
}

/// Why a reply could not be read as a cluster's shards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected {command} reply: {why}")]
pub struct ShardsError {
    command: &'static str,
    why: String,
}

/// Reads `CLUSTER SHARDS`. `tls` picks a node's `tls-port` when it announces one; `asked` is
/// the host of the node that answered, for a node that announces an empty endpoint. Nodes whose
/// endpoint is unknown (`?`) are left out: there is no way to reach them.
pub fn from_shards(reply: Value, tls: bool, asked: &str) -> Result<Vec<Shard>, ShardsError> {
    let bad = |why: &str| ShardsError { command: "CLUSTER SHARDS", why: why.to_string() };
    let Value::Array(shards) = reply else { return Err(bad("not an array")) };
    let mut out = Vec::with_capacity(shards.len());
    for shard in shards {
        let mut slots = Vec::new();
        let mut nodes = Vec::new();
        for (name, value) in pairs(shard).ok_or_else(|| bad("a shard is not a map"))? {
            match name.as_str() {
                "slots" => {
                    let bounds: Vec<u16> = list(value).iter().filter_map(int).map(|n| n as u16).collect();
                    slots.extend(bounds.chunks_exact(2).map(|c| (c[0], c[1])));
                }
                "nodes" => {
                    for node in list(value) {
                        let fields = pairs(node).ok_or_else(|| bad("a node is not a map"))?;
                        nodes.extend(shard_node(fields, tls, asked));
                    }
                }
                _ => {}
            }
        }
        out.push(Shard { slots, nodes });
    }
    Ok(out)
}

fn shard_node(fields: Vec<(String, Value)>, tls: bool, asked: &str) -> Option<Announced> {
    let text = |name: &str| fields.iter().find(|(k, _)| k == name).and_then(|(_, v)| string(v));
    let number = |name: &str| fields.iter().find(|(k, _)| k == name).and_then(|(_, v)| int(v));
    let port =
        if tls { number("tls-port").or_else(|| number("port")) } else { number("port").or_else(|| number("tls-port")) };
    let host = [text("endpoint"), text("hostname"), text("ip")]
        .into_iter()
        .flatten()
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| asked.to_string());
    if host == "?" {
        return None;
    }
    Some(Announced {
        id: text("id")?,
        host,
        port: u16::try_from(port?).ok()?,
        role: if text("role")? == "master" { Role::Primary } else { Role::Replica },
        offset: number("replication-offset").and_then(|n| u64::try_from(n).ok()),
        health: match text("health").as_deref() {
            Some("online") => Health::Online,
            Some("fail" | "failed") => Health::Failed,
            Some("loading") => Health::Loading,
            _ => Health::Unknown,
        },
    })
}

/// Reads `CLUSTER SLOTS`: each range with its primary first, then replicas. Ranges of one
/// primary make one shard.
pub fn from_slots(reply: Value, asked: &str) -> Result<Vec<Shard>, ShardsError> {
    let bad = |why: &str| ShardsError { command: "CLUSTER SLOTS", why: why.to_string() };
    let Value::Array(ranges) = reply else { return Err(bad("not an array")) };
    let mut shards: Vec<Shard> = Vec::new();
    for range in ranges {
        let mut items = list(range).into_iter();
        let (Some(first), Some(last)) = (items.next().as_ref().and_then(int), items.next().as_ref().and_then(int))
        else {
            return Err(bad("a range without bounds"));
        };
        let nodes: Vec<Announced> = items
            .enumerate()
            .filter_map(|(i, node)| slots_node(node, if i == 0 { Role::Primary } else { Role::Replica }, asked))
            .collect();
        let primary = nodes.first().filter(|n| n.role == Role::Primary).map(|n| n.id.clone());
        let range = (first as u16, last as u16);
        match shards.iter_mut().find(|s| primary.is_some() && s.primary().map(|p| &p.id) == primary.as_ref()) {
            Some(shard) => shard.slots.push(range),
            None => shards.push(Shard { slots: vec![range], nodes }),
        }
    }
    Ok(shards)
}

fn slots_node(node: Value, role: Role, asked: &str) -> Option<Announced> {
    let items = list(node);
    let host = items.first().and_then(string).filter(|h| !h.is_empty()).unwrap_or_else(|| asked.to_string());
    if host == "?" {
        return None;
    }
    Some(Announced {
        id: items.get(2).and_then(string).unwrap_or_default(),
        host,
        port: u16::try_from(items.get(1).and_then(int)?).ok()?,
        role,
        offset: None,
        health: Health::Unknown,
    })
}

/// A map, as RESP3 sends it or as RESP2's flat array of names and values.
fn pairs(value: Value) -> Option<Vec<(String, Value)>> {
    match value {
        Value::Map(pairs) => Some(pairs.into_iter().filter_map(|(k, v)| Some((string(&k)?, v))).collect()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                out.push((string(&k)?, v));
            }
            Some(out)
        }
        _ => None,
    }
}

fn list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        _ => Vec::new(),
    }
}

fn string(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// Whether `INFO` (or its `cluster` section) says the server runs in cluster mode.
pub fn cluster_enabled(info: &str) -> bool {
    info.lines().any(|l| l.trim_end() == "cluster_enabled:1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn node(id: &str, port: i64, endpoint: &str, role: &str, health: &str) -> Value {
        Value::Array(vec![
            b("id"),
            b(id),
            b("port"),
            Value::Int(port),
            b("tls-port"),
            Value::Int(port + 1000),
            b("ip"),
            b("10.0.0.1"),
            b("endpoint"),
            b(endpoint),
            b("role"),
            b(role),
            b("replication-offset"),
            Value::Int(42),
            b("health"),
            b(health),
        ])
    }

    #[test]
    fn shards_give_slots_roles_endpoints_and_health() {
        let reply = Value::Array(vec![Value::Array(vec![
            b("slots"),
            Value::Array(vec![Value::Int(0), Value::Int(5460), Value::Int(6000), Value::Int(6000)]),
            b("nodes"),
            Value::Array(vec![
                node("a", 7000, "node-a.example", "master", "online"),
                node("b", 7001, "", "replica", "loading"),
                node("c", 7002, "?", "replica", "online"),
            ]),
        ])]);
        let shards = from_shards(reply.clone(), false, "seed.example").unwrap();
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].slots, vec![(0, 5460), (6000, 6000)]);
        assert_eq!(shards[0].nodes.len(), 2, "a node of unknown endpoint cannot be reached");
        let a = shards[0].primary().unwrap();
        assert_eq!((a.address().as_str(), a.offset, a.health), ("node-a.example:7000", Some(42), Health::Online));
        // An empty endpoint falls back to the hostname, then the IP.
        assert_eq!(shards[0].nodes[1].address(), "10.0.0.1:7001");
        assert_eq!(shards[0].nodes[1].health, Health::Loading);
        let tls = from_shards(reply, true, "seed").unwrap();
        assert_eq!(tls[0].nodes[0].port, 8000, "a TLS target uses the TLS port");
    }

    #[test]
    fn slots_group_ranges_by_primary() {
        let entry = |host: &str, port: i64, id: &str| Value::Array(vec![b(host), Value::Int(port), b(id)]);
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(99), entry("h1", 1, "p1"), entry("h2", 2, "r1")]),
            Value::Array(vec![Value::Int(100), Value::Int(199), entry("", 3, "p2")]),
            Value::Array(vec![Value::Int(200), Value::Int(299), entry("h1", 1, "p1"), entry("h2", 2, "r1")]),
        ]);
        let shards = from_slots(reply, "asked").unwrap();
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[0].slots, vec![(0, 99), (200, 299)]);
        assert_eq!(shards[0].nodes[1].role, Role::Replica);
        assert_eq!(shards[1].nodes[0].address(), "asked:3");
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        assert!(from_shards(Value::Int(3), false, "x").is_err());
        assert!(from_shards(Value::Array(vec![Value::Int(1)]), false, "x").is_err());
        assert!(from_slots(Value::Array(vec![Value::Array(vec![])]), "x").is_err());
        assert_eq!(from_shards(Value::Array(vec![]), false, "x").unwrap(), vec![]);
    }

    #[test]
    fn cluster_mode_is_read_from_info() {
        assert!(cluster_enabled("# Cluster\r\ncluster_enabled:1\r\n"));
        assert!(!cluster_enabled("# Cluster\r\ncluster_enabled:0\r\n"));
    }
}
