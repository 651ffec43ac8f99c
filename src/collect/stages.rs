//! What only watching sessions across polls and passes shows: stuck sessions, for layouts whose
//! sessions keep no history to read a loop from (ChatMRPT, Flask: one look cannot tell a stuck
//! user from an idle one, but a stage that stays the same while its user keeps using the
//! session can be seen), and for every layout how sessions arrive and move through their
//! stages ([`FlowWatch`]: sessions that never come back, a stage nobody leaves).
//!
//! A target's poller and census share one [`Stages`]: every row either reads (the page, the
//! census) passes through it, so a stuck session carries its `stuck` finding before the table
//! shows it or the census counts it. The judgements are [`StageWatch::observe_row`]'s and the
//! flow's.

use std::sync::{Arc, Mutex};

use crate::engine::diagnose::{Observing, StageWatch};
use crate::engine::domain::{FindingKind, FlowSummary, Millis, RowFinding, SessionRow, Ttl, session_lifetime};
use crate::engine::flow::{FlowWatch, FlowWindows, Look, Reuse};
use crate::engine::layout::{IdleSource, Layout};

/// What watching stages is judged by, from the command line: the stalled threshold of stages
/// without one of their own, the session lifetime if given, and how recently a user must have
/// been active to count as still trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    pub stalled_after_s: i64,
    pub lifetime_s: Option<i64>,
    pub active_window_s: i64,
    /// New sessions and the entries into and exits from stages are counted over these windows.
    pub arrivals_window_s: i64,
    pub flow_window_s: i64,
    /// The deploy baseline (`--baseline`): the windows are judged against the hour before it.
    pub baseline: Option<Millis>,
}

impl WatchOptions {
    fn windows(&self) -> FlowWindows {
        FlowWindows {
            arrivals_ms: self.arrivals_window_s * 1000,
            stages_ms: self.flow_window_s * 1000,
            active_ms: self.active_window_s * 1000,
        }
    }
}

/// The stages of a target's active sessions, as its poller and census have read them.
#[derive(Debug)]
pub struct Stages {
    /// Whether stuck sessions are judged by watching (sessions keep no history to read a loop
    /// from).
    stuck: bool,
    idle: IdleSource,
    finals: Vec<String>,
    stage_limits: Vec<(String, i64)>,
    layout_lifetime_s: Option<i64>,
    options: WatchOptions,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    watch: StageWatch,
    flow: FlowWatch,
    /// The largest TTL of the last complete pass and of the running one, for a lifetime the
    /// layout does not give.
    last_pass_ttl_ms: i64,
    running_ttl_ms: i64,
}

impl Stages {
    /// A watch for `layout`'s sessions. Stuck sessions are judged by it unless they keep a
    /// history that shows a user going round in circles (then the reader judges them by it).
    pub fn for_layout(layout: &Layout, options: WatchOptions) -> Arc<Stages> {
        Arc::new(Stages {
            stuck: layout.stuck.is_none() || layout.history().is_none(),
            idle: layout.idle,
            finals: layout.finals.clone(),
            stage_limits: layout.stalled_after.clone(),
            layout_lifetime_s: layout.lifetime_s,
            options,
            state: Mutex::new(State {
                flow: {
                    let mut flow = FlowWatch::default();
                    flow.set_baseline(options.baseline);
                    flow
                },
                ..State::default()
            }),
        })
    }

    /// Marks (or, with `None`, clears) the deploy baseline (`b` on the dashboard).
    pub fn set_baseline(&self, baseline: Option<Millis>) {
        if let Ok(mut state) = self.state.lock() {
            state.flow.set_baseline(baseline);
        }
    }

    /// Rows as they were read at `now`: each one stuck gets its finding, with why.
    pub fn observe(&self, rows: &mut [SessionRow], now: Millis) {
        let Ok(mut state) = self.state.lock() else { return };
        let largest = state.last_pass_ttl_ms.max(state.running_ttl_ms);
        let lifetime_s = session_lifetime(self.options.lifetime_s, self.layout_lifetime_s, largest).map(|(s, _)| s);
        let observing = Observing {
            idle: self.idle,
            lifetime_s,
            finals: &self.finals,
            stage_limit_s: self.options.stalled_after_s,
            stage_limits: &self.stage_limits,
            active_window_s: self.options.active_window_s,
        };
        let windows = self.options.windows();
        let lifetime_ms = lifetime_s.map(|s| s * 1000);
        for row in rows.iter_mut() {
            if self.stuck
                && let Some(why) = state.watch.observe_row(row, now, &observing)
            {
                row.findings.push(RowFinding::new(FindingKind::Stuck, why));
            }
            if let Some(look) = look(row, self.idle, lifetime_ms) {
                state.flow.observe(look, now, &windows);
            }
        }
    }

    /// The largest TTL the running pass has seen so far.
    pub fn pass_read(&self, largest_ttl_ms: i64) {
        if let Ok(mut state) = self.state.lock() {
            state.running_ttl_ms = state.running_ttl_ms.max(largest_ttl_ms);
        }
    }

    /// A pass ended at `now`: sessions not seen active within the window are forgotten. Returns
    /// how sessions arrived and moved through their stages, as watched so far.
    pub fn pass_done(&self, now: Millis) -> Option<FlowSummary> {
        let mut state = self.state.lock().ok()?;
        state.last_pass_ttl_ms = std::mem::take(&mut state.running_ttl_ms);
        state.watch.forget_inactive(now, self.options.active_window_s);
        let windows = self.options.windows();
        state.flow.pass_done(now, &windows);
        Some(state.flow.summary(now, &windows))
    }
}

/// A row as the flow sees it: its stage (the substate where it has one), when it was last
/// active and, where a part written once at creation says, when it was created. `None` when
/// when it was last active is not known.
fn look(row: &SessionRow, idle: IdleSource, lifetime_ms: Option<Millis>) -> Option<Look<'_>> {
    let active = match idle {
        IdleSource::LastInteraction => row.last_interaction? / 1000,
        IdleSource::Ttl => match row.ttl {
            Ttl::ExpiresAt(at) => at - lifetime_ms?,
            _ => return None,
        },
    };
    let born = row.created_expiry.zip(lifetime_ms).map(|(expiry, lifetime)| expiry - lifetime);
    // A history of more than one turn is a session used again; without one, only its activity
    // moving tells.
    let reuse = match row.history_len {
        Some(turns) => Reuse::Known(turns >= 2),
        None => Reuse::ByActivity,
    };
    Some(Look { id: &row.id, stage: row.substate.as_ref().or(row.stage.as_ref()), active, born, reuse })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::domain::Ttl;
    use crate::engine::layout::{LayoutKind, Overrides};

    fn options() -> WatchOptions {
        WatchOptions {
            stalled_after_s: 900,
            lifetime_s: None,
            active_window_s: 1800,
            arrivals_window_s: 600,
            flow_window_s: 1800,
            baseline: None,
        }
    }

    #[test]
    fn stuck_is_watched_only_in_layouts_without_a_history_to_read() {
        let trt = Layout::builtin(LayoutKind::Trt, &Overrides::default()).unwrap();
        assert!(!Stages::for_layout(&trt, options()).stuck, "TRT's history shows a loop");
        let chatmrpt = Layout::builtin(LayoutKind::Chatmrpt, &Overrides::default()).unwrap();
        assert!(Stages::for_layout(&chatmrpt, options()).stuck);
    }

    #[test]
    fn a_user_who_keeps_coming_back_to_one_stage_is_marked_stuck_as_read() {
        let chatmrpt = Layout::builtin(LayoutKind::Chatmrpt, &Overrides::default()).unwrap();
        let stages = Stages::for_layout(&chatmrpt, options());
        let lifetime = chatmrpt.lifetime_s.unwrap_or(86_400);
        // Flask-Session rewrites the key on every request: a full TTL is a user just active.
        let row = |now: Millis| SessionRow {
            stage: Some("uploaded".into()),
            ttl: Ttl::ExpiresAt(now + lifetime * 1000 - 5_000),
            ..SessionRow::new("trying")
        };
        let t0 = 1_000_000_000;
        let mut rows = vec![row(t0)];
        stages.observe(&mut rows, t0);
        assert!(rows[0].findings.is_empty());
        let t1 = t0 + 16 * 60_000;
        let mut rows = vec![row(t1)];
        stages.observe(&mut rows, t1);
        assert_eq!(rows[0].findings.len(), 1, "{:?}", rows[0].findings);
        assert_eq!(rows[0].findings[0].kind, FindingKind::Stuck);
        assert!(rows[0].findings[0].why.contains("in uploaded for 16m"), "{:?}", rows[0].findings);
        // Forgotten once the user has not been seen for longer than the window.
        stages.pass_done(t1 + 31 * 60_000);
        let mut rows = vec![row(t1 + 32 * 60_000)];
        stages.observe(&mut rows, t1 + 32 * 60_000);
        assert!(rows[0].findings.is_empty(), "watched afresh");
    }
}
