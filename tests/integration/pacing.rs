//! What sessiontop's reads cost Redis: the share and the commands it reports, the budget that
//! paces the census, and the first screen without a census.

use crate::common::*;

/// `n` TRT sessions, one turn each, a second apart.
fn trt_sessions(con: &mut redis::Connection, n: usize) {
    let now = now_epoch();
    for i in 0..n {
        trt_turn(con, "trt:", &format!("user_{i}"), "1.1_goal_and_vision", now - i as f64, true);
    }
}

/// Calls of every command the server ran since its stats were reset, without `INFO` itself.
fn server_calls(con: &mut redis::Connection) -> u64 {
    let text: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    sessiontop::conn::pace::parse_commandstats(&text)
        .iter()
        .filter(|(name, _)| !name.starts_with("info") && !name.starts_with("config"))
        .map(|(_, (calls, _))| calls)
        .sum()
}

#[test]
fn snapshot_says_what_it_sent_and_what_that_cost_redis() {
    let server = server();
    let mut con = conn(&server);
    trt_sessions(&mut con, 500);
    let () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let snap = json(sessiontop(&server.socket_url(), &dir).args(["snapshot", "--json"]));
    assert_eq!(snap["sessions"]["total"], 500);
    let own = &snap["own_load"];
    assert_eq!(own["budget"], "50%", "the one-shot default");
    assert_eq!(snap["census"]["budget"], "50%");
    let share = own["redis_cpu_share"].as_f64().unwrap_or_else(|| panic!("a share from commandstats: {own}"));
    assert!(share > 0.0 && share <= 1.0, "{own}");
    // Every command the server ran (but the INFO it was asked for) came from sessiontop and was
    // counted by it: at least one read per session, and no command left out of the count.
    let sent = own["commands_sent"].as_u64().unwrap();
    let ran = server_calls(&mut con);
    assert!(sent >= 500, "{own}");
    assert!(sent.abs_diff(ran) <= 10, "sessiontop counted {sent}, the server ran {ran}");

    let snap = json(sessiontop(&server.socket_url(), &dir).args(["--budget", "0", "snapshot", "--json"]));
    assert_eq!(snap["own_load"]["budget"], "0 (no limit)");
}

#[test]
fn a_budget_holds_the_census_back() {
    let server = server();
    let mut con = conn(&server);
    trt_sessions(&mut con, 1000);
    let dir = tempfile::tempdir().unwrap();
    // About four reads per session: 4,000 commands at 1,500 a second, after a burst of 1,500,
    // cannot take less than a second and a half.
    let snap = json(sessiontop(&server.socket_url(), &dir).args(["--budget", "1500/s", "snapshot", "--json"]));
    assert_eq!(snap["sessions"]["total"], 1000);
    let paced = snap["census"]["duration_ms"].as_u64().unwrap();
    assert!(paced >= 1000, "a 1,500/s budget let the census through in {paced} ms");
    assert_eq!(snap["census"]["budget"], "1500/s");
}

#[test]
fn no_census_reads_the_first_page_only() {
    let server = server();
    let mut con = conn(&server);
    trt_sessions(&mut con, 2000);
    let () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&server.socket_url(), &dir).args(["snapshot", "--no-census", "--json", "--limit", "5"]));
    assert_eq!(snap["census"], serde_json::Value::Null);
    assert_eq!(snap["server"]["db_keys"], 6001, "three keys a session and the index");
    let ids: Vec<&str> =
        snap["sessions"]["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["user_0", "user_1", "user_2", "user_3", "user_4"], "the most recent first");
    // The sessions read are the page's: one state hash each, not one per session in the store.
    let text: String = redis::cmd("INFO").arg("commandstats").query(&mut con).unwrap();
    let stats = sessiontop::conn::pace::parse_commandstats(&text);
    assert_eq!(stats.get("hmget").map(|s| s.0), Some(5), "{text}");
    assert_eq!(stats.get("zrangebyscore"), None, "no walk of the index: {text}");
}

/// A target is a topology of nodes, a standalone server one node, and each node gets the
/// connections `LinkUse` names, no more: the poller's, and the census's two once it counts.
/// `CLIENT LIST` on the server is the judge; and what the server ran is what the node counted.
#[test]
fn a_standalone_server_is_one_node_with_the_connections_it_is_said_to_get() {
    use sessiontop::conn::topology::{Kind, LINKS_PER_NODE};
    use sessiontop::engine::msg::Update;
    let server = server();
    let mut con = conn(&server);
    trt_sessions(&mut con, 50);
    let () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_for(&server.socket_url(), &dir, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (clients, nodes, kind, counted, ran) = runtime.block_on(async {
        let (collector, mut updates) = setup.spawn_collectors(fast(&setup, std::time::Duration::from_millis(100)));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(std::time::Duration::from_secs(5), updates.recv()).await {
                Ok(Some(Update::CensusDone { .. })) => break,
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
        let clients = list.lines().filter(|l| l.contains("name=sessiontop")).count();
        let topology = collector.topology().clone();
        drop(collector);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let node = &topology.nodes()[0];
        // The server's count leaves out INFO (and this test's own CLIENT LIST); so does this.
        let info = node.load().by_kind().get(sessiontop::conn::pace::Kind::Info);
        let counted = topology.commands_sent() - info;
        let ran = server_calls(&mut con) - 1;
        (clients, topology.nodes().len(), topology.kind(), counted, ran)
    });
    assert_eq!((nodes, kind), (1, Kind::Standalone));
    assert_eq!(clients, LINKS_PER_NODE, "the poller's one and the census's two");
    assert!(counted >= 50, "at least a read per session: {counted}");
    assert!(counted.abs_diff(ran) <= 10, "the node counted {counted}, the server ran {ran}");
}
