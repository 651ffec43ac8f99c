//! A target's connections for one use ([`LinkUse`]), one per node, and the routing of each
//! command to the node that serves it. On a standalone server everything goes to its one
//! connection, as it is. On a cluster a keyed command goes to the primary of its key's slot; a
//! pipeline is split into one pipeline per node, sent to all of them at once, and its replies
//! put back in order; a command with several keys (`EXISTS`, `UNLINK`) is split per slot and
//! its counts summed. A `MOVED` reply refreshes the map and sends what moved again to its new
//! node (never the whole pipeline blindly); an `ASK` sends it, after `ASKING`, to the node
//! named. Commands without a key go to the connection they are sent on, explicitly:
//! [`Router::link`]. The census's reads are built as a [`Batch`], whose commands are placed in
//! their node's pipeline as they are added: no second pass over them, no copies.
//!
//! Never sends a command anywhere but to the node its key's slot names (or `MOVED`/`ASK` named).

use std::sync::Arc;

use redis::{Cmd, FromRedisValue, Pipeline};

use crate::conn::link::{Failure, Link, Reply};
use crate::conn::pace::Kind;
use crate::conn::topology::{LinkUse, Map, MapShard, Node, Topology, split_host_port};

/// How many times a command is sent on after `MOVED` or `ASK` before its last reply is kept.
const MAX_REDIRECTS: usize = 3;

/// A connection held, and what it had sent when its work was last charged to its node's pacer.
struct Held {
    node: Arc<Node>,
    link: Link,
    charged: [u64; Kind::ALL.len()],
}

/// A target's connections for one use, opened as commands need them. Clones share the
/// connections (each is multiplexed), so tasks that work side by side still hold one
/// connection per node for the use.
#[derive(Clone)]
pub struct Router {
    topology: Arc<Topology>,
    use_: LinkUse,
    held: Arc<tokio::sync::Mutex<Vec<Held>>>,
    /// The sentinels' announced switches of primary this router has followed.
    switches: Arc<std::sync::atomic::AtomicU64>,
    /// Whether reads go where `--read-from` says (else to the primary, as writes do).
    replica_reads: bool,
    /// Whether each node's round trips are told to its pacer (see [`Router::observing`]).
    observes: bool,
}

/// What part of one command of a pipeline goes where.
struct Part {
    /// The command of the pipeline this is (a part of).
    index: usize,
    /// A command of its own when the pipeline's had keys in several slots (this slot's share
    /// of them); else the pipeline's command itself is sent.
    own: Option<Box<Cmd>>,
    /// The slot of its keys; `None` for a command without a key.
    slot: Option<u16>,
    /// Whether it changes data (and so goes to a primary, however reads are routed).
    write: bool,
    /// The node an `ASK` sent it to.
    asking: Option<Arc<Node>>,
}

/// Commands to send together, each placed in the pipeline of the node that serves its key's
/// slot as it is added (a command with keys in several slots split per slot there), so that
/// sending them needs no second look at each command and no copy of any. On one server, one
/// pipeline as it is. Built by [`Router::batch`], sent by [`Router::send`].
pub struct Batch {
    router: Router,
    map: Arc<Map>,
    home: Arc<Node>,
    /// One server, read where it is written: one pipeline, no parts.
    one: bool,
    groups: Vec<Group>,
    /// Commands added.
    count: usize,
    /// Parts no node serves, with why.
    unplaced: Vec<(Part, Reply)>,
    /// The group each shard's reads and writes went to, so that a command's node is looked
    /// up once per shard, not once per command.
    by_shard: Vec<[Option<u32>; 2]>,
}

/// One node's pipeline of a batch.
struct Group {
    node: Arc<Node>,
    pipe: Pipeline,
    /// What each command of the pipeline is (on a cluster).
    parts: Vec<Part>,
    by_kind: [u64; Kind::ALL.len()],
}

impl Group {
    fn new(node: Arc<Node>) -> Group {
        Group { node, pipe: crate::conn::link::pipe(), parts: Vec::new(), by_kind: [0; Kind::ALL.len()] }
    }

    fn push(&mut self, part: Option<Part>, cmd: Cmd, kind: Kind) {
        self.by_kind[kind as usize] += 1;
        self.parts.extend(part);
        self.pipe.add_command(cmd);
    }
}

impl Batch {
    /// Adds a command; its reply comes back in the place of the order it was added in.
    pub fn add(&mut self, cmd: Cmd) {
        let index = self.count;
        self.count += 1;
        let kind = crate::conn::link::kind_of(&cmd);
        if self.one {
            if let Some(group) = self.groups.first_mut() {
                group.push(None, cmd, kind);
            }
            return;
        }
        match parts_of(&cmd, index) {
            Parts::Whole(part) => self.place(part, cmd, kind),
            Parts::PerSlot(parts) => {
                for mut part in parts {
                    if let Some(own) = part.own.take() {
                        self.place(part, *own, kind);
                    }
                }
            }
        }
    }

    /// Adds a command that reads `key` and no other, of `kind`: placed by `key` without
    /// looking into the command (what the census's reads are).
    pub fn add_read(&mut self, cmd: Cmd, key: &[u8], kind: Kind) {
        let index = self.count;
        self.count += 1;
        if self.one {
            if let Some(group) = self.groups.first_mut() {
                group.push(None, cmd, kind);
            }
            return;
        }
        let part = Part { index, own: None, slot: Some(crate::conn::slot::of(key)), write: false, asking: None };
        self.place(part, cmd, kind);
    }

    /// Adds `name` over `keys`, a command whose reply is a count of them (`EXISTS`): on a
    /// cluster one command per slot of its keys, built as such rather than split after, their
    /// counts summed into its one reply.
    pub fn add_count(&mut self, name: &[u8], keys: &[&[u8]], kind: Kind) {
        if self.one || keys.is_empty() {
            return self.add(count_cmd(name, keys));
        }
        let index = self.count;
        self.count += 1;
        let write = is_write(name);
        let mut slots: Vec<(u16, Cmd)> = Vec::with_capacity(keys.len());
        for key in keys {
            let slot = crate::conn::slot::of(key);
            match slots.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, cmd)) => {
                    cmd.arg(*key);
                }
                None => {
                    let mut cmd = Cmd::with_capacity(2, name.len() + key.len());
                    cmd.arg(name).arg(*key);
                    slots.push((slot, cmd));
                }
            }
        }
        for (slot, cmd) in slots {
            self.place(Part { index, own: None, slot: Some(slot), write, asking: None }, cmd, kind);
        }
    }

    fn place(&mut self, part: Part, cmd: Cmd, kind: Kind) {
        let shard = part.slot.and_then(|slot| self.map.shard_index(slot)).filter(|_| part.asking.is_none());
        let known = shard.and_then(|s| self.by_shard.get(s)?[usize::from(part.write)]);
        if let Some(group) = known.and_then(|g| self.groups.get_mut(g as usize)) {
            group.push(Some(part), cmd, kind);
            return;
        }
        let write = part.write;
        let node = match self.router.node_of(&self.map, &self.home, &part) {
            Ok(node) => node,
            Err(failure) => return self.unplaced.push((part, Err(failure))),
        };
        let g = match self.groups.iter().position(|g| Arc::ptr_eq(&g.node, &node)) {
            Some(g) => g,
            None => {
                self.groups.push(Group::new(node));
                self.groups.len() - 1
            }
        };
        if let Some(known) = shard.and_then(|s| self.by_shard.get_mut(s)) {
            known[usize::from(write)] = Some(g as u32);
        }
        if let Some(group) = self.groups.get_mut(g) {
            group.push(Some(part), cmd, kind);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The commands to send (a command split per slot counts once per slot).
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.pipe.len()).sum()
    }
}

/// What a batch's commands are built into: a [`Batch`], or a plain pipeline.
pub trait Commands {
    fn push(&mut self, cmd: Cmd);

    /// A command that reads `key` and no other, of `kind`.
    fn push_read(&mut self, cmd: Cmd, _key: &[u8], _kind: Kind) {
        self.push(cmd);
    }

    /// `name` over `keys`, a command whose reply is a count of them (`EXISTS`).
    fn push_count(&mut self, name: &[u8], keys: &[&[u8]], _kind: Kind) {
        self.push(count_cmd(name, keys));
    }
}

/// `name` over every one of `keys`, whole.
fn count_cmd(name: &[u8], keys: &[&[u8]]) -> Cmd {
    let mut cmd = Cmd::with_capacity(keys.len() + 1, name.len() + keys.iter().map(|k| k.len()).sum::<usize>());
    cmd.arg(name);
    for key in keys {
        cmd.arg(*key);
    }
    cmd
}

impl Commands for Batch {
    fn push(&mut self, cmd: Cmd) {
        self.add(cmd);
    }

    fn push_read(&mut self, cmd: Cmd, key: &[u8], kind: Kind) {
        self.add_read(cmd, key, kind);
    }

    fn push_count(&mut self, name: &[u8], keys: &[&[u8]], kind: Kind) {
        self.add_count(name, keys, kind);
    }
}

impl Commands for Pipeline {
    fn push(&mut self, cmd: Cmd) {
        self.add_command(cmd);
    }
}

impl Router {
    fn new(topology: Arc<Topology>, use_: LinkUse) -> Router {
        let switches = Arc::new(std::sync::atomic::AtomicU64::new(topology.sentinels().map_or(0, |s| s.switches())));
        let replica_reads = topology.read_from() != crate::conn::topology::ReadFrom::Primary;
        Router { topology, use_, held: Arc::default(), switches, replica_reads, observes: false }
    }

    /// Connects to the target (through the seed, or any node known to be of it when the seed
    /// cannot be reached), finds out what it is made of, and returns a router for `use_` with
    /// that first connection in it.
    pub async fn discover(topology: &Arc<Topology>, use_: LinkUse) -> Result<Router, Failure> {
        if let Some(sentinels) = topology.sentinels() {
            let (node, link) = resolve(topology, sentinels, use_).await?;
            let mut router = Router::new(topology.clone(), use_);
            router.adopt(node, link);
            return Ok(router);
        }
        let mut last = None;
        for node in topology.entry_points() {
            match node.connect(use_).await {
                Ok(mut link) => {
                    topology.refresh_through(&node, &mut link).await?;
                    if topology.read_from() != crate::conn::topology::ReadFrom::Primary
                        && topology.map().kind == crate::conn::topology::Kind::Standalone
                    {
                        // A standalone primary's replicas are named by its `INFO replication`.
                        let info: String = link.query(redis::cmd("INFO").arg("replication")).await.unwrap_or_default();
                        let replicas = crate::conn::info::ServerStats::from_info(&info).replicas;
                        topology.install_replicas(&replicas).map_err(|e| Failure::Connection(e.to_string()))?;
                    }
                    let mut router = Router::new(topology.clone(), use_);
                    router.adopt(node, link);
                    return Ok(router);
                }
                Err(f @ Failure::Auth(_)) => return Err(f),
                Err(f) => last = Some(f),
            }
        }
        Err(last.unwrap_or_else(|| Failure::Connection("no node to connect to".into())))
    }

    /// Keeps `link`, a connection to `node`, for the commands that go there.
    fn adopt(&mut self, node: Arc<Node>, link: Link) {
        let held = Arc::get_mut(&mut self.held).map(tokio::sync::Mutex::get_mut);
        if let Some(held) = held {
            held.retain(|h| !Arc::ptr_eq(&h.node, &node));
            held.push(Held { node, link, charged: [0; Kind::ALL.len()] });
        }
    }

    /// Keeps `link` in the connections every clone shares.
    async fn adopt_shared(&self, node: Arc<Node>, link: Link) {
        let mut held = self.held.lock().await;
        held.retain(|h| !Arc::ptr_eq(&h.node, &node));
        held.push(Held { node, link, charged: [0; Kind::ALL.len()] });
    }

    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// The connection to `node` (a handle on it: it is multiplexed), opened if it is not yet.
    pub async fn link(&self, node: &Arc<Node>) -> Result<Link, Failure> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.iter().find(|h| Arc::ptr_eq(&h.node, node)) {
            return Ok(h.link.clone());
        }
        let mut link = node.connect(self.use_).await?;
        let map = self.topology.map();
        if map.kind == crate::conn::topology::Kind::Cluster && !map.primaries().iter().any(|p| Arc::ptr_eq(p, node)) {
            // A cluster's replica serves keyed reads only to a connection that asked to read
            // from it; refused (a managed service), it answers with MOVED, which is followed.
            let _ = link.query::<redis::Value>(&redis::cmd("READONLY")).await;
        }
        held.push(Held { node: node.clone(), link: link.clone(), charged: [0; Kind::ALL.len()] });
        Ok(link)
    }

    /// The node each shard's keys are read from: the one `--read-from` picks when this router
    /// follows it (the primary when it picks none), else the primary.
    pub fn read_nodes(&self) -> Vec<Arc<Node>> {
        let map = self.topology.map();
        map.shards
            .iter()
            .filter_map(|shard| {
                let primary = shard.primary.as_ref().map(|p| p.node.clone());
                if self.replica_reads { self.topology.read_node(shard).or(primary) } else { primary }
            })
            .collect()
    }

    /// This router telling each node's pacer how long its part of every round trip took (the
    /// census's batches: paced work that backs off when a node is slow), sharing the connections.
    pub fn observing(&self) -> Router {
        Router { observes: true, ..self.clone() }
    }

    /// This router reading from the primary whatever `--read-from` says (sharing the
    /// connections): for writes, what they read first and what they read back.
    pub fn primary_only(&self) -> Router {
        Router { replica_reads: false, ..self.clone() }
    }

    /// The sentinels' announced switches this router has followed.
    pub fn switches_seen(&self) -> u64 {
        self.switches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Notes that the switches announced so far are being followed.
    pub fn saw_switches(&self, n: u64) {
        self.switches.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The nodes connected to.
    pub async fn connected(&self) -> Vec<Arc<Node>> {
        self.held.lock().await.iter().map(|h| h.node.clone()).collect()
    }

    /// The node commands without a key go to when no node is named: the only node of a
    /// standalone server, a cluster's first primary.
    pub fn home(&self) -> Arc<Node> {
        let map = self.topology.map();
        if let Some(node) = map.single() {
            return node.clone();
        }
        map.primaries().into_iter().next().unwrap_or_else(|| self.topology.seed().clone())
    }

    /// The node that serves `key` (the primary of its slot), or home when no node does.
    pub fn node_for(&self, key: &[u8]) -> Arc<Node> {
        self.topology.map().primary_for(key).cloned().unwrap_or_else(|| self.home())
    }

    /// The keys in the selected database over every primary (`DBSIZE` on each); `None` when
    /// a node will not say.
    pub async fn keyspace_size(&self) -> Option<u64> {
        let mut total = 0;
        for node in self.topology.map().primaries() {
            total += self.link(&node).await.ok()?.query::<u64>(&redis::cmd("DBSIZE")).await.ok()?;
        }
        Some(total)
    }

    /// Reads the map again: a cluster's through a primary connected to (else any node of the
    /// map that answers); a sentinel target's by asking the sentinels, connecting to the primary
    /// they name. Nothing to do for a standalone server.
    pub async fn refresh(&self) -> Result<(), Failure> {
        if let Some(sentinels) = self.topology.sentinels() {
            let (node, link) = resolve(&self.topology, sentinels, self.use_).await?;
            self.adopt_shared(node, link).await;
            self.forget_departed().await;
            return Ok(());
        }
        let map = self.topology.map();
        if map.single().is_some() {
            return Ok(());
        }
        let connected = self.connected().await;
        let mut candidates: Vec<Arc<Node>> = map.primaries();
        candidates.sort_by_key(|n| !connected.iter().any(|c| Arc::ptr_eq(c, n)));
        candidates.extend(map.nodes().into_iter().map(|n| n.node.clone()));
        let mut last = Failure::Connection("no node of the cluster answers".into());
        for node in candidates {
            match self.link(&node).await {
                Ok(mut link) => match self.topology.refresh_through(&node, &mut link).await {
                    Ok(()) => return Ok(()),
                    Err(f) => last = f,
                },
                Err(f) => last = f,
            }
        }
        Err(last)
    }

    /// Drops the connection to `node` (after it failed), so that the next command opens another.
    pub async fn forget(&self, node: &Arc<Node>) {
        self.held.lock().await.retain(|h| !Arc::ptr_eq(&h.node, node));
    }

    /// Closes the connections to nodes no longer in the map.
    pub async fn forget_departed(&self) {
        let nodes = self.topology.nodes();
        self.held.lock().await.retain(|h| nodes.iter().any(|n| Arc::ptr_eq(n, &h.node)));
    }

    /// Charges each node's pacer for what its connection sent since the last charge, without
    /// waiting for the budget (the page poll, the inspector, writes: see [`Node::charge`]).
    pub async fn charge(&self) {
        for held in self.held.lock().await.iter_mut() {
            held.node.charge(&held.link, &mut held.charged);
        }
    }

    /// Tells `node`'s pacer how long `commands` took it, when this router's round trips pace.
    fn observe(&self, node: &Arc<Node>, commands: usize, took: std::time::Duration) {
        if self.observes
            && let Ok(mut p) = node.pacer().lock()
        {
            p.observe(commands as u64, took);
        }
    }

    /// Reads `INFO commandstats` into each connected node's pacer when it is due (see
    /// [`Node::sample_costs`]).
    pub async fn sample_costs(&self) -> Result<(), Failure> {
        let held: Vec<(Arc<Node>, Link)> =
            self.held.lock().await.iter().map(|h| (h.node.clone(), h.link.clone())).collect();
        for (node, mut link) in held {
            node.sample_costs(&mut link).await?;
        }
        Ok(())
    }

    /// Reads `INFO commandstats` into the pacer of every primary now (a one-shot command's
    /// first and last look: see [`Node::sample_costs_now`]).
    pub async fn sample_costs_now(&self) -> Result<(), Failure> {
        for node in self.topology.map().primaries() {
            let mut link = self.link(&node).await?;
            node.sample_costs_now(&mut link).await?;
        }
        Ok(())
    }

    /// A batch to fill with commands, each placed in the pipeline of its node as it is added
    /// (see [`Batch`]); sent with [`Router::send`].
    pub fn batch(&self) -> Batch {
        let map = self.topology.map();
        let home = self.home();
        let one = map.single().is_some() && !self.replica_reads;
        let groups = if one { vec![Group::new(home.clone())] } else { Vec::new() };
        let by_shard = vec![[None; 2]; map.shards.len()];
        Batch { router: self.clone(), map, home, one, groups, count: 0, unplaced: Vec::new(), by_shard }
    }

    /// The nodes a batch's commands go to, each with how many and what they will cost it by
    /// its pacer's book (each node's pacer asked once).
    pub fn costs(&self, batch: &Batch) -> Vec<(Arc<Node>, f64, u64)> {
        batch
            .groups
            .iter()
            .map(|group| {
                let cost = group
                    .node
                    .pacer()
                    .lock()
                    .map(|p| Kind::ALL.iter().map(|k| p.cost_us(*k, group.by_kind[*k as usize], 1)).sum())
                    .unwrap_or(0.0);
                (group.node.clone(), cost, group.by_kind.iter().sum())
            })
            .collect()
    }

    /// Sends a batch, one pipeline per node, all at once, and returns each command's own reply
    /// in the order they were added. What a node sends on elsewhere (`MOVED`, `ASK`) is sent
    /// there, as [`Router::pipeline`] does.
    pub async fn send(&self, batch: Batch) -> Result<Vec<Reply>, Failure> {
        let Batch { groups, count, unplaced, one, .. } = batch;
        if one {
            let Some(group) = groups.into_iter().next() else { return Ok(Vec::new()) };
            if group.pipe.is_empty() {
                return Ok(Vec::new());
            }
            let sent = std::time::Instant::now();
            let replies = self.link(&group.node).await?.pipeline_of_kinds(&group.pipe, &group.by_kind).await?;
            self.observe(&group.node, group.pipe.len(), sent.elapsed());
            return Ok(replies);
        }
        let mut replies_of: Vec<Option<Reply>> = (0..count).map(|_| None).collect();
        let mut sends = Vec::with_capacity(groups.len());
        for group in &groups {
            sends.push((self.link(&group.node).await?, group));
        }
        let results = futures_util::future::join_all(sends.into_iter().map(|(mut link, group)| async move {
            let sent = std::time::Instant::now();
            let result = link.pipeline_of_kinds(&group.pipe, &group.by_kind).await;
            (result, sent.elapsed())
        }))
        .await;
        let mut sent = unplaced;
        for (group, (result, took)) in groups.into_iter().zip(results) {
            let replies = match result {
                Ok(replies) => replies,
                Err(f) => {
                    if f.is_connection() {
                        self.forget(&group.node).await;
                    }
                    return Err(f);
                }
            };
            self.observe(&group.node, group.pipe.len(), took);
            let mut cmds = group.pipe.cmd_iter();
            for (mut part, reply) in group.parts.into_iter().zip(replies) {
                let cmd = cmds.next();
                if redirect(&reply).is_none() {
                    merge(&mut replies_of[part.index], reply);
                    continue;
                }
                // A part that is sent on needs its command of its own.
                part.own = cmd.map(|c| Box::new(c.clone()));
                sent.push((part, reply));
            }
        }
        if !sent.is_empty() {
            self.follow(sent, &mut replies_of).await?;
        }
        let replies = replies_of;
        Ok(replies.into_iter().map(|r| r.unwrap_or_else(|| Err(Failure::Protocol("no reply".into())))).collect())
    }

    /// Sends one command to the node of its key (or home, without one).
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Failure> {
        let mut pipe = crate::conn::link::pipe();
        pipe.add_command(cmd.clone());
        let reply = self.pipeline(&pipe).await?.into_iter().next().unwrap_or(Err(Failure::Protocol("reply".into())))?;
        T::from_redis_value(reply).map_err(|e| Failure::Protocol(format!("{} ({e})", first_word(cmd))))
    }

    /// Sends a pipeline (built with [`crate::conn::link::pipe`]) and returns each command's own
    /// reply, in order. On a cluster, one pipeline per node, all at once.
    pub async fn pipeline(&self, pipe: &Pipeline) -> Result<Vec<Reply>, Failure> {
        let map = self.topology.map();
        if let Some(node) = map.single().filter(|_| !self.replica_reads) {
            // One server: its connection failing is the target's, which its owner reconnects.
            let node = node.clone();
            let sent = std::time::Instant::now();
            let replies = self.link(&node).await?.pipeline(pipe).await?;
            self.observe(&node, pipe.len(), sent.elapsed());
            return Ok(replies);
        }
        // On a cluster, a batch of the same commands.
        let mut batch = self.batch();
        for cmd in pipe.cmd_iter() {
            batch.add(cmd.clone());
        }
        self.send(batch).await
    }

    /// Puts each part's reply in its command's place, and sends on what a node said to send
    /// elsewhere: after a `MOVED` (the map read again first) to its slot's node now, after an
    /// `ASK` to the node named, at most [`MAX_REDIRECTS`] times.
    async fn follow(&self, mut sent: Vec<(Part, Reply)>, replies: &mut [Option<Reply>]) -> Result<(), Failure> {
        for round in 0..=MAX_REDIRECTS {
            let mut pending = Vec::new();
            let mut moved = false;
            for (mut part, reply) in std::mem::take(&mut sent) {
                match redirect(&reply) {
                    Some(Redirect::Moved) if round < MAX_REDIRECTS => {
                        moved = true;
                        part.asking = None;
                        pending.push(part);
                    }
                    Some(Redirect::Ask(host, port)) if round < MAX_REDIRECTS => {
                        part.asking = self.topology.node_at(&host, port).ok();
                        pending.push(part);
                    }
                    _ => merge(&mut replies[part.index], reply),
                }
            }
            if pending.is_empty() {
                break;
            }
            if moved {
                self.refresh().await?;
            }
            let map = self.topology.map();
            sent = self.send_parts(&map, pending).await?;
        }
        Ok(())
    }

    /// Sends each part to its node (one pipeline per node, all at once) and returns each part
    /// with its reply.
    async fn send_parts(&self, map: &Map, parts: Vec<Part>) -> Result<Vec<(Part, Reply)>, Failure> {
        let home = self.home();
        let mut groups: Vec<(Arc<Node>, Vec<Part>)> = Vec::new();
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            // A part sent on carries its own command (see `Router::send`).
            if part.own.is_none() {
                out.push((part, Err(Failure::Protocol("a command sent on without its copy".into()))));
                continue;
            }
            let node = match self.node_of(map, &home, &part) {
                Ok(node) => node,
                Err(failure) => {
                    out.push((part, Err(failure)));
                    continue;
                }
            };
            match groups.iter_mut().find(|(n, _)| Arc::ptr_eq(n, &node)) {
                Some((_, group)) => group.push(part),
                None => groups.push((node, vec![part])),
            }
        }
        let mut sends = Vec::with_capacity(groups.len());
        for (node, group) in &groups {
            let mut pipe = crate::conn::link::pipe();
            for part in group {
                if part.asking.is_some() {
                    pipe.cmd("ASKING");
                }
                if let Some(own) = &part.own {
                    pipe.add_command((**own).clone());
                }
            }
            sends.push((self.link(node).await?, pipe));
        }
        let results = futures_util::future::join_all(sends.into_iter().map(|(mut link, pipe)| async move {
            let sent = std::time::Instant::now();
            let result = link.pipeline(&pipe).await;
            (result, pipe.len(), sent.elapsed())
        }))
        .await;
        for ((node, group), (result, sent, took)) in groups.into_iter().zip(results) {
            if result.is_ok() {
                self.observe(&node, sent, took);
            }
            let mut replies = match result {
                Ok(replies) => replies.into_iter(),
                Err(f) => {
                    if f.is_connection() {
                        self.forget(&node).await;
                    }
                    return Err(f);
                }
            };
            for part in group {
                if part.asking.is_some() {
                    replies.next();
                }
                let reply = replies.next().unwrap_or_else(|| Err(Failure::Protocol("pipeline".into())));
                out.push((part, reply));
            }
        }
        Ok(out)
    }

    /// The node a part goes to: where an `ASK` sent it; home without a key; else its slot's
    /// primary, or for a read the node `--read-from` picks.
    fn node_of(&self, map: &Map, home: &Arc<Node>, part: &Part) -> Result<Arc<Node>, Failure> {
        let fail = |code: &str, detail: String| Failure::Server { command: String::new(), code: code.into(), detail };
        match (&part.asking, part.slot) {
            (Some(node), _) => Ok(node.clone()),
            (None, None) => Ok(home.clone()),
            (None, Some(slot)) => match map.shard_of(slot) {
                Some(shard) if self.replica_reads && !part.write => self.topology.read_node(shard).ok_or_else(|| {
                    fail("NOREPLICA", "no replica is in sync to read from (--read-from replica)".into())
                }),
                Some(MapShard { primary: Some(primary), .. }) => Ok(primary.node.clone()),
                _ => Err(fail("CLUSTERDOWN", format!("hash slot {slot} is served by no node the cluster knows"))),
            },
        }
    }

    /// Runs commands atomically in `MULTI`/`EXEC` on the node of their keys, which must share
    /// one slot on a cluster (a transaction cannot span slots). Returns their replies.
    pub async fn transaction(&self, pipe: &Pipeline) -> Result<Vec<Reply>, Failure> {
        for attempt in 0..2 {
            let map = self.topology.map();
            let node = match map.single() {
                Some(node) => node.clone(),
                None => self.transaction_node(&map, pipe)?,
            };
            let replies = match self.link(&node).await?.transaction(pipe).await {
                Ok(replies) => replies,
                Err(f) => {
                    if f.is_connection() {
                        self.forget(&node).await;
                    }
                    return Err(f);
                }
            };
            // Refused as queued because the slot moved, or the primary is one no more: nothing
            // ran; look again and retry once.
            let demoted = replies.iter().any(|r| matches!(r, Err(Failure::Server { code, .. }) if code == "READONLY"));
            if attempt == 0 && (demoted || replies.iter().any(|r| redirect(r).is_some())) {
                self.refresh().await?;
                continue;
            }
            return Ok(replies);
        }
        Err(Failure::Protocol("EXEC".into()))
    }

    fn transaction_node(&self, map: &Map, pipe: &Pipeline) -> Result<Arc<Node>, Failure> {
        let mut slots: Vec<u16> =
            pipe.cmd_iter().flat_map(|c| keys_of(c).into_iter().map(crate::conn::slot::of)).collect();
        slots.sort_unstable();
        slots.dedup();
        match slots.as_slice() {
            [] => Ok(self.home()),
            [slot] => map.shard_of(*slot).and_then(|s| s.primary.as_ref()).map(|p| p.node.clone()).ok_or_else(|| {
                Failure::Server {
                    command: "MULTI".into(),
                    code: "CLUSTERDOWN".into(),
                    detail: format!("hash slot {slot} is served by no node the cluster knows"),
                }
            }),
            _ => Err(Failure::Server {
                command: "MULTI".into(),
                code: "CROSSSLOT".into(),
                detail: format!("the keys are in {} hash slots; a transaction needs one", slots.len()),
            }),
        }
    }
}

/// Asks the sentinels for the primary, connects to it as `use_`, and makes sure it is one;
/// installs what they said as the target's map. A primary that says it is a replica (the
/// sentinels are mid-failover) is an error to retry.
async fn resolve(
    topology: &Arc<Topology>,
    sentinels: &crate::conn::sentinel::Sentinels,
    use_: LinkUse,
) -> Result<(Arc<Node>, Link), Failure> {
    let template = topology.template();
    let answer = sentinels.ask(template).await?;
    let (host, port) = &answer.primary;
    let node = topology.node_at(host, *port).map_err(|e| Failure::Connection(e.to_string()))?;
    let mut link = node.connect(use_).await?;
    if !crate::conn::sentinel::is_primary(&mut link).await? {
        return Err(Failure::Connection(format!(
            "the sentinels name {host}:{port} as primary of '{}', but it says it is a replica (a failover under way?)",
            crate::util::text::escape_str(sentinels.master())
        )));
    }
    topology.install_sentinel(&answer.primary, &answer.replicas).map_err(|e| Failure::Connection(e.to_string()))?;
    Ok((node, link))
}

/// A command's name in upper case, when it is short enough to be one sessiontop knows.
fn upper(name: &[u8]) -> Option<([u8; 12], usize)> {
    let mut buf = [0u8; 12];
    let out = buf.get_mut(..name.len())?;
    for (o, c) in out.iter_mut().zip(name) {
        *o = c.to_ascii_uppercase();
    }
    Some((buf, name.len()))
}

/// Whether a command (by its name) changes data, and so goes to the primary however reads are
/// routed.
fn is_write(name: &[u8]) -> bool {
    let Some((buf, n)) = upper(name) else { return false };
    matches!(
        &buf[..n],
        b"UNLINK"
            | b"DEL"
            | b"EXPIRE"
            | b"PEXPIRE"
            | b"PEXPIREAT"
            | b"EXPIREAT"
            | b"PERSIST"
            | b"ZREM"
            | b"ZADD"
            | b"SET"
            | b"HSET"
            | b"LPUSH"
            | b"RPUSH"
            | b"LTRIM"
            | b"INCR"
            | b"MULTI"
            | b"EXEC"
    )
}

/// Where the cluster said to send a command instead.
enum Redirect {
    /// The slot has a new owner for good: refresh the map.
    Moved,
    /// The slot is being migrated: ask the node named, this once.
    Ask(String, u16),
}

fn redirect(reply: &Reply) -> Option<Redirect> {
    let Err(Failure::Server { code, detail, .. }) = reply else { return None };
    let address = detail.split_whitespace().nth(1)?;
    match code.as_str() {
        "MOVED" => Some(Redirect::Moved),
        "ASK" => split_host_port(address).map(|(h, p)| Redirect::Ask(h, p)),
        _ => None,
    }
}

/// A command as it is sent on a cluster.
enum Parts {
    /// Whole, to the node of its slot (or home, without a key).
    Whole(Part),
    /// Split per slot, each part with its own command.
    PerSlot(Vec<Part>),
}

/// How command `index`, `cmd`, is sent on a cluster.
fn parts_of(cmd: &Cmd, index: usize) -> Parts {
    let name = arg(cmd, 0).unwrap_or_default();
    let write = is_write(name);
    let one = |slot| Parts::Whole(Part { index, own: None, slot, write, asking: None });
    match key_spec(name) {
        Keys::None => one(None),
        Keys::One(i) => one(arg(cmd, i).map(crate::conn::slot::of)),
        Keys::From(i) => {
            let keys = || cmd.args_iter().skip(i).filter_map(simple);
            let Some(first) = keys().next().map(crate::conn::slot::of) else { return one(None) };
            if keys().all(|k| crate::conn::slot::of(k) == first) {
                return one(Some(first));
            }
            let mut by_slot: Vec<(u16, Cmd)> = Vec::new();
            for key in keys() {
                let slot = crate::conn::slot::of(key);
                match by_slot.iter_mut().find(|(s, _)| *s == slot) {
                    Some((_, c)) => {
                        c.arg(key);
                    }
                    None => {
                        let mut c = redis::cmd(&String::from_utf8_lossy(name));
                        c.arg(key);
                        by_slot.push((slot, c));
                    }
                }
            }
            Parts::PerSlot(
                by_slot
                    .into_iter()
                    .map(|(slot, cmd)| Part { index, own: Some(Box::new(cmd)), slot: Some(slot), write, asking: None })
                    .collect(),
            )
        }
    }
}

/// Puts a part's reply in its command's place: the first part's as it is, further parts'
/// counts added to it (an error wins).
fn merge(slot: &mut Option<Reply>, reply: Reply) {
    if slot.is_none() {
        *slot = Some(reply);
        return;
    }
    *slot = match (slot.take(), reply) {
        (None, reply) => Some(reply),
        (Some(Ok(redis::Value::Int(a))), Ok(redis::Value::Int(b))) => Some(Ok(redis::Value::Int(a + b))),
        (Some(Err(e)), _) | (Some(_), Err(e)) => Some(Err(e)),
        (Some(kept), _) => Some(kept),
    };
}

/// The command's name, upper case.
fn first_word(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(bytes)) => String::from_utf8_lossy(bytes).to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// Where a command keeps its keys.
enum Keys {
    None,
    /// One key, at this argument.
    One(usize),
    /// A key in every argument from this one on.
    From(usize),
}

/// Where the commands sessiontop sends keep their keys, by name.
fn key_spec(name: &[u8]) -> Keys {
    let Some((buf, n)) = upper(name) else { return Keys::One(1) };
    match &buf[..n] {
        b"INFO" | b"DBSIZE" | b"SCAN" | b"PING" | b"CLIENT" | b"CONFIG" | b"SLOWLOG" | b"LATENCY" | b"CLUSTER"
        | b"SELECT" | b"AUTH" | b"MULTI" | b"EXEC" | b"DISCARD" | b"ROLE" | b"READONLY" | b"READWRITE" | b"ASKING"
        | b"ACL" | b"COMMAND" | b"HELLO" | b"SENTINEL" | b"FLUSHALL" | b"FLUSHDB" | b"TIME" => Keys::None,
        // `MEMORY USAGE key`, `OBJECT IDLETIME key`.
        b"MEMORY" | b"OBJECT" => Keys::One(2),
        b"EXISTS" | b"UNLINK" | b"DEL" | b"TOUCH" | b"MGET" | b"WATCH" => Keys::From(1),
        _ => Keys::One(1),
    }
}

fn simple(a: redis::Arg<&[u8]>) -> Option<&[u8]> {
    match a {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    }
}

/// The command's argument `i` (its name is 0).
fn arg(cmd: &Cmd, i: usize) -> Option<&[u8]> {
    cmd.args_iter().nth(i).and_then(simple)
}

/// The keys of a command, by where the commands sessiontop sends keep them.
pub fn keys_of(cmd: &Cmd) -> Vec<&[u8]> {
    let Some(name) = arg(cmd, 0) else { return Vec::new() };
    match key_spec(name) {
        Keys::None => Vec::new(),
        Keys::One(i) => arg(cmd, i).into_iter().collect(),
        Keys::From(i) => cmd.args_iter().skip(i).filter_map(simple).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pipeline's commands as parts: one each, but a command with several keys in several
    /// slots is one part per slot, whose replies are summed.
    fn split(cmds: &[&Cmd]) -> Vec<Part> {
        let mut parts = Vec::with_capacity(cmds.len());
        for (index, cmd) in cmds.iter().enumerate() {
            match parts_of(cmd, index) {
                Parts::Whole(part) => parts.push(part),
                Parts::PerSlot(some) => parts.extend(some),
            }
        }
        parts
    }

    impl Part {
        /// The command a part sends: its own, or the pipeline's.
        fn cmd<'a>(&'a self, cmds: &[&'a Cmd]) -> &'a Cmd {
            match &self.own {
                Some(own) => own,
                None => cmds[self.index],
            }
        }
    }

    #[test]
    fn keys_are_found_where_each_command_keeps_them() {
        assert_eq!(keys_of(redis::cmd("HGETALL").arg("k")), vec![b"k".as_slice()]);
        assert_eq!(keys_of(redis::cmd("MEMORY").arg("USAGE").arg("k").arg("SAMPLES").arg(16)), vec![b"k".as_slice()]);
        assert_eq!(keys_of(redis::cmd("EXISTS").arg("a").arg("b")), vec![b"a".as_slice(), b"b".as_slice()]);
        assert!(keys_of(redis::cmd("SCAN").arg(0).arg("MATCH").arg("x*")).is_empty());
        assert!(keys_of(redis::cmd("INFO").arg("commandstats")).is_empty());
    }

    #[test]
    fn commands_with_keys_in_several_slots_are_split_per_slot() {
        let mut pipe = crate::conn::link::pipe();
        pipe.cmd("GET").arg("a");
        pipe.cmd("EXISTS").arg("{x}1").arg("{y}1").arg("{x}2");
        pipe.cmd("INFO");
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let parts = split(&cmds);
        assert_eq!(parts.iter().map(|p| p.index).collect::<Vec<_>>(), vec![0, 1, 1, 2]);
        assert_eq!(parts[1].slot, Some(crate::conn::slot::of(b"x")));
        assert_eq!(keys_of(parts[1].cmd(&cmds)), vec![b"{x}1".as_slice(), b"{x}2".as_slice()]);
        assert!(std::ptr::eq(parts[0].cmd(&cmds), cmds[0]), "a command with one slot is sent as it is");
        assert_eq!(parts[3].slot, None);
    }

    #[test]
    fn split_counts_are_summed_and_errors_kept() {
        let mut slot = None;
        merge(&mut slot, Ok(redis::Value::Int(2)));
        merge(&mut slot, Ok(redis::Value::Int(1)));
        assert_eq!(slot, Some(Ok(redis::Value::Int(3))));
        merge(&mut slot, Err(Failure::Connection("x".into())));
        assert!(matches!(slot, Some(Err(_))));
    }

    #[test]
    fn redirects_are_read_from_their_replies() {
        let moved =
            Err(Failure::Server { command: "GET".into(), code: "MOVED".into(), detail: "3999 10.0.0.2:7001".into() });
        assert!(matches!(redirect(&moved), Some(Redirect::Moved)));
        let ask =
            Err(Failure::Server { command: "GET".into(), code: "ASK".into(), detail: "3999 10.0.0.3:7002".into() });
        assert!(matches!(redirect(&ask), Some(Redirect::Ask(h, 7002)) if h == "10.0.0.3"));
        assert!(redirect(&Ok(redis::Value::Nil)).is_none());
    }
}
