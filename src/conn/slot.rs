//! Which of Redis Cluster's 16,384 hash slots a key lives in: CRC16 (XMODEM) of the key, or of
//! its hash tag (the part between the first `{` and the next `}`, when that is not empty),
//! modulo 16,384. The redis crate computes this too but does not expose the number, and
//! sessiontop needs it to group reads by node and plan writes per slot.

/// How many hash slots a cluster has.
pub const SLOTS: usize = 16384;

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The slot of `key`.
pub fn of(key: &[u8]) -> u16 {
    CRC16.checksum(hash_tag(key)) % SLOTS as u16
}

/// The part of `key` that is hashed: its hash tag when it has a non-empty one, else all of it.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = memchr::memchr(b'{', key) else { return key };
    match memchr::memchr(b'}', &key[open + 1..]) {
        Some(0) | None => key,
        Some(len) => &key[open + 1..open + 1 + len],
    }
}

/// Slot ranges written the way Redis writes them: `0-5460,10923-16383`.
pub fn ranges_text(ranges: &[(u16, u16)]) -> String {
    ranges.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect::<Vec<_>>().join(",")
}

/// The ranges of consecutive slots for which `pick` holds.
pub fn ranges_where(pick: impl Fn(usize) -> bool) -> Vec<(u16, u16)> {
    let mut ranges = Vec::new();
    let mut start = None;
    for slot in 0..=SLOTS {
        match (slot < SLOTS && pick(slot), start) {
            (true, None) => start = Some(slot),
            (false, Some(s)) => {
                ranges.push((s as u16, (slot - 1) as u16));
                start = None;
            }
            _ => {}
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_specification() {
        // The examples of the Redis Cluster specification and of `CLUSTER KEYSLOT`'s page.
        assert_eq!(of(b"123456789"), 12739);
        assert_eq!(of(b"somekey"), 11058);
        assert_eq!(of(b"foo{hash_tag}"), of(b"hash_tag"));
        assert_eq!(of(b"{user1000}.following"), of(b"{user1000}.followers"));
    }

    #[test]
    fn hash_tags_follow_the_first_brace() {
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{"), b"{");
        assert_eq!(hash_tag(b"trt:user_1:state"), b"trt:user_1:state");
    }

    #[test]
    fn ranges_are_written_as_redis_writes_them() {
        let owned = |s: usize| s <= 5460 || s == 9000 || s >= 10923;
        assert_eq!(ranges_text(&ranges_where(owned)), "0-5460,9000,10923-16383");
        assert!(ranges_where(|_| false).is_empty());
    }
}
