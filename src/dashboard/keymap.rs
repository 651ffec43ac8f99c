//! Keys and what they do. The defaults can be changed in the config file's `[bindings]` table
//! (`quit = ["q", "ctrl-c"]`); the help screen and the footer are built from the live keymap, so
//! they always tell the truth.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

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
    ChartWindow,
    CursorBack,
    CursorForward,
    Baseline,
    NextTarget,
    Help,
    Quit,
}

impl Action {
    /// Every action, in help order.
    pub const ALL: [Action; 28] = [
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Inspect,
        Action::Back,
        Action::Filter,
        Action::SortNext,
        Action::SortReverse,
        Action::Expire,
        Action::Persist,
        Action::Delete,
        Action::Fix,
        Action::Refresh,
        Action::Freeze,
        Action::NextPanel,
        Action::Fold,
        Action::Raw,
        Action::Charts,
        Action::ChartWindow,
        Action::CursorBack,
        Action::CursorForward,
        Action::Baseline,
        Action::NextTarget,
        Action::Help,
        Action::Quit,
    ];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page_up",
            Action::PageDown => "page_down",
            Action::Top => "top",
            Action::Bottom => "bottom",
            Action::Inspect => "inspect",
            Action::Back => "back",
            Action::Filter => "filter",
            Action::SortNext => "sort_next",
            Action::SortReverse => "sort_reverse",
            Action::Expire => "expire",
            Action::Persist => "persist",
            Action::Delete => "delete",
            Action::Fix => "fix",
            Action::Refresh => "refresh",
            Action::Freeze => "freeze",
            Action::NextPanel => "next_panel",
            Action::Fold => "fold",
            Action::Raw => "raw",
            Action::Charts => "charts",
            Action::ChartWindow => "chart_window",
            Action::CursorBack => "cursor_back",
            Action::CursorForward => "cursor_forward",
            Action::Baseline => "baseline",
            Action::NextTarget => "next_target",
            Action::Help => "help",
            Action::Quit => "quit",
        }
    }

    /// What it does, for the help screen.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Up => "move up",
            Action::Down => "move down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "first row",
            Action::Bottom => "last row",
            Action::Inspect => "inspect the session",
            Action::Back => "back · close · clear filter",
            Action::Filter => "filter by id, stage, substate",
            Action::SortNext => "sort by the next column",
            Action::SortReverse => "reverse the sort",
            Action::Expire => "expire (asks for seconds)",
            Action::Persist => "remove the TTL",
            Action::Delete => "delete (lists its keys first)",
            Action::Fix => "fix the chosen alert (lists every change first)",
            Action::Refresh => "poll now",
            Action::Freeze => "freeze / unfreeze the screen",
            Action::NextPanel => "next panel",
            Action::Fold => "fold / unfold (inspector)",
            Action::Raw => "raw view (inspector)",
            Action::Charts => "charts: every figure over the last day",
            Action::ChartWindow => "chart window: 5m, 1h, 6h, 24h, 1m",
            Action::CursorBack => "chart cursor earlier",
            Action::CursorForward => "chart cursor later",
            Action::Baseline => "mark a deploy baseline now (again: clear it)",
            Action::NextTarget => "next target (several watched; 1-9 choose one)",
            Action::Help => "this help",
            Action::Quit => "quit",
        }
    }

    /// A short word for the footer.
    pub fn short(self) -> &'static str {
        match self {
            Action::Up | Action::Down => "move",
            Action::PageUp | Action::PageDown => "page",
            Action::Top | Action::Bottom => "ends",
            Action::Inspect => "inspect",
            Action::Back => "back",
            Action::Filter => "filter",
            Action::SortNext => "sort",
            Action::SortReverse => "reverse",
            Action::Expire => "expire",
            Action::Persist => "persist",
            Action::Delete => "delete",
            Action::Fix => "fix",
            Action::Refresh => "refresh",
            Action::Freeze => "freeze",
            Action::NextPanel => "panel",
            Action::Fold => "fold",
            Action::Raw => "raw",
            Action::Charts => "charts",
            Action::ChartWindow => "window",
            Action::CursorBack | Action::CursorForward => "cursor",
            Action::Baseline => "baseline",
            Action::NextTarget => "target",
            Action::Help => "help",
            Action::Quit => "quit",
        }
    }

    fn defaults(self) -> &'static [&'static str] {
        match self {
            Action::Up => &["k", "up"],
            Action::Down => &["j", "down"],
            Action::PageUp => &["pageup"],
            Action::PageDown => &["pagedown"],
            Action::Top => &["g", "home"],
            Action::Bottom => &["G", "end"],
            Action::Inspect => &["enter"],
            Action::Back => &["esc"],
            Action::Filter => &["/"],
            Action::SortNext => &["s"],
            Action::SortReverse => &["S"],
            Action::Expire => &["e"],
            Action::Persist => &["p"],
            Action::Delete => &["d"],
            Action::Fix => &["x"],
            Action::Refresh => &["r"],
            Action::Freeze => &["f"],
            Action::NextPanel => &["tab"],
            Action::Fold => &["space"],
            Action::Raw => &["v"],
            Action::Charts => &["c"],
            Action::ChartWindow => &["w"],
            Action::CursorBack => &["left", "h"],
            Action::CursorForward => &["right", "l"],
            Action::Baseline => &["b"],
            Action::NextTarget => &["t"],
            Action::Help => &["?"],
            Action::Quit => &["q", "ctrl-c"],
        }
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
    pub fn parse(text: &str) -> Result<KeyPress, String> {
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
            _ => return Err(format!("'{text}' is not a key (use e.g. j, G, ctrl-c, enter, pagedown, f5)")),
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
        let bindings = Action::ALL
            .iter()
            .map(|a| (*a, a.defaults().iter().filter_map(|k| KeyPress::parse(k).ok()).collect()))
            .collect();
        Keymap { bindings }
    }
}

impl Keymap {
    /// The defaults with the config's `[bindings]` table applied: each named action gets exactly the
    /// keys listed. A key bound to two actions is an error.
    pub fn with_overrides(overrides: &BTreeMap<String, Vec<String>>) -> Result<Keymap, String> {
        let mut keymap = Keymap::default();
        for (name, keys) in overrides {
            let action = Action::ALL
                .iter()
                .find(|a| a.name() == name)
                .ok_or_else(|| format!("[bindings]: unknown action '{name}'"))?;
            let keys = keys.iter().map(|k| KeyPress::parse(k)).collect::<Result<Vec<_>, _>>()?;
            keymap.bindings.insert(*action, keys);
        }
        let mut seen: BTreeMap<String, Action> = BTreeMap::new();
        for (action, keys) in &keymap.bindings {
            for key in keys {
                if let Some(other) = seen.insert(key.label(), *action) {
                    return Err(format!(
                        "[bindings]: '{}' is bound to both {} and {}",
                        key.label(),
                        other.name(),
                        action.name()
                    ));
                }
            }
        }
        Ok(keymap)
    }

    /// The action a key press asks for.
    pub fn action(&self, event: &KeyEvent) -> Option<Action> {
        let key = KeyPress::from_event(event);
        self.bindings.iter().find(|(_, keys)| keys.contains(&key)).map(|(a, _)| *a)
    }

    /// The keys of an action, as shown (`j/↓`).
    pub fn label(&self, action: Action) -> String {
        self.bindings
            .get(&action)
            .map(|keys| keys.iter().map(KeyPress::label).collect::<Vec<_>>().join("/"))
            .unwrap_or_default()
    }

    /// Help lines: keys and what they do, for every bound action.
    pub fn help(&self) -> Vec<(String, &'static str)> {
        Action::ALL
            .iter()
            .filter(|a| self.bindings.get(a).is_some_and(|k| !k.is_empty()))
            .map(|a| (self.label(*a), a.describe()))
            .collect()
    }
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
        assert!(k.help().iter().any(|(keys, what)| keys == "z" && *what == "quit"));

        o.insert("delete".to_string(), vec!["z".to_string()]);
        assert!(Keymap::with_overrides(&o).unwrap_err().contains("bound to both"));
        let mut bad = BTreeMap::new();
        bad.insert("explode".to_string(), vec!["x".to_string()]);
        assert!(Keymap::with_overrides(&bad).unwrap_err().contains("unknown action 'explode'"));
        assert!(KeyPress::parse("ctrl-").is_err());
        assert_eq!(KeyPress::parse("f5").unwrap().label(), "F5");
    }
}
