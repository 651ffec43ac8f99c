//! Random key presses, mouse events, resizes, clock ticks and collector updates, in every view:
//! the update logic and the drawing must be total (no panic, whatever the order or the data).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use proptest::prelude::*;
use sessiontop::dashboard::app::{App, Screen};
use sessiontop::decode::Value;
use sessiontop::engine::domain::{
    CensusTally, Decodedish, KeyReport, LinkState, SessionKey, SessionReport, SessionRow, Ttl,
};
use sessiontop::engine::layout::Lifecycle;
use sessiontop::engine::msg::{PlanReply, Update, WriteKind, WritePlan};
use sessiontop::engine::names::{Key, SessionId};

use crate::fixtures::*;

/// One thing that can happen to the dashboard.
#[derive(Debug, Clone)]
enum Event {
    Key(KeyCode, KeyModifiers),
    Mouse(MouseEventKind, u16, u16),
    Resize(u16, u16),
    Tick(i64),
    Update(Box<Update>),
}

fn id_strategy() -> impl Strategy<Value = SessionId> {
    prop_oneof![
        "[a-z_]{1,8}".prop_map(|s| SessionId::from(s.as_str())),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(SessionId::from),
        Just(SessionId::from("user_1000")),
        (0usize..300).prop_map(|n| SessionId::from("x".repeat(n * 10))),
    ]
}

fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,12}",
        "\\PC{0,20}",
        (0usize..5000).prop_map(|n| "s".repeat(n)),
        Just("\u{1b}[2J\u{202e}".into())
    ]
}

fn ttl_strategy() -> impl Strategy<Value = Ttl> {
    prop_oneof![
        Just(Ttl::Unknown),
        Just(Ttl::Persistent),
        any::<i64>().prop_map(Ttl::ExpiresAt),
        (-100_000i64..100_000_000).prop_map(|s| Ttl::ExpiresAt(NOW + s)),
    ]
}

fn row_strategy() -> impl Strategy<Value = SessionRow> {
    (
        id_strategy(),
        proptest::option::of(text_strategy()),
        proptest::option::of(text_strategy()),
        proptest::option::of(any::<i64>()),
        ttl_strategy(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(text_strategy()),
    )
        .prop_map(|(id, stage, substate, last, ttl, history, memory, error)| SessionRow {
            stage: stage.map(Into::into),
            substate: substate.map(Into::into),
            last_interaction: last,
            ttl,
            history_len: history,
            memory_bytes: memory,
            decode_error: error,
            ..SessionRow::new(id)
        })
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        text_strategy().prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::vec((text_strategy().prop_map(Value::Str), inner.clone()), 0..8).prop_map(Value::Map),
            (text_strategy(), proptest::collection::vec(inner, 0..3)).prop_map(|(class, args)| Value::Object {
                class,
                args,
                state: None
            }),
        ]
    })
}

fn report_strategy() -> impl Strategy<Value = SessionReport> {
    (
        id_strategy(),
        proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..30), proptest::option::of(value_strategy()), any::<bool>()),
            0..12,
        ),
        proptest::collection::vec(value_strategy(), 0..40),
        any::<u64>(),
        proptest::option::of(any::<f64>()),
    )
        .prop_map(|(id, keys, history, history_total, score)| SessionReport {
            row: SessionRow::new(id.clone()),
            keys: keys
                .into_iter()
                .enumerate()
                .map(|(i, (key, content, raw))| KeyReport {
                    node: None,
                    key: Key::from(key),
                    role: if i == 0 { "primary".into() } else { format!("part{i}") },
                    redis_type: "hash".into(),
                    ttl: Ttl::Persistent,
                    memory_bytes: Some(i as u64 * 100),
                    length: Some(i as u64),
                    content: content.map(|value| {
                        if raw {
                            Decodedish::Undecodable {
                                reason: "hostile".into(),
                                raw: vec![0xff; i],
                                total_len: i as u64,
                            }
                        } else {
                            Decodedish::Value { format: None, value }
                        }
                    }),
                    truncated: raw,
                    raw: vec![(Some("f".into()), vec![0x1b, b'['])],
                })
                .collect(),
            index_score: score,
            history_raw: history.iter().map(|v| v.inline(40).into_bytes()).collect(),
            history,
            history_total,
            observed_at: NOW,
            unavailable: vec!["MEMORY USAGE denied".into()],
            related_search: None,
            id,
        })
}

fn plan_strategy() -> impl Strategy<Value = WritePlan> {
    (id_strategy(), proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6), any::<bool>())
        .prop_map(|(id, keys, index)| WritePlan {
            id,
            kind: WriteKind::Delete,
            keys: keys
                .into_iter()
                .map(|k| SessionKey {
                    key: Key::from(k),
                    role: "primary".into(),
                    part: None,
                    lifecycle: Lifecycle::Session,
                })
                .collect(),
            untouched: vec![],
            index: index.then(|| "trt:active_sessions".into()),
            span: Default::default(),
        })
}

fn update_strategy() -> impl Strategy<Value = Update> {
    prop_oneof![
        proptest::collection::vec(row_strategy(), 0..30).prop_map(|rows| Update::Page { rows, unavailable: vec![] }),
        proptest::collection::vec(id_strategy(), 0..5).prop_map(|ids| Update::Gone { ids }),
        (any::<u64>(), proptest::collection::vec(row_strategy(), 0..30), proptest::option::of(any::<f64>())).prop_map(
            |(generation, rows, progress)| Update::CensusBatch {
                generation: generation % 4,
                rows,
                partial: CensusTally::default(),
                progress,
            }
        ),
        (any::<u64>(), any::<u64>()).prop_map(|(generation, total)| Update::CensusDone {
            generation: generation % 4,
            tally: CensusTally { total, ..Default::default() },
            duration_ms: 3,
            orphan_ids: vec![],
        }),
        report_strategy().prop_map(|r| Update::Inspect(Box::new(r))),
        plan_strategy().prop_map(|p| Update::Plan(PlanReply::Ready(p))),
        (id_strategy(), text_strategy()).prop_map(|(id, error)| Update::Plan(PlanReply::Failed {
            id,
            kind: WriteKind::Persist,
            error
        })),
        text_strategy().prop_map(Update::Notice),
        text_strategy().prop_map(Update::CensusBlocked),
        (text_strategy(), any::<bool>()).prop_map(|(message, ok)| Update::WriteDone { message, ok }),
        (any::<u32>(), any::<i64>(), text_strategy())
            .prop_map(|(attempt, retry_at, error)| Update::Link(LinkState::Reconnecting { attempt, retry_at, error })),
        Just(Update::Link(LinkState::Connected { since: NOW })),
        Just(Update::Server { stats: Box::new(server(1 << 30, 0)), unavailable: vec![] }),
    ]
}

fn key_strategy() -> impl Strategy<Value = (KeyCode, KeyModifiers)> {
    let code = prop_oneof![
        prop::sample::select(vec![
            'j', 'k', 'g', 'G', 's', 'S', '/', 'e', 'p', 'd', 'r', 'f', 'v', ' ', '?', 'y', 'n', 'x', '1', 'q'
        ])
        .prop_map(KeyCode::Char),
        any::<char>().prop_map(KeyCode::Char),
        prop::sample::select(vec![
            KeyCode::Enter,
            KeyCode::Esc,
            KeyCode::Tab,
            KeyCode::BackTab,
            KeyCode::Backspace,
            KeyCode::Up,
            KeyCode::Down,
            KeyCode::Left,
            KeyCode::Right,
            KeyCode::PageUp,
            KeyCode::PageDown,
            KeyCode::Home,
            KeyCode::End,
            KeyCode::F(5),
        ]),
    ];
    // Ctrl-C quits, which would end the run early; every other modifier is fair.
    let modifiers = prop::sample::select(vec![KeyModifiers::NONE, KeyModifiers::SHIFT, KeyModifiers::ALT]);
    (code, modifiers)
}

fn event_strategy() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => key_strategy().prop_map(|(c, m)| Event::Key(c, m)),
        2 => (
            prop::sample::select(vec![
                MouseEventKind::ScrollDown,
                MouseEventKind::ScrollUp,
                MouseEventKind::Down(MouseButton::Left),
                MouseEventKind::Down(MouseButton::Right),
                MouseEventKind::Moved,
            ]),
            any::<u16>(),
            any::<u16>()
        )
            .prop_map(|(kind, column, row)| Event::Mouse(kind, column % 300, row % 100)),
        1 => (0u16..220, 0u16..70).prop_map(|(w, h)| Event::Resize(w, h)),
        1 => (-10_000_000i64..10_000_000).prop_map(|d| Event::Tick(NOW + d)),
        3 => update_strategy().prop_map(|u| Event::Update(Box::new(u))),
    ]
}

/// The views a run starts in: the overview, the inspector on each pane, a dialog, the help.
fn start(view: u8) -> App {
    let mut app = app(connected(60, 700 << 20, 1 << 30), (80, 24));
    let press = |app: &mut App, code: KeyCode| {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    };
    match view {
        0 => {}
        1..=3 => {
            press(&mut app, KeyCode::Enter);
            let id = app.inspector.as_ref().map(|i| i.id.clone()).unwrap_or_default();
            app.on_update(Update::Inspect(Box::new(SessionReport { id, ..report() })));
            for _ in 1..view {
                press(&mut app, KeyCode::Tab);
            }
        }
        4 => press(&mut app, KeyCode::Char('e')),
        5 => press(&mut app, KeyCode::Char('/')),
        _ => press(&mut app, KeyCode::Char('?')),
    }
    app
}

fn apply(app: &mut App, event: Event) {
    match event {
        Event::Key(code, modifiers) => {
            app.on_key(KeyEvent::new(code, modifiers));
        }
        Event::Mouse(kind, column, row) => {
            app.on_mouse(MouseEvent { kind, column, row, modifiers: KeyModifiers::NONE });
        }
        Event::Resize(w, h) => {
            app.on_resize(w, h);
        }
        Event::Tick(now) => {
            app.on_tick(now, 0);
        }
        Event::Update(update) => {
            app.on_update(*update);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_events_in_any_view_is_handled_and_drawn(
        view in 0u8..7,
        events in proptest::collection::vec(event_strategy(), 1..40),
    ) {
        let theme = theme();
        let mut app = start(view);
        for event in events {
            apply(&mut app, event);
            if app.quit {
                break;
            }
            // Drawing at the size the app believes it has, however small.
            let _ = render(&app, &theme);
        }
    }
}

/// The crash the property test is for: the keys pane of the inspector, scrolled.
#[test]
fn scrolling_the_inspectors_keys_pane_stays_within_its_keys() {
    let mut app = start(1);
    app.on_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    app.on_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    let pane = app.inspector.as_ref().map(|i| i.pane);
    assert_eq!(pane, Some(sessiontop::dashboard::app::Pane::Keys));
    for code in [KeyCode::Char('j'), KeyCode::Char('k'), KeyCode::PageDown, KeyCode::Down, KeyCode::End, KeyCode::Up] {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
    app.on_mouse(MouseEvent { kind: MouseEventKind::ScrollDown, column: 5, row: 5, modifiers: KeyModifiers::NONE });
    let keys = app.model.inspect.as_ref().map_or(0, |r| r.keys.len());
    assert!(app.inspector.as_ref().unwrap().keys_offset < keys.max(1));
    assert_eq!(app.screen, Screen::Inspector);
    let _ = render(&app, &theme());
}
