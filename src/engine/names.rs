//! Session ids and Redis keys as Redis holds them: bytes, not necessarily UTF-8.
//!
//! An id or key is carried as its bytes from the reply that named it to the command that uses
//! it, so a session whose id is not UTF-8 is counted, shown, inspected and deleted like any
//! other. People see and type the escaped form ([`crate::util::text::escape_bytes`], e.g.
//! `bad\xff\xfeid`), which [`crate::util::text::unescape`] turns back into the same bytes.
//!
//! Must never turn bytes into text by replacing what is not UTF-8.

use std::fmt;

macro_rules! byte_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Box<[u8]>);

        impl $name {
            /// From the bytes Redis sent.
            pub fn from_bytes(bytes: impl Into<Box<[u8]>>) -> Self {
                $name(bytes.into())
            }

            /// From the escaped form a person types (`bad\xff\xfeid`, `a\\b`).
            pub fn from_escaped(text: &str) -> Self {
                $name(crate::util::text::unescape(text).into())
            }

            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The terminal-safe form that [`Self::from_escaped`] reads back.
            pub fn escaped(&self) -> String {
                crate::util::text::escape_bytes(&self.0)
            }

            /// The escaped form cut to about `max_chars` characters for a narrow place (a table
            /// cell, a title), saying the whole length when cut. Only what is shown is escaped,
            /// so a hostile id of a megabyte costs a cell, not a megabyte per frame.
            pub fn escaped_short(&self, max_chars: usize) -> String {
                let head = &self.0[..self.0.len().min(max_chars.saturating_mul(4))];
                let escaped = crate::util::text::escape_bytes(head);
                if head.len() < self.0.len() || escaped.chars().count() > max_chars {
                    format!(
                        "{} ({})",
                        crate::util::text::clip(&escaped, max_chars),
                        crate::util::text::human_bytes(self.0.len() as u64)
                    )
                } else {
                    escaped
                }
            }

            /// The text when it is UTF-8.
            pub fn as_str(&self) -> Option<&str> {
                std::str::from_utf8(&self.0).ok()
            }

            pub fn len(&self) -> usize {
                self.0.len()
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl std::borrow::Borrow<[u8]> for $name {
            fn borrow(&self) -> &[u8] {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            /// Equal to text with the same bytes.
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other.as_bytes()
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == other.as_bytes()
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &*self.0 == other.as_bytes()
            }
        }

        impl From<&str> for $name {
            /// The bytes of the text as they are (not unescaped).
            fn from(text: &str) -> Self {
                $name(text.as_bytes().into())
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name(text.into_bytes().into_boxed_slice())
            }
        }

        impl From<Vec<u8>> for $name {
            fn from(bytes: Vec<u8>) -> Self {
                $name(bytes.into_boxed_slice())
            }
        }

        impl From<&[u8]> for $name {
            fn from(bytes: &[u8]) -> Self {
                $name(bytes.into())
            }
        }

        impl fmt::Display for $name {
            /// The escaped form.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.escaped())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.escaped())
            }
        }

        impl redis::ToRedisArgs for $name {
            fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
                out.write_arg(&self.0);
            }
        }

        impl redis::ToSingleRedisArg for $name {}

        impl serde::Serialize for $name {
            /// The escaped form: what the command line takes back.
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.escaped())
            }
        }
    };
}

byte_name!(
    /// A session id: the `{id}` of the layout's key templates and the member of its index.
    SessionId
);

byte_name!(
    /// A Redis key.
    Key
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_forms_read_back_to_the_same_bytes() {
        for bytes in [&b"bad\xff\xfeid"[..], b"a\\b", b"tab\there", b"\x1b[2J", "Zoë \u{202e}".as_bytes(), b""] {
            let id = SessionId::from_bytes(bytes);
            assert_eq!(SessionId::from_escaped(&id.escaped()), id, "{:?}", id.escaped());
        }
        assert_eq!(SessionId::from_escaped("bad\\xff\\xfeid").as_bytes(), b"bad\xff\xfeid");
        assert_eq!(SessionId::from(&b"bad\xff"[..]).to_string(), "bad\\xff");
    }

    #[test]
    fn long_ids_are_shown_short_with_their_size() {
        let id = SessionId::from("x".repeat(200_000));
        let short = id.escaped_short(20);
        assert!(short.starts_with("xxxxxxxxxxxxxxxxxxx…") && short.ends_with("(195.3 KiB)"), "{short}");
        assert_eq!(SessionId::from("abc").escaped_short(20), "abc");
    }

    #[test]
    fn ids_go_to_redis_as_bytes() {
        let id = SessionId::from_bytes(&b"x\xff"[..]);
        let cmd = redis::cmd("ZSCORE").arg("i").arg(&id).clone();
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(args[2], b"x\xff");
    }
}
