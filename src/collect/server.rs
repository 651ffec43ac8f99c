//! Server statistics: `INFO` and `DBSIZE` in one round trip per node. Either may be denied (an
//! ACL user without `INFO`) without the other being lost; on a cluster, a node that cannot be
//! asked without the others being lost.

use std::sync::Arc;

use crate::conn::info::ServerStats;
use crate::conn::link::{Failure, Link, reply};
use crate::conn::route::Router;
use crate::conn::topology::{Kind, Map, MapShard, Node, ReadFrom, Topology};
use crate::engine::domain::{NodeStatus, NodesView};

/// Reads the server's statistics. Only a connection failure is an error; a denied or unknown
/// command leaves its fields unknown and says why in the second value.
pub async fn poll(link: &mut Link) -> Result<(ServerStats, Vec<String>), Failure> {
    let mut pipe = crate::conn::link::pipe();
    pipe.cmd("INFO").cmd("DBSIZE");
    let mut replies = link.pipeline(&pipe).await?.into_iter();
    let info = replies.next().unwrap_or(Err(Failure::Protocol("INFO".into())));
    let dbsize = replies.next().unwrap_or(Err(Failure::Protocol("DBSIZE".into())));
    let mut unavailable = Vec::new();
    let mut stats = match info {
        Ok(_) => ServerStats::from_info(&reply::string(info).unwrap_or_default()),
        Err(failure) => {
            unavailable.push(failure.to_string());
            ServerStats::default()
        }
    };
    match reply::failure(&dbsize) {
        Some(failure) => unavailable.push(failure.to_string()),
        None => stats.db_keys = reply::int(&dbsize).map(|n| n.max(0) as u64),
    }
    Ok((stats, unavailable))
}

/// What a poll of a target found: its figures, what was unavailable, and its nodes when it
/// has several.
pub struct TargetPoll {
    pub stats: ServerStats,
    pub unavailable: Vec<String>,
    pub nodes: Option<NodesView>,
}

/// Polls the target's one node, or every node of a cluster (with the map read again), and
/// reads what sessiontop's commands cost each node when that is due.
pub async fn poll_target(router: &Router) -> Result<TargetPoll, Failure> {
    let map = router.topology().map();
    let replicas_asked = router.topology().read_from() != ReadFrom::Primary;
    if let (Kind::Standalone, 1, false, Some(node)) = (map.kind, map.nodes().len(), replicas_asked, map.single()) {
        let mut link = router.link(node).await?;
        let (stats, unavailable) = poll(&mut link).await?;
        node.note(&stats);
        node.sample_costs(&mut link).await?;
        return Ok(TargetPoll { stats, unavailable, nodes: None });
    }
    let polled = poll_cluster(router).await?;
    router.forget_departed().await;
    Ok(TargetPoll { stats: polled.stats, unavailable: polled.unavailable, nodes: Some(polled.view) })
}

/// What a poll of every node of a cluster found: the cluster's figures (see
/// [`crate::conn::info::combine`]), what was unavailable, and each node.
pub struct ClusterPoll {
    pub stats: ServerStats,
    pub unavailable: Vec<String>,
    pub view: NodesView,
}

/// Reads the map again, then polls every node of it at once (`INFO`, `DBSIZE`, and the costs
/// of sessiontop's commands when due). A node that cannot be asked costs its own line; only a
/// target none of whose primaries answers is a failure. Which replicas are in sync enough to
/// be read from is judged here, for `--read-from`.
pub async fn poll_cluster(router: &Router) -> Result<ClusterPoll, Failure> {
    let topology = router.topology();
    // A cluster's map is read every poll; a sentinel target's primary is asked for again when
    // the sentinels announced a switch since it was found.
    match topology.sentinels() {
        Some(sentinels) if sentinels.switches() != router.switches_seen() => {
            router.saw_switches(sentinels.switches());
            router.refresh().await?;
        }
        Some(_) => {}
        None => router.refresh().await?,
    }
    let map = topology.map();
    let entries = map.nodes();
    let polls = futures_util::future::join_all(entries.iter().map(|entry| poll_node(router, &entry.node))).await;
    let mut unavailable = Vec::new();
    let mut nodes = Vec::with_capacity(entries.len());
    for ((shard, entry), poll) in shards_of(&map).into_iter().zip(entries).zip(polls) {
        let primary = shard.primary.as_ref().is_some_and(|p| Arc::ptr_eq(&p.node, &entry.node));
        let (stats, error) = match poll {
            Ok((stats, missing)) => {
                unavailable.extend(missing);
                (Some(Box::new(stats)), None)
            }
            Err(f) => (None, Some(f.to_string())),
        };
        let run_id = stats.as_ref().and_then(|s| s.run_id.clone());
        nodes.push(NodeStatus {
            address: entry.node.address().to_string(),
            // Nodes outside a cluster have no cluster id: their run id tells them apart.
            id: if entry.id.is_empty() { run_id.unwrap_or_default() } else { entry.id.clone() },
            primary,
            replica_of: (!primary).then(|| shard.primary.as_ref().map(|p| p.node.address().to_string())).flatten(),
            health: entry.health.name().to_string(),
            slots: if primary { shard.slots.clone() } else { Vec::new() },
            stats,
            error,
            own_share: entry.node.pacer().lock().ok().and_then(|p| p.share()),
            commands_sent: entry.node.load().total(),
            lag_bytes: None,
        });
    }
    unavailable.sort();
    unavailable.dedup();
    judge_replicas(topology, &map, &mut nodes);
    let stats = target_figures(router, &map, &nodes).await?;
    let reads = reads_said(topology, &map, &nodes);
    let view =
        NodesView { kind: map.kind.name().to_string(), epoch: map.epoch, nodes, uncovered: map.uncovered(), reads };
    Ok(ClusterPoll { stats, unavailable, view })
}

/// Polls one node; a connection that failed is dropped, to be opened again next time.
async fn poll_node(router: &Router, node: &Arc<Node>) -> Result<(ServerStats, Vec<String>), Failure> {
    let polled = async {
        let mut link = router.link(node).await?;
        let polled = poll(&mut link).await?;
        node.note(&polled.0);
        node.sample_costs(&mut link).await?;
        Ok::<_, Failure>(polled)
    }
    .await;
    if polled.as_ref().is_err_and(Failure::is_connection) {
        router.forget(node).await;
    }
    polled
}

/// Each replica's lag behind its primary (the primary's replication offset less the replica's,
/// both from this poll; else the cluster's gossip), and which are in sync enough to be read.
fn judge_replicas(topology: &Topology, map: &Map, nodes: &mut [NodeStatus]) {
    let offsets: Vec<(String, Option<u64>)> =
        nodes.iter().map(|n| (n.address.clone(), n.stats.as_ref().and_then(|s| s.repl_offset))).collect();
    let gossip = |address: &str| map.nodes().into_iter().find(|e| e.node.address() == address).and_then(|e| e.offset);
    let mut readable = Vec::new();
    for n in nodes.iter_mut().filter(|n| !n.primary) {
        let primary = n.replica_of.as_deref().unwrap_or_default();
        let of = |address: &str| {
            offsets.iter().find(|(a, _)| a == address).and_then(|(_, o)| *o).or_else(|| gossip(address))
        };
        n.lag_bytes = match (of(primary), of(&n.address)) {
            (Some(p), Some(r)) => Some(p.saturating_sub(r)),
            _ => None,
        };
        let link_up = n.stats.as_ref().is_some_and(|s| s.master_link_status.as_deref() == Some("up"));
        if link_up && n.lag_bytes.is_some_and(|lag| lag <= topology.replica_max_lag()) {
            readable.push(n.address.clone());
        }
    }
    topology.set_readable(readable);
}

/// The target's own figures: a cluster's added up (see [`crate::conn::info::combine`]); a
/// primary with replicas (a sentinel's, or one read from its replicas) the primary's, with
/// traffic over every node. A sentinel's primary that says it is a replica is asked for again.
async fn target_figures(router: &Router, map: &Map, nodes: &[NodeStatus]) -> Result<ServerStats, Failure> {
    let polled = |primary: bool| -> Vec<&ServerStats> {
        nodes.iter().filter(|n| !primary || n.primary).filter_map(|n| n.stats.as_deref()).collect()
    };
    if polled(true).is_empty() {
        let why = nodes.iter().find_map(|n| n.error.clone()).unwrap_or_else(|| "no primary".into());
        return Err(Failure::Connection(format!("no primary answers: {why}")));
    }
    if map.kind == Kind::Cluster {
        let id = nodes.iter().map(|n| n.id.as_str()).filter(|id| !id.is_empty()).min().unwrap_or_default();
        return Ok(crate::conn::info::combine(&polled(true), &polled(false), Some(format!("cluster:{id}"))));
    }
    let mut primary = polled(true).first().map(|s| (*s).clone()).unwrap_or_default();
    if primary.role.as_deref() == Some("slave") && router.topology().sentinels().is_some() {
        router.refresh().await?;
    }
    let all = polled(false);
    let sum = |f: fn(&ServerStats) -> Option<u64>| all.iter().filter_map(|s| f(s)).reduce(|a, b| a + b);
    primary.connected_clients = sum(|s| s.connected_clients);
    primary.ops_per_sec = sum(|s| s.ops_per_sec);
    if let Some(sentinels) = router.topology().sentinels() {
        // One store across failovers: its identity is the sentinels' name for it.
        primary.run_id = Some(format!("sentinel:{}", sentinels.master()));
        primary.uptime_seconds = all.iter().filter_map(|s| s.uptime_seconds).max();
    }
    Ok(primary)
}

/// Where reads go under `--read-from`, in a line for the header; `None` when from the primary.
fn reads_said(topology: &Topology, map: &Map, nodes: &[NodeStatus]) -> Option<String> {
    if topology.read_from() == ReadFrom::Primary {
        return None;
    }
    let mut read = Vec::new();
    let mut fallback = 0;
    let mut none = 0;
    for shard in &map.shards {
        let primary = shard.primary.as_ref().map(|p| p.node.address().to_string());
        match topology.read_node(shard) {
            Some(node) if Some(node.address()) != primary.as_deref() => {
                let lag = nodes.iter().find(|n| n.address == node.address()).and_then(|n| n.lag_bytes);
                let lag = lag.map_or_else(|| "?".into(), crate::util::text::human_bytes);
                read.push(format!("{} (lag {lag})", node.address()));
            }
            Some(_) => fallback += 1,
            None => none += 1,
        }
    }
    let mut line = if read.is_empty() { String::new() } else { format!("reads from {}", read.join(", ")) };
    if fallback > 0 {
        let sep = if line.is_empty() { "" } else { "; " };
        line.push_str(&format!("{sep}reads from the primary of {fallback} shard(s): no replica in sync"));
    }
    if none > 0 {
        let sep = if line.is_empty() { "" } else { "; " };
        line.push_str(&format!("{sep}no replica in sync for {none} shard(s): their sessions are not read"));
    }
    Some(line)
}

/// For each node of the map (in [`Map::nodes`] order), its shard.
fn shards_of(map: &Map) -> Vec<&MapShard> {
    map.shards
        .iter()
        .flat_map(|s| std::iter::repeat_n(s, usize::from(s.primary.is_some()) + s.replicas.len()))
        .collect()
}
