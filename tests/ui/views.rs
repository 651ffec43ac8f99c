//! Snapshots of every view at 80x24 and 160x48, and the colours that carry meaning.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::style::Color;
use sessiontop::dashboard::app::{Dialog, Screen};
use sessiontop::dashboard::theme::{Role, Theme};
use sessiontop::engine::domain::{LinkState, SessionKey};
use sessiontop::engine::layout::Lifecycle;
use sessiontop::engine::msg::{Update, WriteKind, WritePlan};

use crate::fixtures::*;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn snapshot(name: &str, app_for: impl Fn((u16, u16)) -> sessiontop::dashboard::app::App) {
    snapshot_with(name, &theme(), app_for);
}

fn snapshot_with(name: &str, theme: &Theme, app_for: impl Fn((u16, u16)) -> sessiontop::dashboard::app::App) {
    for size in SIZES {
        let app = app_for(size);
        let (text, _) = render(&app, theme);
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), text);
    }
}

#[test]
fn loading_screen() {
    snapshot("loading", |size| app(loading(), size));
}

#[test]
fn empty_database() {
    snapshot("empty", |size| {
        let mut m = loading();
        m.apply(Update::Link(LinkState::Connected { since: NOW }));
        m.apply(Update::Layout(Box::new(layout_info())));
        m.apply(Update::Server { stats: Box::new(server(1_300_000, 0)), unavailable: vec![] });
        m.apply(Update::CensusDone { generation: 1, tally: Default::default(), duration_ms: 3, orphan_ids: vec![] });
        app(m, size)
    });
}

#[test]
fn many_sessions_with_stuck_rows() {
    snapshot("overview", |size| app(connected(300, 900 << 20, 1 << 30), size));
}

#[test]
fn disconnected_keeps_the_data_and_says_so() {
    snapshot("disconnected", |size| {
        let mut m = connected(40, 200 << 20, 0);
        // The last poll was two seconds before NOW; the connection has been down for a minute.
        m.tick(NOW + 58_000, 11_000);
        m.apply(Update::Link(LinkState::Reconnecting {
            attempt: 3,
            retry_at: NOW + 62_000,
            error: "connection refused".into(),
        }));
        app(m, size)
    });
}

fn inspector_app(size: (u16, u16)) -> sessiontop::dashboard::app::App {
    let mut m = connected(20, 200 << 20, 0);
    m.apply(Update::Inspect(Box::new(report())));
    let mut a = app(m, size);
    a.table.selected = Some("user_1234".into());
    let requests = a.on_key(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Enter));
    assert!(requests.contains(&sessiontop::engine::msg::Request::Inspect(Some("user_1234".into()))));
    assert_eq!(a.screen, Screen::Inspector);
    a
}

#[test]
fn inspector_with_history() {
    snapshot("inspector", inspector_app);
}

#[test]
fn inspector_raw_view() {
    snapshot("inspector_raw", |size| {
        let mut a = inspector_app(size);
        a.on_key(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char('v')));
        a
    });
}

#[test]
fn help() {
    snapshot("help", |size| {
        let mut a = app(connected(30, 200 << 20, 0), size);
        a.help = true;
        a
    });
}

fn key(k: &str, role: &str, lifecycle: Lifecycle) -> SessionKey {
    SessionKey { key: k.into(), role: role.into(), part: None, lifecycle }
}

fn press(code: KeyCode) -> KeyEvent {
    KeyEvent::from(code)
}

fn plan() -> WritePlan {
    WritePlan {
        id: "stalled_user".into(),
        kind: WriteKind::Delete,
        keys: vec![
            key("trt:session:stalled_user:state", "primary", Lifecycle::Session),
            key("trt:session:stalled_user:history", "history", Lifecycle::Session),
            key("trt:session:stalled_user:meta", "meta", Lifecycle::Session),
            key("trt:lock:stalled_user", "lock", Lifecycle::Ephemeral),
        ],
        untouched: vec![],
        index: Some("trt:active_sessions".into()),
        span: Default::default(),
    }
}

#[test]
fn delete_dialog_lists_the_exact_keys() {
    snapshot("delete_dialog", |size| {
        let mut a = app(connected(30, 200 << 20, 0), size);
        a.dialog = Some(Dialog::Confirm { plan: plan(), yes: false });
        a
    });
}

#[test]
fn a_delete_across_slots_says_it_is_not_atomic() {
    let mut spread = plan();
    spread.span = sessiontop::engine::msg::WriteSpan { steps: 4, nodes: 3 };
    for size in SIZES {
        let mut a = app(connected(30, 200 << 20, 0), size);
        a.dialog = Some(Dialog::Confirm { plan: spread.clone(), yes: false });
        let (text, _) = render(&a, &theme());
        // The dialog's lines, joined, without the borders the wrap puts between its words.
        let flat: String = text.replace(['│', '┃'], " ").split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("delete these keys?"), "{text}");
        assert!(!flat.contains("atomically"), "{text}");
        assert!(flat.contains("not atomic: 4 hash slots on 3 nodes"), "{size:?}: {text}");
        assert!(text.contains("No"), "the answers stay on screen: {text}");
    }
}

#[test]
fn expire_dialog() {
    snapshot("expire_dialog", |size| {
        let mut a = app(connected(30, 200 << 20, 0), size);
        a.dialog = Some(Dialog::ExpireInput { id: "stalled_user".into(), input: "15m".into(), error: None });
        a
    });
}

#[test]
fn read_only_production_target() {
    let theme = Theme::load("production").unwrap();
    snapshot_with("read_only_production", &theme, |size| {
        let mut m = connected(30, 200 << 20, 0);
        m.target.read_only = true;
        m.target.name = Some("chatmrpt-production".into());
        let a = app(m, size);
        let (text, buffer) = render(&a, &theme);
        assert!(text.lines().next().unwrap().contains("PRODUCTION"), "{text}");
        assert!(text.lines().next().unwrap().contains("READ-ONLY"), "{text}");
        assert_eq!(cell_on_row(&buffer, "READ-ONLY", "R").bg, Color::Red, "the production header is red");
        a
    });
}

fn fg(theme: &Theme, role: Role) -> Color {
    theme.style(role).fg.expect("colours are on")
}

#[test]
fn problem_rows_carry_a_symbol_and_a_colour() {
    let theme = theme();
    for size in SIZES {
        let mut a = app(connected(3, 200 << 20, 0), size);
        a.table.selected = Some("user_1000".into());
        let (text, buffer) = render(&a, &theme);
        assert!(text.contains("stalled_user") && text.contains("forever_user"), "{text}");
        assert_eq!(cell_on_row(&buffer, "stalled_user", "⚠").fg, fg(&theme, Role::Warn));
        assert_eq!(cell_on_row(&buffer, "forever_user", "∞").fg, fg(&theme, Role::Warn));
        assert_eq!(cell_on_row(&buffer, "bad\\x1b[2Jpayload", "✗").fg, fg(&theme, Role::Crit));
        // The hostile id is shown escaped: no escape character reached the buffer.
        assert!(!text.contains('\u{1b}'));
        // The selected row uses the selection colours.
        assert_eq!(cell_on_row(&buffer, "user_1000", "u").bg, theme.style(Role::Selection).bg.unwrap());
    }
}

#[test]
fn memory_gauge_turns_critical_near_maxmemory_and_says_no_limit_plainly() {
    let theme = theme();
    let a = app(connected(5, 980 << 20, 1 << 30), (160, 48));
    let (_, buffer) = render(&a, &theme);
    assert_eq!(cell_on_row(&buffer, "memory", "█").fg, fg(&theme, Role::Crit));
    let a = app(connected(5, 200 << 20, 0), (160, 48));
    let (text, _) = render(&a, &theme);
    assert!(text.contains("no limit (maxmemory 0)"), "{text}");
}

#[test]
fn reconnecting_is_critical_in_the_header() {
    let theme = theme();
    let mut m = connected(5, 200 << 20, 0);
    m.apply(Update::Link(LinkState::Reconnecting {
        attempt: 2,
        retry_at: NOW + 2000,
        error: "connection refused".into(),
    }));
    let (text, buffer) = render(&app(m, (160, 48)), &theme);
    assert!(
        text.lines().next().unwrap().contains("reconnecting: attempt 2, next in 2s (connection refused)"),
        "{text}"
    );
    // On a narrow screen the state and staleness stay; the reason goes first.
    let mut m = connected(5, 200 << 20, 0);
    m.apply(Update::Link(LinkState::Reconnecting {
        attempt: 2,
        retry_at: NOW + 2000,
        error: "connection refused".into(),
    }));
    let (narrow, _) = render(&app(m, (80, 24)), &theme);
    let header = narrow.lines().next().unwrap();
    assert!(header.contains("◌ reconnecting: attempt 2, next in 2s") && header.contains("stale"), "{header}");
    assert_eq!(cell_on_row(&buffer, "reconnecting", "◌").fg, fg(&theme, Role::Crit));
    assert!(text.contains("stale"), "{text}");
}

#[test]
fn a_server_that_stops_answering_is_said_to_with_how_long() {
    let theme = theme();
    let mut m = connected(5, 200 << 20, 0);
    let (fine, _) = render(&app(m.clone(), (160, 48)), &theme);
    assert!(fine.lines().next().unwrap().contains("● connected"), "{fine}");
    // The connection stays up; the last poll answered (two seconds before NOW) is 14 s old.
    m.tick(NOW + 12_000, 0);
    let (text, buffer) = render(&app(m.clone(), (160, 48)), &theme);
    let header = text.lines().next().unwrap();
    assert!(header.contains("◌ no answer from Redis") && header.contains("stale 14s"), "{header}");
    assert!(!header.contains("no warnings"), "nothing is claimed of a server that does not answer: {header}");
    assert_eq!(cell_on_row(&buffer, "no answer", "◌").fg, fg(&theme, Role::Crit));
    let (narrow, _) = render(&app(m, (80, 24)), &theme);
    let header = narrow.lines().next().unwrap();
    assert!(header.contains("◌ no answer from Redis") && header.contains("stale"), "{header}");
}

#[test]
fn no_color_keeps_the_symbols() {
    let theme = theme().without_colors();
    let (text, buffer) = render(&app(connected(5, 200 << 20, 0), (160, 48)), &theme);
    assert!(text.contains('⚠') && text.contains('✗') && text.contains('∞'));
    let cell = cell_on_row(&buffer, "stalled_user", "⚠");
    assert_eq!(cell.fg, Color::Reset);
}

#[test]
fn every_size_down_to_80x24_renders_without_panicking() {
    let theme = theme();
    let overview = connected(120, 500 << 20, 1 << 30);
    for (w, h) in [(80, 24), (81, 25), (100, 30), (120, 40), (139, 31), (140, 32), (200, 60), (60, 20), (20, 8)] {
        render(&app(overview.clone(), (w, h)), &theme);
        render(&inspector_app((w, h)), &theme);
        let mut a = app(overview.clone(), (w, h));
        a.help = true;
        a.dialog = Some(Dialog::Confirm { plan: plan(), yes: true });
        render(&a, &theme);
    }
}

#[test]
fn the_header_says_what_watching_costs_redis() {
    let mut m = connected(30, 200 << 20, 0);
    m.apply(Update::OwnLoad { redis_cpu_share: Some(0.013), budget: "2%".into(), backing_off: false });
    let (text, _) = render(&app(m, (160, 48)), &Theme::load("default").unwrap());
    let header = text.lines().next().unwrap();
    assert!(header.contains("own 1.3% redis (budget 2%)"), "{header}");
    assert!(!header.contains("BACKING OFF"), "{header}");

    let mut m = connected(30, 200 << 20, 0);
    m.apply(Update::OwnLoad { redis_cpu_share: None, budget: "2%".into(), backing_off: true });
    let (text, _) = render(&app(m, (160, 48)), &Theme::load("default").unwrap());
    let header = text.lines().next().unwrap();
    assert!(header.contains("BACKING OFF: Redis is slow"), "{header}");
}

#[test]
fn charts_over_an_hour_with_an_outage() {
    snapshot("charts", |size| {
        let mut a = app(charted(), size);
        a.on_key(press(KeyCode::Char('c')));
        a.on_key(press(KeyCode::Char('w')));
        for _ in 0..10 {
            a.on_key(press(KeyCode::Left));
        }
        assert_eq!(a.screen, Screen::Charts);
        a
    });
}

#[test]
fn fix_dialog_lists_every_change_and_what_it_leaves() {
    use sessiontop::engine::domain::FindingKind;
    snapshot("fix_dialog", |size| {
        let mut a = app(connected(30, 200 << 20, 0), size);
        let plan = |id: &str| WritePlan {
            id: id.into(),
            kind: WriteKind::Expire(86_400),
            keys: vec![key(&format!("trt:session:{id}:state"), "primary", Lifecycle::Session)],
            untouched: vec![],
            index: None,
            span: Default::default(),
        };
        let plans = vec![plan("forever_user"), plan("user_1002"), plan("user_1003")];
        a.dialog = Some(Dialog::ConfirmFix { kind: FindingKind::NoTtl, of: 312, plans, skipped: 1, yes: false });
        a
    });
}

/// Three targets side by side, the second shown: two of them one store under two names.
fn three_targets(size: (u16, u16)) -> sessiontop::dashboard::tabs::Tabs {
    use sessiontop::dashboard::keymap::Keymap;
    use sessiontop::dashboard::tabs::{Tab, Tabs};
    let tab = |name: &str, model: Connected, address: &str| Tab {
        name: name.into(),
        app: app(model, (size.0, size.1 - 1)),
        theme: theme(),
        address: address.into(),
        db: 0,
    };
    // Staging's name, but production's server and store: the mix-up the line says loudly.
    let staging = connected(8, 200 << 20, 0);
    let mut tabs = Tabs::new(
        vec![
            tab("production", connected(30, 200 << 20, 0), "10.0.0.5:6379"),
            tab("chatmrpt", connected(12, 200 << 20, 0), "10.0.0.6:6379"),
            tab("staging-with-a-long-name-that-is-cut", staging, "10.0.0.5:6379"),
        ],
        Keymap::default(),
    );
    tabs.on_key(press(KeyCode::Char('2')));
    tabs.mark_same_servers();
    tabs
}

#[test]
fn tab_line_with_several_targets() {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    for size in SIZES {
        let tabs = three_targets(size);
        let mut terminal = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
        let keymap = sessiontop::dashboard::keymap::Keymap::default();
        terminal.draw(|f| sessiontop::dashboard::ui::draw_tabs(f, &tabs, &keymap)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        let text: String = (0..size.1)
            .map(|y| {
                let line: String = (0..size.0).map(|x| buffer[(x, y)].symbol().to_string()).collect();
                format!("{}\n", line.trim_end())
            })
            .collect();
        insta::assert_snapshot!(format!("tab_line_{}x{}", size.0, size.1), text);
        let line = text.lines().next().unwrap();
        assert_eq!(line.matches("SAME SERVER").count(), 2, "{line}");
        assert!(["1 ", "2 ", "3 "].iter().all(|n| line.contains(n)), "every target's number: {line}");
        if size.0 >= 160 {
            assert!(line.contains("1-9/t switch"), "{line}");
        }
    }
}

/// A cluster of three primaries and three replicas: one primary unreachable with its slots
/// unserved, one replica behind, reads from the replicas.
fn clustered() -> Connected {
    use sessiontop::engine::domain::{NodeStatus, NodesView};
    let mut fixture = connected(30, 200 << 20, 0);
    let node = |i: u16, primary: bool, slots: (u16, u16)| NodeStatus {
        address: format!("10.0.1.{i}:6379"),
        id: format!("{i:040}"),
        primary,
        replica_of: (!primary).then(|| format!("10.0.1.{}:6379", i - 3)),
        health: "online".into(),
        slots: if primary { vec![slots] } else { Vec::new() },
        stats: Some(Box::new(server(60 << 20, 1 << 30))),
        error: None,
        own_share: Some(0.012),
        commands_sent: 12_345,
        lag_bytes: (!primary).then_some(0),
    };
    let mut down = node(2, true, (5461, 10922));
    down.error = Some("connection refused".into());
    down.stats = None;
    let mut behind = node(6, false, (0, 0));
    behind.lag_bytes = Some(3 << 20);
    let view = NodesView {
        kind: "cluster".into(),
        epoch: 7,
        nodes: vec![
            node(1, true, (0, 5460)),
            down,
            node(3, true, (10923, 16383)),
            node(4, false, (0, 0)),
            node(5, false, (0, 0)),
            behind,
        ],
        uncovered: vec![(5461, 10922)],
        reads: Some("reads from 10.0.1.4:6379 (lag 0 B), 10.0.1.6:6379 (lag 3.0 MiB)".into()),
    };
    fixture.model.apply(Update::Nodes(Box::new(view)));
    fixture
}

#[test]
fn nodes_view_of_a_cluster_with_a_node_down() {
    snapshot("nodes", |size| {
        let mut a = app(clustered(), size);
        a.on_key(press(KeyCode::Char('n')));
        assert_eq!(a.screen, Screen::Nodes);
        a
    });
}

#[test]
fn a_cluster_node_down_is_a_critical_alert_on_the_overview() {
    let a = app(clustered(), (160, 48));
    let (text, _) = render(&a, &theme());
    assert!(text.contains("node_down"), "{text}");
    assert!(text.contains("cluster · 3 primaries, 3 replicas · 10,922 of 16,384 slots served"), "{text}");
}

#[test]
fn clients_view_with_a_new_host() {
    use sessiontop::engine::domain::{ClientsView, HostClients};
    let host = |host: &str, connections: u64, name: &str, command: &str| HostClients {
        host: host.into(),
        connections,
        names: vec![(name.into(), connections)],
        idle_s: (0, 42),
        commands: vec![(command.into(), connections)],
    };
    snapshot("clients", |size| {
        let mut m = connected(300, 900 << 20, 1 << 30);
        let app_hosts = vec![
            host("10.0.0.5", 12, "gunicorn (redis-py)", "get"),
            host("10.0.0.6", 12, "gunicorn (redis-py)", "set"),
        ];
        let listing = |at, hosts: Vec<HostClients>| {
            let total = hosts.iter().map(|h| h.connections).sum::<u64>() + 2;
            ClientsView { at, total, own: 2, hosts, unavailable: None }
        };
        m.apply(Update::Clients(Box::new(listing(NOW - 10_000, app_hosts.clone()))));
        let mut now = app_hosts;
        now.push(host("172.31.44.52", 6, "(no name)", "keys"));
        m.apply(Update::Clients(Box::new(listing(NOW, now))));
        let mut a = app(m, size);
        a.on_key(press(KeyCode::Char('C')));
        assert_eq!(a.screen, Screen::Clients);
        a
    });
}

#[test]
fn the_census_panel_shows_each_stage_s_flow_and_where_it_stopped() {
    use sessiontop::engine::domain::{FlowSummary, StageFlow};
    let flow = |stage: &str, entered: u64, left: u64| StageFlow {
        stage: stage.into(),
        entered,
        left,
        judged: entered,
        judged_left: left,
        ..StageFlow::default()
    };
    let mut m = connected(300, 900 << 20, 1 << 30);
    let mut tally = m.census.complete.clone().unwrap();
    // Nobody is in 1.2 now: everyone who reached it left.
    tally.by_substate.remove("1.2_problem_and_body");
    tally.flow = Some(FlowSummary {
        at: NOW,
        stages_window_ms: 30 * 60_000,
        arrivals_window_ms: 10 * 60_000,
        since: NOW - 3_600_000,
        baseline: None,
        // Ten reached 3.1 and none left.
        stages: vec![
            flow("1.1.5_psycho_education", 22, 22),
            flow("1.2_problem_and_body", 12, 12),
            flow("3.1_assess_readiness", 10, 0),
        ],
        arrivals: Default::default(),
    });
    m.apply(Update::CensusDone { generation: 2, tally, duration_ms: 212, orphan_ids: vec![] });
    let a = app(m, (160, 48));
    let (text, _) = render(&a, &theme());
    assert!(text.contains("in/out 30m"), "{text}");
    let line =
        |stage: &str| text.lines().find(|l| l.contains(stage) && l.contains('/')).unwrap_or_default().to_string();
    assert!(line("3.1_assess_readiness").contains(" 10/0 "), "{text}");
    assert!(line("1.1.5_psycho_education").contains(" 22/22 "), "{text}");
    // Shown in its place in the workflow, with no session in it.
    let lines: Vec<&str> = text.lines().collect();
    let at = |stage: &str| lines.iter().position(|l| l.contains(stage)).unwrap_or(usize::MAX);
    assert!(at("1.1.5_psycho_education") < at("1.2_problem_and_body"), "{text}");
    assert!(at("1.2_problem_and_body") < at("3.1_assess_readiness"), "{text}");
    assert!(line("1.2_problem_and_body").contains("       0     12/12 "), "{text}");
    assert!(text.contains("flow_stopped"), "{text}");
}

#[test]
fn events_view_on_and_off() {
    use sessiontop::engine::domain::{EventKind, EventsState, SessionEvent};
    let event = |s: i64, kind, id: &str, part: &str| SessionEvent {
        at: NOW - s * 1000,
        id: id.into(),
        kind,
        part: part.into(),
        event: "x".into(),
    };
    snapshot("events", |size| {
        let mut m = connected(300, 900 << 20, 1 << 30);
        m.apply(Update::EventsState(EventsState::On { flags: Some("Kg$hlzxen".into()) }));
        m.apply(Update::SessionEvents(vec![
            event(9, EventKind::Created, "user_1042", "session"),
            event(8, EventKind::Saved, "user_1042", "session, history"),
            event(5, EventKind::Expired, "user_0007", "session"),
            event(2, EventKind::Evicted, "user_0013", "session"),
            event(1, EventKind::Deleted, "user_0021\u{1b}[2J", "session"),
        ]));
        assert_eq!(m.since_pass, (1, 3));
        let mut a = app(m, size);
        a.on_key(press(KeyCode::Char('E')));
        assert_eq!(a.screen, Screen::Events);
        a
    });
    snapshot("events_off", |size| {
        let mut m = connected(300, 900 << 20, 1 << 30);
        m.apply(Update::EventsState(EventsState::Off {
            flags: String::new(),
            how: "notify-keyspace-events is off, without Kgxehl: CONFIG SET notify-keyspace-events Kg$hlzxen".into(),
        }));
        let mut a = app(m, size);
        a.on_key(press(KeyCode::Char('E')));
        a
    });
}

#[test]
fn slowlog_view() {
    use sessiontop::engine::domain::{SlowEntry, SlowlogView};
    let entry = |s: i64, us: u64, command: &str, session: Option<&str>, client: &str, own: bool| SlowEntry {
        node: "10.0.0.1:6379".into(),
        at: NOW - s * 1000,
        micros: us,
        command: command.into(),
        session: session.map(Into::into),
        client: "10.0.0.5:52466".into(),
        client_name: client.into(),
        own,
    };
    snapshot("slowlog", |size| {
        let mut m = connected(300, 900 << 20, 1 << 30);
        m.watch_began = NOW - 60_000;
        m.apply(Update::Slowlog(Box::new(SlowlogView {
            at: NOW - 2000,
            entries: vec![
                entry(3, 14_200, "HGETALL trt:session:user_1042:state", Some("user_1042"), "gunicorn", false),
                entry(9, 1_100, "PTTL trt:session:user_7:history", Some("user_7"), "sessiontop", true),
                entry(20, 31_000, "KEYS *", None, "", false),
            ],
            latency: Some(vec![("command".into(), 14, 31)]),
            unavailable: None,
        })));
        assert!(
            m.findings
                .iter()
                .any(|f| f.kind == sessiontop::engine::domain::FindingKind::SlowSessionCommands && f.count == 1)
        );
        let mut a = app(m, size);
        a.on_key(press(KeyCode::Char('L')));
        assert_eq!(a.screen, Screen::Slowlog);
        a
    });
}

#[test]
fn the_census_panel_says_how_much_of_its_pass_events_let_it_read_settled_or_light() {
    let mut m = connected(300, 900 << 20, 1 << 30);
    // Wide enough for the panel's whole head line.
    let (text, _) = render(&app(m.clone(), (260, 60)), &theme());
    assert!(text.contains("· pass 0.2s, ") && !text.contains("settled"), "a pass read whole says nothing:\n{text}");
    let mut tally = m.census.complete.clone().unwrap();
    (tally.examined, tally.read_settled, tally.read_light) = (1000, 970, 20);
    m.apply(Update::CensusDone { generation: 2, tally, duration_ms: 412, orphan_ids: vec![] });
    let (text, _) = render(&app(m.clone(), (260, 60)), &theme());
    assert!(text.contains("· pass 0.4s (97% settled, 2% light), "), "{text}");
    let mut tally = m.census.complete.clone().unwrap();
    (tally.examined, tally.read_settled, tally.read_light) = (1000, 996, 4);
    m.apply(Update::CensusDone { generation: 3, tally, duration_ms: 412, orphan_ids: vec![] });
    let (text, _) = render(&app(m, (260, 60)), &theme());
    assert!(text.contains("· pass 0.4s (99% settled, <1% light), "), "{text}");
}

#[test]
fn the_census_panel_says_the_count_events_keep_current() {
    use sessiontop::engine::domain::{EventKind, EventsState, SessionEvent};
    let event =
        |kind, id: &str| SessionEvent { at: NOW, id: id.into(), kind, part: "session".into(), event: "x".into() };
    let mut m = connected(300, 900 << 20, 1 << 30);
    m.apply(Update::EventsState(EventsState::On { flags: None }));
    m.apply(Update::SessionEvents(vec![
        event(EventKind::Created, "new_user"),
        event(EventKind::Expired, "old_1"),
        event(EventKind::Evicted, "old_2"),
    ]));
    let total = m.census.totals().total;
    let (text, _) = render(&app(m, (160, 48)), &theme());
    let said = format!("{} now (+1 −2 by events)", total - 1);
    assert!(text.contains(&said), "{said} not in:\n{text}");
}
