//! What a target is made of: its nodes, each a Redis server process with its own connections,
//! its own `INFO commandstats` and CPU, so its own [`Pacer`] and load account, and its own
//! keyspace to walk. A target's figures (commands sent, the share of a core its reads cost) are
//! sums over its nodes.
//!
//! A [`Topology`] is made from the target before connecting, with the node its URL names, and
//! [`Topology::discover`] connects and finds out what the target is. Every target is one
//! standalone server today, a topology of one node; a node's pacer and load account outlive
//! reconnects, so what was learnt of the server's costs is kept.
//!
//! How many connections sessiontop opens to a node is said once, by [`LinkUse`].

use std::sync::{Arc, Mutex};

use crate::conn::info::ServerStats;
use crate::conn::link::{Failure, Link, LoadCounter};
use crate::conn::pace::{Budget, Pacer};
use crate::conn::target::Target;

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
}

/// What sessiontop's reads cost a target lately, over all its nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The share of one Redis core, summed over the nodes that could measure it.
    pub redis_cpu_share: Option<f64>,
    pub budget: String,
    /// Whether any node's pacer is holding back because its server is slow.
    pub backing_off: bool,
}

/// A target's nodes.
#[derive(Debug)]
pub struct Topology {
    kind: Kind,
    nodes: Vec<Arc<Node>>,
}

impl Topology {
    /// The topology as known before connecting: the node the target's URL names, paced by
    /// `budget`.
    pub fn new(target: &Target, budget: Budget) -> Topology {
        Topology { kind: Kind::Standalone, nodes: vec![Arc::new(Node::new(target.clone(), budget))] }
    }

    /// Connects to the target and finds out what it is made of; returns the connection for
    /// `use_` to the node connected through. A standalone server is its own only node.
    pub async fn discover(&self, use_: LinkUse) -> Result<Link, Failure> {
        self.seed().connect(use_).await
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Every node.
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The node the target's URL names, through which the topology is discovered (and, for a
    /// standalone server, the node every command goes to).
    pub fn seed(&self) -> &Arc<Node> {
        // `new` makes the seed node, and nothing removes it.
        &self.nodes[0]
    }

    /// Commands sent to every node since the start.
    pub fn commands_sent(&self) -> u64 {
        self.nodes.iter().map(|n| n.load.total()).sum()
    }

    /// What sessiontop's commands cost the target lately.
    pub fn load_report(&self) -> LoadReport {
        let mut share: Option<f64> = None;
        let mut budget = String::new();
        let mut backing_off = false;
        for node in &self.nodes {
            if let Ok(p) = node.pacer.lock() {
                if let Some(s) = p.share() {
                    share = Some(share.unwrap_or(0.0) + s);
                }
                budget = p.budget().to_string();
                backing_off |= p.backing_off();
            }
        }
        LoadReport { redis_cpu_share: share, budget, backing_off }
    }

    /// The share of one Redis core the target's commands used from each node's first look at
    /// `INFO commandstats` to its last (what a one-shot command cost while it ran).
    pub fn share_overall(&self) -> Option<f64> {
        self.nodes.iter().filter_map(|n| n.pacer.lock().ok().and_then(|p| p.share_overall())).reduce(|a, b| a + b)
    }
}
