//! `sessiontop replay FILE`: the dashboard's charts on a recording, as if it were being
//! watched again. A [`Player`] holds the position in the recording and moves it: playing at a
//! speed, seeking, jumping from one finding event to the next. The charts, the list at the
//! cursor and the header's worst finding are drawn for that position by the same widgets as
//! live. No Redis: this is a pure state machine over what the recording holds.

use crossterm::event::KeyEvent;

use crate::dashboard::app::{App, Level, Status};
use crate::dashboard::keymap::{Action, Keymap, Scope};
use crate::engine::domain::{Finding, FindingKind, Millis, Severity};
use crate::export::record::Recording;
use crate::util::text;

/// Speeds `+` and `-` step through.
const SPEEDS: [f64; 9] = [1.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];
/// The speed a replay starts at: a minute a second.
const START_SPEED: usize = 3;

/// The position in a recording and how it moves.
#[derive(Debug, Clone, PartialEq)]
pub struct Player {
    pub now: Millis,
    pub first: Millis,
    pub last: Millis,
    pub playing: bool,
    speed: usize,
}

impl Player {
    /// A player at the start of `recording`, paused; `None` when it holds no sample.
    pub fn new(recording: &Recording) -> Option<Player> {
        let (first, last) = (recording.first?, recording.last?);
        Some(Player { now: first, first, last, playing: false, speed: START_SPEED })
    }

    pub fn speed(&self) -> f64 {
        SPEEDS[self.speed]
    }

    /// Time passing: `elapsed_ms` of wall clock move the position by as much times the speed.
    /// The end stops the play.
    pub fn advance(&mut self, elapsed_ms: Millis) {
        if !self.playing {
            return;
        }
        self.now = (self.now + (elapsed_ms as f64 * self.speed()) as Millis).min(self.last);
        if self.now >= self.last {
            self.playing = false;
        }
    }

    /// The replay's own keys (its scope of the keymap): play and pause, speed, the next or
    /// previous finding event, seek a tenth of the recording, its ends. Returns whether the key
    /// was one of them.
    pub fn key(&mut self, keymap: &Keymap, key: &KeyEvent, recording: &Recording) -> bool {
        match keymap.action_in(&[Scope::Replay], key) {
            Some(action) => {
                self.act(action, recording);
                true
            }
            None => false,
        }
    }

    fn act(&mut self, action: Action, recording: &Recording) {
        let tenth = ((self.last - self.first) / 10).max(1000);
        match action {
            Action::PlayPause => {
                if self.now >= self.last {
                    self.now = self.first;
                }
                self.playing = !self.playing;
            }
            Action::Faster => self.speed = (self.speed + 1).min(SPEEDS.len() - 1),
            Action::Slower => self.speed = self.speed.saturating_sub(1),
            Action::SeekForward => self.now = (self.now + tenth).min(self.last),
            Action::SeekBack => self.now = (self.now - tenth).max(self.first),
            Action::ReplayStart => self.now = self.first,
            Action::ReplayEnd => self.now = self.last,
            Action::NextEvent => {
                if let Some(e) = recording.events.iter().find(|e| e.at > self.now) {
                    self.now = e.at;
                    self.playing = false;
                }
            }
            Action::PreviousEvent => {
                if let Some(e) = recording.events.iter().rev().find(|e| e.at < self.now) {
                    self.now = e.at;
                    self.playing = false;
                }
            }
            _ => {}
        }
    }

    /// Puts the position into `app`: its clock, the findings open then, and the status line.
    pub fn show(&self, app: &mut App, recording: &Recording) {
        app.model.now = self.now;
        app.model.findings = self.findings(recording);
        let text = self.status(&app.keymap, app.model.utc_offset_s);
        app.status = Some(Status { at: self.now, text, level: Level::Info });
    }

    /// The findings open at the position, most severe first, as the events tell them.
    pub fn findings(&self, recording: &Recording) -> Vec<Finding> {
        let mut open: std::collections::BTreeMap<&str, Finding> = std::collections::BTreeMap::new();
        for e in recording.events.iter().take_while(|e| e.at <= self.now) {
            let Some(kind) = FindingKind::ALL.into_iter().find(|k| k.name() == e.kind) else { continue };
            match &e.opened {
                Some((severity, count, summary)) => {
                    let severity = match severity.as_str() {
                        "critical" => Severity::Critical,
                        "warning" => Severity::Warning,
                        _ => Severity::Info,
                    };
                    open.insert(
                        kind.name(),
                        Finding {
                            kind,
                            severity,
                            count: *count,
                            summary: summary.clone(),
                            by_stage: Vec::new(),
                            sample: Vec::new(),
                        },
                    );
                }
                None => {
                    open.remove(kind.name());
                }
            }
        }
        let mut out: Vec<Finding> = open.into_values().collect();
        out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.kind.cmp(&b.kind)));
        out
    }

    /// The line the footer shows: where, how fast, what the keys do.
    pub fn status(&self, keymap: &Keymap, utc_offset_s: i32) -> String {
        let done = (self.now - self.first) as f64 / (self.last - self.first).max(1) as f64;
        let k = |a: Action| keymap.label_first(a, 1);
        format!(
            "replay {} {} ×{} · {:.0}% · {} play/pause · {}/{} speed · {}/{} next/previous finding · {} {} seek · {} window · {}/{} cursor · {} quit",
            if self.playing { "▶" } else { "❚❚" },
            text::clock(self.now, utc_offset_s),
            self.speed(),
            done * 100.0,
            k(Action::PlayPause),
            k(Action::Faster),
            k(Action::Slower),
            k(Action::NextEvent),
            k(Action::PreviousEvent),
            k(Action::SeekBack),
            k(Action::SeekForward),
            k(Action::ChartWindow),
            k(Action::CursorBack),
            k(Action::CursorForward),
            k(Action::Quit),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::record::FindingEvent;
    use crossterm::event::{KeyCode, KeyModifiers};

    /// A press of `code` through the default keymap.
    fn press(p: &mut Player, code: KeyCode, r: &Recording) -> bool {
        p.key(&Keymap::default(), &KeyEvent::new(code, KeyModifiers::NONE), r)
    }

    fn recording() -> Recording {
        let mut r = Recording { first: Some(0), last: Some(3_600_000), ..Recording::default() };
        let open = |at, kind: &str, severity: &str| FindingEvent {
            at,
            kind: kind.into(),
            opened: Some((severity.into(), 1, format!("{kind} opened"))),
        };
        r.events.push_back(open(600_000, "stale_lock", "warning"));
        r.events.push_back(open(1_200_000, "evicted", "critical"));
        r.events.push_back(FindingEvent { at: 1_800_000, kind: "stale_lock".into(), opened: None });
        r
    }

    #[test]
    fn playing_moves_by_the_speed_and_stops_at_the_end() {
        let r = recording();
        let mut p = Player::new(&r).unwrap();
        p.advance(1000);
        assert_eq!(p.now, 0, "paused");
        assert!(press(&mut p, KeyCode::Char(' '), &r));
        p.advance(1000);
        assert_eq!(p.now, 60_000, "a minute a second");
        press(&mut p, KeyCode::Char('+'), &r);
        p.advance(1000);
        assert_eq!(p.now, 180_000);
        p.advance(3_600_000);
        assert_eq!((p.now, p.playing), (3_600_000, false), "stops at the end");
        press(&mut p, KeyCode::Char(' '), &r);
        assert_eq!((p.now, p.playing), (0, true), "Space at the end plays from the start");
        assert!(!press(&mut p, KeyCode::Char('w'), &r), "not the player's");
    }

    #[test]
    fn findings_are_those_open_at_the_position_and_n_jumps_between_them() {
        let r = recording();
        let mut p = Player::new(&r).unwrap();
        assert!(p.findings(&r).is_empty());
        press(&mut p, KeyCode::Char('n'), &r);
        assert_eq!(p.now, 600_000);
        assert_eq!(p.findings(&r).iter().map(|f| f.kind.name()).collect::<Vec<_>>(), ["stale_lock"]);
        press(&mut p, KeyCode::Char('n'), &r);
        let kinds: Vec<_> = p.findings(&r).iter().map(|f| (f.kind.name(), f.severity)).collect();
        assert_eq!(kinds, [("evicted", Severity::Critical), ("stale_lock", Severity::Warning)], "most severe first");
        press(&mut p, KeyCode::Char('n'), &r);
        assert_eq!(p.findings(&r).iter().map(|f| f.kind.name()).collect::<Vec<_>>(), ["evicted"], "the lock closed");
        press(&mut p, KeyCode::Char('N'), &r);
        assert_eq!(p.now, 1_200_000);
        press(&mut p, KeyCode::End, &r);
        press(&mut p, KeyCode::Char('['), &r);
        assert_eq!(p.now, 3_240_000);
        assert!(p.status(&Keymap::default(), 0).contains("×60"), "{}", p.status(&Keymap::default(), 0));
    }
}
