//! End to end in a real terminal: the dashboard runs in tmux (a private tmux server per test)
//! against a real `redis-server`. The tests type keys, read the screen, check Redis directly,
//! and check that the terminal is restored after the dashboard exits.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::Commands;

use crate::common::*;

/// How long the screen may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);
/// How often the screen is read while waiting.
const POLL: Duration = Duration::from_millis(50);
/// The tmux session; each test has its own tmux server, so the name never clashes.
const SESSION: &str = "e2e";
/// Printed before the dashboard starts, to tell the shell's screen from the dashboard's.
const START_MARKER: &str = "E2E-SHELL-START";
const TMUX_HINT: &str =
    "tmux not found: install it with apt-get install tmux (Debian, Ubuntu) or brew install tmux (macOS)";

static TMUX_SERVERS: AtomicUsize = AtomicUsize::new(0);

/// Quotes `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A private tmux server running one pane; killed (with everything in it) on drop.
struct Tmux {
    socket: String,
    /// The server's socket file, which tmux leaves behind when it is killed.
    socket_path: Option<std::path::PathBuf>,
}

impl Tmux {
    /// Starts a detached 160x48 session that runs `script` in `/bin/sh`.
    fn start(script: &str) -> Tmux {
        let socket = format!("sessiontop-e2e-{}-{}", std::process::id(), TMUX_SERVERS.fetch_add(1, Ordering::SeqCst));
        let mut tmux = Tmux { socket, socket_path: None };
        let out = tmux.run(&["-f", "/dev/null", "new-session", "-d", "-s", SESSION, "-x", "160", "-y", "48", script]);
        assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
        let path = std::path::PathBuf::from(tmux.pane_flag("socket_path"));
        // Only ever the file named after this server.
        if path.file_name().is_some_and(|name| *name == *tmux.socket) {
            tmux.socket_path = Some(path);
        }
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            // Never reach the user's tmux, and run the script in a known shell whatever $SHELL is.
            .env_remove("TMUX")
            .env("SHELL", "/bin/sh")
            .output()
            .unwrap_or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => panic!("{TMUX_HINT}"),
                _ => panic!("cannot run tmux: {e}"),
            })
    }

    /// The pane as it is on screen now (the alternate screen while the dashboard runs).
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", SESSION]);
        assert!(out.status.success(), "tmux capture-pane failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A pane variable such as `alternate_on`, `mouse_any_flag` or `cursor_flag`.
    fn pane_flag(&self, name: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", SESSION, &format!("#{{{name}}}")]);
        assert!(out.status.success(), "tmux display-message failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", SESSION, "-l", text]);
        assert!(out.status.success(), "tmux send-keys failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Presses a named key (`Enter`, `Escape`, `Right`).
    fn press(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", SESSION, key]);
        assert!(out.status.success(), "tmux send-keys {key} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Reads the screen until `ready` holds and returns that screen. Fails with the last screen
    /// after [`WAIT`], or at once when the dashboard exited while it was not expected to.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if screen.contains("EXIT=") {
                panic!("the dashboard exited while waiting for {what}; the screen:\n{screen}");
            }
            if start.elapsed() > WAIT {
                panic!("timed out after {WAIT:?} waiting for {what}; the last screen:\n{screen}");
            }
            std::thread::sleep(POLL);
        }
    }

    fn wait_for_text(&self, needle: &str) -> String {
        self.wait_for(&format!("{needle:?}"), |s| s.contains(needle))
    }

    fn wait_for_all(&self, needles: &[&str]) -> String {
        self.wait_for(&format!("all of {needles:?}"), |s| needles.iter().all(|n| s.contains(n)))
    }

    /// Waits for the script's `EXIT=` line after the dashboard quit and returns the screen.
    fn wait_for_exit(&self) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.lines().any(|l| l.starts_with("EXIT=")) && screen.contains("STTY ") {
                return screen;
            }
            if start.elapsed() > WAIT {
                panic!("timed out after {WAIT:?} waiting for the dashboard to exit; the last screen:\n{screen}");
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").env_remove("TMUX").output();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The dashboard on `url` in a fresh tmux pane: the script prints a marker, runs sessiontop with
/// no environment that could point it elsewhere, then prints its exit code and the terminal's
/// `icanon` and `echo` flags, and stays open so the pane can be read.
fn open_dashboard(url: &str, dir: &tempfile::TempDir) -> Tmux {
    open_dashboard_with(url, dir, &[])
}

fn open_dashboard_with(url: &str, dir: &tempfile::TempDir, extra: &[&str]) -> Tmux {
    let state = dir.path().display().to_string();
    let extra: Vec<String> = extra.iter().map(|a| sh_quote(a)).collect();
    let script = format!(
        "printf '%s\\n' {START_MARKER}; \
         env -u REDIS_URL -u REDISCLI_AUTH -u NO_COLOR TERM=xterm-256color XDG_CONFIG_HOME={state} \
         XDG_STATE_HOME={state} {bin} --url {url} --audit-log {audit} {extra}; \
         code=$?; echo EXIT=$code; \
         echo STTY $(stty -a | tr ' ;' '\\n\\n' | grep -E -x -e '-?icanon' -e '-?echo'); \
         sleep 60",
        state = sh_quote(&state),
        bin = sh_quote(env!("CARGO_BIN_EXE_sessiontop")),
        url = sh_quote(url),
        audit = sh_quote(&audit_path(dir).display().to_string()),
        extra = extra.join(" "),
    );
    Tmux::start(&script)
}

/// Asserts that the script saw exit code 0 and a restored terminal: canonical mode and echo
/// on, the alternate screen left (the dashboard's frame gone), mouse reporting off, the
/// cursor shown.
fn assert_exited_cleanly(tmux: &Tmux) {
    let screen = tmux.wait_for_exit();
    assert!(screen.lines().any(|l| l == "EXIT=0"), "sessiontop did not exit with 0:\n{screen}");
    let stty = screen.lines().find_map(|l| l.strip_prefix("STTY ")).unwrap_or_default();
    let flags: Vec<&str> = stty.split_whitespace().collect();
    assert!(
        flags.contains(&"icanon") && flags.contains(&"echo"),
        "the terminal was left without canonical mode or echo (stty: {stty:?}):\n{screen}"
    );
    assert!(screen.contains(START_MARKER), "the shell's screen did not come back:\n{screen}");
    for part in ["sessiontop", "● connected", "sessions ", "│", "─"] {
        assert!(!screen.contains(part), "the dashboard's frame ({part:?}) is still on screen:\n{screen}");
    }
    assert_eq!(tmux.pane_flag("alternate_on"), "0", "the alternate screen is still on");
    assert_eq!(tmux.pane_flag("mouse_any_flag"), "0", "mouse reporting is still on");
    assert_eq!(tmux.pane_flag("mouse_button_flag"), "0", "mouse reporting is still on");
    assert_eq!(tmux.pane_flag("cursor_flag"), "1", "the cursor is still hidden");
}

/// The session table's title numbers (`sessions N of M`) on `screen`.
fn table_counts(screen: &str) -> Option<(u64, u64)> {
    screen.match_indices(" sessions ").find_map(|(at, word)| {
        let mut words = screen[at + word.len()..].split_whitespace();
        let shown = words.next()?.parse().ok()?;
        (words.next()? == "of").then_some(())?;
        Some((shown, words.next()?.parse().ok()?))
    })
}

/// Every key except those of one session, with its type; and the other index entries with scores.
#[derive(Debug, PartialEq)]
struct Others {
    keys: Vec<(String, String)>,
    index: Vec<(String, f64)>,
}

fn others(con: &mut redis::Connection, session: &str) -> Others {
    let keys = keyspace(con).into_iter().filter(|(k, _, _)| !k.contains(session)).map(|(k, t, _)| (k, t)).collect();
    let index: Vec<(String, f64)> = con.zrange_withscores("trt:active_sessions", 0, -1).expect("ZRANGE");
    Others { keys, index: index.into_iter().filter(|(id, _)| id != session).collect() }
}

#[test]
fn filter_inspect_delete_and_quit_in_a_real_terminal() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    trt_turn(&mut con, "trt:", "alpha_user", "1.1_goal_and_vision", now - 30.0, true);
    trt_turn(&mut con, "trt:", "bravo_user", "1.1_goal_and_vision", now - 90.0, true);
    trt_turn(&mut con, "trt:", "bravo_user", "1.2_problem_and_body", now - 20.0, false);
    trt_turn(&mut con, "trt:", "charlie_user", "1.2_problem_and_body", now - 60.0, true);
    let _: () = con.set("trt:lock:bravo_user", "token").expect("SET lock");
    let before = others(&mut con, "bravo_user");
    assert_eq!((before.keys.len(), before.index.len()), (7, 2), "the bystanders were written: {before:?}");
    let target_keys = [
        "trt:session:bravo_user:state",
        "trt:session:bravo_user:history",
        "trt:session:bravo_user:meta",
        "trt:lock:bravo_user",
    ];
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tmux = open_dashboard(&server.socket_url(), &dir);

    let screen = tmux.wait_for_all(&["● connected", "trt 'trt:'", "alpha_user", "bravo_user", "charlie_user"]);
    assert_eq!(table_counts(&screen), Some((3, 3)), "{screen}");
    assert_eq!(tmux.pane_flag("alternate_on"), "1", "the dashboard draws on the alternate screen");
    assert_eq!(tmux.pane_flag("mouse_any_flag"), "1", "the dashboard captures the mouse");

    // Filter down to the target.
    tmux.type_text("/");
    tmux.wait_for_text(" filter ▶ ▏");
    tmux.type_text("avo_u");
    let screen = tmux.wait_for_text(" filter ▶ avo_u▏  1 sessions match");
    assert_eq!(table_counts(&screen), Some((1, 3)), "{screen}");
    assert!(!screen.contains("alpha_user") && !screen.contains("charlie_user"), "{screen}");
    tmux.press("Enter");
    let screen = tmux
        .wait_for("the filter kept, no longer edited", |s| !s.contains("filter ▶") && s.contains("· filter 'avo_u'"));
    assert!(screen.contains("bravo_user") && !screen.contains("alpha_user"), "{screen}");

    // Inspect it.
    tmux.press("Enter");
    let screen = tmux.wait_for_all(&[
        " session bravo_user ",
        " keys 4 ",
        "trt:session:bravo_user:state",
        "trt:session:bravo_user:history",
        "trt:session:bravo_user:meta",
        "trt:lock:bravo_user",
        " contents ",
        " history 2 newest first ",
        "client I feel it in my chest",
    ]);
    assert!(screen.contains("1.2_problem_and_body"), "the newest substate is shown:\n{screen}");

    // The delete dialog lists every key and the index entry; No is the default.
    tmux.type_text("d");
    let bullets = |s: &str| {
        target_keys.iter().all(|k| s.lines().any(|l| l.contains(&format!("• {k}  "))))
            && s.contains("• index entry in trt:active_sessions")
    };
    let screen = tmux.wait_for("the delete dialog", |s| s.contains(" delete ") && bullets(s) && s.contains("Yes"));
    assert!(screen.contains("• trt:session:bravo_user:state  primary"), "{screen}");
    assert!(screen.contains("• trt:lock:bravo_user  lock"), "{screen}");
    assert!(screen.contains("session bravo_user: delete these keys, atomically?"), "{screen}");
    tmux.press("Enter");
    tmux.wait_for("the dialog to close with 'cancelled'", |s| s.contains(" cancelled") && !bullets(s));
    for key in target_keys {
        assert!(con.exists::<_, bool>(key).expect("EXISTS"), "{key} was deleted although No was chosen");
    }

    // Again, and this time Yes.
    tmux.type_text("d");
    tmux.wait_for("the delete dialog", |s| bullets(s) && s.contains("Yes"));
    tmux.press("Right");
    tmux.press("Enter");
    let screen = tmux.wait_for_text("deleted session 'bravo_user': 4 keys and its index entry");
    assert!(!bullets(&screen), "the dialog closed:\n{screen}");
    for key in target_keys {
        assert!(!con.exists::<_, bool>(key).expect("EXISTS"), "{key} survived the delete");
    }
    let score: Option<f64> = con.zscore("trt:active_sessions", "bravo_user").expect("ZSCORE");
    assert_eq!(score, None, "the index entry survived the delete");
    assert_eq!(others(&mut con, "bravo_user"), before, "keys of other sessions changed");
    tmux.wait_for_text("✗ gone: no keys and no index entry");

    // Back to the table: nothing matches the filter any more; clearing it shows the others.
    tmux.press("Escape");
    tmux.wait_for("the overview without the deleted session", |s| {
        !s.contains(" session bravo_user ")
            && table_counts(s) == Some((0, 2))
            && s.contains("no session matches 'avo_u'")
    });
    tmux.press("Escape");
    let screen =
        tmux.wait_for("the filter cleared", |s| !s.contains("filter 'avo_u'") && table_counts(s) == Some((2, 2)));
    assert!(screen.contains("alpha_user") && screen.contains("charlie_user"), "{screen}");
    tmux.type_text("q");
    assert_exited_cleanly(&tmux);

    let audit = std::fs::read_to_string(audit_path(&dir)).expect("the audit log");
    let lines: Vec<serde_json::Value> =
        audit.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}"))).collect();
    assert_eq!(lines.len(), 2, "a begin and an end line for the one delete:\n{audit}");
    for (line, phase) in lines.iter().zip(["begin", "end"]) {
        assert_eq!(line["phase"], phase, "{audit}");
        assert_eq!(line["action"], "delete", "{audit}");
        assert_eq!(line["session"], "bravo_user", "{audit}");
        assert_eq!(line["index"], "trt:active_sessions", "{audit}");
        let mut keys: Vec<&str> = line["keys"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).collect();
        keys.sort_unstable();
        let mut expected = target_keys.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected, "{audit}");
    }
    assert_eq!(lines[1]["outcome"], "deleted session 'bravo_user': 4 keys and its index entry", "{audit}");
}

#[test]
fn an_outage_under_the_open_dashboard_is_shown_and_recovered() {
    let mut server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for (i, id) in ["alpha_user", "bravo_user", "charlie_user"].into_iter().enumerate() {
        trt_turn(&mut con, "trt:", id, "1.2_problem_and_body", now - 10.0 * (i as f64 + 1.0), true);
    }
    drop(con);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let listen = port.to_string();
    let tmux = open_dashboard_with(&server.socket_url(), &dir, &["--metrics-listen", &listen]);
    let screen = tmux.wait_for_all(&["● connected", "alpha_user", "bravo_user", "charlie_user"]);
    assert_eq!(table_counts(&screen), Some((3, 3)), "{screen}");
    // The same figures for Prometheus, scraped over HTTP.
    let page = scrape_until(port, "sessiontop_live_sessions", "3");
    assert!(page.contains("# TYPE sessiontop_live_sessions gauge"), "{page}");
    assert!(page.lines().any(|l| l.starts_with("sessiontop_live_sessions{target=") && l.ends_with("} 3")), "{page}");
    assert!(page.lines().any(|l| l.starts_with("sessiontop_up{") && l.ends_with("} 1")), "{page}");
    assert!(page.contains("stage=\"1.2_problem_and_body\"} 3"), "{page}");

    server.stop();
    let screen = tmux.wait_for_text("◌ reconnecting: attempt ");
    scrape_until(port, "sessiontop_up", "0");
    assert!(!screen.contains("● connected"), "{screen}");
    for id in ["alpha_user", "bravo_user", "charlie_user"] {
        assert!(screen.contains(id), "{id} vanished from the table during the outage:\n{screen}");
    }
    assert_eq!(table_counts(&screen), Some((3, 3)), "{screen}");
    assert!(screen.contains("· stale"), "the table is not marked stale:\n{screen}");

    // It comes back empty on the same socket; a session written now must show up.
    server.restart().unwrap_or_else(|e| panic!("restarting redis-server: {e}"));
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "delta_user", "1.1_goal_and_vision", now_epoch(), true);
    let screen = tmux.wait_for_all(&["● connected", "delta_user"]);
    assert!(!screen.contains("reconnecting"), "{screen}");
    let screen = tmux.wait_for("the sessions lost with the old server to go", |s| {
        table_counts(s) == Some((1, 1)) && !s.contains("alpha_user")
    });
    assert!(!screen.contains("· stale"), "{screen}");

    tmux.type_text("q");
    assert_exited_cleanly(&tmux);
}

#[test]
fn several_targets_side_by_side_and_one_server_under_two_names_is_said_loudly() {
    let (one, other) = (server(), server());
    let now = now_epoch();
    for (server, ids) in [(&one, ["alpha_user", "bravo_user"]), (&other, ["charlie_user", "delta_user"])] {
        let mut con = conn(server);
        for (i, id) in ids.into_iter().enumerate() {
            trt_turn(&mut con, "trt:", id, "1.2_problem_and_body", now - 10.0 * (i as f64 + 1.0), true);
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    // "prod" and "staging" are one server under two names; "other" is another.
    let (prod, staging, second) = (
        format!("prod={}", one.socket_url()),
        format!("staging={}", one.socket_url()),
        format!("other={}", other.socket_url()),
    );
    let tmux = open_dashboard_with(&prod, &dir, &["--url", &second, "--url", &staging]);
    let screen = tmux.wait_for("both servers polled and the same one told", |s| {
        s.lines().next().is_some_and(|l| l.matches("SAME SERVER").count() == 2) && s.contains("alpha_user")
    });
    let tabs = screen.lines().next().unwrap_or_default();
    let segments: Vec<&str> = tabs.split('│').collect();
    assert!(segments[0].contains("1 prod") && segments[0].contains("SAME SERVER"), "{tabs}");
    assert!(segments[1].contains("2 other") && !segments[1].contains("SAME SERVER"), "{tabs}");
    assert!(segments[2].contains("3 staging") && segments[2].contains("SAME SERVER"), "{tabs}");
    assert!(screen.contains("critical"), "the header says it in words:\n{screen}");
    // The second target's own sessions, by number and by `t`.
    tmux.type_text("2");
    let screen = tmux.wait_for_all(&["charlie_user", "delta_user"]);
    assert!(!screen.contains("alpha_user"), "{screen}");
    tmux.type_text("t");
    tmux.wait_for_text("alpha_user");
    tmux.type_text("q");
    assert_exited_cleanly(&tmux);
}

#[test]
fn a_recording_replays_in_the_charts_and_jumps_to_its_findings() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = crate::record::recording(&dir);
    let script = format!(
        "printf '%s\\n' {START_MARKER}; \
         env -u REDIS_URL -u NO_COLOR TERM=xterm-256color XDG_CONFIG_HOME={state} {bin} replay {file}; \
         code=$?; echo EXIT=$code; \
         echo STTY $(stty -a | tr ' ;' '\\n\\n' | grep -E -x -e '-?icanon' -e '-?echo'); \
         sleep 60",
        state = sh_quote(&dir.path().display().to_string()),
        bin = sh_quote(env!("CARGO_BIN_EXE_sessiontop")),
        file = sh_quote(&file.display().to_string()),
    );
    let tmux = Tmux::start(&script);
    let screen = tmux.wait_for_all(&["replay ❚❚", "used memory · last 5m00s"]);
    assert!(!screen.contains("1 warning"), "nothing open at the start:\n{screen}");
    // The first finding event: the stale lock opens.
    tmux.type_text("n");
    let screen = tmux.wait_for_text("1 warning");
    assert!(screen.contains("replay ❚❚"), "{screen}");
    // The next: it closes.
    tmux.type_text("n");
    tmux.wait_for("the finding to close", |s| !s.contains("1 warning") && s.contains("replay"));
    // Played to the end.
    tmux.type_text("+++++ ");
    tmux.wait_for_text("100%");
    tmux.type_text("q");
    assert_exited_cleanly(&tmux);
}

/// Guards the helpers' own parsing, so the screen checks above cannot pass vacuously.
#[test]
fn e2e_helpers_read_the_table_title_and_quote_for_the_shell() {
    assert_eq!(table_counts("┌ sessions 1 of 3 · sort IDLE ▲ ─┐"), Some((1, 3)));
    assert_eq!(table_counts("3 sessions live ┌ sessions 12 of 40 ┐"), Some((12, 40)));
    assert_eq!(table_counts("no table here"), None);
    assert_eq!(sh_quote("/tmp/it's here"), r"'/tmp/it'\''s here'");
    assert!(Path::new(env!("CARGO_BIN_EXE_sessiontop")).is_file());
}

#[test]
fn long_one_shot_work_shows_progress_on_a_terminal_and_nowhere_else() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for i in 0..3000 {
        trt_turn(&mut con, "trt:", &format!("user_{i}"), "1.2_problem_and_body", now - i as f64, true);
    }
    drop(con);
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Paced so that the pass takes a few seconds.
    let args = ["--layout", "trt", "--budget", "5000/s", "snapshot", "--limit", "1"];

    // Not a terminal: nothing but what the command says anyway.
    let out = sessiontop(&server.socket_url(), &dir).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("sessions counted") && !stderr.contains('\r'), "{stderr}");

    // A terminal: the bar while the census runs, cleared before the snapshot prints.
    let script = format!(
        "env -u REDIS_URL XDG_CONFIG_HOME={state} XDG_STATE_HOME={state} {bin} --url {url} {args}; echo EXIT=$?; sleep 60",
        state = sh_quote(&dir.path().display().to_string()),
        bin = sh_quote(env!("CARGO_BIN_EXE_sessiontop")),
        url = sh_quote(&server.socket_url()),
        args = args.join(" "),
    );
    let tmux = Tmux::start(&script);
    let screen = tmux.wait_for_text("sessions counted");
    let bar = screen.lines().find(|l| l.contains("sessions counted")).unwrap_or_default();
    assert!(bar.starts_with("census [") && bar.contains("% ") && bar.contains("/s"), "{screen}");
    let screen = tmux.wait_for_text("EXIT=0");
    assert!(!screen.contains("sessions counted"), "the bar was left on screen:\n{screen}");
    assert!(screen.contains("most recently active (1 of 3,000)"), "{screen}");
}
