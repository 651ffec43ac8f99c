//! Regression tests for what testing sessiontop as an attacker found: ids that are not UTF-8,
//! values far over the read cap, ids that contain `:`, sub-second ordering and values too long
//! for a text table. Each plants the data in a real redis-server the way the bug was met.

use redis::Commands;
use serde_json::json;

use crate::common::*;

/// Bytes the server has sent to all its clients so far (`INFO stats`).
fn net_output_bytes(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_net_output_bytes in INFO stats")
}

/// A TRT session with a binary id, written command for command as the application writes one.
fn plant_binary_trt(con: &mut redis::Connection, id: &[u8], at_epoch: f64) {
    let mut state = b"trt:session:".to_vec();
    state.extend_from_slice(id);
    state.extend_from_slice(b":state");
    let _: () = redis::cmd("HSET")
        .arg(&state)
        .arg("current_stage")
        .arg("stage_1_safety_building")
        .arg("current_substate")
        .arg("1.2_problem_and_body")
        .query(con)
        .unwrap();
    let _: () = redis::cmd("EXPIRE").arg(&state).arg(86_400).query(con).unwrap();
    let _: () = redis::cmd("ZADD").arg("trt:active_sessions").arg(at_epoch).arg(id).query(con).unwrap();
}

#[test]
fn a_binary_trt_id_is_counted_shown_escaped_inspected_and_deleted() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    trt_turn(&mut con, "trt:", "plain", "1.1_goal_and_vision", now - 30.0, true);
    plant_binary_trt(&mut con, b"bad\xff\xfeid", now - 10.0);
    let _: () = con.zadd("trt:active_sessions", b"gone\xc3".as_slice(), now - 90_000.0).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let snap = json(sessiontop(&server.socket_url(), &dir).args(["snapshot", "--json"]));
    let s = &snap["sessions"];
    assert_eq!(s["total"], 2, "{s}");
    assert_eq!(s["orphaned"], 1, "{s}");
    assert_eq!(snap["census"]["examined"], 3, "every index entry examined is counted somewhere");
    assert_eq!(s["orphan_ids"], json!(["gone\\xc3"]));
    let ids: Vec<&str> = s["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bad\\xff\\xfeid", "plain"], "shown escaped, newest first");

    // The escaped form is what the CLI takes.
    let report = json(sessiontop(&server.socket_url(), &dir).args(["inspect", "bad\\xff\\xfeid", "--json"]));
    assert_eq!(report["id"], "bad\\xff\\xfeid");
    assert_eq!(report["keys"][0]["key"], "trt:session:bad\\xff\\xfeid:state");
    assert_eq!(report["state"]["current_substate"], "1.2_problem_and_body");

    let out = sessiontop(&server.socket_url(), &dir).args(["delete", "bad\\xff\\xfeid", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exists: bool = redis::cmd("EXISTS").arg(b"trt:session:bad\xff\xfeid:state".as_slice()).query(&mut con).unwrap();
    assert!(!exists);
    let score: Option<f64> = con.zscore("trt:active_sessions", b"bad\xff\xfeid".as_slice()).unwrap();
    assert_eq!(score, None, "the index entry went with it");
    assert!(con.exists::<_, bool>("trt:session:plain:state").unwrap(), "the other session is untouched");
}

#[test]
fn a_binary_flask_key_is_a_session_too() {
    let server = server();
    let mut con = conn(&server);
    flask_set(&mut con, "chatmrpt:", &sid(1), &chatmrpt_msgpack(Some("uploaded"), 1), 86_400);
    let mut key = b"chatmrpt:".to_vec();
    key.extend_from_slice(b"sid\xff\xfe-binary");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(chatmrpt_msgpack(Some("uploaded"), 2))
        .arg("EX")
        .arg(500)
        .query(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&server.socket_url(), &dir).args([
        "--layout",
        "flask",
        "--prefix",
        "chatmrpt:",
        "snapshot",
        "--json",
    ]));
    assert_eq!(snap["sessions"]["total"], 2, "{}", snap["sessions"]);
    assert_eq!(snap["census"]["examined"], 2);
    assert_eq!(snap["sessions"]["by_stage"], json!({"uploaded": 2}));
    let ids: Vec<&str> =
        snap["sessions"]["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"sid\\xff\\xfe-binary"), "{ids:?}");
}

#[test]
fn hash_fields_and_history_entries_over_the_cap_are_not_read() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    trt_turn(&mut con, "trt:", "huge", "1.2_problem_and_body", now - 20.0, true);
    let big = "x".repeat(8 << 20);
    let _: () = con.hset("trt:session:huge:state", "current_substate", &big).unwrap();
    let _: () = con.hset("trt:session:huge:state", "notes", &big).unwrap();
    let _: () = con.lpush("trt:session:huge:history", &big).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = (1u64 << 20).to_string();

    let before = net_output_bytes(&mut con);
    let out = sessiontop(&server.socket_url(), &dir)
        .args(["--max-value-bytes", &cap, "inspect", "huge", "--json"])
        .output()
        .unwrap();
    let sent = net_output_bytes(&mut con) - before;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(sent < 4 << 20, "inspect made Redis send {sent} bytes for three 8 MiB values over a 1 MiB cap");
    assert!(out.stdout.len() < 1 << 20, "inspect printed {} bytes", out.stdout.len());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["state"]["current_stage"], "stage_1_safety_building", "small fields are still read");
    let cut = report["state"]["notes"].to_string();
    assert!(cut.contains("not read") && cut.contains("8.00 MiB"), "the cut says what and how big: {cut}");
    assert_eq!(report["history_total"], 2);

    let before = net_output_bytes(&mut con);
    let out = sessiontop(&server.socket_url(), &dir)
        .args(["--max-value-bytes", &cap, "snapshot", "--json"])
        .output()
        .unwrap();
    let sent = net_output_bytes(&mut con) - before;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(sent < 2 << 20, "snapshot made Redis send {sent} bytes");
    assert!(out.stdout.len() < 64 << 10, "snapshot printed {} bytes", out.stdout.len());
}

#[test]
fn a_delete_never_takes_the_keys_of_a_longer_id() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for id in ["abc", "abc:def", "abc:history"] {
        trt_turn(&mut con, "trt:", id, "1.2_problem_and_body", now - 60.0, true);
        let _: () = con.set_ex(format!("trt:ratelimit:{id}:29000001"), 2, 600).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let report = json(sessiontop(&server.socket_url(), &dir).args(["inspect", "abc", "--json"]));
    let keys: Vec<&str> = report["keys"].as_array().unwrap().iter().map(|k| k["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["trt:session:abc:state", "trt:session:abc:history", "trt:session:abc:meta", "trt:ratelimit:abc:29000001"]
    );

    let out = sessiontop(&server.socket_url(), &dir).args(["delete", "abc", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for id in ["abc:def", "abc:history"] {
        assert!(con.exists::<_, bool>(format!("trt:ratelimit:{id}:29000001")).unwrap(), "{id}'s counter survives");
        assert!(con.exists::<_, bool>(format!("trt:session:{id}:state")).unwrap());
    }
    assert!(!con.exists::<_, bool>("trt:ratelimit:abc:29000001").unwrap());
    // A counter of a longer id whose session is gone could be either's: abc:def's is its own.
    let out = sessiontop(&server.socket_url(), &dir).args(["delete", "abc:def", "--yes"]).output().unwrap();
    assert!(out.status.success());
    assert!(!con.exists::<_, bool>("trt:ratelimit:abc:def:29000001").unwrap());
    assert!(con.exists::<_, bool>("trt:ratelimit:abc:history:29000001").unwrap());
}

#[test]
fn snapshot_limit_takes_the_newest_by_exact_time() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch().floor();
    // Sub-second differences within one second, and older sessions with ids that sort first.
    trt_turn(&mut con, "trt:", "zz_newest", "1.1_goal_and_vision", now - 0.1, true);
    trt_turn(&mut con, "trt:", "yy_second", "1.1_goal_and_vision", now - 0.4, true);
    trt_turn(&mut con, "trt:", "xx_third", "1.1_goal_and_vision", now - 0.7, true);
    for n in 0..5 {
        trt_turn(&mut con, "trt:", &format!("aa_old_{n}"), "1.1_goal_and_vision", now - 0.95 - f64::from(n), true);
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&server.socket_url(), &dir).args(["snapshot", "--json", "--limit", "3"]));
    let ids: Vec<&str> =
        snap["sessions"]["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["zz_newest", "yy_second", "xx_third"]);
}

#[test]
fn values_too_long_for_a_table_are_cut_with_their_size() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for n in 0..3 {
        trt_turn(&mut con, "trt:", &format!("long_{n}"), "1.1_goal_and_vision", now - 5.0, true);
    }
    let _: () = con.hset("trt:session:long_0:state", "current_substate", "s".repeat(70_000)).unwrap();
    let _: () = con.hset("trt:session:long_1:state", "current_stage", "g".repeat(20_000)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir).args(["snapshot"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.len() < 16 << 10, "{} bytes of text", text.len());
    assert!(text.lines().all(|l| l.chars().count() < 400), "every line is cut");
    assert!(text.contains("70,000 chars"), "the cut says the size:\n{text}");
    let out = sessiontop(&server.socket_url(), &dir).args(["inspect", "long_0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().all(|l| l.chars().count() < 600), "every line is cut");
}

/// The dashboard's collectors on a store holding a binary id, present at start and saved while
/// they run: the page keeps being read, the census counts it, and the connection never drops.
#[test]
fn a_binary_id_never_sends_the_collectors_into_a_reconnect_loop() {
    use sessiontop::engine::domain::LinkState;
    use sessiontop::engine::msg::Request;
    use sessiontop::engine::msg::Update;

    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    trt_turn(&mut con, "trt:", "plain", "1.1_goal_and_vision", now - 30.0, true);
    plant_binary_trt(&mut con, b"bad\xff\xfeid", now - 10.0);
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_for(&server.socket_url(), &dir, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seen = runtime.block_on(async {
        let (collector, mut updates) = setup.spawn_collectors(fast(&setup, std::time::Duration::from_millis(100)));
        let mut seen = Seen::default();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline && !(seen.pages_with_binary >= 3 && seen.second_binary_paged) {
            let Ok(Some(update)) = tokio::time::timeout(std::time::Duration::from_secs(5), updates.recv()).await else {
                break;
            };
            match update {
                Update::Link(LinkState::Reconnecting { error, .. }) => seen.reconnects.push(error),
                Update::Page { rows, .. } => {
                    if rows.iter().any(|r| r.id.as_bytes() == b"bad\xff\xfeid") {
                        seen.pages_with_binary += 1;
                        if seen.pages_with_binary == 1 {
                            // On screen now, as the dashboard would say; and a second one,
                            // saved while the collectors run.
                            let on_screen = rows.iter().map(|r| r.id.clone()).collect();
                            let _ = collector.requests.send(Request::Viewport(on_screen));
                            let mut con = conn(&server);
                            plant_binary_trt(&mut con, b"new\xc0id", now_epoch());
                        }
                    }
                    if rows.iter().any(|r| r.id.as_bytes() == b"new\xc0id") {
                        seen.second_binary_paged = true;
                    }
                }
                Update::CensusDone { tally, .. } => seen.census_totals.push(tally.total),
                Update::Notice(n) => seen.notices.push(n),
                _ => {}
            }
        }
        let _ = collector.requests.send(Request::Refresh);
        seen
    });
    assert!(seen.reconnects.is_empty(), "reconnected: {:?}", seen.reconnects);
    assert!(seen.pages_with_binary >= 3, "{seen:?}");
    assert!(seen.second_binary_paged, "a session saved while running is read too: {seen:?}");
    assert!(seen.census_totals.contains(&2) || seen.census_totals.contains(&3), "{seen:?}");
}

#[derive(Debug, Default)]
struct Seen {
    reconnects: Vec<String>,
    pages_with_binary: usize,
    second_binary_paged: bool,
    census_totals: Vec<u64>,
    notices: Vec<String>,
}

#[test]
fn a_huge_payload_prints_a_bounded_outline_and_a_pickled_class_is_named() {
    let server = server();
    let mut con = conn(&server);
    // 500,000 small integers: half a megabyte of msgpack, under the read cap.
    let mut packed = vec![0xdd];
    packed.extend_from_slice(&500_000u32.to_be_bytes());
    packed.extend(std::iter::repeat_n(0x07, 500_000));
    let mut payload = vec![0x81, 0xa4];
    payload.extend_from_slice(b"rows");
    payload.extend_from_slice(&packed);
    flask_set(&mut con, "session:", &sid(1), &payload, 3600);
    // What a hostile pickle looks like: posix.system("touch /tmp/x"), never run.
    flask_set(&mut con, "session:", &sid(2), b"\x80\x02cposix\nsystem\nX\x0c\x00\x00\x00touch /tmp/x\x85R.", 3600);
    let dir = tempfile::tempdir().unwrap();

    let out = sessiontop(&server.socket_url(), &dir).args(["--layout", "flask", "inspect", &sid(1)]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().count() < 400, "{} lines", text.lines().count());
    assert!(text.contains("… 499,800 more"), "the cut is said");

    let out = sessiontop(&server.socket_url(), &dir).args(["--layout", "flask", "inspect", &sid(2)]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("<posix.system"), "the class is shown, not only its argument:\n{text}");
}

#[test]
fn flask_payloads_past_the_first_read_are_read_whole_and_those_over_the_cap_are_not() {
    let server = server();
    let mut con = conn(&server);
    // A session of a few hundred bytes, one holding a table as JSON (as ChatMRPT once stored
    // DataFrames), over the first read but under the cap, and one far over the cap.
    flask_set(&mut con, "chatmrpt:", &sid(1), &chatmrpt_msgpack(Some("tpr_analysis"), 3), 86_400);
    let rows: Vec<serde_json::Value> = (0..2000).map(|i| json!({"ward": format!("ward {i}"), "tpr": i})).collect();
    let table = serde_json::to_vec(&json!({"workflow_stage": "risk_analysis", "df": rows})).unwrap();
    assert!(table.len() > 40 << 10, "the table payload is {} bytes", table.len());
    flask_set(&mut con, "chatmrpt:", &sid(2), &table, 86_400);
    let huge = serde_json::to_vec(&json!({"workflow_stage": "itn_planning", "blob": "x".repeat(8 << 20)})).unwrap();
    flask_set(&mut con, "chatmrpt:", &sid(3), &huge, 86_400);
    let dir = tempfile::tempdir().unwrap();

    let before = net_output_bytes(&mut con);
    let report = json(sessiontop(&server.socket_url(), &dir).args([
        "--layout",
        "flask",
        "--prefix",
        "chatmrpt:",
        "snapshot",
        "--json",
    ]));
    let sent = net_output_bytes(&mut con) - before;
    assert!(sent < 1 << 20, "snapshot made Redis send {sent} bytes");
    let sessions = &report["sessions"];
    assert_eq!(sessions["total"], 3);
    assert_eq!(sessions["by_stage"]["tpr_analysis"], 1);
    assert_eq!(sessions["by_stage"]["risk_analysis"], 1, "the long payload was read whole: {sessions}");
    assert_eq!(sessions["oversized"], 1);
    assert_eq!(sessions["undecodable"], 0);
    let over = sessions["items"].as_array().unwrap().iter().find(|i| i["id"] == sid(3)).unwrap();
    let reason = over["decode_error"].as_str().unwrap();
    assert!(reason.contains("8.00 MiB") && reason.contains("read cap"), "{reason}");
}
