//! `sessiontop serve` against a real redis-server: metrics scraped over HTTP, findings as log
//! lines as they open and close, the recording closed on SIGTERM and gone on with after a
//! restart; one line when it cannot start; and the shipped Prometheus rules, systemd unit and
//! Grafana dashboard checked with the tools that read them (a real Prometheus scraping `serve`
//! sees a planted incident fire).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use redis::Commands;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

/// `serve` running in the background, its log lines read as they come.
pub struct Serving {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Serving {
    pub fn start(url: &str, dir: &tempfile::TempDir, args: &[&str]) -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sessiontop"))
            .env_remove("REDIS_URL")
            .env_remove("REDISCLI_AUTH")
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_STATE_HOME", dir.path())
            .args(["--url", url, "--budget", "0", "--poll-interval", "300ms"])
            .args(if args.contains(&"--layout") { &[][..] } else { &["--layout", "trt"][..] })
            .args(args)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Serving { child, lines, seen: Vec::new() }
    }

    /// The next log line (JSON) for which `pick` holds; the lines before it are kept in `seen`.
    pub fn wait_for(&mut self, what: &str, pick: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let value: serde_json::Value =
                        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                    self.seen.push(line);
                    if pick(&value) {
                        return value;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("serve never logged {what}; it logged:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// SIGTERM, then its exit status and the rest of its log.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<serde_json::Value>) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let sent = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0);
        let status = self.child.wait().unwrap();
        let rest = self.lines.iter().map(|l| serde_json::from_str(&l).unwrap()).collect();
        (status, rest)
    }
}

fn event(name: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |v| v["event"] == name
}

#[test]
fn serve_watches_without_a_terminal_logs_findings_records_and_stops_cleanly() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    trt_turn(&mut con, "trt:", "alpha_user", "1.2_problem_and_body", now - 5.0, true);
    trt_turn(&mut con, "trt:", "bravo_user", "1.1_goal_and_vision", now - 9.0, true);
    // A state key without TTL: the no_ttl warning.
    let _: () = con.persist("trt:session:bravo_user:state").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("watch.ndjson");
    let port = free_port();
    let (listen, record) = (format!("127.0.0.1:{port}"), recording.display().to_string());
    let args = ["--metrics-listen", listen.as_str(), "--record", record.as_str()];

    let mut serving = Serving::start(&server.socket_url(), &dir, &args);
    let started = serving.wait_for("started", event("started"));
    assert_eq!(started["metrics"], format!("http://{listen}/metrics"));
    assert_eq!(started["record"], record);
    assert!(started["ts"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 24), "{started}");
    serving.wait_for("connected", event("connected"));
    let opened = serving.wait_for("no_ttl opening", |v| v["event"] == "finding_opened" && v["kind"] == "no_ttl");
    assert_eq!(opened["level"], "warning");
    assert_eq!(opened["severity"], "warning");
    assert_eq!(opened["count"], 1);
    assert!(opened["summary"].as_str().is_some_and(|s| s.contains("TTL")), "{opened}");
    assert!(opened["target"].as_str().is_some_and(|t| !t.is_empty()), "{opened}");

    // The same watch for Prometheus.
    let page = scrape_until(port, "sessiontop_live_sessions", "2");
    assert!(page.lines().any(|l| l.starts_with("sessiontop_findings{") && l.contains("kind=\"no_ttl\"")), "{page}");
    assert!(page.lines().any(|l| l.starts_with("sessiontop_up{") && l.ends_with("} 1")), "{page}");

    // Mended: the finding closes, in a line of its own.
    let _: () = con.expire("trt:session:bravo_user:state", 86_400).unwrap();
    serving.wait_for("no_ttl closing", |v| v["event"] == "finding_closed" && v["kind"] == "no_ttl");

    let (status, rest) = serving.terminate();
    assert!(status.success(), "{status:?}");
    let stopped = rest.last().unwrap_or_else(|| panic!("no line after SIGTERM"));
    assert_eq!(stopped["event"], "stopped");
    assert_eq!(stopped["signal"], "SIGTERM");
    assert!(stopped.get("record_failed").is_none(), "{stopped}");

    // The recording was closed with what it was given: samples, and the finding's life.
    let first = sessiontop::export::record::Recording::read(&recording).unwrap();
    assert!(first.samples > 0 && first.history.iter().count() > 3, "no samples recorded");
    let events: Vec<_> = first.events.iter().filter(|e| e.kind == "no_ttl").collect();
    assert_eq!(events.len(), 2, "{:?}", first.events);
    assert!(events[0].opened.as_ref().is_some_and(|(severity, count, _)| severity == "warning" && *count == 1));
    assert!(events[1].opened.is_none(), "the no_ttl finding's close was not recorded: {:?}", events);

    // Started again on the same file, it goes on with it.
    let mut again = Serving::start(&server.socket_url(), &dir, &args);
    again.wait_for("connected", event("connected"));
    scrape_until(port, "sessiontop_live_sessions", "2");
    let (status, _) = again.terminate();
    assert!(status.success(), "{status:?}");
    let second = sessiontop::export::record::Recording::read(&recording).unwrap();
    assert!(second.last > first.last, "nothing was added to the recording: {:?} -> {:?}", first.last, second.last);
    assert!(!dir.path().join("watch.ndjson.1").exists(), "the recording was rotated instead of gone on with");
}

#[test]
fn serve_that_cannot_start_says_why_in_one_line() {
    let server = server_with(&["--requirepass", "right-password"]);
    let dir = tempfile::tempdir().unwrap();
    let run = |url: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sessiontop"))
            .env_remove("REDIS_URL")
            .env_remove("REDISCLI_AUTH")
            .env("XDG_CONFIG_HOME", dir.path())
            .args(["--url", url])
            .args(args)
            .arg("serve")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    let right = format!("redis+unix://{}?pass=right-password", server.socket_path().display());
    let wrong = format!("redis+unix://{}?pass=wrong-password", server.socket_path().display());

    // Its port taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, stderr) = run(&right, &["--metrics-listen", &port]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot listen on 127.0.0.1:") && stderr.contains("--metrics-listen"), "{stderr}");

    // Refused by the server.
    let free = free_port().to_string();
    let (code, stderr) = run(&wrong, &["--metrics-listen", &free]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("WRONGPASS"), "{stderr}");
    assert!(!stderr.contains("wrong-password") && !stderr.contains("right-password"), "{stderr}");

    // A recording it cannot write.
    let (code, stderr) = run(&right, &["--metrics-listen", &free, "--record", "/nonexistent/dir/watch.ndjson"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot record to /nonexistent/dir/watch.ndjson"), "{stderr}");
}

#[test]
fn serve_writes_logfmt_when_asked() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiontop"))
        .env_remove("REDIS_URL")
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["--url", &server.socket_url(), "--metrics-listen", &port, "serve", "--log-format", "logfmt"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("ts=") && first.contains(" level=info event=started "), "{first}");
    assert!(first.contains(&format!("metrics=http://127.0.0.1:{port}/metrics")), "{first}");
    let connected = lines.next().unwrap().unwrap();
    assert!(connected.contains(" event=connected"), "{connected}");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    assert!(child.wait().unwrap().success());
    let last = lines.map_while(Result::ok).last().unwrap_or_default();
    assert!(last.contains(" event=stopped signal=SIGINT"), "{last}");
}

/// The shipped rules pass `promtool check rules` and their unit tests; skipped (said in one
/// line) where Prometheus' tools are not installed.
#[test]
fn shipped_alerting_rules_pass_promtool() {
    let Some(promtool) = which("promtool") else {
        eprintln!("skipped: promtool not found (apt-get install prometheus)");
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");
    for args in [&["check", "rules", "sessiontop.rules.yml"][..], &["test", "rules", "sessiontop.rules.test.yml"]] {
        let out = Command::new(&promtool).current_dir(dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The systemd unit passes `systemd-analyze verify` (with its binary where the test built it).
#[test]
fn shipped_systemd_unit_verifies() {
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze not found (apt-get install systemd)");
        return;
    };
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd/sessiontop.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/sessiontop serve "), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessiontop.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/sessiontop", env!("CARGO_BIN_EXE_sessiontop"))).unwrap();
    let out = Command::new(analyze).args(["verify", "--man=no"]).arg(&path).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Only what is about this unit counts (a container's own units may be said about too).
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("sessiontop")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify:\n{said}");
    if !out.status.success() {
        // It failed on something else than this unit: this machine's systemd cannot verify.
        eprintln!("skipped: systemd-analyze verify cannot run here: {}", said.lines().next().unwrap_or_default());
    }
}

/// Every metric the rules and the Grafana dashboard name is one `serve` exports.
#[test]
fn rules_and_dashboard_name_only_metrics_that_exist() {
    let exported: Vec<&str> = sessiontop::export::metrics::METRICS.iter().map(|(name, _, _)| *name).collect();
    for file in ["deploy/prometheus/sessiontop.rules.yml", "deploy/grafana/sessiontop.json"] {
        let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let named: std::collections::BTreeSet<&str> = text
            .match_indices("sessiontop_")
            .map(|(at, _)| {
                let rest = &text[at..];
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        assert!(named.len() >= 5, "{file} names {named:?}");
        for name in named {
            assert!(exported.contains(&name), "{file} names {name}, which sessiontop does not export");
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/sessiontop.json")).unwrap(),
    )
    .unwrap();
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 10));
}

/// A real Prometheus scrapes `serve` on a real redis-server and evaluates the shipped rules
/// (their `for:` waits taken out, so the test does not wait minutes): a session key without TTL
/// planted in the store becomes a firing `SessiontopWarningFinding` for `no_ttl`.
#[test]
fn a_real_prometheus_sees_a_planted_incident_fire() {
    let Some(prometheus) = which("prometheus") else {
        eprintln!("skipped: prometheus not found (apt-get install prometheus)");
        return;
    };
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "alpha_user", "1.2_problem_and_body", now_epoch() - 5.0, true);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serving = Serving::start(&server.socket_url(), &dir, &["--metrics-listen", &listen]);
    serving.wait_for("connected", event("connected"));

    let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/sessiontop.rules.yml"))
        .unwrap();
    let rules: String = rules
        .lines()
        .map(|l| if l.trim_start().starts_with("for:") { "        for: 0s" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\nscrape_configs:\n  - job_name: sessiontop\n    static_configs:\n      - targets: ['{listen}']\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let web = free_port();
    /// Prometheus, stopped however the test ends.
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prometheus = Kill(
        Command::new(prometheus)
            .current_dir(dir.path())
            .args(["--config.file=prometheus.yml", "--storage.tsdb.path=data"])
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Healthy first: nothing fires for this target but what a quiet store may say.
    let deadline = Instant::now() + WAIT;
    let firing = |alerts: &serde_json::Value, name: &str, kind: &str| {
        alerts["data"]["alerts"].as_array().is_some_and(|list| {
            list.iter()
                .any(|a| a["labels"]["alertname"] == name && a["labels"]["kind"] == kind && a["state"] == "firing")
        })
    };
    loop {
        let up = http_get(web, "/api/v1/query?query=sessiontop_up").unwrap_or_default();
        if up.contains("\"value\":[") && up.contains("\"1\"]") {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus never scraped sessiontop_up 1: {up}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let alerts: serde_json::Value = serde_json::from_str(&http_get(web, "/api/v1/alerts").unwrap()).unwrap();
    assert!(!firing(&alerts, "SessiontopWarningFinding", "no_ttl"), "{alerts}");

    // The incident: a session's state key loses its TTL.
    let _: () = con.persist("trt:session:alpha_user:state").unwrap();
    serving.wait_for("no_ttl opening", |v| v["event"] == "finding_opened" && v["kind"] == "no_ttl");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = http_get(web, "/api/v1/alerts").unwrap_or_default();
        if let Ok(alerts) = serde_json::from_str::<serde_json::Value>(&text)
            && firing(&alerts, "SessiontopWarningFinding", "no_ttl")
        {
            let alert = alerts["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["kind"] == "no_ttl")
                .unwrap()
                .clone();
            assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
            assert!(alert["annotations"]["summary"].as_str().is_some_and(|s| s.contains("no_ttl")), "{alert}");
            break;
        }
        assert!(Instant::now() < deadline, "the alert never fired: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = serving.terminate();
    assert!(status.success());
}

/// A program on PATH.
fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| std::path::Path::new(d).join(name)).find(|p| p.is_file())
}
