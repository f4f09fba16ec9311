//! Counter arithmetic: the growth of kernel counters between two readings. A leaf: it
//! imports nothing of the crate, so both the model's window and the probe budget use it.

/// A monotonic counter's growth. A counter that went backwards was reset (driver reload,
/// device re-created), so its current value is the best count since the reset.
pub fn counter_delta(prev: u64, cur: u64) -> u64 {
    cur.checked_sub(prev).unwrap_or(cur)
}

/// softnet_stat counters are `unsigned int` printed as %08x (net/core/net-procfs.c) and
/// wrap at 2^32; modular subtraction gives the growth across one wrap.
pub fn counter_delta_u32(prev: u32, cur: u32) -> u32 {
    cur.wrapping_sub(prev)
}

/// [`counter_delta`] of a counter a source may lack; one missing before counts whole.
pub fn delta_opt(prev: Option<u64>, cur: Option<u64>) -> Option<u64> {
    match (prev, cur) {
        (Some(p), Some(c)) => Some(counter_delta(p, c)),
        (_, c) => c,
    }
}

/// [`counter_delta_u32`] of a counter a source may lack; one missing before counts whole.
pub fn delta_opt_u32(prev: Option<u32>, cur: Option<u32>) -> Option<u32> {
    match (prev, cur) {
        (Some(p), Some(c)) => Some(counter_delta_u32(p, c)),
        (_, c) => c,
    }
}

/// Per-CPU counter columns, matched by CPU number (columns move when CPUs go on/offline).
/// A CPU not in `prev_cpus` keeps its whole count.
pub fn delta_columns(prev_cpus: &[u32], prev: &[u64], cur_cpus: &[u32], cur: &mut [u64]) {
    for (i, value) in cur.iter_mut().enumerate() {
        let Some(cpu) = cur_cpus.get(i) else { continue };
        // Same column order is the common case; fall back to a search.
        let j = if prev_cpus.get(i) == Some(cpu) {
            Some(i)
        } else {
            prev_cpus.iter().position(|c| c == cpu)
        };
        if let Some(p) = j.and_then(|j| prev.get(j)) {
            *value = counter_delta(*p, *value);
        }
    }
}

/// Bucket-wise growth of a histogram. A histogram is reset as a whole (its map entry was
/// evicted and re-created) when any bucket went backwards: then it counts since the reset.
pub fn delta_histogram(prev: &[u64], cur: &mut [u64]) {
    if cur.iter().zip(prev).any(|(c, p)| c < p) {
        return;
    }
    for (c, p) in cur.iter_mut().zip(prev) {
        *c -= p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas() {
        assert_eq!(counter_delta(10, 15), 5);
        assert_eq!(counter_delta(10, 3), 3, "reset");
        assert_eq!(counter_delta_u32(0xffff_fff0, 0x10), 0x20, "wrap");
        assert_eq!(delta_opt(Some(4), Some(9)), Some(5));
        assert_eq!(delta_opt(None, Some(9)), Some(9), "nothing before: whole");
        assert_eq!(delta_opt(Some(4), None), None);
        assert_eq!(delta_opt_u32(Some(u32::MAX), Some(1)), Some(2), "wrap");
        let mut cur = vec![10, 20, 30];
        delta_columns(&[0, 1, 3], &[1, 2, 3], &[0, 2, 3], &mut cur);
        assert_eq!(
            cur,
            vec![9, 20, 27],
            "CPU 2 is new: kept whole; CPU 3 moved column"
        );
    }

    #[test]
    fn histograms_grow_or_reset_whole() {
        let mut cur = vec![5, 7, 9];
        delta_histogram(&[1, 2, 3], &mut cur);
        assert_eq!(cur, vec![4, 5, 6]);
        let mut cur = vec![5, 1, 9];
        delta_histogram(&[1, 2, 3], &mut cur);
        assert_eq!(
            cur,
            vec![5, 1, 9],
            "a bucket went back: counts since the reset"
        );
    }
}
