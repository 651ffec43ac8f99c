//! Server statistics: `INFO` and `DBSIZE` in one round trip per node. Either may be denied (an
//! ACL user without `INFO`) without the other being lost; on a cluster, a node that cannot be
//! asked without the others being lost.

use std::sync::Arc;

use crate::conn::info::ServerStats;
use crate::conn::link::{Failure, Link, reply};
use crate::conn::route::Router;
use crate::conn::topology::{Map, MapShard};
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
    if let Some(node) = map.single() {
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
/// cluster none of whose primaries answers is a failure.
pub async fn poll_cluster(router: &Router) -> Result<ClusterPoll, Failure> {
    router.refresh().await?;
    let map = router.topology().map();
    let entries = map.nodes();
    let polls = futures_util::future::join_all(entries.iter().map(|entry| {
        let (router, node) = (router.clone(), entry.node.clone());
        async move {
            let polled = async {
                let mut link = router.link(&node).await?;
                let polled = poll(&mut link).await?;
                node.note(&polled.0);
                node.sample_costs(&mut link).await?;
                Ok::<_, Failure>(polled)
            }
            .await;
            if polled.as_ref().is_err_and(Failure::is_connection) {
                router.forget(&node).await;
            }
            polled
        }
    }))
    .await;
    let mut unavailable = Vec::new();
    let mut nodes = Vec::with_capacity(entries.len());
    for (shard, entry, poll) in shards_of(&map).into_iter().zip(entries).zip(polls).map(|((s, e), p)| (s, e, p)) {
        let primary = shard.primary.as_ref().is_some_and(|p| Arc::ptr_eq(&p.node, &entry.node));
        let primary_offset = shard.primary.as_ref().and_then(|p| p.offset);
        let (stats, error) = match poll {
            Ok((stats, missing)) => {
                unavailable.extend(missing);
                (Some(Box::new(stats)), None)
            }
            Err(f) => (None, Some(f.to_string())),
        };
        nodes.push(NodeStatus {
            address: entry.node.address().to_string(),
            id: entry.id.clone(),
            primary,
            replica_of: (!primary).then(|| shard.primary.as_ref().map(|p| p.node.address().to_string())).flatten(),
            health: entry.health.name().to_string(),
            slots: if primary { shard.slots.clone() } else { Vec::new() },
            stats,
            error,
            own_share: entry.node.pacer().lock().ok().and_then(|p| p.share()),
            commands_sent: entry.node.load().total(),
            lag_bytes: match (primary, primary_offset, entry.offset) {
                (false, Some(p), Some(r)) => Some(p.saturating_sub(r)),
                _ => None,
            },
        });
    }
    unavailable.sort();
    unavailable.dedup();
    let polled = |primary: bool| -> Vec<&ServerStats> {
        nodes.iter().filter(|n| !primary || n.primary).filter_map(|n| n.stats.as_deref()).collect()
    };
    if polled(true).is_empty() {
        let why = nodes.iter().find_map(|n| n.error.clone()).unwrap_or_else(|| "no primary".into());
        return Err(Failure::Connection(format!("no primary of the cluster answers: {why}")));
    }
    let identity =
        nodes.iter().map(|n| n.id.as_str()).filter(|id| !id.is_empty()).min().map(|id| format!("cluster:{id}"));
    let stats = crate::conn::info::combine(&polled(true), &polled(false), identity);
    let view = NodesView { kind: map.kind.name().to_string(), epoch: map.epoch, nodes, uncovered: map.uncovered() };
    Ok(ClusterPoll { stats, unavailable, view })
}

/// For each node of the map (in [`Map::nodes`] order), its shard.
fn shards_of(map: &Map) -> Vec<&MapShard> {
    map.shards
        .iter()
        .flat_map(|s| std::iter::repeat_n(s, usize::from(s.primary.is_some()) + s.replicas.len()))
        .collect()
}
