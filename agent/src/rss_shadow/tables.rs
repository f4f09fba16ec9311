//! Candidate indirection tables: ethtool's fills (`equal`, `weight`), a table file, and
//! the balanced table; and the `ethtool -X` command that reproduces a table, if any.
//! Pure.

use super::RssShadowError;

/// `ethtool -X DEV equal N`: entry i → queue i mod N (ethtool.c `fill_indir_table`).
pub fn equal_fill(size: usize, queues: usize) -> Vec<u32> {
    (0..size).map(|i| (i % queues.max(1)) as u32).collect()
}

/// `ethtool -X DEV weight W0 W1 …`, as ethtool.c `fill_indir_table` spreads it: entries
/// are handed out in order, queue j getting entries until i reaches
/// size × (W0 + … + Wj) / ΣW (integer division), so each queue holds a contiguous block
/// proportional to its weight. ethtool refuses a zero sum ("At least one weight must be
/// non-zero") and a sum above the table size ("Total weight exceeds the size of the
/// indirection table"); so do we.
pub fn weight_fill(size: usize, weights: &[u32]) -> Result<Vec<u32>, RssShadowError> {
    let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if sum == 0 {
        return Err(RssShadowError::Weights(
            "at least one weight must be non-zero".into(),
        ));
    }
    if sum > size as u64 {
        return Err(RssShadowError::Weights(format!(
            "the weights sum to {sum}, more than the {size} table entries (ethtool refuses that)"
        )));
    }
    let mut table = Vec::with_capacity(size);
    let (mut j, mut partial) = (None::<usize>, 0u64);
    for i in 0..size as u64 {
        while i >= size as u64 * partial / sum {
            let next = j.map_or(0, |j| j + 1);
            j = Some(next);
            partial += u64::from(weights[next]);
        }
        table.push(j.unwrap_or(0) as u32);
    }
    Ok(table)
}

/// A table file: one queue per entry, whitespace-separated, or the text of `ethtool -x`.
/// Checked against the device: exactly `size` entries, each below `queues`.
pub fn parse_table_file(
    text: &str,
    path: &str,
    size: usize,
    queues: usize,
) -> Result<Vec<u32>, RssShadowError> {
    let table: Vec<u32> = if text.contains("indirection table") {
        crate::sources::ethtool_rss::parse_ethtool_x(text)
            .map_err(|e| RssShadowError::TableFile {
                path: path.into(),
                msg: format!("not an `ethtool -x` output: {e}"),
            })?
            .indirection
    } else {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            for word in line.split_whitespace() {
                let q = word.parse::<u32>().map_err(|_| RssShadowError::TableFile {
                    path: path.into(),
                    msg: format!("line {}: {word:?} is not a queue number", n + 1),
                })?;
                out.push(q);
            }
        }
        out
    };
    if table.len() != size {
        return Err(RssShadowError::TableFile {
            path: path.into(),
            msg: format!("{} entries, the device's table has {size}", table.len()),
        });
    }
    if let Some((entry, q)) = table
        .iter()
        .enumerate()
        .find(|(_, &q)| q as usize >= queues)
    {
        return Err(RssShadowError::TableFile {
            path: path.into(),
            msg: format!("entry {entry} names queue {q}, the device has queues 0..{queues}"),
        });
    }
    Ok(table)
}

/// Per-queue packets under `table`: load(q) = Σ entry_packets[e] over e with table[e] = q.
pub fn queue_loads(table: &[u32], entry_packets: &[u64], queues: usize) -> Vec<u64> {
    let mut loads = vec![0u64; queues];
    for (&q, &p) in table.iter().zip(entry_packets) {
        if let Some(slot) = loads.get_mut(q as usize) {
            *slot += p;
        }
    }
    loads
}

/// The balanced table: the lowest hottest-queue load this search finds, reached by
/// moving the fewest entries that load allows.
///
/// For a target M, a queue above M must lose at least k_q entries, k_q being how many of
/// its heaviest entries it takes to shed load(q) − M; an entry on a queue outside
/// `allowed` must move whatever M is. So Σ k_q + (entries on disallowed queues) is a
/// lower bound on the entries moved by any table whose hottest queue carries ≤ M.
/// `fit(M)` meets that bound: from each queue above M it removes k_q entries (the
/// heaviest-first set, each then swapped for the lightest unused entry that still sheds
/// enough, so less weight travels), and places the removed entries heaviest first on the
/// coolest allowed queue (RSS++'s move of hot entries to the coolest queue, Barbette et
/// al., CoNEXT'19), failing if one would lift that queue above M. Entries never move
/// twice and no other entry moves, so a table it returns moves the minimum number of
/// entries for its M (placing on the fullest queue with room is tried second). When that placement does not fit, `fit` retries shedding each
/// queue's lightest loaded entries first (more moves, smaller pieces to place); a table
/// from that retry is not guaranteed the fewest moves. M is found by bisection between a lower bound (the mean allowed
/// load and the heaviest entry: no table does better) and ⌈mean⌉ + heaviest entry, where
/// the placement always fits (the coolest queue is at most the mean while entries are
/// left to place) — so the result is within one entry's load of the optimum, and never
/// above the current hottest queue when every queue is allowed.
pub fn balanced(table: &[u32], entry_packets: &[u64], queues: usize, allowed: &[bool]) -> Vec<u32> {
    balanced_fit(table, entry_packets, queues, allowed).0
}

/// [`balanced`], and whether its move count is proven the fewest for its hottest load
/// (the fewest-entries fit placed it).
pub fn balanced_fit(
    table: &[u32],
    entry_packets: &[u64],
    queues: usize,
    allowed: &[bool],
) -> (Vec<u32>, bool) {
    let allowed_count = allowed.iter().take(queues).filter(|a| **a).count();
    if allowed_count == 0 {
        return (table.to_vec(), false);
    }
    let total: u64 = entry_packets.iter().sum();
    let heaviest = entry_packets.iter().copied().max().unwrap_or(0);
    let mean_up = total.div_ceil(allowed_count as u64);
    let forced = table
        .iter()
        .any(|&q| !allowed.get(q as usize).copied().unwrap_or(false));
    let current_max = queue_loads(table, entry_packets, queues)
        .into_iter()
        .max()
        .unwrap_or(0);
    let mut hi = mean_up + heaviest;
    if !forced {
        hi = hi.min(current_max);
    }
    let Some(mut best) = fit_either(table, entry_packets, queues, allowed, hi) else {
        return (table.to_vec(), false); // unreachable by the bound above
    };
    let mut lo = mean_up.max(heaviest); // no table does better
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match fit_either(table, entry_packets, queues, allowed, mid) {
            Some(t) => {
                best = t;
                hi = mid;
            }
            None => lo = mid + 1,
        }
    }
    best
}

/// The fewest-moves fit for `target`, else the light fit (more, lighter entries moved:
/// easier to place, no longer the fewest moves for that target).
fn fit_either(
    table: &[u32],
    entry_packets: &[u64],
    queues: usize,
    allowed: &[bool],
    target: u64,
) -> Option<(Vec<u32>, bool)> {
    let attempts = [
        (Shed::FewestEntries, Place::Coolest),
        (Shed::FewestEntries, Place::Tightest),
        (Shed::LightestFirst, Place::Coolest),
        (Shed::LightestFirst, Place::Tightest),
    ];
    attempts.iter().find_map(|&(shed, place)| {
        fit(table, entry_packets, queues, allowed, target, shed, place)
            .map(|t| (t, shed == Shed::FewestEntries))
    })
}

/// Where a removed entry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The coolest allowed queue (RSS++; worst fit).
    Coolest,
    /// The fullest allowed queue it still fits on (best fit: keeps room for the
    /// heavy entries still to come when the target is tight).
    Tightest,
}

/// How a queue above the target chooses the entries it gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shed {
    /// As few entries as possible (the lower bound on moves).
    FewestEntries,
    /// Its lightest loaded entries first, until enough load is shed.
    LightestFirst,
}

/// A table whose hottest allowed queue carries at most `target`, moving the fewest
/// entries that allows (see [`balanced`]); None when the placement does not fit.
fn fit(
    table: &[u32],
    entry_packets: &[u64],
    queues: usize,
    allowed: &[bool],
    target: u64,
    shed_by: Shed,
    place: Place,
) -> Option<Vec<u32>> {
    let is_allowed = |q: usize| allowed.get(q).copied().unwrap_or(false);
    let mut out = table.to_vec();
    let mut loads = queue_loads(table, entry_packets, queues);
    let mut counts = vec![0usize; queues];
    for &q in table {
        if let Some(c) = counts.get_mut(q as usize) {
            *c += 1;
        }
    }
    let mut pool: Vec<usize> = Vec::new();
    // Each queue's entries, in one pass (tables have up to thousands of entries).
    let width = queues.max(table.iter().map(|&q| q as usize + 1).max().unwrap_or(0));
    let mut by_queue: Vec<Vec<usize>> = vec![Vec::new(); width];
    for (e, &q) in table.iter().enumerate() {
        by_queue[q as usize].push(e);
    }
    for (q, mut entries) in by_queue.into_iter().enumerate() {
        // Heaviest first, then by entry index: deterministic.
        entries.sort_by(|&a, &b| entry_packets[b].cmp(&entry_packets[a]).then(a.cmp(&b)));
        if !is_allowed(q) {
            pool.extend(entries);
            continue;
        }
        let load = loads[q];
        if load <= target {
            continue;
        }
        let need = load - target;
        if shed_by == Shed::LightestFirst {
            let mut shed = 0u64;
            for &e in entries.iter().rev().filter(|&&e| entry_packets[e] > 0) {
                if shed >= need {
                    break;
                }
                shed += entry_packets[e];
                loads[q] -= entry_packets[e];
                counts[q] -= 1;
                pool.push(e);
            }
            if shed < need {
                return None;
            }
            continue;
        }
        let mut k = 0;
        let mut shed = 0u64;
        while shed < need && k < entries.len() {
            shed += entry_packets[entries[k]];
            k += 1;
        }
        if shed < need {
            return None;
        }
        // Swap each chosen entry, heaviest first, for the lightest unused one that keeps
        // the shed load ≥ need: same count, less weight to place.
        let mut chosen: Vec<usize> = entries[..k].to_vec();
        let mut unused: Vec<usize> = entries[k..].to_vec();
        for slot in 0..chosen.len() {
            let w_old = entry_packets[chosen[slot]];
            let rest = shed - w_old;
            let lightest = unused
                .iter()
                .enumerate()
                .filter(|(_, &e)| entry_packets[e] < w_old && rest + entry_packets[e] >= need)
                .min_by(|(_, &a), (_, &b)| entry_packets[a].cmp(&entry_packets[b]).then(a.cmp(&b)));
            if let Some((at, &e)) = lightest {
                unused[at] = chosen[slot];
                chosen[slot] = e;
                shed = rest + entry_packets[e];
            }
        }
        for &e in &chosen {
            loads[q] -= entry_packets[e];
            counts[q] -= 1;
        }
        pool.extend(chosen);
    }
    for q in 0..queues {
        if !is_allowed(q) {
            loads[q] = 0;
            counts[q] = 0;
        }
    }
    pool.sort_by(|&a, &b| entry_packets[b].cmp(&entry_packets[a]).then(a.cmp(&b)));
    for e in pool {
        // Coolest allowed queue (among equals, the one with fewest entries, then the
        // lowest), or the fullest that still has room.
        let fits = |q: &usize| is_allowed(*q) && loads[*q] + entry_packets[e] <= target;
        let q = match place {
            Place::Coolest => (0..queues)
                .filter(|&q| is_allowed(q))
                .min_by_key(|&q| (loads[q], counts[q], q))
                .filter(fits)?,
            Place::Tightest => (0..queues)
                .filter(fits)
                .max_by_key(|&q| (loads[q], std::cmp::Reverse(counts[q]), std::cmp::Reverse(q)))?,
        };
        loads[q] += entry_packets[e];
        counts[q] += 1;
        out[e] = q as u32;
    }
    Some(out)
}

/// The `ethtool -X` arguments that reproduce `table` exactly: `equal N` or
/// `weight W0 … W(queues−1)` (reduced by their common divisor). None when no fill
/// gives it: ethtool's -X takes only `equal`, `weight` and `default` (plus `start`,
/// `hkey`, `hfunc`, `context`; ethtool.8), never a table entry by entry.
pub fn ethtool_args(table: &[u32], queues: usize) -> Option<String> {
    let size = table.len();
    let highest = *table.iter().max()? as usize;
    if highest < queues && table == equal_fill(size, highest + 1).as_slice() {
        return Some(format!("equal {}", highest + 1));
    }
    let mut counts = vec![0u32; queues.max(highest + 1)];
    for &q in table {
        counts[q as usize] += 1;
    }
    let g = counts.iter().copied().filter(|&c| c > 0).fold(0, gcd);
    let weights: Vec<u32> = counts.iter().map(|&c| c / g.max(1)).collect();
    match weight_fill(size, &weights) {
        Ok(t) if t == table => Some(format!(
            "weight {}",
            weights
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        )),
        _ => None,
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
