//! ChatMRPT as it really is: Flask-Session 0.8 sessions under `chatmrpt:` whose side keys are
//! named by the payload's own `session_id`, found by the ids engineers know, with TPR counted
//! and idle times right after a quiet spell.

use redis::Commands;

use crate::common::*;

/// A ChatMRPT payload as Flask-Session 0.8 writes it (msgpack), with the app's own ids.
fn payload(
    session_id: &str,
    user_id: Option<&str>,
    stage: Option<&str>,
    upload_type: &str,
    tpr_active: bool,
) -> Vec<u8> {
    let mut entries = vec![
        (rmpv::Value::from("_permanent"), rmpv::Value::Boolean(false)),
        (rmpv::Value::from("session_id"), rmpv::Value::from(session_id)),
        (rmpv::Value::from("base_session_id"), rmpv::Value::from(session_id)),
        (rmpv::Value::from("data_loaded"), rmpv::Value::Boolean(true)),
        (rmpv::Value::from("tpr_workflow_active"), rmpv::Value::Boolean(tpr_active)),
        (rmpv::Value::from("tpr_session_id"), rmpv::Value::Nil),
        (rmpv::Value::from("upload_type"), rmpv::Value::from(upload_type)),
        (rmpv::Value::from("message_count"), rmpv::Value::from(9)),
    ];
    if let Some(stage) = stage {
        entries.push((rmpv::Value::from("workflow_stage"), rmpv::Value::from(stage)));
    }
    if let Some(user) = user_id {
        entries.push((rmpv::Value::from("user_id"), rmpv::Value::from(user)));
    }
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &rmpv::Value::Map(entries)).unwrap();
    out
}

/// The side keys `services/redis_state.py` writes for an app session id.
fn side_keys(con: &mut redis::Connection, session_id: &str) -> Vec<String> {
    let keys = vec![
        format!("chatmrpt:analysis_complete:{session_id}"),
        format!("chatmrpt:itn_complete:{session_id}"),
        format!("chatmrpt:custom:itn_parameters:{session_id}"),
    ];
    let _: () = con.set_ex(&keys[0], "1", 86_400).unwrap();
    let _: () = con.set_ex(&keys[1], "1", 86_400).unwrap();
    let _: () = con.set(&keys[2], r#"{"coverage": 0.8}"#).unwrap();
    keys
}

const APP_A: &str = "9b2f4c1e-7d3a-4e8b-a1c2-5f6e7d8c9b0a";
const APP_B: &str = "1c3e5a7b-2d4f-4a6c-8e0b-9d1f3a5c7e9b";

#[test]
fn side_keys_are_joined_by_the_payloads_session_id_and_found_by_app_ids() {
    let server = server();
    let mut con = conn(&server);
    flask_set(
        &mut con,
        "chatmrpt:",
        &sid(1),
        &payload(APP_A, Some("user-42"), Some("uploaded"), "tpr_excel", false),
        86_400,
    );
    flask_set(
        &mut con,
        "chatmrpt:",
        &sid(2),
        &payload(APP_B, Some("user-42"), Some("analysis_complete"), "csv_shapefile", true),
        86_400,
    );
    flask_set(
        &mut con,
        "chatmrpt:",
        &sid(3),
        &payload("0e0e0e0e-0000-4000-8000-000000000000", None, None, "csv_shapefile", false),
        86_400,
    );
    let mine = side_keys(&mut con, APP_A);
    let theirs = side_keys(&mut con, APP_B);
    let dir = tempfile::tempdir().unwrap();
    let url = server.socket_url();

    // Detected as ChatMRPT, with its lifetime and its markers.
    let snap = json(sessiontop(&url, &dir).args(["snapshot", "--json"]));
    assert_eq!(snap["layout"]["kind"], "chatmrpt");
    assert_eq!(snap["sessions"]["total"], 3);
    assert_eq!(snap["sessions"]["lifetime_seconds"], 86_400);
    assert_eq!(snap["sessions"]["lifetime_source"], "the layout's");
    assert_eq!(snap["sessions"]["by_marker"]["TPR"], 2, "tpr_excel uploads and an active TPR workflow");

    // inspect lists exactly this session's side keys.
    let report = json(sessiontop(&url, &dir).args(["inspect", &sid(1), "--json"]));
    let mut keys: Vec<String> =
        report["keys"].as_array().unwrap().iter().map(|k| k["key"].as_str().unwrap().to_string()).collect();
    keys.sort();
    let mut want = mine.clone();
    want.push(format!("chatmrpt:{}", sid(1)));
    want.sort();
    assert_eq!(keys, want);

    // Found by the app's own ids.
    let by = json(sessiontop(&url, &dir).args(["inspect", "--by", &format!("session_id={APP_B}"), "--json"]));
    assert_eq!(by["id"], sid(2));
    let out = sessiontop(&url, &dir).args(["inspect", "--by", "user_id=user-42"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "two sessions share the user id");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 sessions have user_id=user-42") && err.contains(&sid(1)) && err.contains(&sid(2)), "{err}");
    let out = sessiontop(&url, &dir).args(["inspect", "--by", "session_id=nobody"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = sessiontop(&url, &dir).args(["inspect", "--by", "workflow_stage=uploaded"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no id field 'workflow_stage'"));

    // delete takes the session and its side keys, and leaves the other session's alone.
    let out = sessiontop(&url, &dir).args(["delete", &sid(1), "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for key in mine.iter().chain([&format!("chatmrpt:{}", sid(1))]) {
        assert!(!con.exists::<_, bool>(key).unwrap(), "{key} was left behind");
    }
    for key in &theirs {
        assert!(con.exists::<_, bool>(key).unwrap(), "{key} of another session was taken");
    }
}

#[test]
fn idle_times_are_right_after_a_quiet_spell() {
    let server = server();
    let mut con = conn(&server);
    // The newest request was an hour ago: Flask-Session set a TTL of a day then.
    flask_set(
        &mut con,
        "chatmrpt:",
        &sid(1),
        &payload(APP_A, None, Some("uploaded"), "csv_shapefile", false),
        86_400 - 3600,
    );
    flask_set(
        &mut con,
        "chatmrpt:",
        &sid(2),
        &payload(APP_B, None, Some("uploaded"), "csv_shapefile", false),
        86_400 - 7200,
    );
    let dir = tempfile::tempdir().unwrap();
    let url = server.socket_url();
    let idle = |snap: &serde_json::Value, id: &str| {
        snap["sessions"]["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap()["idle_seconds"]
            .as_i64()
            .unwrap()
    };
    let snap = json(sessiontop(&url, &dir).args(["snapshot", "--json"]));
    assert!((3599..=3602).contains(&idle(&snap, &sid(1))), "{}", snap["sessions"]);
    assert_eq!(snap["sessions"]["stalled"], 2, "both an hour or more into the upload stage");
    // A plain flask layout infers the lifetime, rounds it up, and says so.
    let snap = json(sessiontop(&url, &dir).args(["--layout", "flask", "--prefix", "chatmrpt:", "snapshot", "--json"]));
    assert_eq!(snap["sessions"]["lifetime_seconds"], 86_400);
    let source = snap["sessions"]["lifetime_source"].as_str().unwrap();
    assert!(source.starts_with("inferred from the largest TTL seen (23h00m)"), "{source}");
    assert!((3599..=3602).contains(&idle(&snap, &sid(1))));
}

#[test]
fn check_observe_finds_users_whose_stage_does_not_change() {
    let server = server();
    let mut con = conn(&server);
    // Two users active a moment ago, one of them at the final stage; one who left an hour ago.
    let write = |con: &mut redis::Connection, n: u32, stage: &str, ttl: u64| {
        let app = format!("{n:08x}-0000-4000-8000-000000000000");
        flask_set(con, "chatmrpt:", &sid(n), &payload(&app, None, Some(stage), "csv_shapefile", false), ttl);
    };
    write(&mut con, 1, "uploaded", 86_400);
    write(&mut con, 2, "analysis_complete", 86_400);
    write(&mut con, 3, "uploaded", 86_400 - 3600);
    let dir = tempfile::tempdir().unwrap();
    let args = ["--stalled-after", "1s", "--poll-interval", "500ms", "check", "--observe", "3s", "--json"];
    let out = sessiontop(&server.socket_url(), &dir).args(args).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stuck = report["findings"].as_array().unwrap().iter().find(|f| f["kind"] == "stuck");
    let stuck = stuck.unwrap_or_else(|| panic!("no stuck finding: {report}"));
    let ids: Vec<&str> = stuck["sample"].as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, [sid(1).as_str()], "{stuck}");
    assert!(stuck["sample"][0]["detail"].as_str().unwrap().contains("in uploaded for"), "{stuck}");
    assert!(report["observed_seconds"].as_u64().unwrap() >= 3);
    // One look cannot tell: without --observe there is no stuck finding.
    let out =
        sessiontop(&server.socket_url(), &dir).args(["--stalled-after", "1s", "check", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["findings"].as_array().unwrap().iter().any(|f| f["kind"] == "stuck"), "{report}");
}
