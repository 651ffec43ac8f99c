//! Findings on planted data: each problem written into a real redis-server the way it happens,
//! found with its exact count and ids by `check`, and none on healthy data of either layout.

use redis::Commands;
use serde_json::Value;

use crate::common::*;

/// The server's `used_memory`.
fn used_memory(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap()
}

/// The ids a finding names, sorted.
fn ids(f: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        f["sample"].as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).map(String::from).collect();
    ids.sort();
    ids
}

fn severities(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string()))
        .collect()
}

/// A few turns of a healthy TRT conversation: the user moves on through the substates.
fn healthy_trt(con: &mut redis::Connection, id: &str, at: f64) {
    let path = ["1.1_goal_and_vision", "1.1.5_psycho_education", "1.2_problem_and_body", "1.2_problem_and_body"];
    for (turn, substate) in path.iter().enumerate() {
        trt_turn(con, "trt:", id, substate, at - (path.len() - turn) as f64 * 30.0, turn == 0);
    }
}

#[test]
fn healthy_sessions_of_both_layouts_raise_no_warning() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for i in 0..40 {
        healthy_trt(&mut con, &format!("user_{i}"), now - f64::from(i) * 20.0);
    }
    for i in 0..40 {
        let stage = ["uploaded", "tpr_analysis", "risk_analysis", "analysis_complete"][i as usize % 4];
        flask_set(&mut con, "chatmrpt:", &sid(i), &chatmrpt_msgpack(Some(stage), i64::from(i)), 86_400 - u64::from(i));
    }
    // The ChatMRPT setup guide's own settings: an evicting policy, memory far below its limit.
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("256mb").query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("allkeys-lru").query(&mut con).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for layout in [&["--layout", "trt"][..], &["--layout", "flask", "--prefix", "chatmrpt:"]] {
        let (code, report) = check(&server.socket_url(), &dir, layout);
        assert_eq!(finding(&report, "eviction_policy").unwrap()["severity"], "info", "{report}");
        let loud: Vec<_> = severities(&report).into_iter().filter(|(_, s)| s != "info").collect();
        assert!(loud.is_empty(), "{layout:?}: {loud:?}");
        assert_eq!(code, 0, "{layout:?}: {report}");
        assert_eq!(report["status"], "OK");
        assert_eq!(report["sessions"], 40);
    }
}

#[test]
fn each_trt_problem_is_found_with_its_sessions() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for i in 0..10 {
        healthy_trt(&mut con, &format!("fine_{i}"), now - 60.0);
    }
    // A session key made persistent.
    healthy_trt(&mut con, "forever", now - 60.0);
    let _: () = con.persist("trt:session:forever:state").unwrap();
    // A lock left without TTL, and one set to be held for an hour.
    healthy_trt(&mut con, "locked", now - 60.0);
    let _: () = con.set("trt:lock:locked", "1").unwrap();
    healthy_trt(&mut con, "long_lock", now - 60.0);
    let _: () = con.set_ex("trt:lock:long_lock", "1", 3600).unwrap();
    // History that outlives its state by a day.
    healthy_trt(&mut con, "apart", now - 60.0);
    let _: () = con.expire("trt:session:apart:history", 2 * 86_400).unwrap();
    // History past the application's trim of 50.
    healthy_trt(&mut con, "untrimmed", now - 60.0);
    for _ in 0..60 {
        let _: () = con.lpush("trt:session:untrimmed:history", r#"{"current_substate": "x"}"#).unwrap();
    }
    // At the rate limit this minute.
    healthy_trt(&mut con, "busy", now - 5.0);
    let minute = (now / 60.0).floor() as i64;
    let _: () = con.set_ex(format!("trt:ratelimit:busy:{minute}"), 10, 60).unwrap();
    // Last active an hour from now.
    healthy_trt(&mut con, "future", now + 3600.0);
    // An index score 22.5 minutes ahead of the state's own last interaction (not a zone
    // offset: those are whole quarter hours): a writer that touches the index alone.
    healthy_trt(&mut con, "skewed", now - 60.0 - 1350.0);
    // (healthy_trt's last turn is 30 s before the time it is given.)
    let _: () = con.zadd("trt:active_sessions", "skewed", now - 90.0).unwrap();
    // A state hash that grew a 300 KiB field the layout does not read.
    healthy_trt(&mut con, "bloated", now - 60.0);
    let _: () = con.hset("trt:session:bloated:state", "uploaded_frame", "x".repeat(300 << 10)).unwrap();
    // The same substate and decision for the last six turns, within the last half hour.
    for turn in 0..6 {
        trt_turn(&mut con, "trt:", "looping", "1.2_problem_and_body", now - 300.0 + f64::from(turn) * 20.0, turn == 0);
    }
    // The same six turns two hours ago: a user who left, not one who is stuck.
    for turn in 0..6 {
        trt_turn(&mut con, "trt:", "left", "1.2_problem_and_body", now - 7200.0 + f64::from(turn) * 20.0, turn == 0);
    }
    // An index entry whose keys are gone.
    let _: () = con.zadd("trt:active_sessions", "gone", now - 100_000.0).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (code, report) = check(&server.socket_url(), &dir, &["--layout", "trt"]);
    assert_eq!(code, 1, "warnings and no critical: {report}");
    assert_eq!(report["status"], "WARNING");
    let expect = |kind: &str, severity: &str, count: u64, want: &[&str]| {
        let f = finding(&report, kind).unwrap_or_else(|| panic!("no {kind} finding: {report}"));
        assert_eq!(f["severity"], severity, "{kind}: {f}");
        assert_eq!(f["count"], count, "{kind}: {f}");
        assert_eq!(ids(f), want, "{kind}: {f}");
    };
    expect("no_ttl", "warning", 2, &["forever", "locked"]);
    expect("stale_lock", "warning", 2, &["locked", "long_lock"]);
    expect("ttl_mismatch", "warning", 1, &["apart"]);
    expect("history_over_cap", "warning", 1, &["untrimmed"]);
    expect("rate_limited", "info", 1, &["busy"]);
    expect("clock_trouble", "warning", 2, &["future", "skewed"]);
    expect("oversized", "warning", 1, &["bloated"]);
    let skewed = finding(&report, "clock_trouble").unwrap()["sample"].to_string();
    assert!(skewed.contains("index score is 22m") && skewed.contains("ahead"), "{skewed}");
    let bloated = finding(&report, "oversized").unwrap()["sample"][0]["detail"].as_str().unwrap().to_string();
    assert!(bloated.starts_with("hash of ") && bloated.contains("largest: uploaded_frame (300.0 KiB)"), "{bloated}");
    expect("stuck", "warning", 1, &["looping"]);
    expect("orphaned", "info", 1, &["gone"]);
    let stuck = finding(&report, "stuck").unwrap();
    let why = stuck["sample"][0]["detail"].as_str().unwrap();
    assert!(why.contains("1.2_problem_and_body") && why.contains("body_location"), "{why}");
    let lock = &finding(&report, "stale_lock").unwrap()["sample"];
    assert!(lock.to_string().contains("no TTL") && lock.to_string().contains("held"), "{lock}");
    // Each sample names the key it is about, where it is about one.
    let key_of = |kind: &str, id: &str| -> Value {
        let f = finding(&report, kind).unwrap();
        f["sample"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("{f}"))["key"].clone()
    };
    assert_eq!(key_of("stale_lock", "locked"), "trt:lock:locked");
    assert_eq!(key_of("stale_lock", "long_lock"), "trt:lock:long_lock");
    assert_eq!(key_of("no_ttl", "forever"), "trt:session:forever:state");
    assert_eq!(key_of("no_ttl", "locked"), "trt:lock:locked");
    assert_eq!(key_of("ttl_mismatch", "apart"), "trt:session:apart:history");
    assert_eq!(key_of("history_over_cap", "untrimmed"), "trt:session:untrimmed:history");
    assert_eq!(key_of("rate_limited", "busy"), Value::from(format!("trt:ratelimit:busy:{minute}")));
    assert_eq!(key_of("oversized", "bloated"), "trt:session:bloated:state");
    assert_eq!(key_of("stuck", "looping"), Value::Null, "about the session as a whole");
    let text = sessiontop(&server.socket_url(), &dir).args(["--layout", "trt", "check"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("session locked (key trt:lock:locked): the lock has no TTL"), "{text}");
}

#[test]
fn a_stage_with_its_own_threshold_in_the_layout_stalls_later() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    // Both idle 30 minutes: the first in a substate the layout gives an hour, the second in one
    // that takes `--stalled-after` (15 minutes).
    trt_turn(&mut con, "trt:", "thinking", "1.1_goal_and_vision", now - 1800.0, true);
    trt_turn(&mut con, "trt:", "left", "1.2_problem_and_body", now - 1800.0, true);
    let dir = tempfile::tempdir().unwrap();
    let builtin = include_str!("../../src/engine/layout/trt.toml");
    let with_limit = builtin.replace(
        "final = [\"stage_1_complete\"]",
        "final = [\"stage_1_complete\"]\nstalled_after = { \"1.1_goal_and_vision\" = \"1h\" }",
    );
    assert_ne!(with_limit, builtin);
    let file = dir.path().join("trt-slow.toml");
    std::fs::write(&file, with_limit).unwrap();
    let (_, report) = check(&server.socket_url(), &dir, &["--layout", file.to_str().unwrap()]);
    let stalled = finding(&report, "stalled").unwrap_or_else(|| panic!("{report}"));
    assert_eq!(stalled["count"], 1, "{stalled}");
    assert_eq!(stalled["by_stage"], serde_json::json!([{"stage": "1.2_problem_and_body", "count": 1}]));
    let summary = stalled["summary"].as_str().unwrap();
    assert!(summary.contains("15m00s (1h00m in 1.1_goal_and_vision)"), "{summary}");
    // Without the layout's threshold both are stalled.
    let (_, report) = check(&server.socket_url(), &dir, &["--layout", "trt"]);
    assert_eq!(finding(&report, "stalled").unwrap()["count"], 2, "{report}");
}

#[test]
fn flask_payloads_that_are_large_or_unreadable_are_found() {
    let server = server();
    let mut con = conn(&server);
    flask_set(&mut con, "chatmrpt:", &sid(1), &chatmrpt_msgpack(Some("uploaded"), 1), 86_400);
    let rows: Vec<Value> = (0..12_000).map(|i| serde_json::json!({"ward": format!("ward {i}"), "tpr": i})).collect();
    let big =
        serde_json::to_vec(&serde_json::json!({"workflow_stage": "tpr_analysis", "df": rows, "note": "x"})).unwrap();
    assert!(big.len() > 256 << 10 && big.len() < 1 << 20, "{}", big.len());
    flask_set(&mut con, "chatmrpt:", &sid(2), &big, 86_400);
    flask_set(&mut con, "chatmrpt:", &sid(3), b"\x80\x05garbage", 86_400);
    let _: () = con.set("chatmrpt:never_expires", chatmrpt_msgpack(Some("uploaded"), 2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = check(&server.socket_url(), &dir, &["--layout", "flask", "--prefix", "chatmrpt:"]);
    assert_eq!(code, 1, "{report}");
    let oversized = finding(&report, "oversized").unwrap();
    assert_eq!(ids(oversized), [sid(2)]);
    let why = oversized["sample"][0]["detail"].as_str().unwrap();
    assert!(why.starts_with("payload of ") && why.contains("largest: df ("), "{why}");
    assert_eq!(ids(finding(&report, "undecodable").unwrap()), [sid(3)]);
    assert_eq!(ids(finding(&report, "no_ttl").unwrap()), ["never_expires"]);
}

#[test]
fn check_exits_by_the_worst_finding_and_3_when_it_cannot_judge() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    healthy_trt(&mut con, "user_1", now - 10.0);
    let dir = tempfile::tempdir().unwrap();
    let url = server.socket_url();
    // Critical: memory at the limit.
    let used = used_memory(&mut con);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(used + used / 50).query(&mut con).unwrap();
    let (code, report) = check(&url, &dir, &["--layout", "trt"]);
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["status"], "CRITICAL");
    assert_eq!(finding(&report, "memory_high").unwrap()["severity"], "critical");
    let text = sessiontop(&url, &dir).args(["--layout", "trt", "check"]).output().unwrap();
    assert_eq!(text.status.code(), Some(2));
    let first = String::from_utf8_lossy(&text.stdout).lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("CRITICAL: 1 sessions; 1 critical (memory_high)"), "{first}");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(0).query(&mut con).unwrap();

    // Unknown: nothing listens, a wrong password, no session layout, a bad flag.
    let dead = tempfile::tempdir().unwrap();
    let nowhere = format!("redis+unix://{}/none.sock", dead.path().display());
    let empty = server_with(&["--requirepass", "right"]);
    let (wrong, right) = (format!("{}?pass=wrong", empty.socket_url()), format!("{}?pass=right", empty.socket_url()));
    for (url, extra, says) in [
        (nowhere.as_str(), &[][..], "cannot connect"),
        (wrong.as_str(), &[][..], "WRONGPASS"),
        (url.as_str(), &["--stuck-turns", "nope"][..], "invalid value"),
    ] {
        let out = sessiontop(url, &dir).args(extra).arg("check").output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{url} {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
    // No session layout on a healthy server: unknown, said on the verdict's own line.
    let out = sessiontop(&right, &dir).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("UNKNOWN: no session layout found (") && first.contains("no warnings"), "{first}");
}

#[test]
fn a_full_redis_with_no_session_layout_is_critical_and_says_the_layout_is_missing() {
    // A new deploy that writes nothing yet, or a wrong --db: keys of no session layout, and
    // memory past maxmemory with noeviction, so that Redis refuses every write.
    let server = server();
    let mut con = conn(&server);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("noeviction").query(&mut con).unwrap();
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET").arg(format!("cache:item:{i}")).arg("x".repeat(512)).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    let used = used_memory(&mut con);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(used - used / 50).query(&mut con).unwrap();
    let refused: redis::RedisResult<()> = con.set("one:more", "x");
    assert!(refused.is_err_and(|e| e.to_string().contains("OOM")), "Redis refuses writes");
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = check(&server.socket_url(), &dir, &[]);
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["status"], "CRITICAL");
    assert_eq!(finding(&report, "memory_high").unwrap()["severity"], "critical", "{report}");
    assert!(report["unjudged"].as_str().unwrap().starts_with("no session layout found"), "{report}");
    assert_eq!(report["sessions"], Value::Null);
    let out = sessiontop(&server.socket_url(), &dir).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("CRITICAL: no session layout found (") && first.contains("memory_high"), "{first}");
}

#[test]
fn fixes_list_their_exact_changes_then_make_only_those_audited() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for i in 0..5 {
        healthy_trt(&mut con, &format!("fine_{i}"), now - 60.0);
    }
    for gone in ["gone_1", "gone_2"] {
        let _: () = con.zadd("trt:active_sessions", gone, now - 200_000.0).unwrap();
    }
    healthy_trt(&mut con, "forever", now - 60.0);
    let _: () = con.persist("trt:session:forever:state").unwrap();
    healthy_trt(&mut con, "locked", now - 60.0);
    let _: () = con.set("trt:lock:locked", "1").unwrap();
    for turn in 0..6 {
        trt_turn(&mut con, "trt:", "looping", "1.2_problem_and_body", now - 300.0 + f64::from(turn) * 20.0, turn == 0);
    }
    let dir = tempfile::tempdir().unwrap();
    let url = server.socket_url();
    let before = keyspace(&mut con);
    let run = |args: &[&str]| sessiontop(&url, &dir).args(["--layout", "trt", "fix"]).args(args).output().unwrap();

    // A dry run lists exactly what would change and changes nothing; so does read-only.
    let out = run(&["orphaned", "--dry-run"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("orphaned: 2 found, 2 to change"), "{listing}");
    assert!(listing.contains("index entry 'gone_1' in trt:active_sessions"), "{listing}");
    assert!(listing.contains("dry run: nothing was changed"), "{listing}");
    let out =
        sessiontop(&url, &dir).args(["--layout", "trt", "--read-only", "fix", "orphaned", "--yes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["stuck", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "stuck needs --expire or --delete");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--expire DURATION or --delete"));
    let out = run(&["orphaned"]);
    assert_eq!(out.status.code(), Some(2), "no terminal to ask on");
    assert_eq!(keyspace(&mut con), before, "nothing changed yet");

    // An entry whose session came back is not an orphan any more.
    healthy_trt(&mut con, "gone_2", now - 10.0);
    let out = run(&["orphaned", "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index: Vec<String> = con.zrange("trt:active_sessions", 0, -1).unwrap();
    assert!(!index.contains(&"gone_1".to_string()) && index.contains(&"gone_2".to_string()), "{index:?}");

    let out = run(&["no_ttl", "--yes", "--ttl", "1h"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ttl: i64 = con.ttl("trt:session:forever:state").unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    assert!(con.ttl::<_, i64>("trt:session:forever:history").unwrap() > 3600, "keys with a TTL keep theirs");

    let out = run(&["stale_lock", "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!con.exists::<_, bool>("trt:lock:locked").unwrap());
    assert!(con.exists::<_, bool>("trt:session:locked:state").unwrap(), "only the lock goes");

    let out = run(&["stuck", "--delete", "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!con.exists::<_, bool>("trt:session:looping:state").unwrap());
    assert!(con.exists::<_, bool>("trt:session:fine_0:state").unwrap());

    // Every change is in the audit log, begun and ended.
    let audit = std::fs::read_to_string(audit_path(&dir)).unwrap();
    for action in ["\"unindex\"", "\"expire\"", "\"release\"", "\"delete\""] {
        assert_eq!(
            audit.lines().filter(|l| l.contains(action) && l.contains("\"end\"")).count(),
            1,
            "{action}: {audit}"
        );
    }
    assert!(!audit.contains("gone_2"), "the entry that came back was not touched");
}

/// `INFO` of a real server, as the collectors parse it.
fn stats(con: &mut redis::Connection) -> sessiontop::conn::info::ServerStats {
    let text: String = redis::cmd("INFO").arg("everything").query(con).unwrap();
    sessiontop::conn::info::ServerStats::from_info(&text)
}

/// What the findings are made from, now, without a census: the server's `stats` (if any).
fn inputs_now<'a>(
    server: Option<&'a sessiontop::conn::info::ServerStats>,
    thresholds: &'a sessiontop::engine::domain::Thresholds,
) -> sessiontop::engine::diagnose::Inputs<'a> {
    sessiontop::engine::diagnose::Inputs {
        server,
        nodes: None,
        census: None,
        orphan_ids: &[],
        stalled: None,
        stalled_after_s: 900,
        stage_limits: &[],
        same_server: &[],
        thresholds,
        has_index: false,
        has_history: false,
        finals: &[],
        slowlog: None,
        watch_began: 0,
        utc_offset_s: 0,
        now: (now_epoch() * 1000.0) as i64,
    }
}

/// The server findings one look at `stats` gives with what `watch` saw before, by kind.
fn server_kinds(
    stats: &sessiontop::conn::info::ServerStats,
    watch: &sessiontop::engine::diagnose::Tracker,
    thresholds: &sessiontop::engine::domain::Thresholds,
) -> Vec<(String, String, u64)> {
    sessiontop::engine::diagnose::findings(&inputs_now(Some(stats), thresholds), watch)
        .into_iter()
        .map(|f| (f.kind.name().to_string(), f.severity.word().to_string(), f.count))
        .collect()
}

fn has(kinds: &[(String, String, u64)], kind: &str, severity: &str) -> Option<u64> {
    kinds.iter().find(|(k, s, _)| k == kind && s == severity).map(|(_, _, n)| *n)
}

/// Polls `INFO` until `done` holds (a few seconds at most): for what another connection does.
fn info_until(con: &mut redis::Connection, done: impl Fn(&sessiontop::conn::info::ServerStats) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done(&stats(con)) {
        assert!(std::time::Instant::now() < deadline, "INFO never showed it");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn server_trouble_in_a_real_redis_is_found() {
    use sessiontop::demo::local_redis::{Listen, LocalRedis, Options};
    let mut server = LocalRedis::start(Options { listen: Listen::Tcp, ..Options::default() }).unwrap();
    let mut con = conn(&server);
    let t = sessiontop::engine::domain::Thresholds::default();
    let mut watch = sessiontop::engine::diagnose::Tracker::default();
    let now = || (now_epoch() * 1000.0) as i64;
    let first = stats(&mut con);
    watch.observe_server(&first, now());
    let kinds = server_kinds(&first, &watch, &t);
    assert!(has(&kinds, "no_maxmemory", "info").is_some(), "{kinds:?}");
    assert!(has(&kinds, "restarted", "info").is_some(), "a fresh server: {kinds:?}");
    assert!(kinds.iter().all(|(_, s, _)| s == "info"), "{kinds:?}");

    // A policy that evicts sessions, then memory full: keys evicted while watching.
    let set = |con: &mut redis::Connection, name: &str, value: String| {
        let _: () = redis::cmd("CONFIG").arg("SET").arg(name).arg(value).query(con).unwrap();
    };
    let used = first.used_memory_bytes.unwrap();
    set(&mut con, "maxmemory", (used + (2 << 20)).to_string());
    set(&mut con, "maxmemory-policy", "allkeys-lru".into());
    let risky = stats(&mut con);
    let kinds = server_kinds(&risky, &watch, &t);
    assert!(has(&kinds, "eviction_policy", "info").is_some(), "a risk while memory is low: {kinds:?}");
    let mut pipe = redis::pipe();
    for i in 0..400 {
        pipe.set(format!("filler:{i}"), "x".repeat(10 << 10)).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    let full = stats(&mut con);
    watch.observe_server(&full, now());
    let kinds = server_kinds(&full, &watch, &t);
    let evicted = full.evicted_keys.unwrap();
    assert!(evicted > 0);
    assert_eq!(has(&kinds, "evicted", "critical"), Some(evicted), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|(k, _, _)| k == "evicted").count(), 1, "one finding a kind: {kinds:?}");
    assert!(kinds.iter().all(|(k, _, _)| k != "eviction_policy"), "the evictions say it now: {kinds:?}");
    assert!(has(&kinds, "memory_high", "critical").is_some(), "{kinds:?}");
    set(&mut con, "maxmemory", "0".into());
    set(&mut con, "maxmemory-policy", "noeviction".into());

    // maxclients reached: a connection refused.
    let clients = stats(&mut con).connected_clients.unwrap();
    set(&mut con, "maxclients", clients.to_string());
    let refused = redis::Client::open(server.socket_url())
        .unwrap()
        .get_connection()
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    assert!(refused.is_err(), "{refused:?}");
    set(&mut con, "maxclients", "10000".into());
    // A client blocked in BLPOP.
    let waiter = {
        let mut other = conn(&server);
        std::thread::spawn(move || {
            redis::cmd("BLPOP").arg("jobs").arg(30).query::<Option<(String, String)>>(&mut other)
        })
    };
    info_until(&mut con, |s| s.blocked_clients == Some(1));
    let busy = stats(&mut con);
    watch.observe_server(&busy, now());
    let kinds = server_kinds(&busy, &watch, &t);
    assert_eq!(has(&kinds, "rejected_connections", "critical"), Some(1), "{kinds:?}");
    assert_eq!(has(&kinds, "blocked_clients", "info"), Some(1), "{kinds:?}");
    let _: () = con.lpush("jobs", "done").unwrap();
    assert!(waiter.join().unwrap().unwrap().is_some());

    // Fragmentation above the line on a server large enough to matter (the size floor lowered
    // here: a test server holds little).
    let ratio = busy.mem_fragmentation_ratio.unwrap();
    let lowered =
        sessiontop::engine::domain::Thresholds { fragmentation_min_bytes: 0, fragmentation: ratio - 0.05, ..t };
    assert!(has(&server_kinds(&busy, &watch, &lowered), "fragmentation", "warning").is_some());
    let above = sessiontop::engine::domain::Thresholds { fragmentation: ratio + 0.05, ..lowered };
    assert!(has(&server_kinds(&busy, &watch, &above), "fragmentation", "warning").is_none());

    // A failover: this server becomes a replica of another.
    let other = LocalRedis::start(Options { listen: Listen::Tcp, ..Options::default() }).unwrap();
    let port = other.url().rsplit(':').next().unwrap().to_string();
    let _: () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(&port).query(&mut con).unwrap();
    let replica = stats(&mut con);
    watch.observe_server(&replica, now());
    let kinds = server_kinds(&replica, &watch, &t);
    assert!(has(&kinds, "role_changed", "critical").is_some(), "{kinds:?}");
    let _: () = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(&mut con).unwrap();

    // A restart: a new run id, and the data not saved is gone.
    server.restart().unwrap();
    let mut con = conn(&server);
    let back = stats(&mut con);
    assert_ne!(back.run_id, first.run_id);
    watch.observe_server(&back, now());
    let kinds = server_kinds(&back, &watch, &t);
    assert!(has(&kinds, "restarted", "critical").is_some(), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|(k, _, _)| k == "restarted").count(), 1, "{kinds:?}");
}

/// `check --json --observe 3s` of a TRT store, passes 300 ms apart, started in the background.
fn observing_check(server: &sessiontop::demo::local_redis::LocalRedis, dir: &tempfile::TempDir) -> std::process::Child {
    observing(&server.socket_url(), dir, &["--layout", "trt"], "3s")
}

#[test]
fn a_stage_whose_stalled_count_jumps_is_a_warning_in_check_observe() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for i in 0..20 {
        trt_turn(&mut con, "trt:", &format!("user_{i}"), "1.2_problem_and_body", now - 60.0, true);
    }
    let dir = tempfile::tempdir().unwrap();
    let child = observing_check(&server, &dir);
    // After two passes with nobody stalled, twelve users of one stage left an hour ago.
    calls_at_least(&mut con, "hmget", 40);
    for i in 0..12 {
        trt_turn(&mut con, "trt:", &format!("user_{i}"), "1.2_problem_and_body", now - 3600.0, false);
    }
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stalled = finding(&report, "stalled").unwrap_or_else(|| panic!("{report}"));
    assert_eq!(stalled["severity"], "warning", "{stalled}");
    assert_eq!(stalled["count"], 12, "{stalled}");
    let summary = stalled["summary"].as_str().unwrap();
    assert!(summary.contains("1.2_problem_and_body jumped to 12 from about 0"), "{summary}");
    assert_eq!(out.status.code(), Some(1), "{report}");
}

#[test]
fn a_sudden_drop_of_live_sessions_is_critical_in_check_observe() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for i in 0..40 {
        healthy_trt(&mut con, &format!("user_{i}"), now - 60.0);
    }
    let dir = tempfile::tempdir().unwrap();
    let child = observing_check(&server, &dir);
    // Once a pass has read them all, most sessions go at once.
    calls_at_least(&mut con, "hmget", 40);
    let mut pipe = redis::pipe();
    for i in 0..30 {
        pipe.del(format!("trt:session:user_{i}:state")).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{report}");
    let dropped = finding(&report, "sessions_dropped").unwrap_or_else(|| panic!("{report}"));
    assert_eq!(dropped["severity"], "critical");
    assert_eq!(dropped["count"], 30, "{dropped}");
}

#[test]
fn watched_processes_are_counted_and_a_change_of_count_is_a_finding() {
    use sessiontop::collect::host::Host;
    // Two workers of a made-up service, told apart from everything else by their arguments.
    let marker = format!("{}", 400_000 + std::process::id());
    let spawn = || std::process::Command::new("sleep").arg(&marker).spawn().unwrap();
    let (mut first, mut second) = (spawn(), spawn());
    let mut host = Host::new(vec![format!("sleep {marker}"), "no-such-service-anywhere".into()]).unwrap();
    let t = sessiontop::engine::domain::Thresholds::default();
    let mut watch = sessiontop::engine::diagnose::Tracker::default();
    let now = || (now_epoch() * 1000.0) as i64;
    let stats = host.sample();
    assert!(stats.memory_total_bytes > 0 && stats.memory_used_bytes > 0, "{stats:?}");
    assert_eq!(stats.processes[0].count, 2, "{stats:?}");
    assert!(stats.processes[0].rss_bytes > 0, "{stats:?}");
    assert_eq!(stats.processes[1].count, 0, "{stats:?}");
    watch.observe_host(&stats, now());
    let inputs = |t| inputs_now(None, t);
    assert!(sessiontop::engine::diagnose::findings(&inputs(&t), &watch).is_empty());
    // A worker dies.
    second.kill().unwrap();
    second.wait().unwrap();
    let stats = host.sample();
    assert_eq!(stats.processes[0].count, 1, "{stats:?}");
    watch.observe_host(&stats, now());
    let f = sessiontop::engine::diagnose::findings(&inputs(&t), &watch);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind.name(), "process_count");
    assert!(f[0].summary.contains(&format!("sleep {marker} 2 → 1")), "{}", f[0].summary);
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn check_observe_rides_out_a_restart_and_reports_what_it_saw() {
    let mut server = server();
    let fill = |server: &sessiontop::demo::local_redis::LocalRedis| {
        let mut con = conn(server);
        let now = now_epoch();
        for i in 0..40 {
            healthy_trt(&mut con, &format!("user_{i}"), now - 60.0);
        }
        con
    };
    let dir = tempfile::tempdir().unwrap();

    // Restarted during the watch, losing what it held (it does not persist): seen and said.
    let mut con = fill(&server);
    let child = observing_check(&server, &dir);
    calls_at_least(&mut con, "hmget", 40);
    server.restart().unwrap();
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: no JSON; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(2), "{report}");
    // One finding that says how many and why, not a restart and a drop apart.
    let restarted = finding(&report, "restarted").unwrap_or_else(|| panic!("{report}"));
    assert_eq!(restarted["severity"], "critical", "{report}");
    let summary = restarted["summary"].as_str().unwrap();
    assert!(summary.contains("and 40 of 40 sessions are gone: it does not persist"), "{summary}");
    assert!(finding(&report, "sessions_dropped").is_none(), "the restart explains the drop: {report}");
    assert_eq!(report["unjudged"], Value::Null, "{report}");

    // Gone at the end of the watch: what was seen is reported, and that it did not answer.
    let mut con = fill(&server);
    let child = observing_check(&server, &dir);
    calls_at_least(&mut con, "hmget", 40);
    server.stop();
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: no JSON; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert_eq!(report["status"], "UNKNOWN");
    assert_eq!(report["sessions"], 40, "{report}");
    let why = report["unjudged"].as_str().unwrap_or_default();
    assert!(why.starts_with("Redis did not answer at the end of the watch ("), "{report}");
}
