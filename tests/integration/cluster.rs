//! Redis Cluster: a real three-primary cluster with a replica each, on loopback, loaded through
//! a cluster client the way the applications write.

use redis::Commands;
use serde_json::json;
use sessiontop::demo::local_cluster::{ClusterOptions, LocalCluster};

use super::common::{chatmrpt_msgpack, flask_set, json, now_epoch, sessiontop, sid, trt_turn};

pub fn cluster() -> LocalCluster {
    LocalCluster::start(ClusterOptions::default()).expect("start a local cluster")
}

/// A cluster client of the redis crate's own: what an application on the cluster would use.
pub fn cluster_client(c: &LocalCluster) -> redis::cluster::ClusterConnection {
    let urls: Vec<String> = c.nodes().iter().take(c.primaries()).map(|n| n.url()).collect();
    redis::cluster::ClusterClient::new(urls).unwrap().get_connection().unwrap()
}

/// Each primary's `DBSIZE`, primaries in the cluster's order.
fn dbsizes(c: &LocalCluster) -> Vec<u64> {
    (0..c.primaries()).map(|i| redis::cmd("DBSIZE").query(&mut c.connection(i).unwrap()).unwrap()).collect()
}

#[test]
fn slots_agree_with_the_servers_own_keyslot() {
    let c = cluster();
    let mut con = c.connection(0).unwrap();
    let keys: Vec<Vec<u8>> = (0..500)
        .map(|i| format!("trt:session:user_{i}:state").into_bytes())
        .chain(["{user1}:a", "x{}{y}", "a{{b}}c", "{", "}{x}", "chatmrpt:0f3e"].iter().map(|k| k.as_bytes().to_vec()))
        .chain([b"bin\xff\x00key{\xfe}".to_vec()])
        .collect();
    for key in keys {
        let theirs: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key).query(&mut con).unwrap();
        assert_eq!(sessiontop::conn::slot::of(&key), theirs, "{}", String::from_utf8_lossy(&key));
    }
}

#[test]
fn a_snapshot_counts_every_trt_session_whose_keys_sit_on_several_nodes() {
    let c = cluster();
    let mut con = cluster_client(&c);
    let now = now_epoch();
    for i in 0..300 {
        trt_turn(&mut con, "trt:", &format!("user_{i}"), "1.1_goal_and_vision", now - i as f64, true);
    }
    // Index entries whose sessions are gone: orphans, checked against keys on other nodes.
    for i in 0..7 {
        let _: () = con.zadd("trt:active_sessions", format!("gone_{i}"), now - 5000.0).unwrap();
    }
    let sizes = dbsizes(&c);
    assert!(sizes.iter().all(|n| *n > 100), "the sessions' keys are spread over every primary: {sizes:?}");

    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&c.url(), &dir).args(["--layout", "trt", "snapshot", "--json", "--limit", "5"]));
    let s = &snap["sessions"];
    assert_eq!(s["total"], 300, "{s}");
    assert_eq!(s["orphaned"], 7, "{s}");
    assert_eq!(s["by_substate"], json!({"1.1_goal_and_vision": 300}));
    assert_eq!(snap["census"]["examined"], 307);
    // The server's figures add up the nodes'.
    let t = &snap["topology"];
    assert_eq!(t["kind"], "cluster");
    assert_eq!(t["uncovered_slots"], "");
    let nodes = t["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6, "{t}");
    let primaries: Vec<&serde_json::Value> = nodes.iter().filter(|n| n["role"] == "primary").collect();
    assert_eq!(primaries.len(), 3);
    assert_eq!(primaries.iter().map(|n| n["slot_count"].as_u64().unwrap()).sum::<u64>(), 16384);
    let keys: u64 = primaries.iter().map(|n| n["db_keys"].as_u64().unwrap()).sum();
    assert_eq!(keys, sizes.iter().sum::<u64>());
    assert_eq!(snap["server"]["db_keys"], keys, "the cluster's keys are the primaries' keys");
    assert!(nodes.iter().filter(|n| n["role"] == "replica").all(|n| n["replica_of"].is_string()), "{t}");
    assert_eq!(snap["server"]["role"], "cluster");
}

#[test]
fn a_snapshot_walks_the_keyspace_of_every_primary_for_flask_sessions() {
    let c = cluster();
    let mut con = cluster_client(&c);
    for i in 0..240 {
        flask_set(&mut con, "chatmrpt:", &sid(i), &chatmrpt_msgpack(Some("tpr_analysis"), 2), 86_400);
    }
    let _: () = con.set("unrelated:key", "x").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&c.url(), &dir).args(["--layout", "chatmrpt", "snapshot", "--json", "--limit", "3"]));
    assert_eq!(snap["sessions"]["total"], 240, "{}", snap["sessions"]);
    assert_eq!(snap["sessions"]["items"].as_array().unwrap().len(), 3);
    // Detection samples every primary too.
    let detected = json(sessiontop(&c.url(), &dir).args(["snapshot", "--json", "--limit", "1"]));
    assert_eq!(detected["layout"]["name"], "chatmrpt", "{}", detected["detection"]);
    assert_eq!(detected["sessions"]["total"], 240);
}

/// Every key of every primary with its TTL, sorted.
fn keyspace(c: &LocalCluster) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for i in 0..c.primaries() {
        let mut con = c.connection(i).unwrap();
        let keys: Vec<String> = con.scan::<String>().unwrap().map(Result::unwrap).collect();
        for key in keys {
            let ttl: i64 = con.ttl(&key).unwrap();
            out.push((key, ttl.signum()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_session_spread_over_nodes_is_inspected_expired_and_deleted_slot_by_slot() {
    let c = cluster();
    let mut con = cluster_client(&c);
    let now = now_epoch();
    for id in ["target", "bystander"] {
        trt_turn(&mut con, "trt:", id, "1.2_problem_and_body", now - 60.0, true);
    }
    let parts: Vec<String> = ["state", "history", "meta"].iter().map(|p| format!("trt:session:target:{p}")).collect();
    let slots: Vec<u16> = parts.iter().map(|k| sessiontop::conn::slot::of(k.as_bytes())).collect();
    assert!(slots[0] != slots[1] && slots[1] != slots[2], "the parts hash to different slots: {slots:?}");
    let others = |c: &LocalCluster| keyspace(c).into_iter().filter(|(k, _)| !k.contains("target")).collect::<Vec<_>>();
    let before = others(&c);
    let dir = tempfile::tempdir().unwrap();

    // Inspect: every part, read from the node that holds it.
    let report = json(sessiontop(&c.url(), &dir).args(["inspect", "target", "--json"]));
    let roles: Vec<&str> = report["keys"].as_array().unwrap().iter().map(|k| k["role"].as_str().unwrap()).collect();
    for role in ["primary", "history", "meta"] {
        assert!(roles.contains(&role), "{role} missing: {report}");
    }

    // Expire: each part in its own slot's transaction, by an absolute time.
    let out = sessiontop(&c.url(), &dir).args(["expire", "target", "120"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("in 3 transactions on"), "{text}");
    for part in &parts {
        let ttl: i64 = con.ttl(part).unwrap();
        assert!((115..=120).contains(&ttl), "{part}: {ttl}");
    }

    // Delete: the keys first, the index entry last, each step in the audit log.
    let out = sessiontop(&c.url(), &dir).args(["delete", "target", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("deleted session 'target': 3 keys and its index entry, in 4 transactions"), "{text}");
    for part in &parts {
        assert!(!con.exists::<_, bool>(part).unwrap(), "{part}");
    }
    assert_eq!(con.zscore::<_, _, Option<f64>>("trt:active_sessions", "target").unwrap(), None);
    assert_eq!(others(&c), before, "nothing of any other session changed");

    let audit: Vec<serde_json::Value> = std::fs::read_to_string(super::common::audit_path(&dir))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let delete: Vec<&serde_json::Value> = audit.iter().filter(|l| l["action"] == "delete").collect();
    let phases: Vec<&str> = delete.iter().map(|l| l["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["begin", "step", "step", "step", "step", "end"], "{delete:?}");
    assert_eq!(delete[0]["atomic"], false);
    assert_eq!(delete[0]["steps"], 4);
    let steps = &delete[1..5];
    assert!(steps.iter().all(|s| s["outcome"] == "done" && s["node"].is_string() && s["slot"].is_u64()));
    assert_eq!(steps[3]["index"], "trt:active_sessions", "the index entry goes last");
    assert!(steps[..3].iter().all(|s| s["index"].is_null()));
    let expire: Vec<&serde_json::Value> = audit.iter().filter(|l| l["action"] == "expire").collect();
    assert_eq!(expire.len(), 5, "begin, a step per slot, end");
}

#[test]
fn a_write_refused_half_way_says_what_was_done_key_by_key_and_leaves_only_an_orphan() {
    let c = cluster();
    let mut con = cluster_client(&c);
    let now = now_epoch();
    trt_turn(&mut con, "trt:", "target", "1.2_problem_and_body", now - 60.0, true);
    // A user who may write the sessions' keys but not the index: the last step is refused.
    for i in 0..c.nodes().len() {
        let _: () = redis::cmd("ACL")
            .arg(&["SETUSER", "writer", "on", ">pw", "resetkeys", "%R~*", "%RW~trt:session:*", "+@all"][..])
            .query(&mut c.connection(i).unwrap())
            .unwrap();
    }
    let url = c.url().replace("redis://", "redis://writer:pw@");
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&url, &dir).args(["delete", "target", "--yes"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the write did not complete: 3 of 4 steps done, then ZREM denied"), "{err}");
    assert!(err.contains("trt:session:target:state deleted"), "{err}");
    assert!(err.contains("NOPERM") || err.contains("denied"), "{err}");
    assert!(con.zscore::<_, _, Option<f64>>("trt:active_sessions", "target").unwrap().is_some());
    // What is left is an orphaned entry, which the census names and `fix` removes.
    let snap = json(sessiontop(&c.url(), &dir).args(["--layout", "trt", "snapshot", "--json"]));
    assert_eq!(snap["sessions"]["orphaned"], 1, "{}", snap["sessions"]);
    let out = sessiontop(&c.url(), &dir).args(["--layout", "trt", "fix", "orphaned", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(con.zscore::<_, _, Option<f64>>("trt:active_sessions", "target").unwrap().is_none());
}

/// Runs the dashboard's collectors against `url` for at most `limit`, feeding a model, and
/// calls `step` with each update applied; stops when `step` returns true. Returns the model and
/// whether `step` ended it.
pub fn watch(
    url: &str,
    args: &[&str],
    limit: std::time::Duration,
    mut step: impl FnMut(&sessiontop::engine::model::Model, &sessiontop::engine::msg::Update) -> bool,
) -> (sessiontop::engine::model::Model, bool) {
    let dir = tempfile::tempdir().unwrap();
    let setup = super::common::setup_for(url, &dir, args);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (_collector, mut updates) =
            setup.spawn_collectors(super::common::fast(&setup, std::time::Duration::from_millis(100)));
        let now = sessiontop::collect::now_millis;
        let mut model =
            sessiontop::engine::model::Model::new(setup.first().info.clone(), setup.model_settings(), now());
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let update = tokio::select! {
                Some(u) = updates.recv() => u,
                _ = tokio::time::sleep_until(deadline) => return (model, false),
            };
            model.tick(now(), 0);
            let seen = update.clone();
            model.apply(update);
            if step(&model, &seen) {
                return (model, true);
            }
        }
    })
}

fn census_done(update: &sessiontop::engine::msg::Update) -> Option<(u64, u64)> {
    match update {
        sessiontop::engine::msg::Update::CensusDone { generation, tally, .. } => Some((*generation, tally.total)),
        _ => None,
    }
}

#[test]
fn a_failover_under_an_open_dashboard_is_followed_reported_and_counted_through() {
    use sessiontop::engine::domain::{FindingKind, LinkState};
    let c = cluster();
    let mut con = cluster_client(&c);
    let now = now_epoch();
    for i in 0..150 {
        trt_turn(&mut con, "trt:", &format!("user_{i}"), "1.1_goal_and_vision", now - i as f64, true);
    }
    // The replica of the first primary (replicas follow the primaries in the same order).
    let replica = c.primaries();
    let mut failed_over_at: Option<u64> = None;
    let mut link_lost = false;
    let (model, done) = watch(&c.url(), &["--layout", "trt"], std::time::Duration::from_secs(40), |m, u| {
        if failed_over_at.is_some() && !matches!(m.link, LinkState::Connected { .. }) {
            link_lost = true;
        }
        match (failed_over_at, census_done(u)) {
            (None, Some((generation, 150))) if m.nodes.is_some() => {
                let _: () = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut c.connection(replica).unwrap()).unwrap();
                failed_over_at = Some(generation);
                false
            }
            (Some(at), Some((generation, total))) if generation > at + 1 => {
                assert_eq!(total, 150, "the census counts through the failover");
                m.findings.iter().any(|f| f.kind == FindingKind::Failover)
            }
            _ => false,
        }
    });
    let failover = model.findings.iter().find(|f| f.kind == FindingKind::Failover);
    assert!(done, "followed within the time: {:?} {:?}", model.findings, model.nodes);
    let promoted = c.nodes()[replica].port().unwrap();
    let summary = &failover.unwrap().summary;
    assert!(summary.contains(&format!("127.0.0.1:{promoted} took over 5,461 slots from 127.0.0.1:")), "{summary}");
    assert!(!link_lost, "a planned failover needs no reconnect: the router follows MOVED");
    let nodes = model.nodes.as_ref().unwrap();
    assert!(nodes.nodes.iter().any(|n| n.primary && n.address.ends_with(&format!(":{promoted}"))));
}

/// Moves `slots` from primary `from` to primary `to` as `redis-cli --cluster reshard` does:
/// `IMPORTING` and `MIGRATING`, `MIGRATE` of each key, then `SETSLOT … NODE` everywhere.
/// A slot's move from primary `from` to `to`, step by step as a resharding tool makes it.
struct Migration {
    src: redis::Connection,
    dst: redis::Connection,
    from_id: String,
    to_id: String,
    to_port: u16,
}

impl Migration {
    fn new(c: &LocalCluster, from: usize, to: usize) -> Migration {
        let id =
            |i: usize| -> String { redis::cmd("CLUSTER").arg("MYID").query(&mut c.connection(i).unwrap()).unwrap() };
        Migration {
            src: c.connection(from).unwrap(),
            dst: c.connection(to).unwrap(),
            from_id: id(from),
            to_id: id(to),
            to_port: c.nodes()[to].port().unwrap(),
        }
    }

    /// Marks `slot` importing on the target and migrating on the source.
    fn begin(&mut self, slot: u16) {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&self.from_id)
            .query(&mut self.dst)
            .unwrap();
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&self.to_id)
            .query(&mut self.src)
            .unwrap();
    }

    /// Moves `keys` to the target.
    fn keys(&mut self, keys: &[String]) {
        let _: () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(self.to_port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(keys)
            .query(&mut self.src)
            .unwrap();
    }
}

fn migrate(c: &LocalCluster, from: usize, to: usize, slots: std::ops::Range<u16>) -> usize {
    let mut m = Migration::new(c, from, to);
    let mut moved = 0;
    for slot in slots {
        m.begin(slot);
        loop {
            let keys: Vec<String> =
                redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(100).query(&mut m.src).unwrap();
            if keys.is_empty() {
                break;
            }
            moved += keys.len();
            m.keys(&keys);
        }
        for i in 0..c.primaries() {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&m.to_id)
                .query(&mut c.connection(i).unwrap())
                .unwrap();
        }
    }
    moved
}

/// Keys of `slot`'s primary, by slot: `n` of them in each of `slots`.
fn keys_in(slots: std::ops::Range<u16>, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut i = 0u64;
    let wanted: std::collections::HashSet<u16> = slots.collect();
    let mut left: std::collections::HashMap<u16, usize> = wanted.iter().map(|s| (*s, n)).collect();
    while left.values().any(|n| *n > 0) {
        let key = format!("batch:{i}");
        i += 1;
        if let Some(n) = left.get_mut(&sessiontop::conn::slot::of(key.as_bytes()))
            && *n > 0
        {
            *n -= 1;
            keys.push(key);
        }
    }
    keys
}

#[test]
fn a_batch_placed_by_a_map_gone_stale_is_sent_on_where_its_slots_went() {
    use sessiontop::conn::topology::LinkUse;
    let c = cluster();
    let mut con = cluster_client(&c);
    // Keys in slots the first primary serves (0..5461), and one past them on the second.
    let moved = keys_in(0..20, 3);
    let asked = keys_in(20..21, 6);
    let others = keys_in(6000..6010, 2);
    for key in moved.iter().chain(&asked).chain(&others) {
        let _: () = con.set(key, key).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let setup = super::common::setup_for(&c.url(), &dir, &["--budget", "0"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let topology = setup.topology(setup.first(), false);
        let router = sessiontop::conn::route::Router::discover(&topology, LinkUse::Poll).await.unwrap();
        let gets = |keys: &[String]| {
            let mut batch = router.batch();
            for key in keys {
                batch.add(redis::cmd("GET").arg(key).take());
            }
            // One command whose keys sit on two nodes, its counts summed.
            batch.add(redis::cmd("EXISTS").arg(&moved[0]).arg(&others[0]).arg("batch:none").take());
            batch
        };
        let all: Vec<String> = moved.iter().chain(&asked).chain(&others).cloned().collect();
        // Placed by the map as it is; then the slots move (and one is half way through).
        let batch = gets(&all);
        migrate(&c, 0, 1, 0..20);
        let half = asked.len() / 2;
        half_migrate(&c, 0, 1, 20, &asked[..half]);
        let replies = router.send(batch).await.unwrap();
        assert_eq!(replies.len(), all.len() + 1);
        for (key, reply) in all.iter().zip(&replies) {
            let got: String = redis::from_redis_value(reply.clone().unwrap()).unwrap();
            assert_eq!(&got, key, "each reply in its command's place");
        }
        let exists: i64 = redis::from_redis_value(replies[all.len()].clone().unwrap()).unwrap();
        assert_eq!(exists, 2);
        // The map was read again: the moved slots' keys now go to their new node at once.
        let map = topology.map();
        let owner = map.primary_for(moved[0].as_bytes()).unwrap();
        assert!(owner.address().ends_with(&format!(":{}", c.nodes()[1].port().unwrap())), "{}", owner.address());
    });
}

/// Begins moving `slot` from primary `from` to `to` and moves only `keys` of it: the rest are
/// still on `from`, which answers `ASK` for those it no longer has.
fn half_migrate(c: &LocalCluster, from: usize, to: usize, slot: u16, keys: &[String]) {
    let mut m = Migration::new(c, from, to);
    m.begin(slot);
    m.keys(keys);
}

#[test]
fn slots_migrated_during_a_census_are_counted_once_and_reported() {
    use sessiontop::engine::domain::FindingKind;
    use sessiontop::engine::msg::Update;
    let c = cluster();
    let mut con = cluster_client(&c);
    for i in 0..3000 {
        flask_set(&mut con, "chatmrpt:", &sid(i), &chatmrpt_msgpack(Some("tpr_analysis"), 1), 86_400);
    }
    let args = ["--layout", "chatmrpt", "--scan-count", "20", "--budget", "3000/s"];
    let mut migrated: Option<(u64, usize)> = None;
    let (model, done) = watch(&c.url(), &args, std::time::Duration::from_secs(60), |m, u| {
        match (u, migrated) {
            // Half way through the first pass, a third of the first primary's slots move.
            (Update::CensusBatch { generation: 1, progress: Some(p), .. }, None) if *p > 0.2 => {
                migrated = Some((1, migrate(&c, 0, 1, 0..1800)));
                false
            }
            (Update::CensusDone { generation, tally, .. }, Some((during, _))) if *generation >= during => {
                if !tally.uncovered_slots.is_empty() {
                    // Slots still moving as the pass ended: said, not guessed at.
                    assert!(tally.total <= 3000);
                    assert!(m.findings.iter().any(|f| f.kind == FindingKind::SlotsUncovered), "{:?}", m.findings);
                    return false;
                }
                assert_eq!(tally.total, 3000, "pass {generation}: every session once, none twice");
                // Every moved slot seen by the polls since.
                m.findings.iter().any(|f| f.kind == FindingKind::SlotsMoved && f.count == 1800)
            }
            _ => false,
        }
    });
    let (_, keys) = migrated.expect("the migration ran during the first pass");
    assert!(keys > 100, "keys moved: {keys}");
    assert!(done, "{:?}", model.findings);
    let moved = model.findings.iter().find(|f| f.kind == FindingKind::SlotsMoved).unwrap();
    assert_eq!(moved.count, 1800, "{}", moved.summary);
}

/// The commands each primary ran, by name, from `INFO commandstats`.
fn commands_on(c: &LocalCluster, i: usize) -> Vec<String> {
    let text: String = redis::cmd("INFO").arg("commandstats").query(&mut c.connection(i).unwrap()).unwrap();
    text.lines().filter_map(|l| l.strip_prefix("cmdstat_")?.split(':').next().map(str::to_string)).collect()
}

/// What a read of sessions sends: none of it may reach a primary when reading from replicas.
const READS: [&str; 16] = [
    "scan",
    "zrangebyscore",
    "zrevrange",
    "zrevrangebyscore",
    "zcard",
    "zscore",
    "hmget",
    "hgetall",
    "hlen",
    "hstrlen",
    "llen",
    "lrange",
    "pttl",
    "type",
    "memory|usage",
    "exists",
];

#[test]
fn reading_from_replicas_leaves_the_primaries_only_info_and_the_map() {
    let c = cluster();
    let mut con = cluster_client(&c);
    let now = now_epoch();
    for i in 0..200 {
        trt_turn(&mut con, "trt:", &format!("user_{i}"), "1.1_goal_and_vision", now - i as f64, true);
    }
    for i in 0..c.primaries() {
        let _: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut c.connection(i).unwrap()).unwrap();
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c.connection(i).unwrap()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    for layout in ["auto", "trt"] {
        let snap = json(sessiontop(&c.url(), &dir).args([
            "--read-from",
            "replica",
            "--layout",
            layout,
            "snapshot",
            "--json",
            "--limit",
            "5",
        ]));
        assert_eq!(snap["sessions"]["total"], 200, "{layout}: {}", snap["sessions"]);
        assert_eq!(snap["sessions"]["items"].as_array().unwrap().len(), 5);
    }
    for i in 0..c.primaries() {
        let ran = commands_on(&c, i);
        let reads: Vec<&String> = ran.iter().filter(|c| READS.contains(&c.as_str())).collect();
        assert!(reads.is_empty(), "primary {i} served reads {reads:?} (ran {ran:?})");
    }
    let replica_reads: usize = (c.primaries()..c.nodes().len())
        .map(|i| commands_on(&c, i).iter().filter(|c| READS.contains(&c.as_str())).count())
        .sum();
    assert!(replica_reads >= 3, "the replicas served the reads");
}

#[test]
fn a_tls_cluster_with_a_narrow_acl_user_is_counted_and_degrades_one_field_at_a_time() {
    let tls = super::tls::certificates();
    let mut args: Vec<String> = ["--tls-cert-file", "--tls-key-file", "--tls-ca-cert-file"]
        .iter()
        .zip([&tls.cert, &tls.key, &tls.ca])
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect();
    args.extend(["--tls-auth-clients", "no"].map(String::from));
    let c = LocalCluster::start(ClusterOptions { extra_args: args, tls: true, ..ClusterOptions::default() }).unwrap();
    // A user that may read and run what a watcher runs, but not MEMORY nor CLIENT: as a
    // managed service's restricted user (or Serverless, which has neither) would be.
    for i in 0..c.nodes().len() {
        let _: () = redis::cmd("ACL")
            .arg(
                &["SETUSER", "watcher", "on", ">pw", "~*", "&*", "+@read", "+info", "+cluster", "+readonly", "-memory"]
                    [..],
            )
            .query(&mut c.connection(i).unwrap())
            .unwrap();
    }
    let seed = format!("{}/#insecure", c.url());
    let mut con = redis::cluster::ClusterClient::new(vec![seed]).unwrap().get_connection().unwrap();
    let now = now_epoch();
    for i in 0..120 {
        trt_turn(&mut con, "trt:", &format!("user_{i}"), "1.1_goal_and_vision", now - i as f64, true);
    }
    let dir = tempfile::tempdir().unwrap();
    let url = c.url().replace("rediss://", "rediss://watcher:pw@");
    assert!(url.starts_with("rediss://watcher:pw@127.0.0.1:"), "{url}");
    let snap = json(sessiontop(&url, &dir).args([
        "--tls-ca",
        tls.ca.to_str().unwrap(),
        "--layout",
        "trt",
        "snapshot",
        "--json",
        "--limit",
        "3",
    ]));
    assert_eq!(snap["sessions"]["total"], 120, "{}", snap["sessions"]);
    assert_eq!(snap["topology"]["nodes"].as_array().unwrap().len(), 6);
    let unavailable = snap["sessions"]["unavailable"].to_string();
    assert!(unavailable.contains("MEMORY USAGE denied"), "{unavailable}");
    assert!(snap["sessions"]["items"][0]["memory_bytes"].is_null());
    // Writes are refused by the server for this user, each step said.
    let out = sessiontop(&url, &dir)
        .args(["--tls-ca", tls.ca.to_str().unwrap(), "--layout", "trt", "delete", "user_1", "--yes"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nothing was changed") && err.contains("denied"), "{err}");
}

#[test]
fn slots_no_primary_serves_are_a_finding_and_the_rest_is_still_counted() {
    let c = cluster();
    let mut con = cluster_client(&c);
    for i in 0..300 {
        flask_set(&mut con, "chatmrpt:", &sid(i), &chatmrpt_msgpack(Some("tpr_analysis"), 1), 86_400);
    }
    drop(con);
    // The first primary gives up its first 1,000 slots (their keys go with them); the others
    // keep serving theirs.
    let lost: u64 = (0..1000u16)
        .map(|s| {
            redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(s).query::<u64>(&mut c.connection(0).unwrap()).unwrap()
        })
        .sum();
    for i in 0..c.nodes().len() {
        let mut node = c.connection(i).unwrap();
        let _: () =
            redis::cmd("CONFIG").arg("SET").arg("cluster-require-full-coverage").arg("no").query(&mut node).unwrap();
    }
    let mut first = c.connection(0).unwrap();
    let _: () = redis::cmd("CLUSTER").arg("DELSLOTSRANGE").arg(0).arg(999).query(&mut first).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let snap = loop {
        let snap =
            json(sessiontop(&c.url(), &dir).args(["--layout", "chatmrpt", "snapshot", "--json", "--limit", "1"]));
        if snap["topology"]["uncovered_slots"] == "0-999" || std::time::Instant::now() > deadline {
            break snap;
        }
    };
    assert_eq!(snap["topology"]["uncovered_slots"], "0-999", "{}", snap["topology"]);
    let kinds: Vec<&str> = snap["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"slots_uncovered"), "{kinds:?}");
    let total = snap["sessions"]["total"].as_u64().unwrap();
    assert_eq!(total, 300 - lost, "the sessions in served slots are all counted ({lost} are in the lost ones)");
    assert_eq!(snap["census"]["uncovered_slots"], "0-999");
}
