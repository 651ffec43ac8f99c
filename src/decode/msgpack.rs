//! msgpack -> [`Value`] through rmpv, plus the timestamp extension (type -1) that Flask-Session
//! 0.7+ (msgspec) writes for timezone-aware datetimes and rmpv leaves as a raw extension.

use chrono::DateTime;

use super::Value;

/// Nesting deeper than this is refused; sessions are a few levels deep.
const MAX_DEPTH: usize = 128;

/// Why bytes are not one msgpack value.
#[derive(Debug, thiserror::Error)]
pub(super) enum MsgpackError {
    #[error("{0}")]
    Read(#[from] rmpv::decode::Error),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

pub(super) fn decode(bytes: &[u8]) -> Result<Value, MsgpackError> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH)?;
    if !rest.is_empty() {
        return Err(MsgpackError::Trailing(rest.len()));
    }
    Ok(convert(value))
}

fn convert(v: rmpv::Value) -> Value {
    use rmpv::Value as M;
    match v {
        M::Nil => Value::Null,
        M::Boolean(b) => Value::Bool(b),
        M::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => Value::Int(n),
            (None, Some(u)) => Value::BigInt(u.to_string()),
            _ => Value::Str(i.to_string()),
        },
        M::F32(f) => Value::Float(f64::from(f)),
        M::F64(f) => Value::Float(f),
        M::String(s) => match s.into_str() {
            Some(s) => Value::Str(s),
            None => Value::Bytes(Vec::new()),
        },
        M::Binary(b) => Value::Bytes(b),
        M::Array(items) => Value::List(items.into_iter().map(convert).collect()),
        M::Map(entries) => Value::Map(entries.into_iter().map(|(k, v)| (convert(k), convert(v))).collect()),
        M::Ext(-1, data) => match timestamp(&data) {
            Some(text) => Value::DateTime(text),
            None => Value::Ext { type_id: -1, data },
        },
        M::Ext(type_id, data) => Value::Ext { type_id, data },
    }
}

/// Decodes the msgpack timestamp extension (4, 8 or 12 bytes) to ISO 8601 in UTC, written the
/// way Python's `isoformat()` writes an aware datetime.
fn timestamp(data: &[u8]) -> Option<String> {
    let (secs, nanos): (i64, u32) = match data.len() {
        4 => (i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
        8 => {
            let v = u64::from_be_bytes(data.try_into().ok()?);
            ((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32)
        }
        12 => (i64::from_be_bytes(data[4..12].try_into().ok()?), u32::from_be_bytes(data[0..4].try_into().ok()?)),
        _ => return None,
    };
    if nanos >= 1_000_000_000 {
        return None;
    }
    let t = DateTime::from_timestamp(secs, nanos)?;
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    Some(match nanos {
        0 => format!("{base}+00:00"),
        n if n % 1000 == 0 => format!("{base}.{:06}+00:00", n / 1000),
        n => format!("{base}.{n:09}+00:00"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_extension_in_all_three_sizes() {
        // The 8-byte form from a real Flask-Session 0.8.0 write: 2024-05-17T12:34:56.789 UTC.
        let t8 = [0xbc, 0x1c, 0xbd, 0x00, 0x66, 0x47, 0x4e, 0xf0];
        assert_eq!(timestamp(&t8).as_deref(), Some("2024-05-17T12:34:56.789000+00:00"));
        assert_eq!(timestamp(&1_715_949_296u32.to_be_bytes()).as_deref(), Some("2024-05-17T12:34:56+00:00"));
        let mut t12 = 5u32.to_be_bytes().to_vec();
        t12.extend_from_slice(&(-1i64).to_be_bytes());
        assert_eq!(timestamp(&t12).as_deref(), Some("1969-12-31T23:59:59.000000005+00:00"));
        assert_eq!(timestamp(&[1, 2, 3]), None);
    }

    #[test]
    fn trailing_bytes_and_truncation_are_errors() {
        assert!(decode(&[0x80, 0x04]).is_err(), "a fixmap(0) followed by junk is not msgpack");
        assert!(decode(&[0x82, 0xa1, b'a']).is_err());
        // A header claiming 4 GiB of array must fail on the short input, not allocate it.
        assert!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
