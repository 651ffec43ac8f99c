//! Themes: colours named by meaning (`ok`, `warn`, `crit`, `muted`, `accent`, …) and loaded from
//! `themes/*.toml` (built in) or a file. `NO_COLOR` turns every colour off and keeps meaning in
//! modifiers (bold, reversed, dim) and in the symbols the views always show.

use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The built-in themes, by name.
pub const BUILTIN: [(&str, &str); 4] = [
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("high-contrast", include_str!("../../themes/high-contrast.toml")),
    ("production", include_str!("../../themes/production.toml")),
];

/// What a colour is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Text,
    Muted,
    Accent,
    Ok,
    Warn,
    Crit,
    Border,
    Title,
    Header,
    Selection,
    Bar,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    #[serde(default)]
    banner: Option<String>,
    #[serde(default)]
    bold_problems: bool,
    colors: Colors,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Colors {
    text: String,
    muted: String,
    accent: String,
    ok: String,
    warn: String,
    crit: String,
    border: String,
    title: String,
    header_fg: String,
    header_bg: String,
    selection_fg: String,
    selection_bg: String,
    bar: String,
}

/// Why a theme could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("unknown theme '{0}' (built in: default, light, high-contrast, production; or a .toml file)")]
    Unknown(String),
    #[error("cannot read theme {path}: {reason}")]
    Read { path: String, reason: crate::util::local_file::LocalFileError },
    #[error("invalid theme {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// A loaded theme.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    /// A word shown loudly in the header (`PRODUCTION`).
    pub banner: Option<String>,
    bold_problems: bool,
    colors: Option<Palette>,
}

#[derive(Debug, Clone, PartialEq)]
struct Palette {
    text: Color,
    muted: Color,
    accent: Color,
    ok: Color,
    warn: Color,
    crit: Color,
    border: Color,
    title: Color,
    header: (Color, Color),
    selection: (Color, Color),
    bar: Color,
}

impl Theme {
    /// A built-in theme by name, or a theme file (a name ending in `.toml`).
    pub fn load(name_or_path: &str) -> Result<Theme, ThemeError> {
        if name_or_path.ends_with(".toml") {
            let path = Path::new(name_or_path);
            let text = crate::util::local_file::read_text(path, crate::util::local_file::TEXT_MAX_BYTES)
                .map_err(|reason| ThemeError::Read { path: path.display().to_string(), reason })?;
            return Theme::parse(&text, name_or_path);
        }
        let (_, text) = BUILTIN
            .iter()
            .find(|(name, _)| *name == name_or_path)
            .ok_or_else(|| ThemeError::Unknown(name_or_path.to_string()))?;
        Theme::parse(text, name_or_path)
    }

    fn parse(text: &str, source: &str) -> Result<Theme, ThemeError> {
        let invalid = |reason: String| ThemeError::Invalid { name: source.to_string(), reason };
        let file: ThemeFile = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        let c = &file.colors;
        let color = |field: &str, value: &str| {
            value.parse::<Color>().map_err(|_| invalid(format!("{field} = '{value}' is not a colour")))
        };
        let palette = Palette {
            text: color("text", &c.text)?,
            muted: color("muted", &c.muted)?,
            accent: color("accent", &c.accent)?,
            ok: color("ok", &c.ok)?,
            warn: color("warn", &c.warn)?,
            crit: color("crit", &c.crit)?,
            border: color("border", &c.border)?,
            title: color("title", &c.title)?,
            header: (color("header_fg", &c.header_fg)?, color("header_bg", &c.header_bg)?),
            selection: (color("selection_fg", &c.selection_fg)?, color("selection_bg", &c.selection_bg)?),
            bar: color("bar", &c.bar)?,
        };
        Ok(Theme { name: file.name, banner: file.banner, bold_problems: file.bold_problems, colors: Some(palette) })
    }

    /// The same theme without colours, for `NO_COLOR`.
    pub fn without_colors(mut self) -> Theme {
        self.colors = None;
        self
    }

    /// Whether colours are on.
    pub fn has_colors(&self) -> bool {
        self.colors.is_some()
    }

    /// The style for a role.
    pub fn style(&self, role: Role) -> Style {
        let problem = |s: Style| if self.bold_problems { s.add_modifier(Modifier::BOLD) } else { s };
        match &self.colors {
            Some(p) => match role {
                Role::Text => Style::new().fg(p.text),
                Role::Muted => Style::new().fg(p.muted),
                Role::Accent => Style::new().fg(p.accent),
                Role::Ok => Style::new().fg(p.ok),
                Role::Warn => problem(Style::new().fg(p.warn)),
                Role::Crit => problem(Style::new().fg(p.crit)).add_modifier(Modifier::BOLD),
                Role::Border => Style::new().fg(p.border),
                Role::Title => Style::new().fg(p.title).add_modifier(Modifier::BOLD),
                Role::Header => Style::new().fg(p.header.0).bg(p.header.1),
                Role::Selection => Style::new().fg(p.selection.0).bg(p.selection.1),
                Role::Bar => Style::new().fg(p.bar),
            },
            None => match role {
                Role::Muted | Role::Border => Style::new().add_modifier(Modifier::DIM),
                Role::Warn | Role::Title | Role::Accent => Style::new().add_modifier(Modifier::BOLD),
                Role::Crit => Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
                Role::Header | Role::Selection => Style::new().add_modifier(Modifier::REVERSED),
                Role::Text | Role::Ok | Role::Bar => Style::new(),
            },
        }
    }
}

/// Whether `NO_COLOR` asks for no colours (set and not empty, per no-color.org).
pub fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_loads() {
        for (name, _) in BUILTIN {
            let theme = Theme::load(name).unwrap();
            assert_eq!(theme.name, name);
            assert!(theme.style(Role::Crit).fg.is_some());
        }
        assert_eq!(Theme::load("production").unwrap().banner.as_deref(), Some("PRODUCTION"));
    }

    #[test]
    fn no_color_keeps_meaning_in_modifiers() {
        let theme = Theme::load("default").unwrap().without_colors();
        let crit = theme.style(Role::Crit);
        assert_eq!(crit.fg, None);
        assert!(crit.add_modifier.contains(Modifier::BOLD));
        assert!(theme.style(Role::Selection).add_modifier.contains(Modifier::REVERSED));
    }

    #[test]
    fn bad_themes_say_why() {
        assert!(Theme::load("neon").unwrap_err().to_string().starts_with("unknown theme 'neon'"));
        let err = Theme::parse(&BUILTIN[0].1.replace("\"cyan\"", "\"not-a-colour\""), "x").unwrap_err();
        assert!(err.to_string().contains("is not a colour"), "{err}");
    }
}
