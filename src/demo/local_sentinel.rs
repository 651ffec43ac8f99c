//! A throwaway Redis Sentinel setup on loopback: a primary, a replica, and three sentinels
//! watching them (quorum two), each sentinel a `redis-server --sentinel` of its own. For the
//! test suite.
//!
//! Must never touch a Redis it did not start.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::local_redis::{Listen, LocalRedis, LocalRedisError, Options, find_binary, stop_with_parent, terminate};

/// How long the sentinels may take to find the replica and each other.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);
/// The name the sentinels know the primary by.
pub const MASTER: &str = "sessions";

/// A primary with a replica, and three sentinels; all stop when it is dropped.
pub struct LocalSentinels {
    pub primary: LocalRedis,
    pub replica: LocalRedis,
    sentinels: Vec<(Child, u16, tempfile::TempDir)>,
}

impl LocalSentinels {
    /// Starts them and waits until every sentinel knows the replica and the other two.
    pub fn start(extra_args: &[&str]) -> Result<LocalSentinels, LocalRedisError> {
        let options = |more: Vec<String>| Options {
            binary: None,
            listen: Listen::Tcp,
            extra_args: ["--repl-diskless-sync-delay", "0"]
                .iter()
                .chain(extra_args)
                .map(|s| s.to_string())
                .chain(more)
                .collect(),
        };
        let primary = LocalRedis::start(options(Vec::new()))?;
        let port = primary.port().unwrap_or(0);
        let replica = LocalRedis::start(options(vec!["--replicaof".into(), "127.0.0.1".into(), port.to_string()]))?;
        let mut group = LocalSentinels { primary, replica, sentinels: Vec::new() };
        for _ in 0..3 {
            group.start_sentinel(port)?;
        }
        group.wait_ready().map_err(|e| LocalRedisError::NotReady(format!("the sentinels did not settle: {e}")))?;
        Ok(group)
    }

    fn start_sentinel(&mut self, primary_port: u16) -> Result<(), LocalRedisError> {
        let binary = find_binary(None)?;
        let dir = tempfile::Builder::new()
            .prefix("sessiontop-sentinel-")
            .tempdir()
            .map_err(|e| LocalRedisError::TempDir(e.to_string()))?;
        let port = super::local_redis::free_port_below(55_000)?;
        let conf = dir.path().join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\nsentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n",
            dir.path().display(),
            dir.path().join("sentinel.log").display()
        );
        std::fs::write(&conf, text).map_err(|e| LocalRedisError::TempDir(e.to_string()))?;
        let mut cmd = Command::new(&binary);
        cmd.arg(&conf).arg("--sentinel").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        stop_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| LocalRedisError::Spawn { binary: binary.display().to_string(), reason: e.to_string() })?;
        self.sentinels.push((child, port, dir));
        Ok(())
    }

    fn wait_ready(&self) -> redis::RedisResult<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut ready = true;
            for (_, port, _) in &self.sentinels {
                let settled = (|| -> redis::RedisResult<bool> {
                    let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}"))?.get_connection()?;
                    let replicas: Vec<redis::Value> =
                        redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER).query(&mut con)?;
                    let peers: Vec<redis::Value> =
                        redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER).query(&mut con)?;
                    Ok(replicas.len() == 1 && peers.len() == 2)
                })();
                ready &= settled.unwrap_or(false);
            }
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out")));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `redis+sentinel://` URL of the three sentinels and the primary's name.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|(_, port, _)| format!("127.0.0.1:{port}")).collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// A plain connection to sentinel `i`.
    pub fn sentinel(&self, i: usize) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.sentinels[i].1))?.get_connection()
    }
}

impl Drop for LocalSentinels {
    fn drop(&mut self) {
        for (child, _, _) in &mut self.sentinels {
            terminate(child);
        }
    }
}
