//! JSON -> [`Value`], keeping object key order (serde_json's `preserve_order`).

use super::Value;

pub(super) fn decode(bytes: &[u8]) -> Result<Value, String> {
    // serde_json refuses nesting deeper than 128 levels, so hostile input cannot exhaust the stack.
    let parsed: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(convert(parsed))
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
        J::String(s) => Value::Str(s),
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
}
