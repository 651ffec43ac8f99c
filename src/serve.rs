//! `sessiontop serve`: the dashboard's watch without a terminal, for a server or a container.
//! Each target's collectors feed its [`Model`] as they feed a dashboard tab (the census, the
//! polls, the findings, the history); the metrics page and the recording run beside them as
//! they do beside the dashboard ([`Exports`]); each finding that opens, changes severity or
//! closes is one log line on stdout (JSON, or logfmt), as are the watch's own events (started,
//! a target lost and back, stopped). SIGTERM and SIGINT end it cleanly: the recording is
//! closed with everything it was given. No table of rows is kept: nobody looks at one.

use std::io::Write;

use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::cli::LogFormat;
use crate::collect::{Collector, now_millis};
use crate::engine::domain::{LinkState, Millis};
use crate::engine::model::Model;
use crate::engine::msg::Update;
use crate::export::changes::{Change, FindingLog};
use crate::export::exports::{Exports, StartError};
use crate::setup::Setup;
use crate::util::progress::Progress;

/// Where `serve` serves its metrics when `--metrics-listen` is not given: loopback only (give
/// `0.0.0.0:9187` in a container).
pub const DEFAULT_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9187);

/// How often the models' clocks move, the metrics page is rendered and findings are looked at.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{target}: {error}")]
    Refused { target: String, error: String },
    #[error("cannot wait for SIGTERM: {0}")]
    Signals(std::io::Error),
}

/// One target as `serve` watches it.
struct Watched {
    name: String,
    address: String,
    db: i64,
    model: Model,
    collector: Collector,
    findings: FindingLog,
    /// The last link state said, as a word (each change is said once).
    link: Option<&'static str>,
    /// Whether this target's first census pass shows the progress bar (the first target's).
    first: bool,
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(setup: Setup, format: LogFormat) -> Result<(), ServeError> {
    let listen = setup.metrics_listen.unwrap_or(DEFAULT_LISTEN);
    let (mut exports, resumed) = Exports::start(Some(listen), setup.recording().as_ref(), now_millis()).await?;
    let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    // One bar (stderr is one line): the first target's first census pass.
    let first_pass = setup.targets.first().map(|t| {
        let name = t.info.name.clone().unwrap_or_else(|| t.info.url.clone());
        Progress::start(&format!("{name}: first census pass"))
    });
    let mut log = Log { format, out: std::io::stdout(), first_pass };
    for w in &setup.warnings {
        log.line(now_millis(), "warning", None, "warning", vec![("message", json!(w))]);
    }

    let (mut watched, forwarders, mut updates) = watch_targets(&setup, resumed);
    let (host_task, mut host) = crate::collect::host::spawn(setup.watch_processes.clone(), setup.collect.poll_interval);
    let record = setup.record.as_ref().map(|(p, _)| p.display().to_string());
    let names: Vec<&str> = watched.iter().map(|w| w.name.as_str()).collect();
    log.line(
        now_millis(),
        "info",
        None,
        "started",
        vec![
            ("metrics", json!(format!("http://{listen}/metrics"))),
            ("targets", json!(names)),
            ("record", json!(record)),
        ],
    );

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            _ = terminate.recv() => break Ok("SIGTERM"),
            _ = interrupt.recv() => break Ok("SIGINT"),
            Some((i, update)) = updates.recv() => {
                if let Some(w) = watched.get_mut(i)
                    && let Err(e) = on_update(w, update, &mut log)
                {
                    break Err(e);
                }
            }
            Some(update) = host.recv() => {
                for w in &mut watched {
                    w.model.apply(update.clone());
                }
            }
            _ = tick.tick() => {
                let now = now_millis();
                on_tick(&mut watched, now);
                let targets: Vec<(&Model, &str)> = watched.iter().map(|w| (&w.model, w.name.as_str())).collect();
                if let Some(why) = exports.on_tick(&targets) {
                    log.line(now, "error", None, "record_failed", vec![("message", json!(why))]);
                }
                for w in &mut watched {
                    say_findings(w, now, &mut log);
                }
            }
        }
    };
    host_task.abort();
    for f in forwarders {
        f.abort();
    }
    drop(watched);
    let failed = exports.finish();
    match result {
        Ok(signal) => {
            let mut fields = vec![("signal", json!(signal))];
            if let Some(why) = failed {
                fields.push(("record_failed", json!(why)));
            }
            log.line(now_millis(), "info", None, "stopped", fields);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Every target's updates, tagged with its index.
type Tagged = mpsc::UnboundedReceiver<(usize, Update)>;

/// A model and collectors for each target, their updates on one channel tagged by index;
/// the first target's model goes on with the history a resumed recording holds.
fn watch_targets(
    setup: &Setup,
    mut resumed: Option<crate::engine::history::Histories>,
) -> (Vec<Watched>, Vec<tokio::task::JoinHandle<()>>, Tagged) {
    let (updates_tx, updates) = mpsc::unbounded_channel::<(usize, Update)>();
    let mut watched = Vec::with_capacity(setup.targets.len());
    let mut forwarders = Vec::with_capacity(setup.targets.len());
    for (i, target) in setup.targets.iter().enumerate() {
        let (model, collector, forwarder) = setup.watch_target(i, &mut resumed, &updates_tx);
        forwarders.push(forwarder);
        watched.push(Watched {
            name: target.info.name.clone().unwrap_or_else(|| target.info.url.clone()),
            address: target.target.address().to_string(),
            db: target.target.db(),
            model,
            collector,
            findings: FindingLog::default(),
            link: None,
            first: i == 0,
        });
    }
    (watched, forwarders, updates)
}

/// An update from a target's collectors: to its model; a change of link said. The first
/// connection refused for its credentials ends `serve` (it cannot start as asked); once it
/// ran, losing the server or the credentials is said and waited out.
fn on_update(w: &mut Watched, update: Update, log: &mut Log) -> Result<(), ServeError> {
    let now = now_millis();
    match &update {
        Update::Link(state) => {
            let (word, level, error) = match state {
                LinkState::Connecting => ("connecting", "info", None),
                LinkState::Connected { .. } => ("connected", "info", None),
                LinkState::Reconnecting { error, .. } => ("disconnected", "error", Some(error.clone())),
                LinkState::AuthFailed { error, .. } => ("auth_failed", "error", Some(error.clone())),
            };
            if word == "auth_failed" && w.link.is_none_or(|l| l == "connecting") {
                return Err(ServeError::Refused { target: w.name.clone(), error: error.unwrap_or_default() });
            }
            if w.link != Some(word) && word != "connecting" {
                let fields = error.map(|e| vec![("error", json!(e))]).unwrap_or_default();
                log.line(now, level, Some(&w.name), word, fields);
            }
            w.link = Some(word);
        }
        Update::Notice(message) => log.line(now, "warning", Some(&w.name), "notice", vec![("message", json!(message))]),
        _ => {}
    }
    if w.first {
        match &update {
            Update::CensusBatch { partial, progress, .. } => log.progress(partial.examined, *progress),
            Update::CensusDone { .. } => log.first_pass = None,
            _ => {}
        }
    }
    let mut update = update;
    // Nobody looks at rows here; the model keeps what it needs of a batch without them.
    if let Update::CensusBatch { rows, .. } | Update::Page { rows, .. } = &mut update {
        rows.clear();
    }
    w.model.apply(update);
    Ok(())
}

/// The clock: every model's time and own command count, and which targets are one server.
fn on_tick(watched: &mut [Watched], now: Millis) {
    let offset = chrono::Local::now().offset().local_minus_utc();
    for w in watched.iter_mut() {
        w.model.utc_offset_s = offset;
        let sent = w.collector.commands_sent();
        w.model.tick(now, sent);
    }
    if watched.len() > 1 {
        let same = {
            let peers: Vec<_> = watched.iter().map(|w| w.model.peer(&w.name, &w.address, w.db)).collect();
            crate::engine::diagnose::same_servers(&peers)
        };
        for (w, same) in watched.iter_mut().zip(same) {
            w.model.set_same_server(same);
        }
    }
}

/// The target's findings that opened, changed severity or closed, a line each.
fn say_findings(w: &mut Watched, now: Millis, log: &mut Log) {
    for change in w.findings.changes(&w.model.findings) {
        let (event, level, fields) = match change {
            Change::Opened(f) => ("finding_opened", f.severity.word(), finding_fields(f, None)),
            Change::Changed { finding: f, was } => ("finding_changed", f.severity.word(), finding_fields(f, Some(was))),
            Change::Closed(kind) => ("finding_closed", "info", vec![("kind", json!(kind))]),
        };
        log.line(now, level, Some(&w.name), event, fields);
    }
}

fn finding_fields(f: &crate::engine::domain::Finding, was: Option<&str>) -> Vec<(&'static str, Value)> {
    let mut fields = vec![("kind", json!(f.kind.name())), ("severity", json!(f.severity.word()))];
    if let Some(was) = was {
        fields.push(("was", json!(was)));
    }
    fields.push(("count", json!(f.count)));
    fields.push(("summary", json!(f.summary)));
    fields
}

/// The log on stdout. A line that cannot be written (stdout closed) is dropped; the watch
/// and its metrics go on.
struct Log {
    format: LogFormat,
    out: std::io::Stdout,
    /// The first pass's progress bar, until it ends; a line is written with it out of the way.
    first_pass: Option<Progress>,
}

impl Log {
    fn line(&mut self, now: Millis, level: &str, target: Option<&str>, event: &str, fields: Vec<(&str, Value)>) {
        let ts = chrono::DateTime::from_timestamp_millis(now)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        let mut all: Vec<(&str, Value)> = vec![("ts", json!(ts)), ("level", json!(level))];
        if let Some(target) = target {
            all.push(("target", json!(target)));
        }
        all.push(("event", json!(event)));
        all.extend(fields);
        let text = match self.format {
            LogFormat::Json => Value::Object(all.into_iter().map(|(k, v)| (k.to_string(), v)).collect()).to_string(),
            LogFormat::Logfmt => logfmt(&all),
        };
        let write = || {
            let mut out = self.out.lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        };
        match &self.first_pass {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    fn progress(&self, counted: u64, fraction: Option<f64>) {
        if let Some(bar) = &self.first_pass {
            bar.update(counted, fraction, None);
        }
    }
}

/// `key=value` pairs: a value with a space, a quote, `=` or nothing in it quoted, with `"`,
/// `\` and control characters escaped; a list as its items joined by commas; null as nothing.
fn logfmt(fields: &[(&str, Value)]) -> String {
    let value = |v: &Value| -> String {
        match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        }
    };
    fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let text = value(v);
            let plain = !text.is_empty()
                && !text.chars().any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control());
            if plain {
                return format!("{k}={text}");
            }
            let mut quoted = String::with_capacity(text.len() + 2);
            for c in text.chars() {
                match c {
                    '"' => quoted.push_str("\\\""),
                    '\\' => quoted.push_str("\\\\"),
                    '\n' => quoted.push_str("\\n"),
                    c if c.is_control() => quoted.push_str(&format!("\\u{{{:04x}}}", c as u32)),
                    c => quoted.push(c),
                }
            }
            format!("{k}=\"{quoted}\"")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_what_needs_it_and_escapes_what_would_break_a_line() {
        let line = logfmt(&[
            ("event", json!("finding_opened")),
            ("count", json!(3)),
            ("summary", json!("3 keys have no TTL: \"a\" = b\\c\nnext")),
            ("targets", json!(["trt", "chatmrpt"])),
            ("record", Value::Null),
            ("empty", json!("")),
        ]);
        assert_eq!(
            line,
            r#"event=finding_opened count=3 summary="3 keys have no TTL: \"a\" = b\\c\nnext" targets=trt,chatmrpt empty="""#
        );
        assert!(!line.contains('\n'));
    }
}
