//! Findings: what is wrong with a session store, named, graded and explained in a sentence,
//! with a bounded sample of the sessions and keys involved. The one source for the dashboard's
//! alerts, `check`, `snapshot --json` and the row marks, so that wording and counts never drift
//! between them.
//!
//! The census and the page poll judge each session as they read it ([`row_findings`], kept in [`SessionRow::findings`] and
//! counted in [`Evidence`]); this module adds what only a whole pass or a series of polls can
//! tell: the stalled funnel and its jumps, orphaned index entries, the server's own trouble, a
//! restart, a failover, a sudden drop of sessions. A [`Tracker`] remembers what that takes.
//!
//! Must never do I/O; a pure function of what it is given.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::conn::info::ServerStats;

use crate::engine::domain::{
    CensusTally, Evidence, FINDING_SAMPLE, Finding, FindingKind, Micros, Millis, SessionRow, Severity, Subject,
    Thresholds, parse_time_zoned,
};
use crate::engine::layout::NaiveTime;
use crate::engine::names::SessionId;
use crate::util::text;

pub use crate::engine::domain::EVENT_FINDING_MS;
/// A server that has been up for less than this has restarted recently (a first look).
const RECENT_START_S: u64 = 10 * 60;
/// Census passes remembered for the stalled jump and the drop of sessions.
const PASSES_KEPT: usize = 12;
/// A stage's stalled count jumps when it is this many times its recent level, and at least
/// [`STALLED_JUMP_MIN`] more.
const STALLED_JUMP_FACTOR: f64 = 2.0;
const STALLED_JUMP_MIN: u64 = 10;

/// What the findings are made from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub server: Option<&'a ServerStats>,
    /// The nodes of a target made of several.
    pub nodes: Option<&'a crate::engine::domain::NodesView>,
    /// The last complete census pass, when there is one.
    pub census: Option<&'a CensusTally>,
    /// Orphaned ids the pass kept.
    pub orphan_ids: &'a [SessionId],
    /// Stalled sessions over the pass, in all and by stage (or substate), in workflow order.
    pub stalled: Option<(u64, &'a [(String, u64)])>,
    /// `--stalled-after`, for the stalled finding's sentence.
    pub stalled_after_s: i64,
    /// Stages or substates with their own threshold (the layout's).
    pub stage_limits: &'a [(String, i64)],
    pub thresholds: &'a Thresholds,
    /// Whether the layout has an index (orphans exist only there).
    pub has_index: bool,
    /// Other targets watched beside this one that are the same Redis server: their names, and
    /// whether they are the same store too (same database, layout and prefix).
    pub same_server: &'a [(String, bool)],
    /// Whether sessions keep a history that shows a user going round in circles (else stuck is
    /// judged by watching stages).
    pub has_history: bool,
    /// The layout's final stages (a flow never stops at one).
    pub finals: &'a [String],
    /// The slowlog of every primary, and when the watch began (entries from before are not
    /// this watch's news).
    pub slowlog: Option<&'a crate::engine::domain::SlowlogView>,
    pub watch_began: Millis,
    /// The local zone's offset, for the times findings say.
    pub utc_offset_s: i32,
    pub now: Millis,
}

/// What a finding needs to remember between polls and passes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tracker {
    last_server: Option<(Option<String>, Option<u64>, Option<String>)>,
    /// A restart seen while watching: when, and why it is believed.
    restart: Option<(Millis, String)>,
    /// Around that restart: the live sessions of the last pass before it and of the first
    /// pass begun after it, and what the restarted server says of its persistence.
    restart_counts: (Option<u64>, Option<u64>),
    restart_persistence: String,
    /// A change of role seen while watching: when, from, to.
    role_change: Option<(Millis, String, String)>,
    /// Evicted keys and rejected connections at the first poll (and after a restart).
    evicted_base: Option<u64>,
    rejected_base: Option<u64>,
    /// Recent passes: when they ended, and the live sessions they counted.
    passes: VecDeque<(Millis, u64)>,
    /// The stalled counts by stage of recent passes.
    stalled_levels: VecDeque<BTreeMap<String, u64>>,
    /// A sudden drop of live sessions between two passes: when, from, to.
    dropped: Option<(Millis, u64, u64)>,
    /// Stages whose stalled count jumped against their recent level: when, to, from about.
    jumps: BTreeMap<String, (Millis, u64, f64)>,
    /// Watched processes by pattern: how many the last host sample counted.
    processes: BTreeMap<String, u64>,
    /// Patterns whose count changed: when, from, to.
    process_changes: BTreeMap<String, (Millis, u64, u64)>,
    /// The nodes of a cluster: failovers and reshardings seen while watching.
    nodes: crate::engine::nodes::NodeWatch,
    /// Who connects: new hosts, and the application's hosts' connections falling.
    clients: crate::engine::clients::ClientWatch,
}

/// Sessions a stage watch follows at most (the rest are not followed).
pub const OBSERVED_MAX: usize = 100_000;

/// The stages of sessions active within the window, as seen across polls and passes, for
/// layouts whose sessions keep no history: a stage that stays the same while its user keeps
/// using the session is stuck, which no single look can tell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageWatch {
    /// id → (stage, when it was first seen in that stage, when it was last seen active).
    observed: HashMap<SessionId, (Arc<str>, Millis, Millis)>,
}

/// What judging a row by observation needs.
#[derive(Debug, Clone, Copy)]
pub struct Observing<'a> {
    pub idle: crate::engine::layout::IdleSource,
    pub lifetime_s: Option<i64>,
    pub finals: &'a [String],
    /// How long a stage may stay unchanged while the user is active, unless the stage has a
    /// threshold of its own in `stage_limits`.
    pub stage_limit_s: i64,
    pub stage_limits: &'a [(String, i64)],
    pub active_window_s: i64,
}

impl Tracker {
    /// A server poll: restarts (uptime went back or the run id changed) and role changes.
    pub fn observe_server(&mut self, stats: &ServerStats, now: Millis) {
        let current = (stats.run_id.clone(), stats.uptime_seconds, stats.role.clone());
        if let Some((run_id, uptime, role)) = &self.last_server {
            let new_run = run_id.is_some() && current.0.is_some() && *run_id != current.0;
            let went_back = matches!((uptime, current.1), (Some(before), Some(after)) if after < *before);
            if new_run || went_back {
                let why = if new_run { "its run id changed" } else { "its uptime went back" };
                self.restart = Some((now, format!("Redis restarted ({why}): sessions not saved to disk were lost")));
                self.restart_counts = (self.passes.back().map(|(_, live)| *live), None);
                self.restart_persistence = persistence(stats);
                self.evicted_base = stats.evicted_keys;
                self.rejected_base = stats.rejected_connections;
            }
            if let (Some(before), Some(after)) = (role, &current.2)
                && before != after
            {
                self.role_change = Some((now, before.clone(), after.clone()));
            }
        } else {
            self.evicted_base = stats.evicted_keys;
            self.rejected_base = stats.rejected_connections;
        }
        self.last_server = Some(current);
    }

    /// A listing of the clients, judged against the hosts at the deploy baseline when one is set.
    pub fn observe_clients(&mut self, view: &crate::engine::domain::ClientsView, baseline: Option<Millis>) {
        self.clients.observe(view, baseline);
    }

    /// The hosts connected now that were not at the start (or at the baseline).
    pub fn new_client_hosts(&self) -> impl Iterator<Item = &str> {
        self.clients.new_hosts()
    }

    /// A poll of a cluster's nodes.
    pub fn observe_nodes(&mut self, view: &crate::engine::domain::NodesView, now: Millis) {
        self.nodes.observe(view, now);
    }

    /// A sample of the host: a watched pattern whose count of processes changed (a worker
    /// died, or one was added) is remembered for an hour. Returns whether one changed.
    pub fn observe_host(&mut self, host: &crate::engine::domain::HostStats, now: Millis) -> bool {
        let mut changed = false;
        for p in &host.processes {
            if let Some(before) = self.processes.insert(p.pattern.clone(), p.count)
                && before != p.count
            {
                self.process_changes.insert(p.pattern.clone(), (now, before, p.count));
                changed = true;
            }
        }
        self.process_changes.retain(|_, (at, _, _)| now - *at < EVENT_FINDING_MS);
        changed
    }

    /// A finished census pass, begun at `started`, and the live sessions it counted.
    pub fn observe_pass(&mut self, now: Millis, started: Millis, live: u64, drop_share: f64) {
        if let Some((at, _)) = &self.restart
            && started >= *at
            && self.restart_counts.1.is_none()
        {
            self.restart_counts.1 = Some(live);
        }
        if let Some((_, before)) = self.passes.back()
            && *before > 0
            && (*before as f64 - live as f64) / *before as f64 > drop_share
        {
            self.dropped = Some((now, *before, live));
        }
        self.passes.push_back((now, live));
        while self.passes.len() > PASSES_KEPT {
            self.passes.pop_front();
        }
    }

    /// The stalled counts by stage of a finished pass (they are known once its rows are
    /// judged, after the pass itself).
    pub fn observe_stalled(&mut self, now: Millis, stalled_by: &[(String, u64)]) {
        let latest: BTreeMap<String, u64> = stalled_by.iter().cloned().collect();
        for (stage, count, level) in self.jumped(&latest) {
            self.jumps.insert(stage, (now, count, level));
        }
        self.jumps.retain(|_, (at, _, _)| now - *at < EVENT_FINDING_MS);
        self.stalled_levels.push_back(latest);
        while self.stalled_levels.len() > PASSES_KEPT {
            self.stalled_levels.pop_front();
        }
    }

    /// The findings only a series can show, added to `out`.
    fn findings(&self, inputs: &Inputs<'_>, out: &mut Vec<Finding>) {
        // A drop of sessions a restart explains is said by the restart's finding.
        let (restart, explains_from) = self.restart_finding(inputs.now);
        out.extend(restart);
        self.clients.findings(inputs.thresholds, inputs.utc_offset_s, out);
        if let Some((at, before, after)) = &self.role_change
            && inputs.now - at < EVENT_FINDING_MS
        {
            out.push(server_finding(
                FindingKind::RoleChanged,
                Severity::Critical,
                1,
                format!(
                    "the server's role changed from {} to {} (a failover){}",
                    text::escape_str(before),
                    text::escape_str(after),
                    if after == "slave" { ": it no longer takes writes" } else { "" }
                ),
            ));
        }
        if let Some(server) = inputs.server {
            if let (Some(base), Some(now)) = (self.evicted_base, server.evicted_keys)
                && now > base
            {
                out.push(server_finding(
                    FindingKind::Evicted,
                    Severity::Critical,
                    now - base,
                    format!(
                        "Redis evicted {} keys while sessiontop watched: sessions are being thrown away for memory",
                        text::grouped(now - base)
                    ),
                ));
            }
            if let (Some(base), Some(now)) = (self.rejected_base, server.rejected_connections)
                && now > base
            {
                out.push(server_finding(
                    FindingKind::RejectedConnections,
                    Severity::Critical,
                    now - base,
                    format!(
                        "Redis refused {} connections while sessiontop watched (maxclients reached)",
                        text::grouped(now - base)
                    ),
                ));
            }
        }
        let changed: Vec<String> = self
            .process_changes
            .iter()
            .filter(|(_, (at, _, _))| inputs.now - *at < EVENT_FINDING_MS)
            .map(|(pattern, (at, before, after))| {
                format!(
                    "{} {before} → {after} ({} ago)",
                    text::clip_sized(&text::escape_str(pattern), 40),
                    text::human_duration((inputs.now - at) / 1000)
                )
            })
            .collect();
        if !changed.is_empty() {
            out.push(server_finding(
                FindingKind::ProcessCount,
                Severity::Warning,
                changed.len() as u64,
                format!("watched processes changed in number (a worker died or was added): {}", changed.join(", ")),
            ));
        }
        // A sudden drop of live sessions between two passes, for an hour after it was seen.
        if let Some((at, before, live)) = &self.dropped
            && inputs.now - at < EVENT_FINDING_MS
            && explains_from.is_none_or(|restart| *at < restart)
        {
            out.push(Finding {
                kind: FindingKind::SessionsDropped,
                severity: Severity::Critical,
                count: before - live,
                summary: format!(
                    "live sessions fell from {} to {} between two census passes (more than {:.0}%), {} ago",
                    text::grouped(*before),
                    text::grouped(*live),
                    inputs.thresholds.drop_share * 100.0,
                    text::human_duration((inputs.now - at) / 1000)
                ),
                by_stage: Vec::new(),
                sample: Vec::new(),
            });
        }
    }

    /// A restart seen within the hour, as one finding: with the sessions it took when a pass
    /// begun after it has counted them (and then when it was, for the drop it explains), a
    /// restart that lost nothing as information, and one not counted since as critical.
    fn restart_finding(&self, now: Millis) -> (Option<Finding>, Option<Millis>) {
        let Some((at, why)) = self.restart.as_ref().filter(|(at, _)| now - at < EVENT_FINDING_MS) else {
            return (None, None);
        };
        let ago = text::human_duration((now - at) / 1000);
        match self.restart_counts {
            (Some(before), Some(after)) if after < before => {
                let summary = format!(
                    "Redis restarted {ago} ago and {} of {} sessions are gone: {}",
                    text::grouped(before - after),
                    text::grouped(before),
                    self.restart_persistence
                );
                (Some(server_finding(FindingKind::Restarted, Severity::Critical, before - after, summary)), Some(*at))
            }
            (Some(_), Some(after)) => {
                let summary =
                    format!("Redis restarted {ago} ago and lost no session ({} live after it)", text::grouped(after));
                (Some(server_finding(FindingKind::Restarted, Severity::Info, 1, summary)), None)
            }
            // Not counted since (or not before): what it took is not known.
            _ => (Some(server_finding(FindingKind::Restarted, Severity::Critical, 1, why.clone())), None),
        }
    }

    /// Stages whose stalled count jumped within the last hour: stage, to, from about, when.
    fn stalled_jumps(&self, now: Millis) -> Vec<(String, u64, f64, Millis)> {
        self.jumps
            .iter()
            .filter(|(_, (at, _, _))| now - *at < EVENT_FINDING_MS)
            .map(|(stage, (at, count, level))| (stage.clone(), *count, *level, *at))
            .collect()
    }

    /// Stages whose stalled count in `latest` jumped against their own level in the passes
    /// remembered (at least two).
    fn jumped(&self, latest: &BTreeMap<String, u64>) -> Vec<(String, u64, f64)> {
        let earlier: Vec<&BTreeMap<String, u64>> = self.stalled_levels.iter().collect();
        if earlier.len() < 2 {
            return Vec::new();
        }
        latest
            .iter()
            .filter_map(|(stage, now)| {
                let level = earlier.iter().map(|s| s.get(stage).copied().unwrap_or(0)).sum::<u64>() as f64
                    / earlier.len() as f64;
                let jumped = *now as f64 > level * STALLED_JUMP_FACTOR && *now >= level as u64 + STALLED_JUMP_MIN;
                jumped.then(|| (stage.clone(), *now, level))
            })
            .collect()
    }
}

/// The application's own commands on session keys that the slowlog logged since the watch
/// began (sessiontop's are its own cost, shown on screen; others' keys are not sessions).
fn slow_session_commands(
    view: &crate::engine::domain::SlowlogView,
    since: Millis,
    utc_offset_s: i32,
) -> Option<Finding> {
    // The slowlog keeps whole seconds.
    let theirs: Vec<&crate::engine::domain::SlowEntry> =
        view.entries.iter().filter(|e| !e.own && e.session.is_some() && e.at >= since - since % 1000).collect();
    let slowest = theirs.iter().max_by_key(|e| e.micros)?;
    let ms = slowest.micros as f64 / 1000.0;
    Some(server_finding(
        FindingKind::SlowSessionCommands,
        Severity::Warning,
        theirs.len() as u64,
        format!(
            "{} of the application's commands on sessions are in the slowlog since {} (slowest: {} for {ms:.1} ms at {}, from {}): the slowlog view (L) lists them",
            theirs.len(),
            text::clock(since, utc_offset_s),
            text::clip(&slowest.command, 80),
            text::clock(slowest.at, utc_offset_s),
            if slowest.client_name.is_empty() {
                slowest.client.clone()
            } else {
                format!("{} ({})", slowest.client, slowest.client_name)
            },
        ),
    ))
}

/// What a reader saw of one session, for [`row_findings`].
#[derive(Debug, Clone, Copy)]
pub struct RowFacts<'a> {
    /// `PTTL` of the session key.
    pub pttl: Option<i64>,
    pub history_len: Option<u64>,
    /// The length the application trims its history to.
    pub history_cap: Option<u64>,
    /// The rate-limit counter of the current minute, and its limit.
    pub counter: Option<(i64, u64)>,
    /// The payload's length (a string session) or the hash's memory (a hash session).
    pub payload_bytes: Option<u64>,
    pub hash: bool,
    /// The largest fields of an oversized payload, with their sizes.
    pub largest_fields: Option<&'a str>,
    /// A payload or field over the read cap, not read (`decode_error` says which).
    pub over_cap: bool,
    pub decode_error: Option<&'a str>,
    /// When the session was last active, and what it was read from: the index score and the
    /// session's own field, in the layout's zone for naive times.
    pub last_interaction: Option<Micros>,
    pub score: Option<f64>,
    pub last_interaction_text: Option<&'a str>,
    pub naive: NaiveTime,
    /// Why the session's history shows a user going round in circles, when it does.
    pub stuck: Option<&'a str>,
}

/// The TTL of one of a session's other keys (a part, or a related key the layout names).
#[derive(Debug, Clone, Copy)]
pub struct KeyTtl<'a> {
    pub name: &'a str,
    /// A lock: held too long, or forever, is a stale lock.
    pub lock: bool,
    pub pttl: Option<i64>,
}

/// Which of a session's keys a finding of one look at it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    /// The session's own key.
    Session,
    /// The `i`th of the keys given to [`row_findings`].
    Key(usize),
    /// Its history list.
    History,
    /// Its rate-limit counter of this minute.
    Counter,
    /// The session as a whole.
    Nothing,
}

/// What is wrong with one session, judged from what was read of it: the finding it counts
/// towards, a word on why, and which key it is about. The one judgement of a row that one look can make, for the
/// census, the page and the inspector alike (what only watching shows is the tracker's:
/// [`Tracker::observe_row`]).
pub fn row_findings<'a>(
    s: &RowFacts<'a>,
    keys: impl IntoIterator<Item = KeyTtl<'a>>,
    t: &Thresholds,
    now: Millis,
) -> Vec<(FindingKind, String, About)> {
    let mut out = Vec::new();
    let session = |kind, why: String| (kind, why, About::Session);
    if s.pttl == Some(-1) {
        out.push(session(FindingKind::NoTtl, "the session key has no TTL".to_string()));
    }
    for (i, key) in keys.into_iter().enumerate() {
        key_findings(i, &key, s.pttl, t, &mut out);
    }
    if let (Some(len), Some(cap)) = (s.history_len, s.history_cap)
        && len > cap
    {
        out.push((
            FindingKind::HistoryOverCap,
            format!("{len} history entries; the application keeps {cap}"),
            About::History,
        ));
    }
    if let Some((n, limit)) = s.counter
        && n >= limit as i64
    {
        out.push((FindingKind::RateLimited, format!("{n} requests this minute; the limit is {limit}"), About::Counter));
    }
    if let Some(bytes) = s.payload_bytes.filter(|b| *b > t.large_session_bytes) {
        let what = if s.hash { "hash of" } else { "payload of" };
        let largest = s.largest_fields.map(|f| format!("; largest: {f}")).unwrap_or_default();
        out.push(session(FindingKind::Oversized, format!("{what} {}{largest}", text::human_bytes(bytes))));
    } else if s.over_cap {
        out.push(session(FindingKind::Oversized, s.decode_error.unwrap_or_default().to_string()));
    }
    if let (Some(why), false) = (s.decode_error, s.over_cap) {
        out.push(session(FindingKind::Undecodable, why.to_string()));
    }
    if let Some(at) = s.last_interaction
        && at / 1000 > now + t.clock_skew_s * 1000
    {
        out.push(session(
            FindingKind::ClockTrouble,
            format!("last interaction {} in the future", text::human_duration((at / 1000 - now) / 1000)),
        ));
    } else if let Some(why) = index_disagrees(s.score, s.last_interaction_text, s.naive, t.clock_skew_s) {
        out.push(session(FindingKind::ClockTrouble, why));
    }
    if let Some(why) = s.stuck {
        out.push((FindingKind::Stuck, why.to_string(), About::Nothing));
    }
    out
}

/// What one of a session's other keys shows: no TTL, a lock held too long, a part that
/// outlives the session key.
fn key_findings(
    i: usize,
    key: &KeyTtl<'_>,
    session_pttl: Option<i64>,
    t: &Thresholds,
    out: &mut Vec<(FindingKind, String, About)>,
) {
    let name = text::escape_str(key.name);
    let about = About::Key(i);
    match key.pttl {
        Some(-1) if key.lock => {
            out.push((FindingKind::NoTtl, format!("the {name} has no TTL"), about));
            out.push((FindingKind::StaleLock, format!("the {name} has no TTL: held until it is deleted"), about));
        }
        Some(-1) => out.push((FindingKind::NoTtl, format!("the {name} has no TTL"), about)),
        Some(ms) if ms >= 0 && key.lock && ms > t.lock_held_s * 1000 => out.push((
            FindingKind::StaleLock,
            format!("the {name} is set to be held {} more", text::human_duration(ms / 1000)),
            about,
        )),
        Some(ms) if ms >= 0 && !key.lock => {
            if let Some(primary) = session_pttl.filter(|p| *p >= 0)
                && (ms - primary) / 1000 > t.ttl_mismatch_s
            {
                out.push((
                    FindingKind::TtlMismatch,
                    format!("the {name} outlives the session key by {}", text::human_duration((ms - primary) / 1000)),
                    about,
                ));
            }
        }
        _ => {}
    }
}

/// Why a session's index score is ahead of its own last-interaction field, when it is by more
/// than `skew_s`. Both are written at the same save, so the index is ahead only when a writer
/// touches the index without the session, or a writer's clock or units are wrong. (The field
/// is read after the score, in a later round trip or a later batch, so a user who comes back in
/// between makes the field newer than the score: that way round is never judged.) A field
/// written without a zone is the application's local time, which may be another zone than this
/// machine's: a difference of whole quarter hours up to 14 h (a zone offset) is allowed there.
fn index_disagrees(score: Option<f64>, text: Option<&str>, naive: NaiveTime, skew_s: i64) -> Option<String> {
    let score = score.filter(|v| v.is_finite() && *v > 0.0)?;
    let text = text?;
    let (field, zoned) = parse_time_zoned(text, naive)?;
    let ahead = score - field as f64 / 1e6;
    let skew = skew_s.max(1) as f64;
    const QUARTER_HOUR: f64 = 900.0;
    let offset = (ahead / QUARTER_HOUR).round() * QUARTER_HOUR;
    let zone_offset = !zoned && offset.abs() <= 14.0 * 3600.0 && (ahead - offset).abs() <= skew;
    (ahead > skew && !zone_offset).then(|| {
        format!("the index score is {} ahead of the session's own last interaction", text::human_duration(ahead as i64))
    })
}

impl StageWatch {
    /// A session as a pass or poll read it, for layouts whose sessions keep no history: while
    /// the user is active (idle within the window) and not at a final stage, how long its stage
    /// has stayed the same. Returns why it is stuck, when it is.
    pub fn observe_row(&mut self, row: &SessionRow, now: Millis, o: &Observing<'_>) -> Option<String> {
        let idle = crate::engine::domain::idle_seconds(o.idle, row.last_interaction, row.ttl, now, o.lifetime_s)?;
        let stage = row.stage.as_ref()?;
        if idle > o.active_window_s || o.finals.iter().any(|f| **f == **stage) {
            self.observed.remove(&row.id);
            return None;
        }
        let room = self.observed.len() < OBSERVED_MAX;
        let since = match self.observed.get_mut(&row.id) {
            Some((seen, since, last)) if **seen == **stage => {
                *last = now;
                *since
            }
            Some(entry) => {
                *entry = (stage.clone(), now, now);
                now
            }
            None if room => {
                self.observed.insert(row.id.clone(), (stage.clone(), now, now));
                now
            }
            None => return None,
        };
        let held = (now - since) / 1000;
        let limit = crate::engine::domain::stalled_after_for(o.stage_limit_s, o.stage_limits, Some(stage), None);
        (held > limit).then(|| {
            format!(
                "active {} ago, in {} for {} as watched",
                text::human_duration(idle),
                text::clip_sized(stage, 48),
                text::human_duration(held)
            )
        })
    }

    /// Forgets sessions not seen active for longer than the window.
    pub fn forget_inactive(&mut self, now: Millis, active_window_s: i64) {
        self.observed.retain(|_, (_, _, last)| now - *last <= active_window_s * 1000);
    }
}

/// The stalled threshold in words: `15m`, or `15m (30m in 3.2_alpha_sequence)` when the layout
/// gives stages their own.
fn thresholds_words(inputs: &Inputs<'_>) -> String {
    let default = text::human_duration(inputs.stalled_after_s);
    if inputs.stage_limits.is_empty() {
        return default;
    }
    let own = inputs
        .stage_limits
        .iter()
        .take(4)
        .map(|(stage, s)| format!("{} in {}", text::human_duration(*s), text::clip_sized(&text::escape_str(stage), 40)))
        .collect::<Vec<_>>()
        .join(", ");
    let more = if inputs.stage_limits.len() > 4 { ", …" } else { "" };
    format!("{default} ({own}{more})")
}

fn server_finding(kind: FindingKind, severity: Severity, count: u64, summary: String) -> Finding {
    Finding { kind, severity, count, summary, by_stage: Vec::new(), sample: Vec::new() }
}

/// One target watched beside others, as the same-server check sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer<'a> {
    pub name: &'a str,
    pub run_id: Option<&'a str>,
    /// The address as given (host and port, or socket path) and the database.
    pub address: &'a str,
    pub db: i64,
    /// The layout watched: its name and prefix.
    pub layout: Option<(&'a str, &'a str)>,
}

/// For each target, the others that are the same Redis server (the same `run_id`, or the same
/// address), and whether each is the same store too (the same database, layout and prefix): the
/// production-on-staging mix-up the seeds record. Pure: the dashboard calls it as polls come.
pub fn same_servers(peers: &[Peer<'_>]) -> Vec<Vec<(String, bool)>> {
    peers
        .iter()
        .enumerate()
        .map(|(i, me)| {
            peers
                .iter()
                .enumerate()
                .filter(|(j, other)| {
                    *j != i
                        && (me.run_id.is_some() && me.run_id == other.run_id
                            || !me.address.is_empty() && me.address == other.address)
                })
                .map(|(_, other)| {
                    let same_store = other.db == me.db && other.layout.is_some() && other.layout == me.layout;
                    (other.name.to_string(), same_store)
                })
                .collect()
        })
        .collect()
}

/// Every finding, most severe first (then by kind).
pub fn findings(inputs: &Inputs<'_>, tracker: &Tracker) -> Vec<Finding> {
    let mut out = Vec::new();
    for (other, same_store) in inputs.same_server {
        let other = text::escape_str(other);
        out.push(if *same_store {
            server_finding(
                FindingKind::SameServer,
                Severity::Critical,
                1,
                format!(
                    "this is the same store as target '{other}' (one Redis server, the same database and layout): \
                     one of the two is not what its name says (production writing into staging's Redis?)"
                ),
            )
        } else {
            server_finding(
                FindingKind::SameServer,
                Severity::Info,
                1,
                format!("this Redis server is also target '{other}' (another database or layout: two applications on one server)"),
            )
        });
    }
    if let Some(server) = inputs.server {
        server_findings(server, inputs.thresholds, &mut out);
    }
    if let Some(slow) = inputs.slowlog.and_then(|s| slow_session_commands(s, inputs.watch_began, inputs.utc_offset_s)) {
        out.push(slow);
    }
    if let Some(nodes) = inputs.nodes {
        tracker.nodes.findings(nodes, inputs.thresholds, inputs.now, &mut out);
    }
    if let Some(census) = inputs.census.filter(|c| !c.uncovered_slots.is_empty())
        && !out.iter().any(|f| f.kind == FindingKind::SlotsUncovered)
    {
        let count: u32 = census.uncovered_slots.iter().map(|(a, b)| u32::from(*b) - u32::from(*a) + 1).sum();
        out.push(server_finding(
            FindingKind::SlotsUncovered,
            Severity::Warning,
            u64::from(count),
            format!(
                "the last census pass could not count the sessions in slots {} ({} of 16,384): they kept moving \
                 between primaries while it walked; the next pass tries again",
                crate::conn::slot::ranges_text(&census.uncovered_slots),
                text::grouped(u64::from(count))
            ),
        ));
    }
    if let Some(census) = inputs.census {
        session_findings(census, inputs, tracker, &mut out);
        if let Some(flow) = &census.flow {
            let causes = crate::engine::causes::CauseInputs {
                flow,
                thresholds: inputs.thresholds,
                finals: inputs.finals,
                utc_offset_s: inputs.utc_offset_s,
            };
            crate::engine::causes::findings(&causes, &mut out);
        }
    }
    // What a series shows of a kind replaces what one look shows of it (evicted while
    // watching, evicted since start; a restart seen and counted, a short uptime).
    let looked = out.len();
    tracker.findings(inputs, &mut out);
    let seen: Vec<FindingKind> = out[looked..].iter().map(|f| f.kind).collect();
    let mut i = 0;
    out.retain(|f| {
        i += 1;
        i > looked || !seen.contains(&f.kind)
    });
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.kind.cmp(&b.kind)));
    // One finding a kind: what a series shows (evicted while watching, a restart seen) outranks
    // what one look shows (evicted since start, a short uptime).
    let mut seen = Vec::with_capacity(out.len());
    out.retain(|f| {
        let first = !seen.contains(&f.kind);
        seen.push(f.kind);
        first
    });
    out
}

/// The worst severity among `findings`, if any.
pub fn worst(findings: &[Finding]) -> Option<Severity> {
    findings.iter().map(|f| f.severity).max()
}

/// Why a restarted server's sessions are gone, from what it says of its persistence.
fn persistence(s: &ServerStats) -> String {
    match (s.aof_enabled, s.loaded_keys) {
        (Some(false), Some(0)) => "it does not persist (nothing was loaded from disk at start, AOF off)".into(),
        (Some(false), Some(n)) => format!(
            "it persists by RDB snapshots only: it loaded {} keys from the last one, and what changed after it was lost",
            text::grouped(n)
        ),
        (Some(false), None) => "AOF is off: only an RDB snapshot, where there is one, survives a restart".into(),
        (Some(true), _) => "AOF is on, yet they are gone (was the file loaded? appendfsync?)".into(),
        (None, _) => "INFO persistence does not say why".into(),
    }
}

/// What one look at `INFO` shows.
fn server_findings(s: &ServerStats, t: &Thresholds, out: &mut Vec<Finding>) {
    let max = s.maxmemory_bytes.unwrap_or(0);
    memory_findings(s, t, out);
    let evicting =
        s.maxmemory_policy.as_deref().filter(|p| max > 0 && (p.starts_with("allkeys-") || p.starts_with("volatile-")));
    // An evicting policy is a risk, not yet a loss: information while memory is low, a warning
    // from --memory-warning on; once keys are evicted, the eviction findings say so instead.
    if let Some(policy) = evicting
        && s.evicted_keys.unwrap_or(0) == 0
    {
        let whom = if policy.starts_with("allkeys-") { "any key" } else { "any key with a TTL, as every session has" };
        let share = s.used_memory_bytes.map(|used| used as f64 / max as f64);
        let severity =
            if share.is_some_and(|share| share >= t.memory_warning) { Severity::Warning } else { Severity::Info };
        let now = share.map(|share| format!(" (memory is at {:.0}% of it)", share * 100.0)).unwrap_or_default();
        out.push(server_finding(
            FindingKind::EvictionPolicy,
            severity,
            1,
            format!(
                "maxmemory-policy {} evicts {whom} when memory reaches maxmemory{now}: users would lose their sessions silently (noeviction refuses writes instead)",
                text::escape_str(policy)
            ),
        ));
    }
    if let Some(evicted) = s.evicted_keys.filter(|n| *n > 0) {
        let policy = evicting.map(|p| format!(" (maxmemory-policy {})", text::escape_str(p))).unwrap_or_default();
        out.push(server_finding(
            FindingKind::Evicted,
            Severity::Warning,
            evicted,
            format!("Redis has evicted {} keys since it started{policy}", text::grouped(evicted)),
        ));
    }
    if let Some(rejected) = s.rejected_connections.filter(|n| *n > 0) {
        out.push(server_finding(
            FindingKind::RejectedConnections,
            Severity::Warning,
            rejected,
            format!("Redis has refused {} connections since it started (maxclients)", text::grouped(rejected)),
        ));
    }
    if let Some(blocked) = s.blocked_clients.filter(|n| *n > 0) {
        out.push(server_finding(
            FindingKind::BlockedClients,
            Severity::Info,
            blocked,
            format!("{blocked} clients are blocked (BLPOP and the like: normal for job queues, not for web workers)"),
        ));
    }
    if let (Some(ratio), Some(used)) = (s.mem_fragmentation_ratio, s.used_memory_bytes)
        && ratio > t.fragmentation
        && used >= t.fragmentation_min_bytes
    {
        out.push(server_finding(
            FindingKind::Fragmentation,
            Severity::Warning,
            1,
            format!(
                "memory fragmentation {ratio:.2} (above {:.1}): Redis holds {} of RSS for {} of data",
                t.fragmentation,
                text::human_bytes(s.used_memory_rss_bytes.unwrap_or(0)),
                text::human_bytes(used)
            ),
        ));
    }
    // A start seen only as a short uptime is worth knowing (a deploy restarts Redis on purpose);
    // a restart seen while watching is critical (see `Tracker`).
    if let Some(uptime) = s.uptime_seconds.filter(|u| *u < RECENT_START_S) {
        out.push(server_finding(
            FindingKind::Restarted,
            Severity::Info,
            1,
            format!(
                "Redis started {} ago: sessions from before then were lost unless it persists to disk",
                text::human_duration(uptime as i64)
            ),
        ));
    }
}

/// Memory against `maxmemory`: none set, or near it.
fn memory_findings(s: &ServerStats, t: &Thresholds, out: &mut Vec<Finding>) {
    let max = s.maxmemory_bytes.unwrap_or(0);
    match (s.used_memory_bytes, max) {
        (_, 0) if s.maxmemory_bytes.is_some() => out.push(server_finding(
            FindingKind::NoMaxmemory,
            Severity::Info,
            1,
            "maxmemory is 0: Redis grows until the machine runs out of memory, and nothing bounds the sessions".into(),
        )),
        (Some(used), max) if max > 0 => {
            let share = used as f64 / max as f64;
            let severity = if share >= t.memory_critical {
                Some(Severity::Critical)
            } else if share >= t.memory_warning {
                Some(Severity::Warning)
            } else {
                None
            };
            if let Some(severity) = severity {
                let line = if severity == Severity::Critical { t.memory_critical } else { t.memory_warning };
                out.push(server_finding(
                    FindingKind::MemoryHigh,
                    severity,
                    1,
                    format!(
                        "used memory {} is {:.0}% of maxmemory {} (at or above {:.0}%)",
                        text::human_bytes(used),
                        share * 100.0,
                        text::human_bytes(max),
                        line * 100.0
                    ),
                ));
            }
        }
        _ => {}
    }
}

/// What a census pass shows.
fn session_findings(census: &CensusTally, inputs: &Inputs<'_>, tracker: &Tracker, out: &mut Vec<Finding>) {
    let ev: &Evidence = &census.evidence;
    let t = inputs.thresholds;
    let per_session = |kind: FindingKind, severity: Severity, summary: String| Finding {
        kind,
        severity,
        count: ev.count(kind),
        summary,
        by_stage: Vec::new(),
        sample: ev.sample(kind).to_vec(),
    };
    if ev.count(FindingKind::Stuck) > 0 {
        let how = if inputs.has_history {
            format!("their last {} turns stayed in one stage with the same decision", t.stuck_turns)
        } else {
            format!("their stage has not changed for over {} while they kept using it", thresholds_words(inputs))
        };
        out.push(per_session(
            FindingKind::Stuck,
            Severity::Warning,
            format!(
                "{} sessions active in the last {} do not advance: {how}",
                text::grouped(ev.count(FindingKind::Stuck)),
                text::human_duration(t.active_window_s),
            ),
        ));
    }
    if let Some(stalled) = stalled_finding(inputs, tracker) {
        out.push(stalled);
    }
    if inputs.has_index && census.orphaned > 0 {
        out.push(orphaned_finding(census, inputs));
    }
    for (kind, severity, summary) in per_session_sentences(ev, t) {
        if ev.count(kind) > 0 {
            out.push(per_session(kind, severity, summary));
        }
    }
}

/// Sessions idle past their stage's threshold, with the stages whose count jumped lately.
fn stalled_finding(inputs: &Inputs<'_>, tracker: &Tracker) -> Option<Finding> {
    let (total, by_stage) = inputs.stalled.filter(|(total, _)| *total > 0)?;
    let jumps = tracker.stalled_jumps(inputs.now);
    let severity = if jumps.is_empty() { Severity::Info } else { Severity::Warning };
    let jumped = jumps
        .iter()
        .map(|(stage, to, level, at)| {
            format!(
                "{} jumped to {to} from about {level:.0} ({} ago)",
                text::escape_str(stage),
                text::human_duration((inputs.now - at) / 1000)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(Finding {
        kind: FindingKind::Stalled,
        severity,
        count: total,
        summary: format!(
            "{} sessions idle over {} short of a final stage (most are users who left){}",
            text::grouped(total),
            thresholds_words(inputs),
            if jumped.is_empty() { String::new() } else { format!("; {jumped}") }
        ),
        by_stage: by_stage.to_vec(),
        sample: Vec::new(),
    })
}

/// Index entries whose session keys are gone.
fn orphaned_finding(census: &CensusTally, inputs: &Inputs<'_>) -> Finding {
    let entries = census.total + census.orphaned;
    let severity = if census.orphaned * 2 > entries { Severity::Warning } else { Severity::Info };
    Finding {
        kind: FindingKind::Orphaned,
        severity,
        count: census.orphaned,
        summary: format!(
            "{} index entries name sessions whose keys are gone ({} of the index): the index's count of active sessions is that much too high",
            text::grouped(census.orphaned),
            text::percent(census.orphaned as f64 / entries.max(1) as f64)
        ),
        by_stage: Vec::new(),
        sample: inputs
            .orphan_ids
            .iter()
            .map(|id| Subject::session(id.clone(), Some("index entry without session keys".into())))
            .filter(Subject::fits_a_sample)
            .take(FINDING_SAMPLE)
            .collect(),
    }
}

/// The findings the census counts session by session, each with its severity and sentence.
fn per_session_sentences(ev: &Evidence, t: &Thresholds) -> [(FindingKind, Severity, String); 8] {
    let n = |kind: FindingKind| text::grouped(ev.count(kind));
    [
        (
            FindingKind::NoTtl,
            Severity::Warning,
            format!("{} keys of sessions never expire (TTL -1)", n(FindingKind::NoTtl)),
        ),
        (
            FindingKind::TtlMismatch,
            Severity::Warning,
            format!(
                "{} sessions have parts that expire more than {} apart",
                n(FindingKind::TtlMismatch),
                text::human_duration(t.ttl_mismatch_s)
            ),
        ),
        (
            FindingKind::HistoryOverCap,
            Severity::Warning,
            format!(
                "{} histories are longer than the application trims them to: trimming broke",
                n(FindingKind::HistoryOverCap)
            ),
        ),
        (
            FindingKind::StaleLock,
            Severity::Warning,
            format!(
                "{} locks have no TTL or are held longer than {}: their sessions cannot be served",
                n(FindingKind::StaleLock),
                text::human_duration(t.lock_held_s)
            ),
        ),
        (
            FindingKind::RateLimited,
            Severity::Info,
            format!("{} sessions are at their rate limit this minute", n(FindingKind::RateLimited)),
        ),
        (
            FindingKind::Oversized,
            Severity::Warning,
            format!(
                "{} sessions are larger than {} (or over the read cap)",
                n(FindingKind::Oversized),
                text::human_bytes(t.large_session_bytes)
            ),
        ),
        (
            FindingKind::Undecodable,
            Severity::Warning,
            format!("{} sessions could not be read or decoded", n(FindingKind::Undecodable)),
        ),
        (
            FindingKind::ClockTrouble,
            Severity::Warning,
            format!(
                "{} sessions were last active more than {} in the future, or their index score is ahead of \
                 their own last interaction by more: a clock or a writer is wrong",
                n(FindingKind::ClockTrouble),
                text::human_duration(t.clock_skew_s)
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(server: Option<&'a ServerStats>, census: Option<&'a CensusTally>, t: &'a Thresholds) -> Inputs<'a> {
        Inputs {
            server,
            nodes: None,
            census,
            orphan_ids: &[],
            stalled: None,
            stalled_after_s: 900,
            stage_limits: &[],
            thresholds: t,
            same_server: &[],
            has_index: true,
            has_history: true,
            finals: &[],
            slowlog: None,
            watch_began: 0,
            utc_offset_s: 0,
            now: 1_000_000,
        }
    }

    fn kinds(f: &[Finding]) -> Vec<(FindingKind, Severity)> {
        f.iter().map(|f| (f.kind, f.severity)).collect()
    }

    #[test]
    fn a_healthy_server_has_no_warning() {
        let t = Thresholds::default();
        let s = ServerStats {
            used_memory_bytes: Some(2 << 20),
            maxmemory_bytes: Some(0),
            maxmemory_policy: Some("noeviction".into()),
            mem_fragmentation_ratio: Some(4.5),
            evicted_keys: Some(0),
            rejected_connections: Some(0),
            blocked_clients: Some(0),
            uptime_seconds: Some(86_400),
            ..ServerStats::default()
        };
        let f = findings(&inputs(Some(&s), None, &t), &Tracker::default());
        assert_eq!(kinds(&f), [(FindingKind::NoMaxmemory, Severity::Info)], "a small store's fragmentation is noise");
    }

    #[test]
    fn memory_policy_evictions_and_fragmentation() {
        let t = Thresholds::default();
        let s = ServerStats {
            used_memory_bytes: Some(920 << 20),
            used_memory_rss_bytes: Some(1600 << 20),
            maxmemory_bytes: Some(1000 << 20),
            maxmemory_policy: Some("allkeys-lru".into()),
            mem_fragmentation_ratio: Some(1.74),
            evicted_keys: Some(12),
            rejected_connections: Some(3),
            uptime_seconds: Some(120),
            ..ServerStats::default()
        };
        let f = findings(&inputs(Some(&s), None, &t), &Tracker::default());
        assert_eq!(
            kinds(&f),
            [
                (FindingKind::MemoryHigh, Severity::Critical),
                (FindingKind::Evicted, Severity::Warning),
                (FindingKind::RejectedConnections, Severity::Warning),
                (FindingKind::Fragmentation, Severity::Warning),
                (FindingKind::Restarted, Severity::Info),
            ]
        );
        assert!(f[0].summary.contains("92% of maxmemory"), "{}", f[0].summary);
        assert!(f[1].summary.contains("(maxmemory-policy allkeys-lru)"), "{}", f[1].summary);
        let at_80 = ServerStats { used_memory_bytes: Some(800 << 20), ..s.clone() };
        assert_eq!(findings(&inputs(Some(&at_80), None, &t), &Tracker::default())[0].severity, Severity::Warning);
    }

    #[test]
    fn an_evicting_policy_is_information_while_memory_is_low_and_a_warning_from_the_memory_warning() {
        let t = Thresholds::default();
        for policy in ["allkeys-lru", "volatile-lru", "volatile-ttl"] {
            let s = ServerStats {
                used_memory_bytes: Some(10 << 20),
                maxmemory_bytes: Some(1000 << 20),
                maxmemory_policy: Some(policy.into()),
                evicted_keys: Some(0),
                uptime_seconds: Some(86_400),
                ..ServerStats::default()
            };
            let f = findings(&inputs(Some(&s), None, &t), &Tracker::default());
            assert_eq!(kinds(&f), [(FindingKind::EvictionPolicy, Severity::Info)], "{policy} at 1%");
            assert!(f[0].summary.contains("memory is at 1% of it"), "{}", f[0].summary);
            let at_85 = ServerStats { used_memory_bytes: Some(850 << 20), ..s.clone() };
            let f = findings(&inputs(Some(&at_85), None, &t), &Tracker::default());
            assert!(kinds(&f).contains(&(FindingKind::EvictionPolicy, Severity::Warning)), "{policy} at 85%: {f:?}");
        }
        let noeviction = ServerStats {
            used_memory_bytes: Some(10 << 20),
            maxmemory_bytes: Some(1000 << 20),
            maxmemory_policy: Some("noeviction".into()),
            uptime_seconds: Some(86_400),
            ..ServerStats::default()
        };
        assert!(findings(&inputs(Some(&noeviction), None, &t), &Tracker::default()).is_empty());
    }

    #[test]
    fn a_watch_sees_restarts_failovers_evictions_and_drops() {
        let t = Thresholds::default();
        let mut w = Tracker::default();
        let first = ServerStats {
            run_id: Some("a".into()),
            uptime_seconds: Some(5000),
            role: Some("master".into()),
            evicted_keys: Some(7),
            ..ServerStats::default()
        };
        w.observe_server(&first, 0);
        let quiet = findings(&inputs(Some(&first), None, &t), &w);
        assert!(!quiet.iter().any(|f| f.severity == Severity::Critical), "{quiet:?}");
        let later = ServerStats { uptime_seconds: Some(5002), evicted_keys: Some(9), ..first.clone() };
        w.observe_server(&later, 2000);
        let f = findings(&inputs(Some(&later), None, &t), &w);
        assert!(f.iter().any(|f| f.kind == FindingKind::Evicted && f.severity == Severity::Critical && f.count == 2));
        let restarted =
            ServerStats { run_id: Some("b".into()), uptime_seconds: Some(3), role: Some("slave".into()), ..later };
        w.observe_server(&restarted, 4000);
        let f = findings(&Inputs { now: 5000, ..inputs(Some(&restarted), None, &t) }, &w);
        assert_eq!(f[0].kind, FindingKind::Restarted);
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(f.iter().any(|f| f.kind == FindingKind::RoleChanged && f.summary.contains("master to slave")));
        let f = findings(&Inputs { now: 4000 + EVENT_FINDING_MS, ..inputs(Some(&restarted), None, &t) }, &w);
        assert!(!f.iter().any(|f| f.kind == FindingKind::RoleChanged), "an event finding ends after an hour");

        let mut w = Tracker::default();
        w.observe_pass(10, 5, 1000, 0.2);
        w.observe_pass(20, 15, 600, 0.2);
        w.observe_pass(30, 25, 600, 0.2);
        let f = findings(&inputs(None, None, &t), &w);
        assert_eq!(kinds(&f), [(FindingKind::SessionsDropped, Severity::Critical)], "still said a pass later");
        assert_eq!(f[0].count, 400);
        let f = findings(&Inputs { now: 20 + EVENT_FINDING_MS, ..inputs(None, None, &t) }, &w);
        assert!(f.is_empty(), "an event finding ends after an hour: {f:?}");
    }

    #[test]
    fn a_restart_that_lost_sessions_is_one_critical_finding_that_says_why() {
        let t = Thresholds::default();
        let up = |run: &str, uptime| ServerStats {
            run_id: Some(run.into()),
            uptime_seconds: Some(uptime),
            aof_enabled: Some(false),
            loaded_keys: Some(0),
            ..ServerStats::default()
        };
        let mut w = Tracker::default();
        w.observe_server(&up("a", 5000), 0);
        w.observe_pass(1000, 500, 1250, 0.3);
        w.observe_server(&up("b", 2), 60_000);
        // Not counted since the restart: critical, what it took not known yet.
        let f = findings(&Inputs { now: 61_000, ..inputs(Some(&up("b", 3)), None, &t) }, &w);
        assert_eq!(kinds(&f), [(FindingKind::Restarted, Severity::Critical)]);
        // A pass begun before the restart does not count as after it.
        w.observe_pass(61_000, 59_000, 900, 0.3);
        // The first pass begun after it.
        w.observe_pass(63_000, 61_500, 46, 0.3);
        let f = findings(&Inputs { now: 180_000, ..inputs(Some(&up("b", 120)), None, &t) }, &w);
        assert_eq!(kinds(&f), [(FindingKind::Restarted, Severity::Critical)], "the drop is the restart's: {f:?}");
        assert_eq!(f[0].count, 1204);
        assert_eq!(
            f[0].summary,
            "Redis restarted 2m00s ago and 1,204 of 1,250 sessions are gone: it does not persist (nothing was loaded from disk at start, AOF off)"
        );
        // Not counted before it: what it took is not known, however many live after it.
        let mut w = Tracker::default();
        w.observe_server(&up("a", 5000), 0);
        w.observe_server(&up("b", 2), 60_000);
        w.observe_pass(63_000, 61_500, 46, 0.3);
        let f = findings(&Inputs { now: 64_000, ..inputs(Some(&up("b", 6)), None, &t) }, &w);
        assert_eq!(kinds(&f), [(FindingKind::Restarted, Severity::Critical)], "{f:?}");
        // One that lost nothing stays information.
        let mut w = Tracker::default();
        w.observe_server(&up("a", 5000), 0);
        w.observe_pass(1000, 500, 1250, 0.3);
        w.observe_server(&ServerStats { loaded_keys: Some(3000), ..up("b", 2) }, 60_000);
        w.observe_pass(63_000, 61_500, 1250, 0.3);
        let f = findings(&Inputs { now: 64_000, ..inputs(Some(&up("b", 6)), None, &t) }, &w);
        assert_eq!(kinds(&f), [(FindingKind::Restarted, Severity::Info)], "{f:?}");
        assert!(f[0].summary.contains("lost no session (1,250 live after it)"), "{}", f[0].summary);
        // Persisting by snapshots, some lost: said so.
        let mut w = Tracker::default();
        w.observe_server(&up("a", 5000), 0);
        w.observe_pass(1000, 500, 1250, 0.3);
        w.observe_server(&ServerStats { loaded_keys: Some(3000), ..up("b", 2) }, 60_000);
        w.observe_pass(63_000, 61_500, 1000, 0.3);
        let f = findings(&Inputs { now: 64_000, ..inputs(Some(&up("b", 6)), None, &t) }, &w);
        assert!(f[0].summary.ends_with("it persists by RDB snapshots only: it loaded 3,000 keys from the last one, and what changed after it was lost"), "{}", f[0].summary);
    }

    #[test]
    fn a_stage_that_does_not_change_while_the_user_is_active_is_stuck() {
        let finals = vec!["analysis_complete".to_string()];
        let o = Observing {
            idle: crate::engine::layout::IdleSource::Ttl,
            lifetime_s: Some(86_400),
            finals: &finals,
            stage_limit_s: 900,
            stage_limits: &[],
            active_window_s: 1800,
        };
        // Flask-Session rewrites the key on every request: the TTL says the user was just active.
        let row = |id: &str, stage: &str, now: Millis, idle_s: i64| SessionRow {
            stage: Some(Arc::from(stage)),
            ttl: crate::engine::domain::Ttl::ExpiresAt(now + (86_400 - idle_s) * 1000),
            ..SessionRow::new(id)
        };
        let mut w = StageWatch::default();
        let t0 = 1_000_000_000;
        for (id, stage) in [("trying", "uploaded"), ("moving", "uploaded"), ("done", "analysis_complete")] {
            assert_eq!(w.observe_row(&row(id, stage, t0, 5), t0, &o), None);
        }
        let t1 = t0 + 10 * 60_000;
        assert_eq!(w.observe_row(&row("moving", "tpr_analysis", t1, 5), t1, &o), None);
        let t2 = t0 + 16 * 60_000;
        let why = w.observe_row(&row("trying", "uploaded", t2, 20), t2, &o).expect("stuck after 16 minutes");
        assert!(why.contains("in uploaded for 16m00s"), "{why}");
        assert_eq!(w.observe_row(&row("moving", "tpr_analysis", t2, 5), t2, &o), None, "its stage changed at t1");
        assert_eq!(w.observe_row(&row("done", "analysis_complete", t2, 5), t2, &o), None, "a final stage");
        // A user who left (idle past the window) is stalled, not stuck, and is forgotten.
        assert_eq!(w.observe_row(&row("trying", "uploaded", t2, 3600), t2, &o), None);
        assert!(!w.observed.contains_key(&SessionId::from("trying")));
        w.forget_inactive(t2 + 31 * 60_000, 1800);
        assert!(w.observed.is_empty());
    }

    #[test]
    fn targets_on_one_server_are_told_apart_from_one_store_under_two_names() {
        let peer = |name, run_id, address, db, layout| Peer { name, run_id, address, db, layout };
        let trt = Some(("trt", "trt:"));
        let peers = [
            peer("prod", Some("aaa"), "10.0.0.5:6379", 0, trt),
            peer("staging", Some("aaa"), "10.0.0.9:6379", 0, trt),
            peer("chatmrpt", Some("aaa"), "10.0.0.5:6379", 0, Some(("chatmrpt", "chatmrpt:"))),
            peer("other", Some("bbb"), "10.0.0.7:6379", 0, trt),
        ];
        let same = same_servers(&peers);
        assert_eq!(same[0], [("staging".to_string(), true), ("chatmrpt".to_string(), false)]);
        assert_eq!(same[1], [("prod".to_string(), true), ("chatmrpt".to_string(), false)]);
        assert!(same[3].is_empty(), "a different server");
        let t = Thresholds::default();
        let f = findings(&Inputs { same_server: &same[0], ..inputs(None, None, &t) }, &Tracker::default());
        assert_eq!(kinds(&f), [(FindingKind::SameServer, Severity::Critical)], "one finding a kind, the worst");
        assert!(f[0].summary.contains("target 'staging'"), "{}", f[0].summary);
        // Not known yet (no poll): only the address tells.
        let early = [peer("a", None, "h:1", 0, None), peer("b", None, "h:1", 1, None), peer("c", None, "h:2", 0, None)];
        let same = same_servers(&early);
        assert_eq!(same[0], [("b".to_string(), false)]);
        assert!(same[2].is_empty());
    }

    #[test]
    fn a_change_in_the_number_of_watched_processes_is_a_warning_for_an_hour() {
        use crate::engine::domain::{HostStats, WatchedProcesses};
        let t = Thresholds::default();
        let host = |n: u64| HostStats {
            processes: vec![WatchedProcesses { pattern: "gunicorn".into(), count: n, ..Default::default() }],
            ..Default::default()
        };
        let mut w = Tracker::default();
        w.observe_host(&host(6), 0);
        w.observe_host(&host(6), 1000);
        assert!(findings(&inputs(None, None, &t), &w).is_empty(), "steady: nothing to say");
        w.observe_host(&host(5), 2000);
        let f = findings(&Inputs { now: 62_000, ..inputs(None, None, &t) }, &w);
        assert_eq!(kinds(&f), [(FindingKind::ProcessCount, Severity::Warning)]);
        assert!(f[0].summary.contains("gunicorn 6 → 5 (1m00s ago)"), "{}", f[0].summary);
        w.observe_host(&host(5), 3000);
        let f = findings(&Inputs { now: 2000 + EVENT_FINDING_MS, ..inputs(None, None, &t) }, &w);
        assert!(f.is_empty(), "an hour later: {f:?}");
    }

    #[test]
    fn the_stalled_funnel_is_information_until_a_stage_jumps() {
        let t = Thresholds::default();
        let census = CensusTally { total: 500, ..CensusTally::default() };
        let by = vec![("uploaded".to_string(), 40u64), ("tpr_analysis".to_string(), 12)];
        let mut w = Tracker::default();
        for at in 0..3 {
            w.observe_stalled(at, &by);
        }
        let with = Inputs { stalled: Some((52, &by)), ..inputs(None, Some(&census), &t) };
        let f = findings(&with, &w);
        assert_eq!(kinds(&f), [(FindingKind::Stalled, Severity::Info)]);
        assert_eq!(f[0].by_stage, by);
        let jumped = vec![("uploaded".to_string(), 40u64), ("tpr_analysis".to_string(), 60)];
        w.observe_stalled(4, &jumped);
        let f = findings(&Inputs { stalled: Some((100, &jumped)), ..with }, &w);
        assert_eq!(kinds(&f), [(FindingKind::Stalled, Severity::Warning)]);
        assert!(f[0].summary.contains("tpr_analysis jumped to 60 from about 12"), "{}", f[0].summary);
        // Still said after the next pass at the new level, and for an hour.
        w.observe_stalled(5, &jumped);
        let f = findings(&Inputs { stalled: Some((100, &jumped)), ..with }, &w);
        assert_eq!(kinds(&f), [(FindingKind::Stalled, Severity::Warning)]);
        let later = Inputs { stalled: Some((100, &jumped)), now: 5 + EVENT_FINDING_MS, ..with };
        assert_eq!(kinds(&findings(&later, &w)), [(FindingKind::Stalled, Severity::Info)]);
    }

    #[test]
    fn session_evidence_becomes_findings_with_samples() {
        let t = Thresholds::default();
        let mut census = CensusTally { total: 10, orphaned: 3, ..CensusTally::default() };
        for i in 0..30 {
            census.evidence.note(FindingKind::NoTtl, || Subject::session(SessionId::from(format!("s{i}")), None));
        }
        census.evidence.note(FindingKind::HistoryOverCap, || Subject::session(SessionId::from("h"), None));
        let orphans = [SessionId::from("gone")];
        let f = findings(&Inputs { orphan_ids: &orphans, ..inputs(None, Some(&census), &t) }, &Tracker::default());
        assert_eq!(
            kinds(&f),
            [
                (FindingKind::NoTtl, Severity::Warning),
                (FindingKind::HistoryOverCap, Severity::Warning),
                (FindingKind::Orphaned, Severity::Info)
            ]
        );
        assert_eq!(f[0].count, 30);
        assert_eq!(f[0].sample.len(), FINDING_SAMPLE);
        assert_eq!(f[2].sample[0].id, Some(SessionId::from("gone")));
        assert!(f[2].summary.contains("23%"), "{}", f[2].summary);
        let few = CensusTally { total: 2000, orphaned: 5, ..CensusTally::default() };
        let f = findings(&inputs(None, Some(&few), &t), &Tracker::default());
        assert!(f[0].summary.contains("(0.2% of the index)"), "{}", f[0].summary);
    }

    #[test]
    fn an_index_score_ahead_of_the_field_is_clock_trouble_unless_it_is_a_zone_offset() {
        let at = 1_715_949_296.0;
        let utc = |secs: f64| {
            chrono::DateTime::from_timestamp(secs as i64, 0)
                .unwrap()
                .naive_utc()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        };
        let judge = |score: f64, text: &str| index_disagrees(Some(score), Some(text), NaiveTime::Utc, 300);
        assert_eq!(judge(at, &utc(at - 60.0)), None, "within the skew");
        assert_eq!(judge(at, &utc(at - 3600.0)), None, "an hour: another zone's local time");
        assert_eq!(judge(at, &utc(at - 5.5 * 3600.0)), None, "five and a half hours: India's");
        let why = judge(at, &utc(at - 1350.0)).expect("22.5 minutes is no zone");
        assert!(why.contains("22m30s ahead"), "{why}");
        assert_eq!(judge(at, &utc(at + 1350.0)), None, "a field newer than the score is a user who came back");
        let zoned = format!("{}+00:00", utc(at - 3600.0));
        assert!(judge(at, &zoned).is_some(), "with a zone an hour is an hour");
        assert!(judge(at * 1000.0, &utc(at)).is_some(), "a score in milliseconds");
        assert_eq!(index_disagrees(None, Some(&utc(at)), NaiveTime::Utc, 300), None);
    }
}
