//! Both layouts, written the way the applications write them, read back through `snapshot`
//! and `inspect`, and auto-detection of layout and prefix.

use redis::Commands;
use serde_json::json;

use crate::common::*;

fn item<'a>(snapshot: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    snapshot["sessions"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {}", snapshot["sessions"]["items"]))
}

fn close(actual: &serde_json::Value, expected: i64, tolerance: i64) -> bool {
    actual.as_i64().is_some_and(|a| (a - expected).abs() <= tolerance)
}

#[test]
fn trt_snapshot_counts_stages_ttls_idle_history_and_orphans() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    // Three live sessions at different points of the workflow.
    trt_turn(&mut con, "trt:", "user_1234", "1.1_goal_and_vision", now - 600.0, true);
    trt_turn(&mut con, "trt:", "user_1234", "1.2_problem_and_body", now - 300.0, false);
    trt_turn(&mut con, "trt:", "9f1c2d3e-4b5a-4c6d-8e7f-a0b1c2d3e4f5", "3.1_assess_readiness", now - 1800.0, true);
    trt_turn(&mut con, "trt:", "user_77", "stage_1_complete", now - 7200.0, true);
    // The index keeps ids whose keys expired long ago.
    let _: () = con.zadd("trt:active_sessions", "gone_1", now - 200_000.0).unwrap();
    let _: () = con.zadd("trt:active_sessions", "gone_2", now - 190_000.0).unwrap();
    // A lock that was never released, and a session whose state lost its TTL.
    let _: () = con.set("trt:lock:user_77", "token").unwrap();
    let _: () = con.persist("trt:session:user_77:state").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&server.socket_url(), &dir).args(["snapshot", "--json"]));

    assert_eq!(snap["layout"]["kind"], "trt");
    assert_eq!(snap["layout"]["prefix"], "trt:");
    let s = &snap["sessions"];
    assert_eq!(s["total"], 3, "orphaned index entries are not live sessions");
    assert_eq!(s["orphaned"], 2);
    assert_eq!(s["no_ttl"], 1);
    assert_eq!(s["undecodable"], 0);
    assert_eq!(s["by_stage"], json!({"stage_1_safety_building": 3}));
    assert_eq!(s["by_substate"], json!({"1.2_problem_and_body": 1, "3.1_assess_readiness": 1, "stage_1_complete": 1}));
    assert_eq!(s["orphan_ids"], json!(["gone_1", "gone_2"]));
    assert_eq!(s["stalled"], 1, "only the session idle 30 min mid-workflow is stalled");

    let u = item(&snap, "user_1234");
    assert_eq!(u["stage"], "stage_1_safety_building");
    assert_eq!(u["substate"], "1.2_problem_and_body");
    assert_eq!(u["history_len"], 2);
    assert!(close(&u["idle_seconds"], 300, 5), "{u}");
    assert!(close(&u["ttl_seconds"], 86_400, 5), "{u}");
    assert!(u["memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(u["decode_error"], serde_json::Value::Null);
    let last = chrono::DateTime::parse_from_rfc3339(u["last_interaction"].as_str().unwrap()).unwrap();
    assert!((last.timestamp() as f64 - (now - 300.0)).abs() < 2.0);

    let done = item(&snap, "user_77");
    assert_eq!(done["ttl_seconds"], -1, "persistent keys report -1 like TTL does");
    assert_eq!(done["stalled"], false, "final substate");
    assert!(close(&done["idle_seconds"], 7200, 5));

    // Items are most recently active first.
    let ids: Vec<&str> = s["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["user_1234", "9f1c2d3e-4b5a-4c6d-8e7f-a0b1c2d3e4f5", "user_77"]);
    assert!(
        snap["server"]["redis_version"].as_str().unwrap().starts_with('7')
            || snap["server"]["redis_version"].is_string()
    );
    assert_eq!(snap["server"]["db_keys"], 11);
    assert_eq!(snap["server"]["maxmemory_bytes"], 0);
    assert_eq!(snap["target"]["url"], server.socket_url());
}

#[test]
fn flask_msgpack_and_pickle_sessions_in_one_database() {
    let server = server();
    let mut con = conn(&server);
    let p = "chatmrpt:";
    flask_set(&mut con, p, &sid(1), &chatmrpt_msgpack(Some("uploaded"), 3), 86_400);
    flask_set(&mut con, p, &sid(2), &chatmrpt_msgpack(Some("analysis_complete"), 9), 86_400 - 1200);
    flask_set(&mut con, p, &sid(3), &chatmrpt_pickle(Some("uploaded"), 4), 86_400 - 3600);
    flask_set(&mut con, p, &sid(4), &chatmrpt_msgpack(None, 0), 86_400 - 60);
    // Real Flask-Session writes: 0.8 msgpack, 0.6 pickle and 0.8 JSON values.
    flask_set(&mut con, p, &sid(5), &payload("msgpack_full_0.8.0"), 1800);
    flask_set(&mut con, p, &sid(6), &payload("pickle_p4_full_0.6.0"), 1800);
    flask_set(&mut con, p, &sid(7), &payload("json_0.8.0"), 1800);
    // A value no decoder accepts.
    flask_set(&mut con, p, &sid(8), b"\x80\x04\x95not a pickle\xff", 86_400);
    // Keys beside the sessions that are not sessions.
    let _: () = con.set_ex(format!("{p}analysis_complete:{}", sid(2)), "1", 86_400).unwrap();
    let _: () = con.hset(format!("conversation:{}:meta", sid(1)), "title", "Kano").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&server.socket_url(), &dir).args([
        "--layout",
        "flask",
        "--prefix",
        p,
        "--session-lifetime",
        "1d",
        "snapshot",
        "--json",
    ]));
    let s = &snap["sessions"];
    assert_eq!(s["total"], 8, "flag keys with a further ':' are not sessions");
    assert_eq!(s["by_stage"], json!({"analysis_complete": 1, "uploaded": 2}));
    assert_eq!(s["no_stage"], 5);
    assert_eq!(s["undecodable"], 1);
    assert_eq!(s["no_ttl"], 0);
    assert_eq!(s["orphaned"], 0);
    assert!(close(&item(&snap, &sid(2))["idle_seconds"], 1200, 3));
    assert!(close(&item(&snap, &sid(3))["idle_seconds"], 3600, 3));
    assert_eq!(item(&snap, &sid(3))["stage"], "uploaded", "pickled session decoded");
    assert_eq!(item(&snap, &sid(3))["stalled"], true);
    assert_eq!(item(&snap, &sid(2))["stalled"], false, "analysis_complete is final");
    let bad = item(&snap, &sid(8));
    assert!(bad["decode_error"].as_str().unwrap().starts_with("not JSON, msgpack or pickle"), "{bad}");
    assert_eq!(bad["last_interaction"], serde_json::Value::Null, "Flask-Session keeps no last-interaction field");

    // Without --session-lifetime, the lifetime is the largest TTL seen.
    let snap =
        json(sessiontop(&server.socket_url(), &dir).args(["--layout", "flask", "--prefix", p, "snapshot", "--json"]));
    assert!(close(&snap["sessions"]["lifetime_seconds"], 86_400, 2));
}

#[test]
fn inspect_shows_keys_decoded_state_and_history_newest_first() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    trt_turn(&mut con, "trt:", "user_5", "1.1_goal_and_vision", now - 120.0, true);
    trt_turn(&mut con, "trt:", "user_5", "1.2_problem_and_body", now - 60.0, false);
    let _: () = con.set_ex("trt:ratelimit:user_5:29000001", 3, 60).unwrap();
    let _: () = con.set_ex("trt:ratelimit:user_50:29000001", 1, 60).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = json(sessiontop(&server.socket_url(), &dir).args(["inspect", "user_5", "--json"]));
    let keys: Vec<(&str, &str)> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["key"].as_str().unwrap(), k["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("trt:session:user_5:state", "hash"),
            ("trt:session:user_5:history", "list"),
            ("trt:session:user_5:meta", "hash"),
            ("trt:ratelimit:user_5:29000001", "string"),
        ],
        "the other session's counter is not this session's"
    );
    assert_eq!(report["state"]["current_substate"], "1.2_problem_and_body");
    assert_eq!(report["state"]["stage_1_completion"]["goal_stated"], true, "JSON inside a field is decoded");
    assert_eq!(report["history_total"], 2);
    assert_eq!(report["history"][0]["current_substate"], "1.2_problem_and_body", "newest first");
    assert_eq!(report["history"][1]["current_substate"], "1.1_goal_and_vision");
    assert_eq!(report["parts"]["trt:session:user_5:meta"]["created_via"], "input_endpoint");
    assert_eq!(report["session"]["history_len"], 2);
    assert_eq!(report["orphaned"], false);

    // The text form says the same in words.
    let out = sessiontop(&server.socket_url(), &dir).args(["inspect", "user_5"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("client: I feel it in my chest"), "{text}");
    assert!(text.contains("trt:ratelimit:user_5:29000001"), "{text}");
}

#[test]
fn inspect_decodes_real_flask_payloads() {
    let server = server();
    let mut con = conn(&server);
    flask_set(&mut con, "session:", &sid(1), &payload("pickle_p4_full_0.6.0"), 1800);
    flask_set(&mut con, "session:", &sid(2), &payload("msgpack_full_0.8.0"), 1800);
    let dir = tempfile::tempdir().unwrap();
    let pickled =
        json(sessiontop(&server.socket_url(), &dir).args(["--layout", "flask", "inspect", &sid(1), "--json"]));
    assert_eq!(pickled["payload_format"], "pickle");
    assert_eq!(pickled["state"]["name"], "Zoë");
    assert_eq!(pickled["state"]["login_at"], "2024-05-17T12:34:56.789000");
    assert_eq!(pickled["state"]["login_at_utc"], "2024-05-17T12:34:56.789000+00:00");
    assert_eq!(pickled["state"]["raw"], json!({"$bytes": "\\x00\\x01bytes"}));
    assert_eq!(pickled["state"]["nested"]["prefs"]["n"], 3.5);
    let packed = json(sessiontop(&server.socket_url(), &dir).args(["--layout", "flask", "inspect", &sid(2), "--json"]));
    assert_eq!(packed["payload_format"], "msgpack");
    assert_eq!(packed["state"]["login_at_utc"], "2024-05-17T12:34:56.789000+00:00", "timestamp extension");
    assert_eq!(packed["state"]["big"], 1_099_511_627_776u64);
    assert_eq!(packed["state"]["cart"], json!([1, "two", [3, 4], {"five": 5}]));
}

#[test]
fn auto_detection_picks_layout_and_prefix() {
    let server = server();
    let mut con = conn(&server);
    let dir = tempfile::tempdir().unwrap();
    let now = now_epoch();
    // Only ChatMRPT's Flask sessions, under its own prefix, beside other applications' keys.
    for n in 0..30 {
        flask_set(&mut con, "chatmrpt:", &sid(n), &chatmrpt_msgpack(Some("uploaded"), 1), 86_400);
        let _: () = con.set_ex(format!("chatmrpt:analysis_complete:{}", sid(n)), "1", 86_400).unwrap();
        let _: () = con.hset(format!("conversation:{}:meta", sid(n)), "t", "x").unwrap();
    }
    let _: () = con.rpush("rq:queue:default", "job").unwrap();
    let snap = json(sessiontop(&server.socket_url(), &dir).args(["snapshot", "--json"]));
    assert_eq!(snap["layout"]["kind"], "chatmrpt", "flask sessions under chatmrpt: are ChatMRPT's");
    assert_eq!(snap["layout"]["prefix"], "chatmrpt:");
    assert_eq!(snap["sessions"]["total"], 30);

    // Add more TRT sessions under a different prefix: TRT wins, with its prefix.
    for n in 0..40 {
        trt_turn(&mut con, "app:trt:", &format!("u{n}"), "1.1_goal_and_vision", now - 10.0, true);
    }
    let out = sessiontop(&server.socket_url(), &dir).args(["snapshot", "--json"]).output().unwrap();
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["layout"]["kind"], "trt");
    assert_eq!(snap["layout"]["prefix"], "app:trt:");
    assert_eq!(snap["sessions"]["total"], 40);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("layout trt, prefix 'app:trt:' (detected from"), "{stderr}");
    assert!(stderr.contains("also seen: flask 'chatmrpt:'"), "{stderr}");

    // A prefix narrows detection.
    let snap = json(sessiontop(&server.socket_url(), &dir).args(["--prefix", "chatmrpt:", "snapshot", "--json"]));
    assert_eq!(snap["layout"]["kind"], "chatmrpt");
}

#[test]
fn an_empty_database_is_not_guessed() {
    // A store just flushed or restarted after a deploy: the server is reported, no session is
    // invented, and the evidence says why there is no layout yet.
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&server.socket_url(), &dir).args(["snapshot", "--json"]));
    assert_eq!(snap["layout"], serde_json::Value::Null);
    assert_eq!(snap["sessions"], serde_json::Value::Null);
    let detection = snap["detection"].as_str().unwrap();
    assert!(detection.contains("no session layout recognised") && detection.contains("--layout"), "{detection}");
    assert!(snap["server"]["redis_version"].is_string());
    let out = sessiontop(&server.socket_url(), &dir).args(["snapshot"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("layout    none yet: no session layout recognised"), "{text}");
    // Commands about one session still need a layout, and say so in one line.
    let out = sessiontop(&server.socket_url(), &dir).args(["inspect", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no session layout recognised"), "{stderr}");
}

#[test]
fn a_custom_layout_file_needs_no_code() {
    let server = server();
    let mut con = conn(&server);
    // An express-session-like store: JSON strings under `sess:`, with a status field.
    for (n, status) in [(1, "active"), (2, "active"), (3, "closed")] {
        let body = json!({"cookie": {"maxAge": 86400}, "flow": {"step": "checkout"}, "status": status});
        let _: () = con.set_ex(format!("sess:{n}"), body.to_string(), 3600).unwrap();
    }
    let _: () = con.set_ex("sess:lock:1", "x", 10).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("express.toml");
    std::fs::write(
        &layout,
        r#"
name = "express"
prefix = "sess:"
[session]
key = "{prefix}{id}"
type = "string"
id_excludes = ":"
[fields]
stage = ["flow.step"]
status = ["status"]
[[related]]
name = "lock"
pattern = "{prefix}lock:{id}"
lifecycle = "ephemeral"
"#,
    )
    .unwrap();
    let snap =
        json(sessiontop(&server.socket_url(), &dir).args(["--layout", layout.to_str().unwrap(), "snapshot", "--json"]));
    assert_eq!(snap["layout"]["kind"], "custom");
    assert_eq!(snap["sessions"]["total"], 3);
    assert_eq!(snap["sessions"]["by_stage"], json!({"checkout": 3}));
    assert_eq!(item(&snap, "3")["status"], "closed");
}

#[test]
fn hostile_values_never_reach_the_terminal_raw() {
    let server = server();
    let mut con = conn(&server);
    let stage = rmpv::Value::Map(vec![(
        rmpv::Value::from("workflow_stage"),
        rmpv::Value::from("up\u{1b}[2J\u{1b}]0;pwned\u{7}loaded"),
    )]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &stage).unwrap();
    flask_set(&mut con, "session:", "evil\u{1b}[31m", &bytes, 100);
    flask_set(&mut con, "session:", &sid(1), &vec![b'x'; 3 << 20], 100);
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--layout", "flask", "snapshot"],
        vec!["--layout", "flask", "inspect", "evil\u{1b}[31m"],
        vec!["--layout", "flask", "inspect", &sid(1)],
    ] {
        let out = sessiontop(&server.socket_url(), &dir).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07), "{args:?} printed a control byte");
        assert!(out.stdout.len() < 64 << 10, "{args:?} printed {} bytes", out.stdout.len());
    }
    let snap = json(sessiontop(&server.socket_url(), &dir).args(["--layout", "flask", "snapshot", "--json"]));
    assert_eq!(snap["sessions"]["oversized"], 1);
    assert_eq!(
        snap["sessions"]["by_stage"],
        json!({"up\u{1b}[2J\u{1b}]0;pwned\u{7}loaded": 1}),
        "JSON keeps the exact value, escaped by JSON"
    );
}

#[test]
fn the_index_walk_counts_ties_across_pages_exactly_once() {
    let server = server();
    let mut con = conn(&server);
    // 2,345 sessions and 55 orphans all saved in the same instant: every page boundary of a
    // walk in pages of 100 falls inside one run of equal scores.
    let mut pipe = redis::pipe();
    for n in 0..2400 {
        let id = format!("u{n:04}");
        if n < 2345 {
            pipe.cmd("HSET")
                .arg(format!("trt:session:{id}:state"))
                .arg("current_stage")
                .arg("s")
                .arg("current_substate")
                .arg("a")
                .ignore();
            pipe.cmd("EXPIRE").arg(format!("trt:session:{id}:state")).arg(3600).ignore();
        }
        pipe.cmd("ZADD").arg("trt:active_sessions").arg(1_700_000_000.25).arg(&id).ignore();
    }
    let () = pipe.query(&mut con).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for count in ["100", "1000", "7"] {
        let snap = json(sessiontop(&server.socket_url(), &dir).args([
            "--layout",
            "trt",
            "--scan-count",
            count,
            "snapshot",
            "--json",
        ]));
        assert_eq!(snap["sessions"]["total"], 2345, "scan count {count}");
        assert_eq!(snap["sessions"]["orphaned"], 55, "scan count {count}");
        assert_eq!(snap["sessions"]["by_substate"], json!({"a": 2345}));
        assert_eq!(snap["census"]["examined"], 2400);
    }
}
