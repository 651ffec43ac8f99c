//! The slowlog against a real redis-server that logs every command: the application's own
//! commands on session keys are a finding naming the command and the client; sessiontop's own
//! are not; a user without `SLOWLOG` costs that one field.

use redis::Commands;

use crate::common::*;

#[test]
fn the_applications_slow_session_commands_are_a_finding_and_sessiontops_own_are_not() {
    // Every command counts as slow.
    let server = server_with(&["--slowlog-log-slower-than", "0"]);
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "alpha_user", "1.1_goal_and_vision", now_epoch(), true);
    let _: () = con.set("other:app:key", "1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, report) = check(&server.socket_url(), &dir, &["--layout", "trt"]);
    let f = finding(&report, "slow_session_commands").unwrap_or_else(|| panic!("no finding: {report}"));
    assert_eq!(f["severity"], "warning");
    // The turn's writes to the session's state and history (the index and the other
    // application's key are not a session's keys).
    assert!(f["count"].as_u64().is_some_and(|n| n >= 4), "{f}");
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.contains("trt:session:alpha_user:"), "{summary}");

    // Only sessiontop has run since the slowlog was emptied: its own are not the application's.
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    drop(con);
    let (_, report) = check(&server.socket_url(), &dir, &["--layout", "trt"]);
    assert!(finding(&report, "slow_session_commands").is_none(), "{report}");
    let mut con = conn(&server);
    let logged: Vec<redis::Value> = redis::cmd("SLOWLOG").arg("GET").arg(1000).query(&mut con).unwrap();
    assert!(logged.len() > 10, "sessiontop's own reads are in the slowlog: {}", logged.len());

    // A user without SLOWLOG: the rest goes on.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("noslow")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("+@all")
        .arg("-slowlog")
        .query(&mut con)
        .unwrap();
    let url = format!("redis+unix://{}?pass=pw", server.socket_path().display());
    let (code, report) = check(&url, &dir, &["--layout", "trt", "--user", "noslow"]);
    assert!(code < 3, "{report}");
    assert_eq!(report["sessions"], 1, "{report}");
}
