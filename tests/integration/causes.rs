//! Causes seen across sessions, planted in a real redis-server the way the applications write
//! them: sessions that never come back (a cookie not kept), a stage the flow stopped at. Each
//! found by `check` with its numbers, and none on healthy stores with normal traffic, new
//! visitors who never return included.

use redis::Commands;
use serde_json::Value;

use crate::common::*;

/// The findings above information.
fn loud(report: &Value) -> Vec<String> {
    let findings = report["findings"].as_array().unwrap().iter();
    findings.filter(|f| f["severity"] != "info").map(|f| f["kind"].as_str().unwrap().to_string()).collect()
}

/// A TRT visit of `turns` turns 30 s apart, begun `born_ago` seconds ago, as its session
/// manager writes it; the TTLs are what they would be now (the meta hash's counts from the
/// first turn, the others' from the last).
fn trt_visit(con: &mut redis::Connection, id: &str, born_ago: f64, turns: usize) {
    let now = now_epoch();
    let path = ["1.1_goal_and_vision", "1.1.5_psycho_education", "1.2_problem_and_body", "3.1_assess_readiness"];
    let mut last = now - born_ago;
    for turn in 0..turns {
        last = now - born_ago + turn as f64 * 30.0;
        trt_turn(con, "trt:", id, path[turn.min(path.len() - 1)], last, turn == 0);
    }
    let left = |since: f64| 86_400 - (now - since).max(0.0) as i64;
    let _: () = con.expire(format!("trt:session:{id}:state"), left(last)).unwrap();
    let _: () = con.expire(format!("trt:session:{id}:history"), left(last)).unwrap();
    let _: () = con.expire(format!("trt:session:{id}:meta"), left(now - born_ago)).unwrap();
}

/// A TRT store's usual day: conversations begun over the last two hours, most of several
/// turns, one visitor in four looking once and leaving.
fn trt_usual(con: &mut redis::Connection) {
    for i in 0..120 {
        let turns = if i % 4 == 0 { 1 } else { 3 };
        trt_visit(con, &format!("user_{i}"), 90.0 + f64::from(i) * 60.0, turns);
    }
}

#[test]
fn trt_sessions_that_never_come_back_are_found_from_one_look_and_a_usual_store_is_quiet() {
    let server = server();
    let mut con = conn(&server);
    trt_usual(&mut con);
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = check(&server.socket_url(), &dir, &["--layout", "trt"]);
    assert!(finding(&report, "not_coming_back").is_none(), "{report}");
    assert_eq!(code, 0, "{report}");

    // A deploy that loses the session id: every request is a conversation of one turn.
    for i in 0..150 {
        trt_visit(&mut con, &format!("lost_{i}"), 40.0 + f64::from(i) * 3.0, 1);
    }
    let (code, report) = check(&server.socket_url(), &dir, &["--layout", "trt"]);
    let f = finding(&report, "not_coming_back").unwrap_or_else(|| panic!("{report}"));
    assert_eq!(f["severity"], "warning");
    let summary = f["summary"].as_str().unwrap();
    // 150 lost and the usual store's nine visits of the last ten minutes (three of one turn).
    assert!(summary.starts_with("159 sessions were created in the last 10m (16/min; 1.0/min before)"), "{summary}");
    assert!(
        summary.contains("and 96% were never used again: the application is not getting its session cookie back"),
        "{summary}"
    );
    assert_eq!(f["count"], 153, "{f}");
    assert_eq!(code, 1, "{report}");
}

/// Flask-Session sessions arriving while `check --observe` watches: `once` saved once and never
/// again (a client whose cookie is not kept), `returning` saved again a second later.
fn flask_arrivals(once: u32, returning: u32) -> (i32, Value) {
    let server = server();
    let mut con = conn(&server);
    for i in 0..20 {
        flask_set(&mut con, "chatmrpt:", &sid(i), &chatmrpt_msgpack(Some("uploaded"), 3), 86_400 - u64::from(i));
    }
    let dir = tempfile::tempdir().unwrap();
    let args = ["--layout", "flask", "--prefix", "chatmrpt:", "--new-sessions-window", "20s"];
    let child = observing(&server.socket_url(), &dir, &args, "5s");
    // Once the first pass is over (the second has read the store again), new visitors arrive.
    calls_at_least(&mut con, "getrange", 40);
    let arrived = std::time::Instant::now();
    for i in 0..once + returning {
        flask_set(&mut con, "chatmrpt:", &sid(1000 + i), &chatmrpt_msgpack(None, 0), 86_400);
    }
    // A pass sees them, and a second later the returning ones make their next request.
    let seen = calls_of(&mut con, "getrange") + 20 + u64::from(once + returning);
    calls_at_least(&mut con, "getrange", seen);
    while arrived.elapsed() < std::time::Duration::from_millis(1200) {
        let next = calls_of(&mut con, "getrange") + 1;
        calls_at_least(&mut con, "getrange", next);
    }
    for i in once..once + returning {
        flask_set(&mut con, "chatmrpt:", &sid(1000 + i), &chatmrpt_msgpack(Some("uploaded"), 1), 86_400);
    }
    report_of(child)
}

#[test]
fn flask_sessions_saved_once_and_never_again_are_found_while_watching() {
    let (code, report) = flask_arrivals(40, 6);
    let f = finding(&report, "not_coming_back").unwrap_or_else(|| panic!("{report}"));
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.starts_with("46 sessions were created in the last "), "{summary}");
    assert!(summary.contains("not watched before) and 86% were never used again"), "{summary}");
    assert_eq!(f["count"], 40, "{f}");
    assert_eq!(code, 1, "{report}");
}

#[test]
fn flask_visitors_who_come_back_with_a_few_who_never_do_are_quiet() {
    let (code, report) = flask_arrivals(5, 20);
    assert!(finding(&report, "not_coming_back").is_none(), "{report}");
    // They were seen arriving, and the returning ones coming back.
    let new = &report["flow"]["new_sessions"];
    assert_eq!((new["created"].as_u64(), new["never_used_again"].as_u64()), (Some(25), Some(5)), "{new}");
    assert_eq!(code, 0, "{report}");
}

/// TRT conversations moving through their substates while `check --observe` watches, a pass
/// between each step: all 22 from 1.1 to 1.1.5, then twelve on to 1.2 and the rest to 3.1,
/// then the twelve to the end; the rest, when `stop` is set, stay in 3.1 (a step a deploy broke)
/// and otherwise finish too.
fn trt_flow(stop: bool) -> (i32, Value) {
    let server = server();
    let mut con = conn(&server);
    let ids: Vec<String> = (0..22).map(|i| format!("user_{i}")).collect();
    for id in &ids {
        trt_turn(&mut con, "trt:", id, "1.1_goal_and_vision", now_epoch() - 5.0, true);
    }
    let dir = tempfile::tempdir().unwrap();
    let child = observing(&server.socket_url(), &dir, &["--layout", "trt", "--flow-window", "30s"], "6s");
    // Once the first pass is over (the second has read them again).
    calls_at_least(&mut con, "hmget", 2 * 22);
    let step = |con: &mut redis::Connection, moves: &[(&[String], &str)]| {
        for (who, substate) in moves {
            for id in *who {
                trt_turn(con, "trt:", id, substate, now_epoch(), false);
            }
        }
        // A pass reads them where they are now.
        let next = calls_of(con, "hmget") + 2 * 22;
        calls_at_least(con, "hmget", next);
    };
    let (twelve, ten) = ids.split_at(12);
    step(&mut con, &[(&ids, "1.1.5_psycho_education")]);
    step(&mut con, &[(twelve, "1.2_problem_and_body"), (ten, "3.1_assess_readiness")]);
    step(&mut con, &[(twelve, "stage_1_complete")]);
    if !stop {
        step(&mut con, &[(ten, "stage_1_complete")]);
    }
    report_of(child)
}

#[test]
fn a_stage_many_reach_and_none_leaves_while_others_move_on_is_found_while_watching() {
    let (code, report) = trt_flow(true);
    let f = finding(&report, "flow_stopped").unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        f["summary"],
        "10 sessions reached 3.1_assess_readiness in the last 30s and none left it; while sessions in other stages moved on"
    );
    assert_eq!(f["by_stage"], serde_json::json!([{"stage": "3.1_assess_readiness", "count": 10}]), "{f}");
    assert_eq!(code, 1, "{report}");
    let stages = report["flow"]["stages"].as_array().unwrap();
    let of = |name: &str| stages.iter().find(|s| s["stage"] == name).unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        (of("1.1.5_psycho_education")["entered"].as_u64(), of("1.1.5_psycho_education")["left"].as_u64()),
        (Some(22), Some(22))
    );
    assert_eq!(
        (of("1.2_problem_and_body")["entered"].as_u64(), of("1.2_problem_and_body")["left"].as_u64()),
        (Some(12), Some(12))
    );
}

#[test]
fn a_flow_where_everyone_moves_on_is_quiet() {
    let (code, report) = trt_flow(false);
    assert!(finding(&report, "flow_stopped").is_none(), "{report}");
    assert!(loud(&report).is_empty(), "{report}");
    assert_eq!(code, 0, "{report}");
}

#[test]
fn a_cookie_lost_at_a_deploy_over_an_hour_ago_is_judged_against_the_hour_before_the_deploy() {
    let server = server();
    let mut con = conn(&server);
    trt_usual(&mut con);
    // Since a deploy 80 minutes ago, a conversation of one turn every 15 s.
    for i in 0..320 {
        trt_visit(&mut con, &format!("lost_{i}"), 40.0 + f64::from(i) * 15.0, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    // The hour before the window is as broken as the window: the store's shape, unless the
    // deploy is marked.
    let (_, report) = check(&server.socket_url(), &dir, &["--layout", "trt"]);
    assert!(finding(&report, "not_coming_back").is_none(), "{report}");
    let deploy = chrono::Utc::now() - chrono::Duration::seconds(80 * 60 + 30);
    let baseline = deploy.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (code, report) = check(&server.socket_url(), &dir, &["--layout", "trt", "--baseline", &baseline]);
    let f = finding(&report, "not_coming_back").unwrap_or_else(|| panic!("{report}"));
    assert!(f["summary"].as_str().unwrap().contains("were never used again"), "{f}");
    assert_eq!(report["flow"]["baseline"].as_str().map(|b| b.starts_with(&baseline[..16])), Some(true), "{report}");
    assert_eq!(code, 1, "{report}");
}
