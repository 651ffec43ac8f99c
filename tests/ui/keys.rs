//! Update logic without a terminal: keys, mouse, dialogs and collector updates in, state and
//! requests out.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use sessiontop::dashboard::app::{App, Dialog, Level, Pane, Screen, SortColumn};
use sessiontop::engine::msg::{PlanReply, Request, Update, WriteKind, WritePlan};
use sessiontop::engine::names::SessionId;

use crate::fixtures::*;

fn key(app: &mut App, code: KeyCode) -> Vec<Request> {
    app.on_key(KeyEvent::from(code))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn overview() -> App {
    app(connected(60, 200 << 20, 0), (160, 48))
}

#[test]
fn moving_selects_by_id_and_scrolls() {
    let mut a = overview();
    assert_eq!(a.table.sort_column(), SortColumn::Idle);
    let first = a.table.ids()[0].clone();
    assert_eq!(a.table.selected.as_ref(), Some(&first), "the most recent session is selected");
    key(&mut a, KeyCode::Char('j'));
    assert_eq!(a.table.selected.as_ref(), Some(&a.table.ids()[1]));
    key(&mut a, KeyCode::Char('G'));
    assert_eq!(a.table.selected.as_ref(), a.table.ids().last());
    assert!(a.table.offset > 0, "the table scrolled to keep the selection visible");
    key(&mut a, KeyCode::Char('g'));
    assert_eq!(a.table.selected.as_ref(), Some(&a.table.ids()[0]));
    assert_eq!(a.table.offset, 0);
    key(&mut a, KeyCode::PageDown);
    assert_eq!(a.table.selected_index(), Some(a.table_rows()));
    key(&mut a, KeyCode::Up);
    assert_eq!(a.table.selected_index(), Some(a.table_rows() - 1));
}

#[test]
fn selection_follows_the_session_when_rows_reorder() {
    let mut a = overview();
    key(&mut a, KeyCode::Char('j'));
    key(&mut a, KeyCode::Char('j'));
    let chosen = a.table.selected.clone().unwrap();
    // The session is saved again: it becomes the most recent, and stays selected.
    let mut row = shown_row(&a, &chosen);
    row.last_interaction = Some(NOW * 1000);
    a.on_update(Update::Page { rows: vec![row], unavailable: vec![] });
    a.on_tick(NOW + 1000, 0);
    assert_eq!(a.table.selected.as_ref(), Some(&chosen));
    assert_eq!(a.table.ids()[0], chosen);
}

#[test]
fn at_the_head_the_selection_stays_on_the_first_row_as_fresher_sessions_come() {
    let mut a = overview();
    let first = a.table.ids()[0].clone();
    // Another session is saved: it comes first, and the untouched selection is the first row.
    let other = a.table.ids()[5].clone();
    let mut row = shown_row(&a, &other);
    row.last_interaction = Some(NOW * 1000);
    a.on_update(Update::Page { rows: vec![row], unavailable: vec![] });
    a.on_tick(NOW + 1000, 0);
    assert_eq!(a.table.ids()[0], other);
    assert_eq!(a.table.selected.as_ref(), Some(&other), "the head of the list is watched");
    assert_eq!(a.table.offset, 0);
    assert_ne!(first, other);
    // Back at the head by `g` after moving away: the head again.
    key(&mut a, KeyCode::Char('j'));
    key(&mut a, KeyCode::Char('g'));
    let third = a.table.ids()[7].clone();
    let mut row = shown_row(&a, &third);
    row.last_interaction = Some((NOW + 2000) * 1000);
    a.on_update(Update::Page { rows: vec![row], unavailable: vec![] });
    a.on_tick(NOW + 3000, 0);
    assert_eq!(a.table.selected.as_ref(), Some(&third));
}

#[test]
fn filter_narrows_keeps_and_clears() {
    let mut a = overview();
    let all = a.table.len();
    key(&mut a, KeyCode::Char('/'));
    assert!(a.table.editing_filter);
    typed(&mut a, "STALLED");
    assert_eq!(a.table.ids(), vec![SessionId::from("stalled_user")], "case-insensitive substring of the id");
    assert_eq!(a.table.selected.as_ref().map(|s| s.to_string()).as_deref(), Some("stalled_user"));
    key(&mut a, KeyCode::Enter);
    assert!(!a.table.editing_filter);
    assert_eq!(a.table.len(), 1, "Enter keeps the filter");
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.table.len(), all, "Esc clears it");

    key(&mut a, KeyCode::Char('/'));
    typed(&mut a, "alpha_perm");
    assert!(a.table.view.window.iter().all(|r| r.substate.as_deref() == Some("3.1.5_alpha_permission")));
    assert!(!a.table.is_empty(), "substates match too");
    key(&mut a, KeyCode::Esc);
    assert!(a.table.filter.is_empty());
}

#[test]
fn sort_cycles_columns_and_reverses() {
    let mut a = overview();
    key(&mut a, KeyCode::Char('s'));
    assert_eq!(a.table.sort_column(), SortColumn::Ttl);
    let ttl = |a: &App, id: &SessionId| shown_row(a, id).ttl.seconds_left(a.model.now).unwrap_or(i64::MAX);
    assert!(ttl(&a, &a.table.ids()[0]) <= ttl(&a, &a.table.ids()[1]));
    key(&mut a, KeyCode::Char('s'));
    assert_eq!(a.table.sort_column(), SortColumn::History);
    let hist = |a: &App, id: &SessionId| shown_row(a, id).history_len.unwrap_or(0);
    assert!(hist(&a, &a.table.ids()[0]) >= hist(&a, &a.table.ids()[1]), "history starts longest first");
    key(&mut a, KeyCode::Char('S'));
    assert!(a.table.reverse);
    assert!(hist(&a, &a.table.ids()[0]) <= hist(&a, &a.table.ids()[1]));
    for _ in 0..5 {
        key(&mut a, KeyCode::Char('s'));
    }
    assert_eq!(a.table.sort_column(), SortColumn::Idle, "the cycle comes back round");
}

#[test]
fn enter_inspects_and_escape_returns() {
    let mut a = overview();
    let id = a.table.selected.clone().unwrap();
    let requests = key(&mut a, KeyCode::Enter);
    assert!(requests.contains(&Request::Inspect(Some(id.clone()))));
    assert_eq!(a.screen, Screen::Inspector);
    key(&mut a, KeyCode::Tab);
    assert_eq!(a.inspector.as_ref().unwrap().pane, Pane::History);
    let requests = key(&mut a, KeyCode::Esc);
    assert!(requests.contains(&Request::Inspect(None)));
    assert_eq!(a.screen, Screen::Overview);
    assert_eq!(a.table.selected.as_ref(), Some(&id));
}

#[test]
fn the_inspector_folds_its_tree() {
    let mut m = connected(5, 200 << 20, 0);
    m.apply(Update::Inspect(Box::new(report())));
    let mut a = app(m, (160, 48));
    a.table.selected = Some("user_1234".into());
    key(&mut a, KeyCode::Enter);
    let before = a.tree_lines().len();
    key(&mut a, KeyCode::Char(' '));
    assert_eq!(a.tree_lines().len(), 4, "the first key folded: its line, then meta's line and its two fields remain");
    key(&mut a, KeyCode::Char(' '));
    assert_eq!(a.tree_lines().len(), before);
    // Fold the nested stage_1_completion map: cursor to it, fold.
    let target = a.tree_lines().iter().position(|l| l.label.as_deref() == Some("stage_1_completion")).unwrap();
    for _ in 0..target {
        key(&mut a, KeyCode::Char('j'));
    }
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.tree_lines().len(), before - 3);
    key(&mut a, KeyCode::Char('v'));
    assert!(a.inspector.as_ref().unwrap().raw);
}

fn ready(kind: WriteKind) -> Update {
    Update::Plan(PlanReply::Ready(WritePlan {
        id: "stalled_user".into(),
        kind,
        keys: vec![],
        untouched: vec![],
        index: Some("trt:active_sessions".into()),
        span: Default::default(),
    }))
}

fn select_stalled(a: &mut App) {
    a.table.selected = Some("stalled_user".into());
}

#[test]
fn delete_asks_with_the_plan_and_defaults_to_no() {
    let mut a = overview();
    select_stalled(&mut a);
    let requests = key(&mut a, KeyCode::Char('d'));
    assert!(requests.contains(&Request::PlanWrite { id: "stalled_user".into(), kind: WriteKind::Delete }));
    assert!(matches!(a.dialog, Some(Dialog::Planning { .. })));
    a.on_update(ready(WriteKind::Delete));
    assert!(matches!(&a.dialog, Some(Dialog::Confirm { yes: false, .. })));
    // Enter on the default answer cancels.
    let requests = key(&mut a, KeyCode::Enter);
    assert!(!requests.iter().any(|r| matches!(r, Request::Execute(_))));
    assert!(a.dialog.is_none());

    key(&mut a, KeyCode::Char('d'));
    a.on_update(ready(WriteKind::Delete));
    key(&mut a, KeyCode::Right);
    let requests = key(&mut a, KeyCode::Enter);
    assert!(
        requests
            .iter()
            .any(|r| matches!(r, Request::Execute(p) if p.id == "stalled_user" && p.kind == WriteKind::Delete))
    );
    a.on_update(Update::WriteDone {
        message: "deleted session 'stalled_user': 3 keys and its index entry".into(),
        ok: true,
    });
    assert_eq!(a.status.as_ref().unwrap().level, Level::Info);
    assert!(a.status.as_ref().unwrap().text.starts_with("deleted session"));
}

#[test]
fn a_plan_that_fails_closes_the_dialog_and_says_why() {
    let mut a = overview();
    select_stalled(&mut a);
    key(&mut a, KeyCode::Char('p'));
    a.on_update(Update::Plan(PlanReply::Failed {
        id: "stalled_user".into(),
        kind: WriteKind::Persist,
        error: "not connected to Redis".into(),
    }));
    assert!(a.dialog.is_none());
    let status = a.status.as_ref().unwrap();
    assert_eq!(status.level, Level::Error);
    assert!(status.text.contains("not connected"), "{}", status.text);
    // A plan for another session does not open a dialog.
    key(&mut a, KeyCode::Char('p'));
    a.on_update(Update::Plan(PlanReply::Ready(WritePlan {
        id: "someone_else".into(),
        kind: WriteKind::Persist,
        keys: vec![],
        untouched: vec![],
        index: None,
        span: Default::default(),
    })));
    assert!(matches!(a.dialog, Some(Dialog::Planning { .. })));
    key(&mut a, KeyCode::Esc);
    assert!(a.dialog.is_none());
}

#[test]
fn expire_asks_for_seconds_and_accepts_durations() {
    let mut a = overview();
    select_stalled(&mut a);
    key(&mut a, KeyCode::Char('e'));
    typed(&mut a, "soon");
    key(&mut a, KeyCode::Enter);
    assert!(matches!(&a.dialog, Some(Dialog::ExpireInput { error: Some(_), .. })), "{:?}", a.dialog);
    for _ in 0..4 {
        key(&mut a, KeyCode::Backspace);
    }
    typed(&mut a, "15m");
    let requests = key(&mut a, KeyCode::Enter);
    assert!(requests.contains(&Request::PlanWrite { id: "stalled_user".into(), kind: WriteKind::Expire(900) }));
    a.on_update(ready(WriteKind::Expire(900)));
    let requests = key(&mut a, KeyCode::Char('y'));
    assert!(requests.iter().any(|r| matches!(r, Request::Execute(p) if p.kind == WriteKind::Expire(900))));
}

#[test]
fn read_only_write_keys_explain_and_send_nothing() {
    let mut m = connected(10, 200 << 20, 0);
    m.target.read_only = true;
    let mut a = app(m, (160, 48));
    for c in ['e', 'p', 'd'] {
        let requests = key(&mut a, KeyCode::Char(c));
        assert!(!requests.iter().any(|r| matches!(r, Request::PlanWrite { .. } | Request::Execute(_))));
        assert!(a.dialog.is_none());
        let status = a.status.as_ref().unwrap();
        assert_eq!(status.level, Level::Warn);
        assert!(status.text.starts_with("read-only"), "{}", status.text);
    }
}

#[test]
fn freeze_holds_the_screen_while_the_model_moves_on() {
    let mut a = overview();
    key(&mut a, KeyCode::Char('f'));
    assert!(a.frozen.is_some());
    let shown = a.shown_table().stored;
    let mut row = shown_row(&a, &"user_1000".into());
    row.id = "brand_new".into();
    a.on_update(Update::Page { rows: vec![row], unavailable: vec![] });
    assert_eq!(a.shown_table().stored, shown, "the frozen screen does not change");
    assert_eq!(a.table.view.stored, shown + 1, "the live table does");
    key(&mut a, KeyCode::Char('f'));
    assert!(a.frozen.is_none());
    assert_eq!(a.shown_table().stored, shown + 1);
}

#[test]
fn help_quit_refresh_and_ctrl_c() {
    let mut a = overview();
    key(&mut a, KeyCode::Char('?'));
    assert!(a.help);
    key(&mut a, KeyCode::Char('j'));
    assert!(!a.help, "any key closes the help");
    assert!(key(&mut a, KeyCode::Char('r')).contains(&Request::Refresh));
    key(&mut a, KeyCode::Char('q'));
    assert!(a.quit);

    let mut a = overview();
    select_stalled(&mut a);
    key(&mut a, KeyCode::Char('e'));
    a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(a.quit, "Ctrl-C quits even from a dialog");
}

#[test]
fn the_mouse_wheel_scrolls_and_a_click_selects() {
    let mut a = overview();
    let wheel = |kind| MouseEvent { kind, column: 10, row: 20, modifiers: KeyModifiers::NONE };
    a.on_mouse(wheel(MouseEventKind::ScrollDown));
    assert_eq!(a.table.selected_index(), Some(1));
    a.on_mouse(wheel(MouseEventKind::ScrollUp));
    assert_eq!(a.table.selected_index(), Some(0));
    // The table's first row is two lines below its top border.
    let table = sessiontop::dashboard::geometry::overview_areas(
        ratatui::layout::Rect::new(0, 0, 160, 48),
        a.listed_findings().len(),
    )
    .table;
    a.on_mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 10,
        row: table.y + 2 + 4,
        modifiers: KeyModifiers::NONE,
    });
    assert_eq!(a.table.selected_index(), Some(4));
}

#[test]
fn the_visible_rows_are_asked_for_and_only_when_they_change() {
    let mut a = overview();
    let requests = a.on_tick(NOW + 1000, 0);
    let Some(Request::Viewport(ids)) = requests.into_iter().find(|r| matches!(r, Request::Viewport(_))) else {
        panic!("the first tick asks for the visible rows");
    };
    assert_eq!(ids.len(), a.table_rows());
    assert_eq!(ids[0], a.table.ids()[0]);
    assert!(!a.on_tick(NOW + 2000, 0).iter().any(|r| matches!(r, Request::Viewport(_))), "unchanged: not asked again");
    let requests = key(&mut a, KeyCode::Char('j'));
    assert!(!requests.iter().any(|r| matches!(r, Request::Viewport(_))), "the selection moved within the page");
    let requests = key(&mut a, KeyCode::PageDown);
    assert!(requests.iter().any(|r| matches!(r, Request::Viewport(_))), "scrolling shows new rows");
}

#[test]
fn the_table_fills_as_soon_as_sessions_arrive() {
    // Within one tick of the model's clock: the empty table must not wait for the throttle.
    let mut a = app(loading(), (160, 48));
    let rows = rows_of(&connected(10, 200 << 20, 0));
    a.on_update(Update::CensusBatch {
        generation: 1,
        rows: Vec::new(),
        partial: Default::default(),
        progress: Some(0.1),
    });
    a.on_update(Update::CensusBatch { generation: 1, rows, partial: Default::default(), progress: Some(1.0) });
    assert_eq!(a.table.len(), 13);
    assert!(a.table.selected.is_some());
}

#[test]
fn collector_notices_reach_the_footer() {
    let mut a = overview();
    a.on_update(Update::Notice("census: ZCARD denied: this user has no permissions".into()));
    let status = a.status.as_ref().expect("a notice is shown");
    assert_eq!(status.level, Level::Warn);
    assert!(status.text.contains("ZCARD denied"));
    let (text, _) = render(&a, &theme());
    assert!(text.lines().last().unwrap().contains("census: ZCARD denied"), "{text}");
}

#[test]
fn a_huge_payload_makes_a_bounded_tree_built_once_per_report() {
    use sessiontop::decode::Value;
    use sessiontop::engine::domain::Decodedish;
    let mut report = report();
    report.keys[0].content = Some(Decodedish::Value {
        format: None,
        value: Value::Map(vec![(Value::Str("rows".into()), Value::List((0..500_000).map(Value::Int).collect()))]),
    });
    let mut m = connected(5, 200 << 20, 0);
    m.apply(Update::Inspect(Box::new(report.clone())));
    let mut a = app(m, (160, 48));
    a.table.selected = Some("user_1234".into());
    key(&mut a, KeyCode::Enter);
    let lines = a.tree_lines().len();
    assert!(lines < 300, "{lines} lines for 500,000 items");
    assert!(a.tree_lines().iter().any(|l| l.text == "… 499,800 more"));
    // Moving the cursor or drawing does not build the tree again; a new report does.
    let built = a.tree_lines().as_ptr();
    for _ in 0..20 {
        key(&mut a, KeyCode::Char('j'));
    }
    let _ = render(&a, &theme());
    assert_eq!(a.tree_lines().as_ptr(), built);
    a.on_update(Update::Inspect(Box::new(report)));
    assert_ne!(a.tree_lines().as_ptr(), built);
}

#[test]
fn a_stalled_census_says_why_instead_of_starting() {
    let mut m = loading();
    m.apply(Update::Link(sessiontop::engine::domain::LinkState::Connected { since: NOW }));
    m.apply(Update::Layout(Box::new(layout_info())));
    let mut a = app(m, (160, 48));
    let (text, _) = render(&a, &theme());
    assert!(text.contains("starting…"), "{text}");
    a.on_update(Update::CensusBlocked(
        "cannot connect: the server refused the connection: ERR max number of clients reached; retrying in 4s".into(),
    ));
    let (text, buffer) = render(&a, &theme());
    assert!(text.contains("✗ census: cannot connect: the server refused the connection"), "{text}");
    assert_eq!(
        cell_on_row(&buffer, "census: cannot connect", "✗").fg,
        theme().style(sessiontop::dashboard::theme::Role::Crit).fg.unwrap()
    );
    // The next batch clears it.
    a.on_update(Update::CensusBatch {
        generation: 1,
        rows: vec![],
        partial: sessiontop::engine::domain::CensusTally::default(),
        progress: Some(0.5),
    });
    let (text, _) = render(&a, &theme());
    assert!(!text.contains("✗ census"), "{text}");
}

#[test]
fn the_alerts_lead_to_the_sessions_a_finding_is_about() {
    let mut a = overview();
    let listed: Vec<&str> = a.listed_findings().iter().map(|f| f.kind.name()).collect();
    assert_eq!(listed, ["no_ttl", "undecodable", "stalled", "orphaned", "no_maxmemory", "blocked_clients"]);
    // Tab reaches the alerts; Enter on the first shows the one session without TTL.
    key(&mut a, KeyCode::Tab);
    assert_eq!(a.focus, sessiontop::dashboard::app::Focus::Alerts);
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.table.filter, "is:no_ttl");
    assert_eq!(a.focus, sessiontop::dashboard::app::Focus::Sessions);
    assert_eq!(a.table.ids(), [SessionId::from("forever_user")]);
    // The stalled finding shows the stalled sessions, by the same rule the census counts.
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Down);
    key(&mut a, KeyCode::Down);
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.table.filter, "is:stalled");
    assert_eq!(a.table.len(), a.shown_table().stalled);
    assert!(a.table.ids().contains(&SessionId::from("stalled_user")));
    // A finding about the server, or about sessions that are gone, says so instead.
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::End);
    key(&mut a, KeyCode::Enter);
    assert!(a.status.as_ref().is_some_and(|s| s.text.contains("about the server")), "{:?}", a.status);
    assert!(a.table.filter.is_empty());
    // The filter can be typed too.
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Char('/'));
    typed(&mut a, "is:undecodable");
    assert_eq!(a.table.ids(), [SessionId::from("bad\u{1b}[2Jpayload")]);
    key(&mut a, KeyCode::Backspace);
    assert!(a.table.is_empty(), "is:undecodabl names no finding");
}

#[test]
fn a_finding_is_fixed_from_the_alerts_after_listing_every_change() {
    use sessiontop::engine::domain::{FindingKind, SessionKey};
    use sessiontop::engine::layout::Lifecycle;
    let mut a = overview();
    key(&mut a, KeyCode::Tab);
    // no_ttl is the first finding: x asks the collectors to plan its fix for the sessions named.
    let requests = key(&mut a, KeyCode::Char('x'));
    assert!(matches!(a.dialog, Some(Dialog::PlanningFix { kind: FindingKind::NoTtl, .. })), "{:?}", a.dialog);
    let Some(Request::PlanFix { kind, ids, .. }) = requests.first() else { panic!("{requests:?}") };
    assert_eq!((*kind, ids.clone()), (FindingKind::NoTtl, vec![SessionId::from("forever_user")]));
    let plan = WritePlan {
        id: "forever_user".into(),
        kind: WriteKind::Expire(86_400),
        keys: vec![SessionKey {
            key: "trt:session:forever_user:state".into(),
            role: "primary".into(),
            part: None,
            lifecycle: Lifecycle::Session,
        }],
        untouched: vec![],
        index: None,
        span: Default::default(),
    };
    a.on_update(Update::FixPlans { kind: FindingKind::NoTtl, plans: vec![plan.clone()], skipped: vec![] });
    assert!(matches!(&a.dialog, Some(Dialog::ConfirmFix { yes: false, .. })), "defaults to No");
    assert!(key(&mut a, KeyCode::Enter).is_empty(), "Enter on No sends nothing");
    assert!(a.dialog.is_none());
    key(&mut a, KeyCode::Char('x'));
    a.on_update(Update::FixPlans { kind: FindingKind::NoTtl, plans: vec![plan.clone()], skipped: vec![] });
    let (text, _) = render(&a, &theme());
    assert!(!text.contains("the finding names, of"), "the fix covers all it counts:\n{text}");
    let requests = key(&mut a, KeyCode::Char('y'));
    assert_eq!(requests.first(), Some(&Request::ExecuteFix(vec![plan.clone()])));
    // A finding that counts more sessions than it names says how many the fix leaves.
    a.dialog =
        Some(Dialog::ConfirmFix { kind: FindingKind::NoTtl, of: 312, plans: vec![plan], skipped: 0, yes: false });
    let (text, _) = render(&a, &theme());
    assert!(text.contains("the 1 the finding names, of 312"), "{text}");
    // Read-only: the fix key says why and sends nothing.
    let mut m = connected(10, 200 << 20, 0);
    m.target.read_only = true;
    let mut a = app(m, (160, 48));
    key(&mut a, KeyCode::Tab);
    assert!(key(&mut a, KeyCode::Char('x')).is_empty());
    assert!(a.dialog.is_none());
    assert!(a.status.as_ref().is_some_and(|s| s.text.contains("read-only")));
}

#[test]
fn the_charts_show_two_hours_with_an_outage_as_a_gap_and_read_every_figure_at_the_cursor() {
    let m = charted();
    let mut a = app(m, (80, 24));
    key(&mut a, KeyCode::Char('c'));
    assert_eq!(a.screen, Screen::Charts);
    let (text, _) = render(&a, &theme());
    assert!(text.contains("used memory · last 5m00s"), "{text}");
    assert!(text.contains("maxmemory") && text.contains("now"), "{text}");
    assert!(text.contains("at now"), "{text}");
    // The hour-long window holds the outage: two runs, not a line across.
    key(&mut a, KeyCode::Char('w'));
    let h = a.model.history.get("used_memory").unwrap();
    let w = h.window(NOW - 3_600_000, NOW, 6000, 400);
    assert_eq!(w.runs.len(), 2, "{:?}", w.runs.iter().map(Vec::len).collect::<Vec<_>>());
    let (text, _) = render(&a, &theme());
    assert!(text.contains("last 1h00m"), "{text}");
    // The cursor in the outage reads nothing; before it, every figure it had.
    for _ in 0..35 {
        key(&mut a, KeyCode::Left);
    }
    assert_eq!(a.charts.cursor_back_ms, 35 * 60_000);
    let (text, _) = render(&a, &theme());
    let used = text.lines().find(|l| l.contains("used memory") && l.starts_with('│')).unwrap_or_default();
    assert!(used.trim_end().ends_with("– │") || used.contains('–'), "in the outage: {used}");
    for _ in 0..10 {
        key(&mut a, KeyCode::Char('h'));
    }
    let (text, _) = render(&a, &theme());
    let used = text.lines().find(|l| l.contains("used memory") && l.starts_with('│')).unwrap_or_default();
    assert!(used.contains("MiB"), "before the outage: {used}");
    // Down to the sessions per stage, the watched processes (none here; nor nodes, the last
    // two), and back.
    key(&mut a, KeyCode::Char('G'));
    for _ in 0..3 {
        key(&mut a, KeyCode::Char('k'));
    }
    let (text, _) = render(&a, &theme());
    assert!(text.contains("sessions per stage"), "{text}");
    key(&mut a, KeyCode::Char('j'));
    let (text, _) = render(&a, &theme());
    assert!(text.contains("nothing recorded in this window yet"), "{text}");
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.screen, Screen::Overview);
}

#[test]
fn a_baseline_shows_what_changed_since_the_deploy_on_the_panels() {
    use sessiontop::engine::domain::{CensusTally, LinkState};
    let start = NOW - 600_000;
    let mut m = sessiontop::engine::model::Model::new(target(false), settings(), start);
    m.apply(Update::Link(LinkState::Connected { since: start }));
    m.apply(Update::Layout(Box::new(layout_info())));
    // Ten minutes: memory grows by 1 MiB a minute, sessions by 30 a minute, in one substate.
    for minute in 0..=10i64 {
        let at = start + minute * 60_000;
        m.tick(at, 0);
        m.apply(Update::Server {
            stats: Box::new(server((100 << 20) + (minute as u64) * (1 << 20), 0)),
            unavailable: vec![],
        });
        let mut tally = CensusTally { total: 1000 + minute as u64 * 30, ..CensusTally::default() };
        tally.by_substate.insert("1.2_problem_and_body".into(), 400 + minute as u64 * 30);
        tally.by_substate.insert("3.2_alpha_sequence".into(), 600);
        m.apply(Update::CensusDone { generation: minute as u64 + 1, tally, duration_ms: 100, orphan_ids: vec![] });
    }
    let mut a = app(m, (160, 48));
    let (text, _) = render(&a, &theme());
    assert!(!text.contains("since baseline"), "no baseline, no changes:\n{text}");
    // The deploy was four minutes ago.
    a.model.baseline = Some(NOW - 240_000);
    let (text, _) = render(&a, &theme());
    assert!(text.contains("+120 since baseline"), "{text}");
    assert!(text.contains("(+4.00 MiB since baseline)"), "{text}");
    let stage = text.lines().find(|l| l.contains("1.2_problem_and_body") && l.contains('█')).unwrap_or_default();
    assert!(stage.contains("+120"), "{stage}");
    let other = text.lines().find(|l| l.contains("3.2_alpha_sequence") && l.contains('█')).unwrap_or_default();
    assert!(other.contains("±0"), "{other}");
    // b clears it, and b again marks one now; the collectors are told, for the causes.
    assert_eq!(key(&mut a, KeyCode::Char('b')), [Request::Baseline(None)]);
    assert_eq!(a.model.baseline, None);
    assert_eq!(key(&mut a, KeyCode::Char('b')), [Request::Baseline(Some(a.model.now))]);
    assert_eq!(a.model.baseline, Some(a.model.now));
    let (text, _) = render(&a, &theme());
    assert!(text.contains("±0 since baseline"), "{text}");
    // The charts draw it and say when it was.
    key(&mut a, KeyCode::Char('c'));
    let (text, _) = render(&a, &theme());
    assert!(text.contains("· baseline "), "{text}");
}
