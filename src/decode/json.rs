//! JSON -> [`Value`], keeping object key order (serde_json's `preserve_order`).
//!
//! Python's `json.dumps` writes `NaN`, `Infinity` and `-Infinity` by default, which strict JSON
//! has no word for; they are read as the floats they stand for.

use super::Value;

/// What a non-finite number is rewritten to before parsing: a string no real value holds (it
/// begins and ends with NUL), turned back into its float after.
const NAN: &str = "\"\\u0000sessiontop:NaN\\u0000\"";
const INF: &str = "\"\\u0000sessiontop:Infinity\\u0000\"";
const NEG_INF: &str = "\"\\u0000sessiontop:-Infinity\\u0000\"";

pub(super) fn decode(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    // serde_json refuses nesting deeper than 128 levels, so hostile input cannot exhaust the stack.
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(parsed) => Ok(convert(parsed)),
        Err(e) => match python_non_finite(bytes) {
            Some(rewritten) => serde_json::from_slice(&rewritten).map(convert).map_err(|_| e),
            None => Err(e),
        },
    }
}

/// The input with Python's bare `NaN`, `Infinity` and `-Infinity` (outside strings) replaced by
/// sentinel strings; `None` when it has none.
fn python_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() + 32);
    let (mut in_string, mut escaped, mut found) = (false, false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let rest = &bytes[i..];
        let token = [(&b"-Infinity"[..], NEG_INF), (b"Infinity", INF), (b"NaN", NAN)]
            .into_iter()
            .find(|(word, _)| rest.starts_with(word));
        match (b, token) {
            (b'"', _) => {
                in_string = true;
                out.push(b);
                i += 1;
            }
            (_, Some((word, sentinel))) => {
                out.extend_from_slice(sentinel.as_bytes());
                found = true;
                i += word.len();
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    found.then_some(out)
}

fn convert(v: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Int(i),
            (None, Some(u), _) => Value::BigInt(u.to_string()),
            (_, _, Some(f)) => Value::Float(f),
            _ => Value::Str(n.to_string()),
        },
        J::String(s) => match s.as_str() {
            "\0sessiontop:NaN\0" => Value::Float(f64::NAN),
            "\0sessiontop:Infinity\0" => Value::Float(f64::INFINITY),
            "\0sessiontop:-Infinity\0" => Value::Float(f64::NEG_INFINITY),
            _ => Value::Str(s),
        },
        J::Array(items) => Value::List(items.into_iter().map(convert).collect()),
        J::Object(map) => Value::Map(map.into_iter().map(|(k, v)| (Value::Str(k), convert(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_number_kinds() {
        let v = decode(br#"{"z":1,"a":18446744073709551615,"m":3.5,"n":null}"#).unwrap();
        let Value::Map(entries) = v else { panic!("not a map") };
        let keys: Vec<_> = entries.iter().map(|(k, _)| k.inline(10)).collect();
        assert_eq!(keys, ["\"z\"", "\"a\"", "\"m\"", "\"n\""]);
        assert_eq!(entries[1].1, Value::BigInt("18446744073709551615".into()));
        assert_eq!(entries[2].1, Value::Float(3.5));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let hostile = "[".repeat(100_000);
        assert!(decode(hostile.as_bytes()).is_err());
    }

    #[test]
    fn python_non_finite_numbers_are_floats() {
        // json.dumps({"score": float("nan"), "hi": float("inf"), "lo": -float("inf"), "s": "NaN"})
        let v =
            decode(br#"{"score": NaN, "hi": Infinity, "lo": -Infinity, "s": "NaN \"Infinity\"", "l": [NaN]}"#).unwrap();
        assert!(matches!(v.get("score"), Some(Value::Float(f)) if f.is_nan()));
        assert_eq!(v.get("hi"), Some(&Value::Float(f64::INFINITY)));
        assert_eq!(v.get("lo"), Some(&Value::Float(f64::NEG_INFINITY)));
        assert_eq!(v.get("s"), Some(&Value::Str("NaN \"Infinity\"".into())), "inside strings nothing changes");
        assert!(decode(b"{\"a\": NaNx}").is_err(), "still JSON otherwise");
    }
}
