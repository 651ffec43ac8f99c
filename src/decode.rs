//! Bytes from Redis -> [`Value`], never executing anything.
//!
//! Session payloads arrive as JSON, msgpack (Flask-Session 0.7+, with the timestamp extension)
//! or Python pickle (Flask-Session 0.6 and older); one database can hold all three. Every decoder
//! here is data-only: pickle is read by a stack machine that knows a few standard classes by name
//! and never imports or calls anything. What does not decode is kept, with the reason, so the
//! caller can show the raw bytes escaped.
//!
//! Must never panic on any input, nor allocate more than a small multiple of the input size.

mod json;
mod msgpack;
pub mod pickle;
pub mod value;

pub use value::Value;

/// The encoding a payload was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Msgpack,
    Pickle,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Msgpack => "msgpack",
            Format::Pickle => "pickle",
        }
    }
}

/// A payload that decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub format: Format,
    pub value: Value,
}

/// Why a payload did not decode: the formats tried, most likely first, each with its error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeFailure {
    pub reason: String,
}

/// Decodes a whole-session payload (a Flask-Session value), detecting its format.
///
/// The first bytes choose the order in which formats are tried (pickle's `80 0N` protocol
/// header, JSON's `{`/`[`, msgpack's map and array markers); a format only counts when it
/// consumes the whole input, so a value is never half-decoded as the wrong format.
pub fn decode_payload(bytes: &[u8]) -> Result<Decoded, DecodeFailure> {
    if bytes.is_empty() {
        return Err(DecodeFailure { reason: "empty value".into() });
    }
    let mut errors = Vec::with_capacity(3);
    for format in guess_order(bytes) {
        let attempt = match format {
            Format::Json => json::decode(bytes).map_err(|e| e.to_string()),
            Format::Msgpack => msgpack::decode(bytes).map_err(|e| e.to_string()),
            Format::Pickle => pickle::decode(bytes).map_err(|e| e.to_string()),
        };
        match attempt {
            Ok(value) => return Ok(Decoded { format, value }),
            Err(e) => errors.push(format!("{}: {e}", format.name())),
        }
    }
    Err(DecodeFailure { reason: format!("not JSON, msgpack or pickle ({})", errors.join("; ")) })
}

fn guess_order(bytes: &[u8]) -> [Format; 3] {
    use Format::*;
    match bytes {
        [0x80, 2..=5, ..] | [b'(', ..] | [b'}', ..] | [b']', ..] => [Pickle, Msgpack, Json],
        [b'{' | b'[' | b'"', ..] => [Json, Msgpack, Pickle],
        [b, ..] if b.is_ascii_whitespace() => [Json, Msgpack, Pickle],
        _ => [Msgpack, Json, Pickle],
    }
}

/// Decodes one field of a hash or one list entry, which applications write as text: a JSON
/// object or array is parsed (TRT stores `stage_1_completion` and its history entries that way),
/// other UTF-8 stays a string, anything else stays bytes.
pub fn decode_text(bytes: &[u8]) -> Value {
    let trimmed = bytes.trim_ascii_start();
    if matches!(trimmed.first(), Some(b'{' | b'['))
        && let Ok(value) = json::decode(bytes)
    {
        return value;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::Str(s.to_string()),
        Err(_) => Value::Bytes(bytes.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_fail_with_every_reason() {
        assert_eq!(decode_payload(b"").unwrap_err().reason, "empty value");
        let err = decode_payload(b"\xc1\xc1garbage").unwrap_err().reason;
        assert!(err.starts_with("not JSON, msgpack or pickle (msgpack:"), "{err}");
        assert!(err.contains("json:") && err.contains("pickle:"), "{err}");
    }

    /// Every real payload (msgpack, JSON, pickle), mutated byte by byte and cut short, through
    /// the format detection and every decoder: a result or a reason, never a panic, and never a
    /// value much larger than its input.
    #[test]
    fn mutated_real_payloads_through_every_decoder() {
        let samples: Vec<Vec<u8>> = include_str!("../tests/data/flask-session-payloads.txt")
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(_, hex)| {
                (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect()
            })
            .collect();
        assert!(samples.len() > 10);
        let mut rng = fastrand::Rng::with_seed(0xdec0de);
        for original in &samples {
            for _ in 0..300 {
                let mut p = original.clone();
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..p.len());
                    p[at] = rng.u8(..);
                }
                p.truncate(rng.usize(1..=p.len()));
                if let Ok(decoded) = decode_payload(&p) {
                    assert!(decoded.value.inline(usize::MAX).len() < 64 * p.len() + 4096, "{p:?}");
                }
                let _ = decode_text(&p);
            }
        }
    }

    #[test]
    fn text_fields_parse_json_containers_only() {
        assert_eq!(decode_text(b"1.2_problem_and_body"), Value::Str("1.2_problem_and_body".into()));
        assert_eq!(decode_text(b"42"), Value::Str("42".into()));
        assert_eq!(
            decode_text(br#"{"goal_stated": true}"#),
            Value::Map(vec![(Value::Str("goal_stated".into()), Value::Bool(true))])
        );
        assert_eq!(decode_text(b"{not json"), Value::Str("{not json".into()));
        assert_eq!(decode_text(b"\xff\x00"), Value::Bytes(vec![0xff, 0]));
    }
}
