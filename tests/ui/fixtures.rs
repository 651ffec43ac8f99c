//! Hand-built models for the view tests: fixed times, fixed data, so renders are repeatable.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use sessiontop::conn::info::ServerStats;
use sessiontop::dashboard::app::App;
use sessiontop::dashboard::keymap::Keymap;
use sessiontop::dashboard::theme::Theme;
use sessiontop::decode::Value;
use sessiontop::engine::domain::{
    CensusTally, Decodedish, FindingKind, KeyReport, LayoutInfo, LinkState, RowFinding, SessionReport, SessionRow,
    Subject, TargetInfo, Ttl,
};
use sessiontop::engine::layout::{IdleSource, LayoutKind};
use sessiontop::engine::model::{Model, ModelSettings};
use sessiontop::engine::msg::Update;

/// 2026-11-21T14:00:00Z.
pub const NOW: i64 = 1_795_269_600_000;

pub use sessiontop::demo::TRT_SUBSTATES as SUBSTATES;

pub fn settings() -> ModelSettings {
    ModelSettings {
        idle: IdleSource::LastInteraction,
        lifetime_s: None,
        layout_lifetime_s: None,
        stalled_after_s: 900,
        stage_limits: Vec::new(),
        finals: vec!["stage_1_complete".into()],
        stages: vec!["stage_1_safety_building".into()],
        substates: SUBSTATES.iter().map(|s| s.to_string()).collect(),
        thresholds: Default::default(),
        poll_interval_ms: 2000,
    }
}

pub fn target(read_only: bool) -> TargetInfo {
    TargetInfo { url: "rediss://ops:***@sessions.cache.example:6379".into(), name: None, read_only }
}

/// A model before anything was heard from Redis.
pub fn loading() -> Model {
    Model::new(target(false), settings(), NOW)
}

pub fn layout_info() -> LayoutInfo {
    LayoutInfo {
        name: "trt".into(),
        kind: LayoutKind::Trt,
        prefix: "trt:".into(),
        note: Some("detected from 1462 of 2000 sampled keys".into()),
        idle: IdleSource::LastInteraction,
        finals: vec!["stage_1_complete".into()],
        stages: vec!["stage_1_safety_building".into()],
        substates: SUBSTATES.iter().map(|s| s.to_string()).collect(),
        stage_limits: Vec::new(),
        has_index: true,
        lifetime_s: None,
        markers: Vec::new(),
        id_fields: Vec::new(),
        stuck_by_history: true,
    }
}

pub fn server(used: u64, max: u64) -> ServerStats {
    ServerStats::from_info(&format!(
        "redis_version:7.0.15\r\nrole:master\r\nconnected_slaves:1\r\nuptime_in_seconds:273600\r\nconnected_clients:42\r\n\
         blocked_clients:1\r\nused_memory:{used}\r\nused_memory_peak:{}\r\nused_memory_rss:{}\r\nmaxmemory:{max}\r\n\
         maxmemory_policy:allkeys-lru\r\nmem_fragmentation_ratio:1.23\r\ninstantaneous_ops_per_sec:1834\r\n\
         keyspace_hits:98000\r\nkeyspace_misses:2000\r\nevicted_keys:0\r\nexpired_keys:5120\r\n\
         db0:keys=9030,expires=9001,avg_ttl=62613027\r\n",
        used + used / 10,
        used + used / 4
    ))
}

pub fn row(id: &str, substate: &str, idle_s: i64, ttl: Ttl, history: u64, memory: u64) -> SessionRow {
    SessionRow {
        stage: Some("stage_1_safety_building".into()),
        substate: Some(substate.into()),
        last_interaction: Some((NOW - idle_s * 1000) * 1000),
        ttl,
        history_len: Some(history),
        memory_bytes: Some(memory),
        generation: 1,
        ..SessionRow::new(id)
    }
}

pub fn ttl_in(seconds: i64) -> Ttl {
    Ttl::ExpiresAt(NOW + seconds * 1000)
}

/// A model with the rows its census read, which the dashboard's table is given beside it.
pub struct Connected {
    pub model: Model,
    pub rows: Vec<SessionRow>,
}

impl std::ops::Deref for Connected {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.model
    }
}

impl std::ops::DerefMut for Connected {
    fn deref_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

impl From<Model> for Connected {
    fn from(model: Model) -> Connected {
        Connected { model, rows: Vec::new() }
    }
}

/// A connected model with server statistics, trends, a complete census and `n` sessions,
/// including one of each problem: stalled, no TTL, undecodable.
pub fn connected(n: usize, used: u64, max: u64) -> Connected {
    let mut m = Model::new(target(false), settings(), NOW - 60_000);
    m.apply(Update::Link(LinkState::Connected { since: NOW - 3_600_000 }));
    m.apply(Update::Layout(Box::new(layout_info())));
    // A minute of polls so the trends have a shape, one every two seconds.
    for i in 0..30u64 {
        m.tick(NOW - 60_000 + i as i64 * 2000, i * 180);
        let mut s = server(used - (30 - i) * 10_000, max);
        s.db_keys = Some(9000 + i * 2);
        s.ops_per_sec = Some(1500 + (i * 37) % 400);
        s.connected_clients = Some(40 + i % 5);
        s.expired_keys = Some(5000 + i * 4);
        m.apply(Update::Server { stats: Box::new(s), unavailable: vec![] });
    }
    let mut rows = Vec::new();
    for i in 0..n {
        let substate = SUBSTATES[i % SUBSTATES.len()];
        rows.push(row(
            &format!("user_{:04}", 1000 + i),
            substate,
            (i as i64) * 7 + 2,
            ttl_in(86_400 - (i as i64) * 7),
            (i % 50) as u64,
            1800 + (i as u64 % 9) * 250,
        ));
    }
    rows.push(row("stalled_user", "3.1_assess_readiness", 2400, ttl_in(84_000), 9, 3081));
    let mut forever = row("forever_user", "1.2_problem_and_body", 30, Ttl::Persistent, 4, 2210);
    forever.findings = vec![RowFinding::new(FindingKind::NoTtl, "the session key has no TTL".into())];
    rows.push(forever);
    let mut broken = row("bad\u{1b}[2Jpayload", "1.1_goal_and_vision", 45, ttl_in(86_000), 0, 512);
    broken.stage = None;
    broken.substate = None;
    broken.decode_error = Some("not JSON, msgpack or pickle (msgpack: invalid marker at byte 0)".into());
    broken.findings = vec![RowFinding::new(FindingKind::Undecodable, broken.decode_error.clone().unwrap_or_default())];
    rows.push(broken);
    let mut tally = CensusTally {
        total: rows.len() as u64,
        no_ttl: 1,
        orphaned: 5,
        undecodable: 1,
        examined: rows.len() as u64 + 5,
        ..Default::default()
    };
    for r in &rows {
        for f in &r.findings {
            tally.evidence.note(f.kind, || Subject::session(r.id.clone(), Some(f.why.clone())));
        }
        match &r.substate {
            Some(s) => *tally.by_substate.entry(s.to_string()).or_default() += 1,
            None => tally.no_stage += 1,
        }
        if let Some(s) = &r.stage {
            *tally.by_stage.entry(s.to_string()).or_default() += 1;
        }
    }
    m.apply(Update::CensusBatch { generation: 1, rows: Vec::new(), partial: tally.clone(), progress: Some(1.0) });
    m.apply(Update::CensusDone { generation: 1, tally, duration_ms: 212, orphan_ids: vec![] });
    m.apply(Update::OwnProcess { cpu_percent: 0.7, rss_bytes: 21 << 20 });
    m.tick(NOW, 11_000);
    Connected { model: m, rows }
}

fn text_value(s: &str) -> Value {
    Value::Str(s.into())
}

/// The inspector's report of one TRT session with a few turns of history.
pub fn report() -> SessionReport {
    let state = Value::Map(vec![
        (text_value("session_id"), text_value("user_1234")),
        (text_value("current_stage"), text_value("stage_1_safety_building")),
        (text_value("current_substate"), text_value("1.2_problem_and_body")),
        (text_value("body_questions_asked"), text_value("2")),
        (
            text_value("stage_1_completion"),
            Value::Map(vec![
                (text_value("goal_stated"), Value::Bool(true)),
                (text_value("vision_accepted"), Value::Bool(true)),
                (text_value("problem_identified"), Value::Bool(false)),
            ]),
        ),
        (text_value("last_interaction"), text_value("2026-11-21T13:57:41.004211")),
    ]);
    let turn = |client: &str, reply: &str, decision: &str, at: &str| {
        Value::Map(vec![
            (text_value("client_input"), text_value(client)),
            (text_value("therapist_response"), text_value(reply)),
            (text_value("navigation_decision"), text_value(decision)),
            (text_value("current_substate"), text_value("1.2_problem_and_body")),
            (text_value("timestamp"), text_value(at)),
        ])
    };
    let history = vec![
        turn(
            "In my chest, mostly",
            "Can you stay with that sensation for a moment?",
            "body_location",
            "2026-11-21T13:57:41",
        ),
        turn(
            "I get a tight feeling before meetings",
            "Where do you notice that tightness?",
            "explore_problem",
            "2026-11-21T13:55:02",
        ),
        turn(
            "I want to feel calmer at work",
            "What would calmer look like for you?",
            "explore_goal",
            "2026-11-21T13:52:10",
        ),
    ];
    let key = |key: &str, role: &str, ty: &str, length: u64, memory: u64, content: Option<Decodedish>| KeyReport {
        node: None,
        raw: match &content {
            Some(Decodedish::Value { value: Value::Map(fields), .. }) => fields
                .iter()
                .map(|(k, v)| {
                    let stored = match v {
                        Value::Str(s) => s.clone(),
                        other => other.to_json().to_string(),
                    };
                    (Some(k.inline(40)), stored.into_bytes())
                })
                .collect(),
            _ => Vec::new(),
        },
        key: key.into(),
        role: role.into(),
        redis_type: ty.into(),
        ttl: ttl_in(86_261),
        memory_bytes: Some(memory),
        length: Some(length),
        content,
        truncated: false,
    };
    SessionReport {
        id: "user_1234".into(),
        row: row("user_1234", "1.2_problem_and_body", 139, ttl_in(86_261), 3, 3174),
        keys: vec![
            key(
                "trt:session:user_1234:state",
                "primary",
                "hash",
                6,
                1240,
                Some(Decodedish::Value { format: None, value: state }),
            ),
            key("trt:session:user_1234:history", "history", "list", 3, 1782, None),
            key(
                "trt:session:user_1234:meta",
                "meta",
                "hash",
                2,
                152,
                Some(Decodedish::Value {
                    format: None,
                    value: Value::Map(vec![
                        (text_value("created_at"), text_value("2026-11-21T13:52:10.112233")),
                        (text_value("created_via"), text_value("input_endpoint")),
                    ]),
                }),
            ),
        ],
        index_score: Some((NOW / 1000 - 139) as f64),
        history_raw: history.iter().map(|v| v.to_json().to_string().into_bytes()).collect(),
        history,
        history_total: 3,
        observed_at: NOW,
        unavailable: vec![],
        related_search: None,
    }
}

/// The dashboard on `fixture`, its table holding the census's rows (the dashboard sends a
/// census's rows to the table as they come).
pub fn app(fixture: impl Into<Connected>, size: (u16, u16)) -> App {
    use sessiontop::engine::table::{DEFAULT_MAX_ROWS, Engine, Message};
    let Connected { model, rows } = fixture.into();
    let generation = model.census.generation;
    let mut engine = Engine::new(DEFAULT_MAX_ROWS);
    engine.set_immediate();
    if !rows.is_empty() {
        engine.apply(Message::Rows { rows, generation: Some(generation) });
        engine.apply(Message::PassDone { generation });
    }
    App::with_table(model, Keymap::default(), size, sessiontop::dashboard::app::TableEngine::Inline(Box::new(engine)))
}

/// The rows the census read for the table.
pub fn rows_of(fixture: &Connected) -> Vec<SessionRow> {
    fixture.rows.clone()
}

/// A session's row as the table last showed it.
pub fn shown_row(app: &App, id: &sessiontop::engine::names::SessionId) -> SessionRow {
    app.table.view.window.iter().find(|r| &r.id == id).cloned().unwrap_or_else(|| panic!("{id} is not in the view"))
}

/// Renders the app and returns the screen as text (trailing spaces trimmed) and the buffer.
pub fn render(app: &App, theme: &Theme) -> (String, Buffer) {
    let (w, h) = app.size;
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("a test backend cannot fail");
    terminal.draw(|f| sessiontop::dashboard::ui::draw(f, app, theme)).expect("a test backend cannot fail");
    let buffer = terminal.backend().buffer().clone();
    let mut text = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buffer[(x, y)].symbol().to_string()).collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    (text, buffer)
}

/// The first cell showing `symbol` on the row containing `needle`.
pub fn cell_on_row<'a>(buffer: &'a Buffer, needle: &str, symbol: &str) -> &'a ratatui::buffer::Cell {
    let area = buffer.area;
    for y in 0..area.height {
        let line: String = (0..area.width).map(|x| buffer[(x, y)].symbol().to_string()).collect();
        if line.contains(needle) {
            for x in 0..area.width {
                if buffer[(x, y)].symbol() == symbol {
                    return &buffer[(x, y)];
                }
            }
        }
    }
    panic!("no '{symbol}' on a row with '{needle}'");
}

pub fn theme() -> Theme {
    Theme::load("default").expect("built-in theme")
}

/// Two hours of polls two seconds apart, ending at [`NOW`], with Redis away from 40 to 30
/// minutes ago: what the charts draw.
pub fn charted() -> Model {
    let start = NOW - 7_200_000;
    let mut m = Model::new(target(false), settings(), start);
    m.apply(Update::Link(LinkState::Connected { since: start }));
    m.apply(Update::Layout(Box::new(layout_info())));
    let outage = (start + 4_800_000)..(start + 5_400_000);
    for i in 0..3600i64 {
        let at = start + i * 2000;
        m.tick(at, i as u64 * 10);
        if outage.contains(&at) {
            if at == outage.start {
                m.apply(Update::Link(LinkState::Reconnecting {
                    attempt: 1,
                    retry_at: at + 1000,
                    error: "gone".into(),
                }));
            }
            continue;
        }
        if at == outage.end {
            m.apply(Update::Link(LinkState::Connected { since: at }));
        }
        m.apply(Update::Server {
            stats: Box::new(server((100 << 20) + i as u64 * 1000, 200 << 20)),
            unavailable: vec![],
        });
    }
    m.tick(NOW, 36_000);
    m
}
