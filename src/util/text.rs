//! Terminal-safe text: everything that came from Redis passes through here before it reaches a
//! screen or a plain-text line, so a hostile value cannot move the cursor, change colours or
//! reorder text. Also the small number and duration formats shared by every view.
//!
//! Must never return text containing a control character, an escape sequence or a bidi control.

use std::fmt::Write as _;

/// Escapes bytes that may not be UTF-8: valid UTF-8 stays as it is (minus unsafe characters),
/// every invalid byte becomes `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Escapes a string's control characters, escape sequences and bidi controls.
pub fn escape_str(s: &str) -> String {
    if s.chars().all(is_safe) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s);
    out
}

fn is_safe(c: char) -> bool {
    !(c.is_control() || is_bidi_or_invisible(c) || c == '\\')
}

/// Characters that change how surrounding text is laid out without being visible: bidi
/// embeddings, overrides and isolates, and the zero-width joiners and marks.
fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_bidi_or_invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The bytes an escaped form stands for: the inverse of [`escape_bytes`] (`\\`, `\n`, `\r`,
/// `\t`, `\xNN`, `\u{…}`). A backslash that starts no such escape stands for itself, so text
/// typed without escapes (`a\b`) means what it says.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let rest = &text[i + 1..];
        let (decoded, used): (Option<Vec<u8>>, usize) = match rest.as_bytes().first() {
            Some(b'\\') => (Some(vec![b'\\']), 1),
            Some(b'n') => (Some(vec![b'\n']), 1),
            Some(b'r') => (Some(vec![b'\r']), 1),
            Some(b't') => (Some(vec![b'\t']), 1),
            Some(b'x') => match rest.get(1..3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) if rest.as_bytes()[1..3].iter().all(u8::is_ascii_hexdigit) => (Some(vec![b]), 3),
                _ => (None, 0),
            },
            Some(b'u') => match rest.strip_prefix("u{").and_then(|r| r.split_once('}')) {
                Some((hex, _)) if !hex.is_empty() && hex.len() <= 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                        Some(c) => (Some(c.to_string().into_bytes()), hex.len() + 3),
                        None => (None, 0),
                    }
                }
                _ => (None, 0),
            },
            _ => (None, 0),
        };
        match decoded {
            Some(d) => {
                out.extend_from_slice(&d);
                i += 1 + used;
            }
            None => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
    out
}

/// Replaces what could move the cursor or reorder text in a line that is already readable
/// (an error message built from escaped parts): control characters and bidi controls only, so
/// the escapes already in it are not escaped again.
pub fn sanitize_line(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() || is_bidi_or_invisible(c)) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() || is_bidi_or_invisible(c) {
            push_escaped(&mut out, c.encode_utf8(&mut [0; 4]));
        } else {
            out.push(c);
        }
    }
    out
}

/// Cuts `s` to about `max_chars` characters; when it was longer, the cut ends in `…` and says
/// how long the whole was (`abc… (70,000 chars)`), so a cut value is never mistaken for the
/// value. The result is at most `max_chars` plus the note.
pub fn clip_sized(s: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    // Counting stops early: a value is only walked as far as the cut.
    if s.len() <= max_chars || s.chars().nth(max_chars).is_none() {
        return std::borrow::Cow::Borrowed(s);
    }
    let total = s.chars().count();
    let mut cut: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    let _ = write!(cut, "… ({} chars)", grouped(total as u64));
    std::borrow::Cow::Owned(cut)
}

/// Pads `s` with spaces to `width` characters (never cuts). Unlike `format!("{s:<width$}")`, any
/// width works.
pub fn pad(s: &str, width: usize) -> String {
    let len = s.chars().count();
    let mut out = String::with_capacity(s.len() + width.saturating_sub(len));
    out.push_str(s);
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(len)));
    out
}

/// Cuts `s` to at most `max_chars` characters, ending in `…` when it was longer.
pub fn clip(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `12.0 MiB`, `3.25 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 { format!("{value:.2} {}", UNITS[unit]) } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// The wall-clock time of `at_ms` (epoch milliseconds) at `utc_offset_s`: `14:03:22`.
pub fn clock(at_ms: i64, utc_offset_s: i32) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .zip(chrono::FixedOffset::east_opt(utc_offset_s))
        .map(|(t, offset)| t.with_timezone(&offset).format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A duration in its two largest units: `45s`, `12m05s`, `3h07m`, `2d04h`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return format!("-{}", human_duration(seconds.checked_neg().unwrap_or(i64::MAX)));
    }
    let (d, h, m, s) = (seconds / 86_400, (seconds % 86_400) / 3600, (seconds % 3600) / 60, seconds % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A duration as a window is named: [`human_duration`] without a zero second unit (`10m`,
/// `1h`, `12m05s`).
pub fn window(seconds: i64) -> String {
    let words = human_duration(seconds);
    match words.strip_suffix("00s").or_else(|| words.strip_suffix("00m")).or_else(|| words.strip_suffix("00h")) {
        Some(whole) => whole.to_string(),
        None => words,
    }
}

/// Why text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("'{0}' is not a duration like 90s, 15m, 24h or 1d")]
    NotADuration(String),
    #[error("'{text}': unknown unit '{unit}' (use ms, s, m, h or d)")]
    UnknownUnit { text: String, unit: String },
    #[error("'{0}' is out of range")]
    OutOfRange(String),
    #[error("'{0}' must be more than 0 (a timeout of 0 would fail every command)")]
    Zero(String),
}

/// A duration as people type it: a number and a unit (`500ms`, `90s` or `90`, `15m`, `24h`,
/// `1d`), from 0 to a billion seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| DurationError::NotADuration(text.to_string()))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        _ => return Err(DurationError::UnknownUnit { text: text.to_string(), unit: unit.to_string() }),
    };
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return Err(DurationError::OutOfRange(text.to_string()));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// A share as a percentage that does not round a small part away: `23%`, `0.2%`, `<0.1%`.
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p == 0.0 {
        "0%".into()
    } else if p < 0.1 {
        "<0.1%".into()
    } else if p < 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_controls_never_pass_through() {
        let hostile = "\u{1b}[31mred\u{1b}]0;title\u{7}\r\n\u{9b}2J\u{202e}txt";
        let safe = escape_str(hostile);
        assert!(!safe.chars().any(|c| c.is_control()), "{safe:?}");
        assert_eq!(safe, "\\x1b[31mred\\x1b]0;title\\x07\\r\\n\\u{9b}2J\\u{202e}txt");
    }

    #[test]
    fn invalid_utf8_becomes_hex_escapes_and_valid_text_is_kept() {
        assert_eq!(escape_bytes(b"Zo\xc3\xab \xff\xfe ok"), "Zoë \\xff\\xfe ok");
        assert_eq!(escape_bytes(b"a\\b"), "a\\\\b");
    }

    #[test]
    fn unescape_inverts_escape_and_keeps_stray_backslashes() {
        for bytes in [&b"bad\xff\xfeid"[..], b"a\\b\\\\", b"\x1b[31m\r\n\t", "\u{9b}\u{202e}x".as_bytes(), b"\\x41"] {
            assert_eq!(unescape(&escape_bytes(bytes)), bytes, "{:?}", escape_bytes(bytes));
        }
        assert_eq!(unescape("a\\b"), b"a\\b", "no escape: the backslash stands for itself");
        assert_eq!(unescape("x\\xZZ\\u{zz}\\"), b"x\\xZZ\\u{zz}\\");
        assert_eq!(unescape("\\u{110000}"), b"\\u{110000}", "not a character");
    }

    #[test]
    fn sanitize_keeps_escapes_and_removes_controls() {
        assert_eq!(sanitize_line("no session 'a\\\\b'"), "no session 'a\\\\b'");
        assert_eq!(sanitize_line("x\u{1b}[2J\u{202e}"), "x\\x1b[2J\\u{202e}");
    }

    #[test]
    fn clip_sized_says_how_long_the_whole_was() {
        assert_eq!(clip_sized("short", 10), "short");
        let long = "s".repeat(70_000);
        let cut = clip_sized(&long, 20);
        assert!(cut.starts_with("sssssssssssssssssss…"), "{cut}");
        assert!(cut.ends_with("(70,000 chars)"), "{cut}");
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad(&long, 3).len(), 70_000);
    }

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("ZoëZoëZoë", 4), "Zoë…");
        assert_eq!(clip("short", 10), "short");
    }

    #[test]
    fn human_formats() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(200 * 1024 * 1024), "200.0 MiB");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(725), "12m05s");
        assert_eq!(human_duration(3 * 3600 + 7 * 60), "3h07m");
        assert_eq!(human_duration(2 * 86_400 + 4 * 3600), "2d04h");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(12), "12");
    }
}

/// Pretty JSON that is as terminal-safe as the rest of the output: besides what JSON itself
/// escapes, DEL, the C1 controls and the bidi and invisible characters are written as `\uXXXX`,
/// so `--json` on a terminal cannot reorder text or send a control sequence. The JSON means the
/// same; only how it is spelled changes.
pub fn json_pretty(value: &serde_json::Value) -> String {
    use serde::Serialize;
    let mut out = Vec::with_capacity(256);
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, SafeFormatter(serde_json::ser::PrettyFormatter::new()));
    // Serializing a `Value` into memory cannot fail.
    let _ = value.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

struct SafeFormatter<'a>(serde_json::ser::PrettyFormatter<'a>);

impl serde_json::ser::Formatter for SafeFormatter<'_> {
    fn write_string_fragment<W: ?Sized + std::io::Write>(&mut self, w: &mut W, fragment: &str) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_control() || is_bidi_or_invisible(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn json_escapes_what_a_terminal_would_obey() {
        let v = serde_json::json!({"a\u{202e}": "x\u{7f}y\u{9b}2J\u{200b}\u{1b}z", "n": [1, 2]});
        let text = json_pretty(&v);
        assert!(!text.chars().any(|c| (c.is_control() && c != '\n') || is_bidi_or_invisible(c)), "{text:?}");
        assert!(
            text.contains("\\u202e")
                && text.contains("\\u007f")
                && text.contains("\\u009b")
                && text.contains("\\u001b")
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v, "the same JSON, spelled safely");
    }
}
