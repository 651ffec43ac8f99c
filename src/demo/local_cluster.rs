//! A throwaway Redis Cluster on loopback: primaries with their slots and replicas, each a
//! [`LocalRedis`] in cluster mode, joined with `CLUSTER MEET`, `CLUSTER ADDSLOTSRANGE` and
//! `CLUSTER REPLICATE` (what `redis-cli --cluster create` does, without needing `redis-cli`).
//! For `demo --cluster`, the test suite and the benchmark.
//!
//! Must never touch a Redis it did not start.

use std::time::{Duration, Instant};

use super::local_redis::{Listen, LocalRedis, LocalRedisError, Options};

/// How long a fresh cluster may take to agree on its nodes, slots and replicas.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between looks at whether the cluster has formed.
const FORM_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Options for [`LocalCluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The `redis-server` binary; `None` searches `PATH`.
    pub binary: Option<std::path::PathBuf>,
    pub primaries: usize,
    pub replicas_per_primary: usize,
    /// How long a node may be unreachable before it is failed over (`cluster-node-timeout`).
    pub node_timeout: Duration,
    /// Further `--option value` arguments for every node.
    pub extra_args: Vec<String>,
    /// Client ports speak TLS only (the certificates among `extra_args`; `--tls-cluster yes`
    /// and `--tls-replication yes` are added).
    pub tls: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            binary: None,
            primaries: 3,
            replicas_per_primary: 1,
            node_timeout: Duration::from_millis(2000),
            extra_args: Vec::new(),
            tls: false,
        }
    }
}

/// A running cluster owned by this process; its nodes stop when it is dropped.
pub struct LocalCluster {
    /// The primaries first (in slot order), then the replicas (the first primary's first).
    nodes: Vec<LocalRedis>,
    primaries: usize,
}

impl LocalCluster {
    /// Starts the nodes, gives the primaries a third of the slots each (or whatever share their
    /// number makes), makes the rest replicas, and waits until every node says the cluster is
    /// `ok` and every replica is in sync.
    pub fn start(options: ClusterOptions) -> Result<LocalCluster, LocalRedisError> {
        let count = options.primaries * (1 + options.replicas_per_primary);
        let mut args = vec![
            "--cluster-enabled".to_string(),
            "yes".into(),
            "--cluster-node-timeout".into(),
            options.node_timeout.as_millis().to_string(),
            // A replica may be promoted however long it was cut off: tests fail primaries at will.
            "--cluster-replica-validity-factor".into(),
            "0".into(),
            // A replica's first sync starts at once rather than after five seconds.
            "--repl-diskless-sync-delay".into(),
            "0".into(),
        ];
        args.extend(options.extra_args.iter().cloned());
        if options.tls {
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
        }
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(LocalRedis::start(Options {
                binary: options.binary.clone(),
                listen: if options.tls { Listen::ClusterTls } else { Listen::ClusterTcp },
                extra_args: args.clone(),
            })?);
        }
        let cluster = LocalCluster { nodes, primaries: options.primaries };
        cluster.form().map_err(|e| {
            let logs: Vec<String> =
                cluster.nodes.iter().map(|n| super::local_redis::last_log_line(&n.dir().join("redis.log"))).collect();
            LocalRedisError::NotReady(format!(
                "the cluster did not form: {e} (the nodes' logs end: {})",
                logs.join(" | ")
            ))
        })?;
        Ok(cluster)
    }

    /// A URL of the first primary, to connect to the cluster through.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// Every node, primaries first.
    pub fn nodes(&self) -> &[LocalRedis] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [LocalRedis] {
        &mut self.nodes
    }

    /// How many primaries the cluster was started with.
    pub fn primaries(&self) -> usize {
        self.primaries
    }

    /// A plain connection to node `i` (over its unix socket).
    pub fn connection(&self, i: usize) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.nodes[i].socket_url())?.get_connection()
    }

    fn form(&self) -> redis::RedisResult<()> {
        let mut cons = (0..self.nodes.len()).map(|i| self.connection(i)).collect::<redis::RedisResult<Vec<_>>>()?;
        let share = crate::conn::slot::SLOTS / self.primaries;
        for (i, con) in cons.iter_mut().take(self.primaries).enumerate() {
            let first = i * share;
            let last = if i + 1 == self.primaries { crate::conn::slot::SLOTS - 1 } else { first + share - 1 };
            add_slots(con, first as u16, last as u16)?;
        }
        // Every node meets every other: no waiting for gossip to introduce them.
        let ports: Vec<u16> = self.nodes.iter().map(|n| n.port().unwrap_or(0)).collect();
        for (i, con) in cons.iter_mut().enumerate() {
            for port in ports.iter().skip(i + 1) {
                redis::cmd("CLUSTER").arg("MEET").arg("127.0.0.1").arg(*port).query::<()>(con)?;
            }
        }
        let ids = cons
            .iter_mut()
            .map(|c| redis::cmd("CLUSTER").arg("MYID").query::<String>(c))
            .collect::<redis::RedisResult<Vec<_>>>()?;
        let total = self.nodes.len();
        wait_for(&mut cons, |con| {
            let nodes = cluster_nodes(con)?;
            Ok(ids.iter().all(|id| nodes.lines().any(|l| l.starts_with(id.as_str()) && !l.contains("handshake"))))
        })?;
        for (i, con) in cons.iter_mut().enumerate().skip(self.primaries) {
            let primary = &ids[(i - self.primaries) % self.primaries];
            redis::cmd("CLUSTER").arg("REPLICATE").arg(primary).query::<()>(con)?;
        }
        wait_for(&mut cons, |con| {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(con)?;
            let replication: String = redis::cmd("INFO").arg("replication").query(con)?;
            let synced = !replication.contains("role:slave") || replication.contains("master_link_status:up");
            Ok(info.contains("cluster_state:ok") && synced)
        })?;
        // Every node sees every replica as one.
        let replicas = total - self.primaries;
        wait_for(&mut cons, |con| Ok(cluster_nodes(con)?.lines().filter(|l| l.contains("slave")).count() == replicas))
    }
}

/// Gives a primary the slots from `first` to `last` (`ADDSLOTSRANGE`, or `ADDSLOTS` before 7.0).
fn add_slots(con: &mut redis::Connection, first: u16, last: u16) -> redis::RedisResult<()> {
    let range = redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(first).arg(last).query::<()>(con);
    match range {
        Err(e) if e.to_string().to_ascii_lowercase().contains("unknown subcommand") => {
            redis::cmd("CLUSTER").arg("ADDSLOTS").arg((first..=last).collect::<Vec<_>>()).query(con)
        }
        other => other,
    }
}

fn cluster_nodes(con: &mut redis::Connection) -> redis::RedisResult<String> {
    redis::cmd("CLUSTER").arg("NODES").query(con)
}

/// Waits until `ready` holds on every connection.
fn wait_for(
    cons: &mut [redis::Connection],
    mut ready: impl FnMut(&mut redis::Connection) -> redis::RedisResult<bool>,
) -> redis::RedisResult<()> {
    let deadline = Instant::now() + FORM_TIMEOUT;
    loop {
        let mut all = true;
        for con in cons.iter_mut() {
            all &= ready(con)?;
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out")));
        }
        std::thread::sleep(FORM_POLL_INTERVAL);
    }
}
