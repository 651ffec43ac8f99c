//! Writes the pickles Flask-Session 0.6 wrote (`pickle.dumps(dict(session))`, protocol 4 as
//! CPython 3.8+ writes it: one frame, every string and container memoized), for the demo's
//! old-format sessions.

/// The Python values ChatMRPT keeps in a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Py>),
}

/// `pickle.dumps(dict(fields), protocol=4)`.
pub fn dict(fields: &[(String, Py)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[b'}', MEMOIZE]);
    match fields.len() {
        0 => {}
        1 => {
            write_str(&mut body, &fields[0].0);
            write(&mut body, &fields[0].1);
            body.push(b's');
        }
        _ => {
            body.push(b'(');
            for (k, v) in fields {
                write_str(&mut body, k);
                write(&mut body, v);
            }
            body.push(b'u');
        }
    }
    body.push(b'.');
    let mut out = vec![0x80, 4, 0x95];
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

const MEMOIZE: u8 = 0x94;

fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.len() < 256 {
        out.push(0x8c);
        out.push(s.len() as u8);
    } else {
        out.push(b'X');
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(s.as_bytes());
    out.push(MEMOIZE);
}

fn write(out: &mut Vec<u8>, v: &Py) {
    match v {
        Py::None => out.push(b'N'),
        Py::Bool(true) => out.push(0x88),
        Py::Bool(false) => out.push(0x89),
        Py::Int(i) if (0..256).contains(i) => out.extend_from_slice(&[b'K', *i as u8]),
        Py::Int(i) if (0..65536).contains(i) => {
            out.push(b'M');
            out.extend_from_slice(&(*i as u16).to_le_bytes());
        }
        Py::Int(i) if i32::try_from(*i).is_ok() => {
            out.push(b'J');
            out.extend_from_slice(&(*i as i32).to_le_bytes());
        }
        Py::Int(i) => {
            out.extend_from_slice(&[0x8a, 8]);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Py::Str(s) => write_str(out, s),
        Py::List(items) => {
            out.extend_from_slice(&[b']', MEMOIZE]);
            match items.len() {
                0 => {}
                1 => {
                    write(out, &items[0]);
                    out.push(b'a');
                }
                _ => {
                    out.push(b'(');
                    for item in items {
                        write(out, item);
                    }
                    out.push(b'e');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython_bytes_for_the_flash_sample() {
        // The real Flask-Session 0.5.0 value for {'_permanent': True, 'user_id': 42, 'name': 'Zoë',
        // '_flashes': [('info', 'Saved!')]} starts like this writer's output up to the tuple.
        let ours = dict(&[
            ("_permanent".into(), Py::Bool(true)),
            ("user_id".into(), Py::Int(42)),
            ("name".into(), Py::Str("Zoë".into())),
        ]);
        let real_prefix = "7d94288c0a5f7065726d616e656e7494888c07757365725f6964944b2a8c046e616d65948c045a6fc3ab94";
        let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
        assert!(hex[22..].starts_with(real_prefix), "{hex}");
    }
}
