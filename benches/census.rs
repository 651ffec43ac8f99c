//! The census benchmark: loads TRT sessions into a real redis-server and times, in one run,
//! (a) `sessiontop snapshot` (a full census, the real binary),
//! (b) the naive listing the TRT application itself does (for each index member, read the state
//!     hash and its TTL, one round trip each), run as the application runs it: its own Python
//!     code on redis-py (`benches/trt_naive_client.py`);
//! (b') the same round trips from a Rust client, the floor any one-at-a-time client can reach
//!     over this loopback;
//! (c) a bare `SCAN` walk over the same keys.
//!
//! `cargo bench --bench census` (100,000 sessions; `SESSIONTOP_BENCH_SESSIONS=N` to change).
//! Prints the figures and whether the targets hold: census at least 20 times faster than the
//! naive client and within 3 times of the bare SCAN walk. (b) needs `python3` with redis-py
//! (`pip install redis`); without it, it says so and measures the rest.

use std::process::Command;
use std::time::{Duration, Instant};

use redis::Commands;
use sessiontop::local_redis::{Listen, LocalRedis, Options};

const RUNS: usize = 3;
const SCAN_COUNT: usize = 1000;

fn main() {
    let sessions: usize =
        std::env::var("SESSIONTOP_BENCH_SESSIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let server = LocalRedis::start(Options { listen: Listen::Tcp, ..Options::default() }).unwrap_or_else(|e| {
        eprintln!("census bench: {e}");
        std::process::exit(1);
    });
    let url = server.url();
    let mut con = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    let load_started = Instant::now();
    load(&mut con, sessions);
    let keys: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    println!(
        "census bench: {sessions} trt sessions ({keys} keys) loaded in {:.1?} over TCP loopback, redis-server {}",
        load_started.elapsed(),
        version(&mut con)
    );

    let python = python_naive_available();
    let mut census = Vec::new();
    let mut census_only = Vec::new();
    let mut naive = Vec::new();
    let mut naive_rust = Vec::new();
    let mut scan = Vec::new();
    let mut peak_rss_kib = 0;
    for _ in 0..RUNS {
        let (t, pass, rss) = time_snapshot(&url, sessions);
        census.push(t);
        census_only.push(pass);
        peak_rss_kib = peak_rss_kib.max(rss);
        if python {
            naive.push(time_naive_python(&url, sessions));
        }
        naive_rust.push(time_naive_rust(&mut con, sessions));
        scan.push(time_scan(&mut con, keys));
    }
    let (census, census_only, naive_rust, scan) =
        (median(census), median(census_only), median(naive_rust), median(scan));
    println!(
        "  (a)  sessiontop snapshot, whole process         {:>8.1} ms  (census pass {:.1} ms; peak RSS {} MiB)",
        ms(census),
        ms(census_only),
        peak_rss_kib / 1024
    );
    if python {
        let naive = median(naive);
        println!("  (b)  the app's own listing (Python, redis-py)   {:>8.1} ms", ms(naive));
        let ratio = naive.as_secs_f64() / census.as_secs_f64();
        println!(
            "       sessiontop is {ratio:.1}x faster than the app's own client (target >= 20x): {}",
            verdict(ratio >= 20.0)
        );
    } else {
        println!("  (b)  skipped: needs python3 with redis-py (pip install redis)");
    }
    println!("  (b') the same round trips from Rust            {:>8.1} ms", ms(naive_rust));
    println!("       sessiontop is {:.1}x faster than that floor", naive_rust.as_secs_f64() / census.as_secs_f64());
    println!("  (c)  bare SCAN walk (COUNT {SCAN_COUNT})                {:>8.1} ms", ms(scan));
    let vs_scan = census.as_secs_f64() / scan.as_secs_f64();
    println!("       sessiontop takes {vs_scan:.2}x a bare SCAN walk (target <= 3x): {}", verdict(vs_scan <= 3.0));
    println!("  (medians of {RUNS} runs; sessiontop timed as a whole process with --budget 0)");
}

fn python_naive_available() -> bool {
    Command::new("python3").args(["-c", "import redis"]).output().is_ok_and(|o| o.status.success())
}

/// (b): the application's own code, in its own language and client library.
fn time_naive_python(url: &str, sessions: usize) -> Duration {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/trt_naive_client.py");
    let out = Command::new("python3").arg(script).arg(url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut fields = text.split_whitespace();
    let live: usize = fields.next().unwrap().parse().unwrap();
    let seconds: f64 = fields.next().unwrap().parse().unwrap();
    assert_eq!(live, sessions);
    Duration::from_secs_f64(seconds)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn version(con: &mut redis::Connection) -> String {
    let info: String = redis::cmd("INFO").arg("server").query(con).unwrap();
    info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_string()
}

/// Writes sessions with the TRT application's commands, pipelined so that loading is quick.
fn load(con: &mut redis::Connection, sessions: usize) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let substates = ["1.1_goal_and_vision", "1.2_problem_and_body", "3.1_assess_readiness", "stage_1_complete"];
    for chunk in (0..sessions).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &n in chunk {
            let id = format!("user_{n}");
            let at = now - (n % 86_000) as f64;
            let iso = format!("2026-11-21T10:{:02}:{:02}.000000", (n / 60) % 60, n % 60);
            let state = format!("trt:session:{id}:state");
            let history = format!("trt:session:{id}:history");
            let meta = format!("trt:session:{id}:meta");
            pipe.cmd("HSET")
                .arg(&state)
                .arg(&[
                    ("session_id", id.as_str()),
                    ("current_stage", "stage_1_safety_building"),
                    ("current_substate", substates[n % substates.len()]),
                    ("body_questions_asked", "2"),
                    (
                        "stage_1_completion",
                        r#"{"goal_stated": true, "vision_accepted": true, "problem_identified": false}"#,
                    ),
                    ("last_interaction", iso.as_str()),
                    ("created_at", iso.as_str()),
                ])
                .ignore();
            pipe.cmd("EXPIRE").arg(&state).arg(86_400).ignore();
            pipe.cmd("ZADD").arg("trt:active_sessions").arg(at).arg(&id).ignore();
            for turn in 0..3 {
                let entry = format!(
                    r#"{{"client_input": "turn {turn}", "therapist_response": "reply", "navigation_decision": "explore_problem", "timestamp": "{iso}"}}"#
                );
                pipe.cmd("LPUSH").arg(&history).arg(entry).ignore();
            }
            pipe.cmd("EXPIRE").arg(&history).arg(86_400).ignore();
            pipe.cmd("HSET").arg(&meta).arg("created_via").arg("input_endpoint").ignore();
            pipe.cmd("EXPIRE").arg(&meta).arg(86_400).ignore();
        }
        let () = pipe.query(con).unwrap();
    }
}

/// (a): the real binary, a full census without a budget; returns its time, the census pass's
/// own time, and the peak RSS (KiB).
fn time_snapshot(url: &str, sessions: usize) -> (Duration, Duration, i64) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sessiontop"))
        .args(["--url", url, "--layout", "trt", "--budget", "0", "snapshot", "--json", "--limit", "20"])
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sessions"]["total"], sessions as u64, "the census counted every session");
    let pass = Duration::from_millis(json["census"]["duration_ms"].as_u64().unwrap());
    // SAFETY: getrusage fills the struct we pass; RUSAGE_CHILDREN covers the waited-for child.
    let rss = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    };
    (elapsed, pass, rss)
}

/// (b'): the application's round trips, for every member of the index, from Rust.
fn time_naive_rust(con: &mut redis::Connection, sessions: usize) -> Duration {
    let started = Instant::now();
    let ids: Vec<String> = con.zrange("trt:active_sessions", 0, -1).unwrap();
    let mut live = 0;
    for id in &ids {
        let key = format!("trt:session:{id}:state");
        let state: std::collections::HashMap<String, String> = con.hgetall(&key).unwrap();
        let _ttl: i64 = con.ttl(&key).unwrap();
        if !state.is_empty() {
            live += 1;
        }
    }
    assert_eq!(live, sessions);
    started.elapsed()
}

/// (c): a bare SCAN over the whole keyspace.
fn time_scan(con: &mut redis::Connection, keys: u64) -> Duration {
    let started = Instant::now();
    let mut cursor: u64 = 0;
    let mut seen = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(SCAN_COUNT).query(con).unwrap();
        seen += batch.len() as u64;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(seen >= keys);
    started.elapsed()
}
