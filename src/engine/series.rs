//! A metric's history in bounded memory, for the trends on screen.

/// A metric's history since start in bounded memory: when full, neighbouring points are
/// averaged in pairs, so the series always spans the whole run at a coarser step.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    points: Vec<f64>,
    capacity: usize,
    /// Samples per point.
    step: u32,
    /// Samples folded into the pending point.
    pending: (f64, u32),
}

impl Series {
    pub fn new(capacity: usize) -> Self {
        Series { points: Vec::with_capacity(capacity), capacity: capacity.max(2), step: 1, pending: (0.0, 0) }
    }

    pub fn push(&mut self, value: f64) {
        self.pending.0 += value;
        self.pending.1 += 1;
        if self.pending.1 < self.step {
            return;
        }
        self.points.push(self.pending.0 / f64::from(self.pending.1));
        self.pending = (0.0, 0);
        if self.points.len() >= self.capacity {
            self.points = self.points.chunks(2).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect();
            self.step *= 2;
        }
    }

    pub fn points(&self) -> &[f64] {
        &self.points
    }

    /// The last value pushed into a point.
    pub fn last(&self) -> Option<f64> {
        self.points.last().copied()
    }
}

/// How many points a trend keeps before it halves its resolution.
pub const SERIES_CAPACITY: usize = 512;

/// Trends of the server panel, one sample per server poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Trends {
    pub used_memory: Series,
    pub clients: Series,
    pub blocked_clients: Series,
    pub ops_per_sec: Series,
    pub hit_rate: Series,
    pub evicted_per_poll: Series,
    pub expired_per_poll: Series,
    pub db_keys: Series,
    pub sessions: Series,
    pub own_commands_per_sec: Series,
    /// sessiontop's share of one Redis core, in percent.
    pub own_redis_share: Series,
}

impl Default for Trends {
    fn default() -> Self {
        let s = || Series::new(SERIES_CAPACITY);
        Trends {
            used_memory: s(),
            clients: s(),
            blocked_clients: s(),
            ops_per_sec: s(),
            hit_rate: s(),
            evicted_per_poll: s(),
            expired_per_poll: s(),
            db_keys: s(),
            sessions: s(),
            own_commands_per_sec: s(),
            own_redis_share: s(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_halves_resolution_instead_of_growing() {
        let mut s = Series::new(8);
        for i in 0..64 {
            s.push(f64::from(i));
        }
        assert!(s.points().len() < 8);
        // Still spans the whole run: the first point is near the start, the last near the end.
        assert!(s.points()[0] < 10.0, "{:?}", s.points());
        assert!(s.last().unwrap() > 50.0, "{:?}", s.points());
    }
}
