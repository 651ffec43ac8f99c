//! Redis Sentinel: a primary, a replica and three sentinels on loopback. The primary is found
//! through the sentinels, and a failover is followed without a restart.

use sessiontop::demo::local_sentinel::LocalSentinels;
use sessiontop::engine::domain::{FindingKind, LinkState};

use super::cluster::watch;
use super::common::{json, now_epoch, sessiontop, trt_turn};

fn fill(s: &LocalSentinels, n: usize) {
    let mut con = redis::Client::open(s.primary.url()).unwrap().get_connection().unwrap();
    let now = now_epoch();
    for i in 0..n {
        trt_turn(&mut con, "trt:", &format!("user_{i}"), "1.1_goal_and_vision", now - i as f64, true);
    }
    // The replica has them too before anything is asked of it.
    let _: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut con).unwrap();
}

#[test]
fn a_sentinel_url_finds_the_primary_and_its_replica() {
    let s = LocalSentinels::start(&[]).unwrap();
    fill(&s, 40);
    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&s.url(), &dir).args(["--layout", "trt", "snapshot", "--json", "--limit", "1"]));
    assert_eq!(snap["sessions"]["total"], 40);
    let t = &snap["topology"];
    assert_eq!(t["kind"], "sentinel");
    let primary = t["nodes"].as_array().unwrap().iter().find(|n| n["role"] == "primary").unwrap();
    assert_eq!(primary["address"], format!("127.0.0.1:{}", s.primary.port().unwrap()));
    assert_eq!(t["nodes"].as_array().unwrap().len(), 2, "{t}");
    // The same through --sentinel and --master.
    let flags = s.url().replace("redis+sentinel://", "").replace("/sessions", "");
    let mut cmd = sessiontop("redis://127.0.0.1:1", &dir);
    for host in flags.split(',') {
        cmd.args(["--sentinel", host]);
    }
    let snap = json(cmd.args(["--master", "sessions", "--layout", "trt", "snapshot", "--json", "--limit", "1"]));
    assert_eq!(snap["sessions"]["total"], 40);
    // A name the sentinels do not know is one clear line.
    let out = sessiontop(&s.url().replace("/sessions", "/nosuch"), &dir).args(["snapshot"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("knows no primary named 'nosuch'") && err.lines().count() == 1, "{err}");
}

#[test]
fn a_primary_killed_under_an_open_dashboard_is_followed_and_reported() {
    let mut s = LocalSentinels::start(&[]).unwrap();
    fill(&s, 60);
    let replica_port = s.replica.port().unwrap();
    let mut killed_at: Option<u64> = None;
    let mut history_before = 0;
    let (model, done) = watch(&s.url(), &["--layout", "trt"], std::time::Duration::from_secs(60), |m, u| {
        let census = match u {
            sessiontop::engine::msg::Update::CensusDone { generation, tally, .. } => Some((*generation, tally.total)),
            _ => None,
        };
        match (killed_at, census) {
            (None, Some((generation, 60))) if m.nodes.is_some() => {
                history_before = m.history.get("used_memory").map_or(0, |h| h.recent(usize::MAX).len());
                s.primary.stop();
                killed_at = Some(generation);
                false
            }
            (Some(at), Some((generation, total))) if generation > at => {
                assert_eq!(total, 60, "the replica had every session");
                matches!(m.link, LinkState::Connected { .. })
                    && m.findings.iter().any(|f| f.kind == FindingKind::Failover)
            }
            _ => false,
        }
    });
    assert!(done, "followed: {:?} {:?}", model.link, model.findings);
    let failover = model.findings.iter().find(|f| f.kind == FindingKind::Failover).unwrap();
    assert!(
        failover.summary.contains(&format!("127.0.0.1:{replica_port} replaced 127.0.0.1:")),
        "{}",
        failover.summary
    );
    let history_after = model.history.get("used_memory").map_or(0, |h| h.recent(usize::MAX).len());
    assert!(history_after > history_before, "the history goes on across the failover");
    let nodes = model.nodes.as_ref().unwrap();
    assert!(nodes.nodes.iter().any(|n| n.primary && n.address == format!("127.0.0.1:{replica_port}")));
}

#[test]
fn check_observe_follows_a_sentinel_failover() {
    let s = LocalSentinels::start(&[]).unwrap();
    fill(&s, 20);
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sessiontop"))
        .env_remove("REDIS_URL")
        .args(["--url", &s.url(), "--layout", "trt", "--poll-interval", "500ms", "--audit-log"])
        .arg(super::common::audit_path(&dir))
        .args(["check", "--observe", "15s", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // A planned switch: the sentinels promote the replica and demote the primary.
    let _: () = redis::cmd("SENTINEL").arg("FAILOVER").arg("sessions").query(&mut s.sentinel(0).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let kinds: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"failover"), "{kinds:?} {stderr}");
    assert_eq!(out.status.code(), Some(1), "a failover is a warning: {kinds:?}");
    // A failover is not a restart: the store is the same, its primary another server.
    let restarts: Vec<&serde_json::Value> =
        report["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == "restarted").collect();
    assert!(restarts.iter().all(|f| f["severity"] == "info"), "{restarts:?}");
}

#[test]
fn a_standalone_primarys_replica_is_read_from_and_auto_falls_back_saying_so() {
    let mut s = LocalSentinels::start(&[]).unwrap();
    fill(&s, 30);
    let stats = |server: &sessiontop::demo::local_redis::LocalRedis| -> String {
        let mut con = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
        redis::cmd("INFO").arg("commandstats").query(&mut con).unwrap()
    };
    let mut con = redis::Client::open(s.primary.url()).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = s.primary.url();
    let snap = json(sessiontop(&url, &dir).args(["--read-from", "replica", "--layout", "trt", "snapshot", "--json"]));
    assert_eq!(snap["sessions"]["total"], 30);
    let reads = snap["topology"]["reads"].as_str().unwrap();
    assert!(reads.starts_with(&format!("reads from 127.0.0.1:{} (lag ", s.replica.port().unwrap())), "{reads}");
    let primary = stats(&s.primary);
    for read in ["cmdstat_zrangebyscore", "cmdstat_hmget", "cmdstat_lrange", "cmdstat_zcard"] {
        assert!(!primary.contains(read), "the primary served {read}: {primary}");
    }
    assert!(stats(&s.replica).contains("cmdstat_zrangebyscore"));
    // No replica in sync: `auto` reads the primary and says so; `replica` will not.
    s.replica.stop();
    let snap = json(sessiontop(&url, &dir).args(["--read-from", "auto", "--layout", "trt", "snapshot", "--json"]));
    assert_eq!(snap["sessions"]["total"], 30);
    let reads = snap["topology"]["reads"].as_str().unwrap();
    assert!(reads.contains("reads from the primary") && reads.contains("no replica in sync"), "{reads}");
    let out = sessiontop(&url, &dir).args(["--read-from", "replica", "--layout", "trt", "snapshot"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no replica is in sync"), "{err}");
}
