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

/// A duration in its two largest units: `45s`, `12m05s`, `3h07m`, `2d04h`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return format!("-{}", human_duration(-seconds));
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
