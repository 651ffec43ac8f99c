//! `sessiontop events`: a live tail of what happens to sessions (created, saved, expired,
//! evicted, deleted), from keyspace notifications, filtered to the layout's keys; until Ctrl-C
//! or SIGTERM, or `--count` events. Where the server does not send them it says how to turn them
//! on, and changes nothing.

use std::io::Write;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use super::{HeadlessError, Store};
use crate::collect::events::{self, BATCH_EVERY};
use crate::engine::domain::{EventsState, SessionEvent};

/// Follows the store's session events, printing each as a line (or a JSON object).
pub async fn follow(store: &Store, json: bool, count: Option<u64>) -> Result<(), HeadlessError> {
    let layout = Arc::new(store.layout()?.clone());
    if let EventsState::Off { how, .. } = events::state_of(&store.router, &layout).await {
        return Err(HeadlessError::Unavailable(format!("session events are not sent by this server: {how}")));
    }
    let db = store.topology.template().db();
    let mut subscription = events::subscribe(&store.topology, &layout, db, None).await.map_err(HeadlessError::Redis)?;
    let stop = |kind| signal(kind).map_err(|e| HeadlessError::Unavailable(format!("cannot wait for signals: {e}")));
    let (mut terminate, mut interrupt) = (stop(SignalKind::terminate())?, stop(SignalKind::interrupt())?);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!(
            "sessiontop: following {} on {} node(s); Ctrl-C stops",
            events::pattern(db, &layout.prefix),
            store.topology.map().primaries().len()
        );
    }
    let mut tick = tokio::time::interval(BATCH_EVERY);
    let (mut batch, mut printed) = (Vec::new(), 0u64);
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            event = subscription.events.recv() => match event {
                Some(Ok(e)) => batch.push(e),
                Some(Err(f)) => return Err(HeadlessError::Redis(f)),
                None => return Ok(()),
            },
            _ = tick.tick() => {
                for e in events::collapse(std::mem::take(&mut batch)) {
                    let line = if json { json_line(&e) } else { text_line(&e) };
                    // A reader that went away (`| head`) ends the tail.
                    if writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_err() {
                        return Ok(());
                    }
                    printed += 1;
                    if count.is_some_and(|n| printed >= n) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// `10:31:02.120  saved     user_12  session, history`, in local time.
pub fn text_line(e: &SessionEvent) -> String {
    let at = chrono::DateTime::from_timestamp_millis(e.at)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    format!("{at}  {:<8}  {}  {}", e.kind.word(), e.id.escaped(), crate::util::text::escape_str(&e.part))
}

fn json_line(e: &SessionEvent) -> String {
    let at = chrono::DateTime::from_timestamp_millis(e.at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let parts: Vec<&str> = e.part.split(", ").collect();
    serde_json::json!({"at": at, "kind": e.kind.word(), "id": e.id.escaped(), "parts": parts, "event": e.event})
        .to_string()
}
