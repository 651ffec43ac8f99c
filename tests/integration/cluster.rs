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
