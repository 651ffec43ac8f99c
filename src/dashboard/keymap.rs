//! Keys and what they do: every key sessiontop answers, in one table of actions, each read in
//! its [`Scope`] (the screens, the targets, dialogs, the replay).
//! The defaults can be changed in the config file's `[bindings]` table (`quit = ["q",
//! "ctrl-c"]`); the help screen, the footer and the dialogs' hints are built from the live
//! keymap, so they always tell the truth.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where an action's keys are read. A key may mean one thing in each scope; scopes read
/// together never share a key, except that the replay's keys come before the screen's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The dashboard's screens: the overview, the inspector, the charts.
    Screen,
    /// Several targets watched side by side: choosing the one shown. Read with the screen's.
    Targets,
    /// A dialog: confirming a write, and typing a filter or a duration (where every other key
    /// is text).
    Dialog,
    /// Playing a recording back. Read before the screen's.
    Replay,
}

impl Scope {
    /// The heading of the scope's keys in the help.
    pub fn title(self) -> &'static str {
        match self {
            Scope::Screen => "",
            Scope::Targets => "targets",
            Scope::Dialog => "dialogs and typing",
            Scope::Replay => "replay",
        }
    }

    /// Whether keys of the two scopes are read for the same press (so a key may not mean
    /// something in both).
    fn read_together(self, other: Scope) -> bool {
        self == other || matches!((self, other), (Scope::Screen, Scope::Targets) | (Scope::Targets, Scope::Screen))
    }
}

/// Something the user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Inspect,
    Back,
    Filter,
    SortNext,
    SortReverse,
    Expire,
    Persist,
    Delete,
    Fix,
    Refresh,
    Freeze,
    NextPanel,
    Fold,
    Raw,
    Charts,
    Nodes,
    Clients,
    Events,
    Slowlog,
    ChartWindow,
    CursorBack,
    CursorForward,
    Baseline,
    Help,
    Quit,
    NextTarget,
    Target1,
    Target2,
    Target3,
    Target4,
    Target5,
    Target6,
    Target7,
    Target8,
    Target9,
    Yes,
    No,
    Cancel,
    SwitchAnswer,
    Answer,
    PlayPause,
    Faster,
    Slower,
    NextEvent,
    PreviousEvent,
    SeekBack,
    SeekForward,
    ReplayStart,
    ReplayEnd,
}

/// One action: where it is read, its name in the config, what it does (for the help), a short
/// word (for the footer), and its default keys.
struct Entry {
    action: Action,
    scope: Scope,
    name: &'static str,
    describe: &'static str,
    short: &'static str,
    keys: &'static [&'static str],
}

const fn entry(
    action: Action,
    scope: Scope,
    name: &'static str,
    describe: &'static str,
    short: &'static str,
    keys: &'static [&'static str],
) -> Entry {
    Entry { action, scope, name, describe, short, keys }
}

/// Every action, in help order: the one table the keymap, the help, the footer and the
/// config's `[bindings]` read.
const ACTIONS: [Entry; 55] = {
    use Action as A;
    use Scope::{Dialog, Replay, Screen, Targets};
    [
        entry(A::Up, Screen, "up", "move up", "move", &["k", "up"]),
        entry(A::Down, Screen, "down", "move down", "move", &["j", "down"]),
        entry(A::PageUp, Screen, "page_up", "page up", "page", &["pageup"]),
        entry(A::PageDown, Screen, "page_down", "page down", "page", &["pagedown"]),
        entry(A::Top, Screen, "top", "first row", "ends", &["g", "home"]),
        entry(A::Bottom, Screen, "bottom", "last row", "ends", &["G", "end"]),
        entry(A::Inspect, Screen, "inspect", "inspect the session", "inspect", &["enter"]),
        entry(A::Back, Screen, "back", "back · close · clear filter", "back", &["esc"]),
        entry(A::Filter, Screen, "filter", "filter by id, stage, substate", "filter", &["/"]),
        entry(A::SortNext, Screen, "sort_next", "sort by the next column", "sort", &["s"]),
        entry(A::SortReverse, Screen, "sort_reverse", "reverse the sort", "reverse", &["S"]),
        entry(A::Expire, Screen, "expire", "expire (asks for seconds)", "expire", &["e"]),
        entry(A::Persist, Screen, "persist", "remove the TTL", "persist", &["p"]),
        entry(A::Delete, Screen, "delete", "delete (lists its keys first)", "delete", &["d"]),
        entry(A::Fix, Screen, "fix", "fix the chosen alert (lists every change first)", "fix", &["x"]),
        entry(A::Refresh, Screen, "refresh", "poll now", "refresh", &["r"]),
        entry(A::Freeze, Screen, "freeze", "freeze / unfreeze the screen", "freeze", &["f"]),
        entry(A::NextPanel, Screen, "next_panel", "next panel", "panel", &["tab"]),
        entry(A::Fold, Screen, "fold", "fold / unfold (inspector)", "fold", &["space"]),
        entry(A::Raw, Screen, "raw", "raw view (inspector)", "raw", &["v"]),
        entry(A::Charts, Screen, "charts", "charts: every figure over the last day", "charts", &["c"]),
        entry(A::Nodes, Screen, "nodes", "nodes: a cluster's primaries and replicas, a sentinel's", "nodes", &["n"]),
        entry(A::Clients, Screen, "clients", "clients: who is connected, by host", "clients", &["C"]),
        entry(A::Events, Screen, "events", "session events: what happens to sessions, live", "events", &["E"]),
        entry(A::Slowlog, Screen, "slowlog", "slowlog: slow commands, whose and on which session", "slowlog", &["L"]),
        entry(A::ChartWindow, Screen, "chart_window", "chart window: 5m, 1h, 6h, 24h, 1m", "window", &["w"]),
        entry(A::CursorBack, Screen, "cursor_back", "chart cursor earlier", "cursor", &["left", "h"]),
        entry(A::CursorForward, Screen, "cursor_forward", "chart cursor later", "cursor", &["right", "l"]),
        entry(A::Baseline, Screen, "baseline", "mark a deploy baseline now (again: clear it)", "baseline", &["b"]),
        entry(A::Help, Screen, "help", "this help", "help", &["?"]),
        entry(A::Quit, Screen, "quit", "quit", "quit", &["q", "ctrl-c"]),
        entry(A::NextTarget, Targets, "next_target", "next target (several watched)", "target", &["t"]),
        entry(A::Target1, Targets, "target_1", "target 1", "target", &["1"]),
        entry(A::Target2, Targets, "target_2", "target 2", "target", &["2"]),
        entry(A::Target3, Targets, "target_3", "target 3", "target", &["3"]),
        entry(A::Target4, Targets, "target_4", "target 4", "target", &["4"]),
        entry(A::Target5, Targets, "target_5", "target 5", "target", &["5"]),
        entry(A::Target6, Targets, "target_6", "target 6", "target", &["6"]),
        entry(A::Target7, Targets, "target_7", "target 7", "target", &["7"]),
        entry(A::Target8, Targets, "target_8", "target 8", "target", &["8"]),
        entry(A::Target9, Targets, "target_9", "target 9", "target", &["9"]),
        entry(A::Yes, Dialog, "yes", "yes: make the change", "yes", &["y", "Y"]),
        entry(A::No, Dialog, "no", "no: change nothing", "no", &["n", "N"]),
        entry(A::Cancel, Dialog, "cancel", "cancel the dialog, or stop typing and clear", "cancel", &["esc"]),
        entry(
            A::SwitchAnswer,
            Dialog,
            "switch_answer",
            "switch the highlighted answer",
            "choose",
            &["left", "right", "tab", "backtab"],
        ),
        entry(A::Answer, Dialog, "answer", "the highlighted answer, or done typing", "confirm", &["enter"]),
        entry(A::PlayPause, Replay, "play", "play / pause", "play", &["space"]),
        entry(A::Faster, Replay, "faster", "faster (up to 3600x)", "speed", &["+", "="]),
        entry(A::Slower, Replay, "slower", "slower (down to 1x)", "speed", &["-"]),
        entry(A::NextEvent, Replay, "next_event", "next finding opened, changed or closed", "event", &["n"]),
        entry(A::PreviousEvent, Replay, "previous_event", "previous finding event", "event", &["N"]),
        entry(A::SeekBack, Replay, "seek_back", "back a tenth of the recording", "seek", &["["]),
        entry(A::SeekForward, Replay, "seek_forward", "on a tenth of the recording", "seek", &["]"]),
        entry(A::ReplayStart, Replay, "replay_start", "the recording's start", "start", &["home"]),
        entry(A::ReplayEnd, Replay, "replay_end", "the recording's end", "end", &["end"]),
    ]
};

impl Action {
    /// Every action, in help order.
    pub fn all() -> impl Iterator<Item = Action> {
        ACTIONS.iter().map(|e| e.action)
    }

    fn entry(self) -> &'static Entry {
        // Every action has its entry: `every_action_has_one_entry` holds it so.
        ACTIONS.iter().find(|e| e.action == self).unwrap_or(&ACTIONS[0])
    }

    /// Where the action's keys are read.
    pub fn scope(self) -> Scope {
        self.entry().scope
    }

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// What it does, for the help screen.
    pub fn describe(self) -> &'static str {
        self.entry().describe
    }

    /// A short word for the footer.
    pub fn short(self) -> &'static str {
        self.entry().short
    }

    /// The target a number key chooses (0-based).
    pub fn target(self) -> Option<usize> {
        const TARGETS: [Action; 9] = [
            Action::Target1,
            Action::Target2,
            Action::Target3,
            Action::Target4,
            Action::Target5,
            Action::Target6,
            Action::Target7,
            Action::Target8,
            Action::Target9,
        ];
        TARGETS.iter().position(|a| *a == self)
    }

    fn defaults(self) -> &'static [&'static str] {
        self.entry().keys
    }
}

/// A key, as written in the config (`j`, `G`, `ctrl-c`, `enter`, `pagedown`, `f5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyPress {
    code: KeyCode,
    ctrl: bool,
    alt: bool,
}

impl KeyPress {
    pub fn parse(text: &str) -> Result<KeyPress, KeymapError> {
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "space" => KeyCode::Char(' '),
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "backspace" => KeyCode::Backspace,
            "delete" => KeyCode::Delete,
            f if f.len() > 1 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                KeyCode::F(f[1..].parse().unwrap_or(1))
            }
            single if single.chars().count() == 1 => KeyCode::Char(single.chars().next().unwrap_or(' ')),
            _ => return Err(KeymapError::NotAKey(text.to_string())),
        };
        Ok(KeyPress { code, ctrl, alt })
    }

    fn from_event(event: &KeyEvent) -> KeyPress {
        // Shifted letters arrive as upper-case characters; the SHIFT flag adds nothing.
        KeyPress {
            code: event.code,
            ctrl: event.modifiers.contains(KeyModifiers::CONTROL),
            alt: event.modifiers.contains(KeyModifiers::ALT),
        }
    }

    /// How the key is shown on screen.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Enter => "⏎".to_string(),
            KeyCode::Esc => "Esc".to_string(),
            KeyCode::Tab => "Tab".to_string(),
            KeyCode::BackTab => "S-Tab".to_string(),
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Up => "↑".to_string(),
            KeyCode::Down => "↓".to_string(),
            KeyCode::Left => "←".to_string(),
            KeyCode::Right => "→".to_string(),
            KeyCode::PageUp => "PgUp".to_string(),
            KeyCode::PageDown => "PgDn".to_string(),
            KeyCode::Home => "Home".to_string(),
            KeyCode::End => "End".to_string(),
            KeyCode::Backspace => "Bksp".to_string(),
            KeyCode::Delete => "Del".to_string(),
            KeyCode::F(n) => format!("F{n}"),
            KeyCode::Char(c) => c.to_string(),
            _ => "?".to_string(),
        };
        match (self.ctrl, self.alt) {
            (true, _) => format!("Ctrl-{}", base.to_uppercase()),
            (_, true) => format!("Alt-{base}"),
            _ => base,
        }
    }
}

/// Actions to keys, and back.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    bindings: BTreeMap<Action, Vec<KeyPress>>,
}

impl Default for Keymap {
    fn default() -> Self {
        let bindings =
            Action::all().map(|a| (a, a.defaults().iter().filter_map(|k| KeyPress::parse(k).ok()).collect())).collect();
        Keymap { bindings }
    }
}

impl Keymap {
    /// The defaults with the config's `[bindings]` table applied: each named action gets exactly the
    /// keys listed. A key bound to two actions read for the same press is an error.
    pub fn with_overrides(overrides: &BTreeMap<String, Vec<String>>) -> Result<Keymap, KeymapError> {
        let mut keymap = Keymap::default();
        for (name, keys) in overrides {
            let action =
                Action::all().find(|a| a.name() == name).ok_or_else(|| KeymapError::UnknownAction(name.clone()))?;
            let keys = keys.iter().map(|k| KeyPress::parse(k)).collect::<Result<Vec<_>, _>>()?;
            keymap.bindings.insert(action, keys);
        }
        let mut seen: Vec<(KeyPress, Action)> = Vec::new();
        for (action, keys) in &keymap.bindings {
            for key in keys {
                if let Some((_, other)) =
                    seen.iter().find(|(k, other)| k == key && other.scope().read_together(action.scope()))
                {
                    return Err(KeymapError::Conflict { key: key.label(), first: other.name(), second: action.name() });
                }
                seen.push((*key, *action));
            }
        }
        Ok(keymap)
    }

    /// The action a key press asks for on the dashboard's screens (or its targets).
    pub fn action(&self, event: &KeyEvent) -> Option<Action> {
        self.action_in(&[Scope::Screen, Scope::Targets], event)
    }

    /// The action a key press asks for among the actions of `scopes`.
    pub fn action_in(&self, scopes: &[Scope], event: &KeyEvent) -> Option<Action> {
        let key = KeyPress::from_event(event);
        self.bindings.iter().find(|(a, keys)| scopes.contains(&a.scope()) && keys.contains(&key)).map(|(a, _)| *a)
    }

    /// The keys of an action, as shown (`j/↓`).
    pub fn label(&self, action: Action) -> String {
        self.label_first(action, usize::MAX)
    }

    /// The first `n` keys of an action, as shown: a hint where all would be too long.
    pub fn label_first(&self, action: Action, n: usize) -> String {
        self.bindings
            .get(&action)
            .map(|keys| keys.iter().take(n).map(KeyPress::label).collect::<Vec<_>>().join("/"))
            .unwrap_or_default()
    }

    /// Help lines: keys and what they do, for every bound action of `scopes`, with a heading
    /// line (no keys) before each scope but the screen's. The nine target keys are one line.
    pub fn help(&self, scopes: &[Scope]) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        let mut scope = Scope::Screen;
        let bound = |a: &Action| scopes.contains(&a.scope()) && self.bindings.get(a).is_some_and(|k| !k.is_empty());
        for a in Action::all().filter(bound) {
            if a.scope() != scope {
                scope = a.scope();
                out.push((String::new(), scope.title()));
            }
            match a.target() {
                Some(0) => out.push((
                    format!("{}…{}", self.label_first(Action::Target1, 1), self.label_first(Action::Target9, 1)),
                    "choose a target by its number",
                )),
                Some(_) => {}
                None => out.push((self.label(a), a.describe())),
            }
        }
        out
    }
}

/// Why the config's `[bindings]` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeymapError {
    #[error("[bindings]: unknown action '{0}'")]
    UnknownAction(String),
    #[error("[bindings]: '{0}' is not a key (use e.g. j, G, ctrl-c, enter, pagedown, f5)")]
    NotAKey(String),
    #[error("[bindings]: '{key}' is bound to both {first} and {second}")]
    Conflict { key: String, first: &'static str, second: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn defaults_cover_the_documented_keys() {
        let k = Keymap::default();
        assert_eq!(k.action(&press(KeyCode::Char('j'), KeyModifiers::NONE)), Some(Action::Down));
        assert_eq!(k.action(&press(KeyCode::Char('G'), KeyModifiers::SHIFT)), Some(Action::Bottom));
        assert_eq!(k.action(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)), Some(Action::Quit));
        assert_eq!(
            k.action(&press(KeyCode::Char('c'), KeyModifiers::NONE)),
            Some(Action::Charts),
            "plain c is not ctrl-c"
        );
        assert_eq!(k.action(&press(KeyCode::Enter, KeyModifiers::NONE)), Some(Action::Inspect));
        assert_eq!(k.label(Action::Down), "j/↓");
        assert_eq!(k.label(Action::Quit), "q/Ctrl-C");
    }

    #[test]
    fn overrides_replace_an_actions_keys_and_conflicts_are_refused() {
        let mut o = BTreeMap::new();
        o.insert("quit".to_string(), vec!["z".to_string()]);
        let k = Keymap::with_overrides(&o).unwrap();
        assert_eq!(k.action(&press(KeyCode::Char('z'), KeyModifiers::NONE)), Some(Action::Quit));
        assert_eq!(k.action(&press(KeyCode::Char('q'), KeyModifiers::NONE)), None);
        assert!(k.help(&[Scope::Screen]).iter().any(|(keys, what)| keys == "z" && *what == "quit"));

        o.insert("delete".to_string(), vec!["z".to_string()]);
        assert!(Keymap::with_overrides(&o).unwrap_err().to_string().contains("bound to both"));
        let mut bad = BTreeMap::new();
        bad.insert("explode".to_string(), vec!["x".to_string()]);
        assert!(Keymap::with_overrides(&bad).unwrap_err().to_string().contains("unknown action 'explode'"));
        assert!(KeyPress::parse("ctrl-").is_err());
        assert_eq!(KeyPress::parse("f5").unwrap().label(), "F5");
    }

    #[test]
    fn every_action_has_one_entry_and_every_scope_tells_keys_apart() {
        for (i, e) in ACTIONS.iter().enumerate() {
            assert!(!ACTIONS[..i].iter().any(|o| o.action == e.action || o.name == e.name), "{}", e.name);
            assert_eq!(e.action.entry().name, e.name);
        }
        let k = Keymap::default();
        assert!(Keymap::with_overrides(&BTreeMap::new()).is_ok(), "the defaults do not conflict");
        // The same key means different things where scopes are not read together.
        assert_eq!(k.action_in(&[Scope::Dialog], &press(KeyCode::Char('n'), KeyModifiers::NONE)), Some(Action::No));
        assert_eq!(
            k.action_in(&[Scope::Replay], &press(KeyCode::Char('n'), KeyModifiers::NONE)),
            Some(Action::NextEvent)
        );
        assert_eq!(k.action(&press(KeyCode::Char('3'), KeyModifiers::NONE)), Some(Action::Target3));
        assert_eq!(Action::Target3.target(), Some(2));
        // Screen and targets are read together: a number key may not also be a screen's.
        let mut o = BTreeMap::new();
        o.insert("refresh".to_string(), vec!["1".to_string()]);
        assert!(Keymap::with_overrides(&o).unwrap_err().to_string().contains("bound to both"));
        let help = k.help(&[Scope::Replay, Scope::Screen, Scope::Targets]);
        assert!(help.iter().any(|(keys, what)| keys.is_empty() && *what == "replay"), "{help:?}");
        assert!(help.iter().any(|(keys, _)| keys == "1…9"), "the target keys in one line: {help:?}");
        assert!(!k.help(&[Scope::Screen]).iter().any(|(_, what)| *what == "play / pause"), "not the replay's");
    }
}
