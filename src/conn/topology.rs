//! What a target is made of: its nodes, each a Redis server process with its own connections,
//! its own `INFO commandstats` and CPU, so its own [`Pacer`] and load account, and its own
//! keyspace to walk. A target's figures (commands sent, the share of a core its reads cost) are
//! sums over its nodes.
//!
//! A [`Topology`] is made from the target before connecting, with the node its URL names (the
//! seed), and the router's `discover` connects and finds out what the target is: one standalone
//! server (a topology of one node), or a Redis Cluster, whose shards, slots, primaries and
//! replicas `CLUSTER SHARDS` gives ([`Map`]). The map is refreshed when the cluster says it
//! moved (`MOVED`), when a node cannot be reached, and on every poll; each change has a new
//! epoch. A node's pacer and load account outlive reconnects and refreshes, so what was learnt
//! of a server's costs is kept.
//!
//! How many connections sessiontop opens to a node is said once, by [`LinkUse`].

use std::sync::{Arc, Mutex, RwLock};

use crate::conn::cluster::{Announced, Health, Role, Shard};
use crate::conn::info::ServerStats;
use crate::conn::link::{Failure, Link, LoadCounter};
use crate::conn::pace::{Budget, Pacer};
use crate::conn::sentinel::Sentinels;
use crate::conn::slot;
pub use crate::conn::target::split_host_port;
use crate::conn::target::{Target, TargetError};

/// What each connection to a node carries: sessiontop opens one of each, so
/// [`LINKS_PER_NODE`] in all (the census's two only once there is a layout to count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkUse {
    /// The poller's: `INFO`, the visible page, the inspector, layout detection, writes.
    Poll,
    /// The census's reads of sessions, several batches in flight on it.
    CensusReads,
    /// The census's walk over the index or the keyspace, a few pages ahead of the reads, so
    /// the next ids never queue behind a batch of replies.
    CensusWalk,
}

impl LinkUse {
    pub const ALL: [LinkUse; 3] = [LinkUse::Poll, LinkUse::CensusReads, LinkUse::CensusWalk];
}

/// Connections sessiontop opens to each node.
pub const LINKS_PER_NODE: usize = LinkUse::ALL.len();

/// What the last poll of a node said about the server process itself: enough to tell two
/// nodes apart, or one node seen under two names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub run_id: Option<String>,
    pub version: Option<String>,
    pub role: Option<String>,
}

/// One Redis server process of a target.
#[derive(Debug)]
pub struct Node {
    /// `host:port`, or the unix socket's path.
    address: String,
    /// How to open a connection to this node.
    target: Target,
    load: LoadCounter,
    pacer: Arc<Mutex<Pacer>>,
    facts: Mutex<NodeFacts>,
}

impl Node {
    fn new(target: Target, budget: Budget) -> Node {
        Node {
            address: target.address().to_string(),
            target,
            load: LoadCounter::default(),
            pacer: Pacer::shared(budget),
            facts: Mutex::new(NodeFacts::default()),
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// How to open a connection of its own to this node (a subscription).
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The commands sent to this node, in all and by kind.
    pub fn load(&self) -> &LoadCounter {
        &self.load
    }

    /// What this node's commands cost it, and pacing by its share of the budget.
    pub fn pacer(&self) -> &Arc<Mutex<Pacer>> {
        &self.pacer
    }

    /// Opens the connection for `use_`; its commands are counted in this node's load (and, for
    /// the poller's, in a counter of the connection's own, so that its work can be charged to
    /// the pacer: see [`Node::charge`]).
    pub async fn connect(&self, use_: LinkUse) -> Result<Link, Failure> {
        tracing::debug!(node = %self.address, ?use_, "connecting");
        let load = if use_ == LinkUse::Poll { self.load.child() } else { self.load.clone() };
        self.target.open(load).await
    }

    /// Charges the pacer for what `link` sent since `before` without waiting for the budget
    /// (the page poll, the inspector, writes), so that the paced work leaves room for it.
    pub fn charge(&self, link: &Link, before: &mut [u64; crate::conn::pace::Kind::ALL.len()]) {
        if let Ok(mut p) = self.pacer.lock() {
            p.charge_sent(before, link.load().by_kind());
        }
    }

    /// What the last poll said about the server process.
    pub fn facts(&self) -> NodeFacts {
        self.facts.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Keeps what a poll of this node said about the server process.
    pub fn note(&self, stats: &ServerStats) {
        if let Ok(mut facts) = self.facts.lock() {
            *facts = NodeFacts {
                run_id: stats.run_id.clone(),
                version: stats.redis_version.clone(),
                role: stats.role.clone(),
            };
        }
    }

    /// Reads `INFO commandstats` into the pacer when it is due: what each kind of command costs
    /// this node, and sessiontop's share of it. Denied or renamed `INFO` leaves the pacer to
    /// round trips.
    pub async fn sample_costs(&self, link: &mut Link) -> Result<(), Failure> {
        if !self.pacer.lock().is_ok_and(|p| p.sample_due()) {
            return Ok(());
        }
        self.sample_costs_now(link).await
    }

    /// Reads `INFO commandstats` into the pacer now (a one-shot command's first and last look),
    /// with `INFO cpu` in the same round trip: what the server spends beyond commandstats' `usec`.
    pub async fn sample_costs_now(&self, link: &mut Link) -> Result<(), Failure> {
        let mut both = crate::conn::link::pipe();
        both.cmd("INFO").arg("commandstats").cmd("INFO").arg("cpu");
        let mut replies = link.pipeline(&both).await?.into_iter().map(crate::conn::link::reply::string);
        let (stats, cpu) = (replies.next().flatten(), replies.next().flatten());
        if let Ok(mut p) = self.pacer.lock() {
            match stats {
                Some(text) => p.record_commandstats(&text, cpu.as_deref(), self.load.by_kind()),
                None => p.commandstats_unavailable(),
            }
        }
        Ok(())
    }
}

/// What kind of thing a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One server: every key on the one node.
    Standalone,
    /// A Redis Cluster: keys spread over the primaries by hash slot.
    Cluster,
    /// A primary that Redis Sentinel names (and may replace), with its replicas.
    Sentinel,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Standalone => "standalone",
            Kind::Cluster => "cluster",
            Kind::Sentinel => "sentinel",
        }
    }
}

/// How to tell what a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KindChoice {
    /// From `INFO cluster` (`cluster_enabled:1`).
    #[default]
    Detect,
    /// A cluster, whatever `INFO` says or when it may not be read (`--cluster`).
    Cluster,
}

/// A node of the map, with what the cluster said of it at the last refresh.
#[derive(Debug, Clone)]
pub struct MapNode {
    pub node: Arc<Node>,
    /// The cluster's id for the node (empty for a standalone server).
    pub id: String,
    pub health: Health,
    pub offset: Option<u64>,
}

/// Slots and the nodes that serve them.
#[derive(Debug, Clone)]
pub struct MapShard {
    pub slots: Vec<(u16, u16)>,
    /// `None` while the shard has no primary the cluster knows (failed, not yet replaced).
    pub primary: Option<MapNode>,
    pub replicas: Vec<MapNode>,
}

/// What a target is made of, as of one refresh.
#[derive(Debug)]
pub struct Map {
    pub kind: Kind,
    /// Goes up by one with every change of slots, primaries or nodes.
    pub epoch: u64,
    pub shards: Vec<MapShard>,
    /// For each slot, the index of its shard, or [`NO_SHARD`].
    owner: Vec<u16>,
}

/// The slot belongs to no shard.
pub const NO_SHARD: u16 = u16::MAX;

impl Map {
    fn standalone(seed: &Arc<Node>) -> Map {
        let primary = MapNode { node: seed.clone(), id: String::new(), health: Health::Online, offset: None };
        let shard =
            MapShard { slots: vec![(0, (slot::SLOTS - 1) as u16)], primary: Some(primary), replicas: Vec::new() };
        Map { kind: Kind::Standalone, epoch: 0, shards: vec![shard], owner: Vec::new() }
    }

    /// The node every command goes to when one serves every key: a standalone server, a
    /// sentinel's primary.
    pub fn single(&self) -> Option<&Arc<Node>> {
        match (self.kind, self.shards.as_slice()) {
            (Kind::Standalone | Kind::Sentinel, [shard]) => shard.primary.as_ref().map(|p| &p.node),
            _ => None,
        }
    }

    /// The shard serving `slot`.
    pub fn shard_of(&self, slot: u16) -> Option<&MapShard> {
        self.shards.get(self.shard_index(slot)?)
    }

    /// Which of [`Map::shards`] serves `slot`.
    pub fn shard_index(&self, slot: u16) -> Option<usize> {
        if self.kind != Kind::Cluster {
            return (!self.shards.is_empty()).then_some(0);
        }
        let i = usize::from(*self.owner.get(usize::from(slot))?);
        (i < self.shards.len()).then_some(i)
    }

    /// The primary serving `key`'s slot.
    pub fn primary_for(&self, key: &[u8]) -> Option<&Arc<Node>> {
        self.shard_of(slot::of(key)).and_then(|s| s.primary.as_ref()).map(|p| &p.node)
    }

    /// Every primary, in slot order.
    pub fn primaries(&self) -> Vec<Arc<Node>> {
        self.shards.iter().filter_map(|s| s.primary.as_ref().map(|p| p.node.clone())).collect()
    }

    /// Every node: each shard's primary, then its replicas.
    pub fn nodes(&self) -> Vec<&MapNode> {
        self.shards.iter().flat_map(|s| s.primary.iter().chain(&s.replicas)).collect()
    }

    /// The slot ranges no primary serves.
    pub fn uncovered(&self) -> Vec<(u16, u16)> {
        if self.kind != Kind::Cluster {
            return Vec::new();
        }
        slot::ranges_where(|s| {
            let i = self.owner.get(s).copied().unwrap_or(NO_SHARD);
            i == NO_SHARD || self.shards.get(usize::from(i)).is_none_or(|sh| sh.primary.is_none())
        })
    }

    /// The slots of the shard `node` serves (as its primary or a replica).
    pub fn slots_of(&self, node: &Arc<Node>) -> Vec<(u16, u16)> {
        self.shards
            .iter()
            .filter(|s| s.primary.iter().chain(&s.replicas).any(|n| Arc::ptr_eq(&n.node, node)))
            .flat_map(|s| s.slots.iter().copied())
            .collect()
    }

    /// Whether the two maps give every slot to the same primary, with the same nodes.
    fn same_as(&self, other: &Map) -> bool {
        type Shape = Vec<(Vec<(u16, u16)>, Option<String>, Vec<String>)>;
        let shape = |m: &Map| -> Shape {
            let mut v: Vec<_> = m
                .shards
                .iter()
                .map(|s| {
                    let mut replicas: Vec<String> = s.replicas.iter().map(|r| r.node.address.clone()).collect();
                    replicas.sort();
                    (s.slots.clone(), s.primary.as_ref().map(|p| p.node.address.clone()), replicas)
                })
                .collect();
            v.sort();
            v
        };
        self.kind == other.kind && shape(self) == shape(other)
    }
}

/// Announced node addresses mapped to the addresses sessiontop can reach them at
/// (`--node-address-map ANNOUNCED=REACHABLE`: NAT, SSH tunnels, port forwards).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressMap(Vec<(String, (String, u16))>);

/// Why an address map entry is not `HOST:PORT=HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not ANNOUNCED_HOST:PORT=REACHABLE_HOST:PORT")]
pub struct AddressMapError(String);

impl AddressMap {
    pub fn parse(entries: &[String]) -> Result<AddressMap, AddressMapError> {
        let mut map = Vec::with_capacity(entries.len());
        for entry in entries {
            let bad = || AddressMapError(entry.clone());
            let (from, to) = entry.split_once('=').ok_or_else(bad)?;
            let from_ok = split_host_port(from.trim()).ok_or_else(bad)?;
            let to = split_host_port(to.trim()).ok_or_else(bad)?;
            map.push((format!("{}:{}", from_ok.0, from_ok.1), to));
        }
        Ok(AddressMap(map))
    }

    /// Where to connect for a node announced at `host:port`.
    fn reach(&self, host: &str, port: u16) -> (String, u16) {
        let announced = format!("{host}:{port}");
        self.0.iter().find(|(from, _)| *from == announced).map_or((host.to_string(), port), |(_, to)| to.clone())
    }
}

/// What sessiontop's reads cost a target lately, over all its nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The share of one Redis core of the node that pays most, among those that could measure it.
    pub redis_cpu_share: Option<f64>,
    pub budget: String,
    /// Whether any node's pacer is holding back because its server is slow.
    pub backing_off: bool,
    /// How many nodes the figures are over.
    pub nodes: usize,
}

/// Where sessions are read from (`--read-from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    #[default]
    Primary,
    /// Only a replica whose link is up and whose lag is under the limit.
    Replica,
    /// Such a replica when there is one, else the primary.
    Auto,
}

/// Why text is not a `--read-from`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not primary, replica or auto")]
pub struct ReadFromError(String);

impl std::str::FromStr for ReadFrom {
    type Err = ReadFromError;
    fn from_str(text: &str) -> Result<Self, ReadFromError> {
        match text.to_ascii_lowercase().as_str() {
            "primary" | "master" => Ok(ReadFrom::Primary),
            "replica" | "replicas" => Ok(ReadFrom::Replica),
            "auto" => Ok(ReadFrom::Auto),
            _ => Err(ReadFromError(text.to_string())),
        }
    }
}

impl ReadFrom {
    pub fn name(self) -> &'static str {
        match self {
            ReadFrom::Primary => "primary",
            ReadFrom::Replica => "replica",
            ReadFrom::Auto => "auto",
        }
    }
}

/// How a target is to be reached beyond its URL: what kind it is, where announced nodes are,
/// its sentinels.
#[derive(Debug, Clone, Default)]
pub struct TopologySpec {
    pub choice: KindChoice,
    pub address_map: AddressMap,
    pub sentinel: Option<crate::conn::sentinel::SentinelSpec>,
    pub read_from: ReadFrom,
    /// The most bytes of replication stream a replica read from may be behind.
    pub replica_max_lag: u64,
}

/// A target's nodes.
#[derive(Debug)]
pub struct Topology {
    seed: Arc<Node>,
    template: Target,
    budget: Budget,
    choice: KindChoice,
    address_map: AddressMap,
    sentinels: Option<Arc<Sentinels>>,
    read_from: ReadFrom,
    replica_max_lag: u64,
    /// The replicas in sync enough to be read from, by address, as the last poll found them.
    readable: Mutex<Vec<String>>,
    map: RwLock<Arc<Map>>,
    /// Every node made so far (a cluster's are few), so that a node keeps its pacer and its
    /// count across refreshes, and can be found by the address a `MOVED` names.
    made: Mutex<Vec<Arc<Node>>>,
    /// Whether the kind is settled: a server is a cluster or not from its start on, so `INFO
    /// cluster` is asked once.
    decided: std::sync::atomic::AtomicBool,
}

/// Why the topology could not be read.
fn unreadable(why: impl std::fmt::Display) -> Failure {
    Failure::Protocol(format!("the cluster's topology: {why}"))
}

impl Topology {
    /// The topology as known before connecting: the node the target's URL names, paced by
    /// `budget`.
    pub fn new(target: &Target, budget: Budget) -> Topology {
        Topology::with(target, budget, TopologySpec::default())
    }

    /// As [`Topology::new`], told how to tell what the target is, where announced nodes are,
    /// and which sentinels name its primary.
    pub fn with(target: &Target, budget: Budget, spec: TopologySpec) -> Topology {
        let seed = Arc::new(Node::new(target.clone(), budget));
        Topology {
            map: RwLock::new(Arc::new(Map::standalone(&seed))),
            made: Mutex::new(vec![seed.clone()]),
            seed,
            template: target.clone(),
            budget,
            choice: spec.choice,
            address_map: spec.address_map,
            sentinels: spec.sentinel.map(|s| Arc::new(Sentinels::new(s))),
            read_from: spec.read_from,
            replica_max_lag: spec.replica_max_lag,
            readable: Mutex::new(Vec::new()),
            decided: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn read_from(&self) -> ReadFrom {
        self.read_from
    }

    pub fn replica_max_lag(&self) -> u64 {
        self.replica_max_lag
    }

    /// Says which replicas are in sync enough to be read from (the poller's judgement).
    pub fn set_readable(&self, addresses: Vec<String>) {
        if let Ok(mut readable) = self.readable.lock() {
            *readable = addresses;
        }
    }

    /// The node to read `shard`'s keys from: an in-sync replica when `--read-from` asks for
    /// one (with `auto`, else the primary); `None` when only a replica will do and none is in
    /// sync.
    pub fn read_node(&self, shard: &MapShard) -> Option<Arc<Node>> {
        let primary = shard.primary.as_ref().map(|p| p.node.clone());
        if self.read_from == ReadFrom::Primary {
            return primary;
        }
        let readable = self.readable.lock().map(|r| r.clone()).unwrap_or_default();
        let replica =
            shard.replicas.iter().find(|r| readable.iter().any(|a| a == r.node.address())).map(|r| r.node.clone());
        match (replica, self.read_from) {
            (Some(replica), _) => Some(replica),
            (None, ReadFrom::Auto) => primary,
            (None, _) => None,
        }
    }

    /// Adds a standalone primary's replicas (from its `INFO replication`) to the map, for
    /// reading from them.
    pub fn install_replicas(&self, replicas: &[String]) -> Result<(), TargetError> {
        let map = self.map();
        if map.kind != Kind::Standalone {
            return Ok(());
        }
        let Some(primary) = map.shards.first().and_then(|s| s.primary.clone()) else { return Ok(()) };
        let entry = |node: Arc<Node>| MapNode { node, id: String::new(), health: Health::Online, offset: None };
        let mut nodes = Vec::with_capacity(replicas.len());
        for address in replicas {
            if let Some((host, port)) = split_host_port(address) {
                nodes.push(entry(self.node_at(&host, port)?));
            }
        }
        let shard = MapShard { slots: vec![(0, (slot::SLOTS - 1) as u16)], primary: Some(primary), replicas: nodes };
        self.replace(Map { kind: Kind::Standalone, epoch: 0, shards: vec![shard], owner: Vec::new() });
        Ok(())
    }

    /// The target as its URL gave it: what every node's connection is made from.
    pub fn template(&self) -> &Target {
        &self.template
    }

    /// The sentinels that name the target's primary, when it has them.
    pub fn sentinels(&self) -> Option<&Arc<Sentinels>> {
        self.sentinels.as_ref()
    }

    /// Makes the primary the sentinels named (and its replicas) the map, with a new epoch if
    /// it changed.
    pub fn install_sentinel(&self, primary: &(String, u16), replicas: &[(String, u16)]) -> Result<(), TargetError> {
        let entry = |node: Arc<Node>| MapNode { node, id: String::new(), health: Health::Online, offset: None };
        let primary = entry(self.node_at(&primary.0, primary.1)?);
        let replicas = replicas.iter().map(|(h, p)| self.node_at(h, *p).map(entry)).collect::<Result<Vec<_>, _>>()?;
        let shard = MapShard { slots: vec![(0, (slot::SLOTS - 1) as u16)], primary: Some(primary), replicas };
        self.replace(Map { kind: Kind::Sentinel, epoch: 0, shards: vec![shard], owner: Vec::new() });
        Ok(())
    }

    /// Makes `next` the map, with the epoch after the current one if it differs.
    fn replace(&self, mut next: Map) {
        let mut current = match self.map.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        next.epoch = current.epoch;
        if !next.same_as(&current) {
            next.epoch += 1;
            tracing::info!(epoch = next.epoch, kind = next.kind.name(), shards = next.shards.len(), "topology changed");
        }
        *current = Arc::new(next);
    }

    /// The nodes to connect through to find out what the target is: the seed, then every node
    /// known to be of it (the seed may be down while the cluster is up).
    pub fn entry_points(&self) -> Vec<Arc<Node>> {
        let mut candidates = vec![self.seed.clone()];
        for node in self.map().nodes() {
            if !candidates.iter().any(|c| Arc::ptr_eq(c, &node.node)) {
                candidates.push(node.node.clone());
            }
        }
        candidates
    }

    /// Reads what the target is made of through `link` (a connection to `via`), and makes it
    /// the map if it changed.
    pub async fn refresh_through(&self, via: &Arc<Node>, link: &mut Link) -> Result<(), Failure> {
        if self.sentinels.is_some() {
            // The sentinels say what a sentinel's target is (see the router's `discover`).
            return Ok(());
        }
        use std::sync::atomic::Ordering;
        let decided = self.decided.load(Ordering::Relaxed);
        let kind = match (self.map().kind, self.choice) {
            (Kind::Cluster, _) | (_, KindChoice::Cluster) => Kind::Cluster,
            (Kind::Standalone | Kind::Sentinel, _) if decided => Kind::Standalone,
            (Kind::Standalone | Kind::Sentinel, KindChoice::Detect) => {
                match link.query::<String>(redis::cmd("INFO").arg("cluster")).await {
                    Ok(info) if crate::conn::cluster::cluster_enabled(&info) => Kind::Cluster,
                    Ok(_) => Kind::Standalone,
                    Err(f) if f.is_connection() => return Err(f),
                    // `INFO` denied: a standalone server unless told otherwise.
                    Err(_) => Kind::Standalone,
                }
            }
        };
        self.decided.store(true, Ordering::Relaxed);
        if kind == Kind::Standalone {
            return Ok(());
        }
        let shards = self.read_shards(via, link).await?;
        self.install(shards)
    }

    /// `CLUSTER SHARDS`, or `CLUSTER SLOTS` where the server is older than 7.0.
    async fn read_shards(&self, via: &Arc<Node>, link: &mut Link) -> Result<Vec<Shard>, Failure> {
        let tls = self.template.is_tls();
        let asked = split_host_port(via.address()).map(|(h, _)| h).unwrap_or_default();
        match link.query::<redis::Value>(redis::cmd("CLUSTER").arg("SHARDS")).await {
            Ok(reply) => crate::conn::cluster::from_shards(reply, tls, &asked).map_err(unreadable),
            Err(Failure::Unknown { .. }) => {
                let reply = link.query::<redis::Value>(redis::cmd("CLUSTER").arg("SLOTS")).await?;
                crate::conn::cluster::from_slots(reply, &asked).map_err(unreadable)
            }
            Err(f) => Err(f),
        }
    }

    /// Makes `shards` the map, with a new epoch if anything changed.
    fn install(&self, mut shards: Vec<Shard>) -> Result<(), Failure> {
        // In slot order, whatever order the cluster answered in.
        shards.sort_by_key(|s| s.slots.iter().map(|(a, _)| *a).min().unwrap_or(u16::MAX));
        let mut owner = vec![NO_SHARD; slot::SLOTS];
        let mut mapped = Vec::with_capacity(shards.len());
        for shard in shards {
            let mut primary = None;
            let mut replicas = Vec::new();
            for announced in &shard.nodes {
                let node = self.node_for(announced).map_err(unreadable)?;
                let entry =
                    MapNode { node, id: announced.id.clone(), health: announced.health, offset: announced.offset };
                match announced.role {
                    Role::Primary if primary.is_none() => primary = Some(entry),
                    _ => replicas.push(entry),
                }
            }
            if shard.slots.is_empty() && primary.is_none() && replicas.is_empty() {
                continue;
            }
            let index = mapped.len() as u16;
            for &(first, last) in &shard.slots {
                for s in first..=last.min((slot::SLOTS - 1) as u16) {
                    owner[usize::from(s)] = index;
                }
            }
            mapped.push(MapShard { slots: shard.slots, primary, replicas });
        }
        self.replace(Map { kind: Kind::Cluster, epoch: 0, shards: mapped, owner });
        Ok(())
    }

    /// The node announced as `announced`, made the first time it is met.
    fn node_for(&self, announced: &Announced) -> Result<Arc<Node>, TargetError> {
        self.node_at(&announced.host, announced.port)
    }

    /// The node at `host:port` as the cluster names it (a `MOVED` or `ASK` reply, or the map).
    pub fn node_at(&self, host: &str, port: u16) -> Result<Arc<Node>, TargetError> {
        let address = format!("{host}:{port}");
        let mut made =
            self.made.lock().map_err(|_| TargetError::BadUrl { url: address.clone(), reason: "lock".into() })?;
        if let Some(node) = made.iter().find(|n| n.address == address) {
            return Ok(node.clone());
        }
        let (reach_host, reach_port) = self.address_map.reach(host, port);
        let mut node = Node::new(self.template.at(&reach_host, reach_port)?, self.budget);
        node.address = address;
        let node = Arc::new(node);
        made.push(node.clone());
        Ok(node)
    }

    /// What the target is made of now.
    pub fn map(&self) -> Arc<Map> {
        match self.map.read() {
            Ok(map) => map.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.map().kind
    }

    /// Every node of the map (primaries and replicas); the seed alone before a cluster is found.
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.map().nodes().into_iter().map(|n| n.node.clone()).collect()
    }

    /// The node the target's URL names, through which the topology is discovered (and, for a
    /// standalone server, the node every command goes to).
    pub fn seed(&self) -> &Arc<Node> {
        &self.seed
    }

    /// Every node made so far: the map's, and the seed (through which a cluster was found).
    fn all_made(&self) -> Vec<Arc<Node>> {
        self.made.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Commands sent to every node since the start.
    pub fn commands_sent(&self) -> u64 {
        self.all_made().iter().map(|n| n.load.total()).sum()
    }

    /// What sessiontop's commands cost the target lately: the share of the node that pays
    /// most (each node has the whole budget of its own core).
    pub fn load_report(&self) -> LoadReport {
        let mut share: Option<f64> = None;
        let mut budget = String::new();
        let mut backing_off = false;
        let nodes = self.nodes();
        for node in &nodes {
            if let Ok(p) = node.pacer.lock() {
                if let Some(s) = p.share() {
                    share = Some(share.map_or(s, |m: f64| m.max(s)));
                }
                budget = p.budget().to_string();
                backing_off |= p.backing_off();
            }
        }
        LoadReport { redis_cpu_share: share, budget, backing_off, nodes: nodes.len() }
    }

    /// The share of one Redis core the target's commands used from each node's first look at
    /// `INFO commandstats` to its last (what a one-shot command cost while it ran), summed over
    /// the nodes.
    pub fn share_overall(&self) -> Option<f64> {
        self.all_made().iter().filter_map(|n| n.pacer.lock().ok().and_then(|p| p.share_overall())).reduce(|a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::cluster::{Announced, Health, Role, Shard};

    fn target() -> Target {
        let spec = crate::conn::target::TargetSpec { url: "redis://seed.example:7000".into(), ..Default::default() };
        Target::from_spec(&spec).unwrap()
    }

    fn node(id: &str, host: &str, port: u16, role: Role) -> Announced {
        Announced { id: id.into(), host: host.into(), port, role, offset: None, health: Health::Online }
    }

    #[test]
    fn announced_addresses_are_reached_where_the_map_says() {
        let map = AddressMap::parse(&["10.0.0.1:6379=127.0.0.1:16379".into(), "[::1]:1=h:2".into()]).unwrap();
        assert_eq!(map.reach("10.0.0.1", 6379), ("127.0.0.1".to_string(), 16379));
        assert_eq!(map.reach("10.0.0.2", 6379), ("10.0.0.2".to_string(), 6379), "others as announced");
        assert_eq!(map.reach("::1", 1), ("h".to_string(), 2));
        for bad in ["10.0.0.1:6379", "a=b", "h:1=h:x", ":1=h:2"] {
            assert!(AddressMap::parse(&[bad.into()]).is_err(), "{bad}");
        }
        // A node keeps the name the cluster gives it (for MOVED), and is reached at the mapped one.
        let topology =
            Topology::with(&target(), Budget::Unlimited, TopologySpec { address_map: map, ..TopologySpec::default() });
        let n = topology.node_at("10.0.0.1", 6379).unwrap();
        assert_eq!(n.address(), "10.0.0.1:6379");
        assert_eq!(n.target.address(), "127.0.0.1:16379");
        assert!(Arc::ptr_eq(&n, &topology.node_at("10.0.0.1", 6379).unwrap()), "one node for one address");
    }

    #[test]
    fn a_cluster_map_gives_each_slot_its_primary_and_a_new_epoch_only_on_change() {
        let topology = Topology::new(&target(), Budget::Unlimited);
        let shards = vec![
            Shard { slots: vec![(8192, 16383)], nodes: vec![node("b", "h", 2, Role::Primary)] },
            Shard {
                slots: vec![(0, 8000)],
                nodes: vec![node("a", "h", 1, Role::Primary), node("r", "h", 3, Role::Replica)],
            },
        ];
        topology.install(shards.clone()).unwrap();
        let map = topology.map();
        assert_eq!((map.kind, map.epoch), (Kind::Cluster, 1));
        assert_eq!(map.primaries().iter().map(|n| n.address().to_string()).collect::<Vec<_>>(), ["h:1", "h:2"]);
        assert_eq!(
            map.primary_for(b"{x}").map(|n| n.address().to_string()),
            Some(format!("h:{}", if slot::of(b"x") <= 8000 { 1 } else { 2 }))
        );
        assert_eq!(map.uncovered(), vec![(8001, 8191)]);
        assert_eq!(map.slots_of(&topology.node_at("h", 3).unwrap()), vec![(0, 8000)], "a replica's are its shard's");
        topology.install(shards).unwrap();
        assert_eq!(topology.map().epoch, 1, "the same map is no change");
        topology
            .install(vec![Shard { slots: vec![(0, 16383)], nodes: vec![node("b", "h", 2, Role::Primary)] }])
            .unwrap();
        assert_eq!(topology.map().epoch, 2);
        assert!(topology.map().uncovered().is_empty());
    }
}
