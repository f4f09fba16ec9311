//! The "CPU0 CPU1 …" header that opens /proc/interrupts and /proc/softirqs.

use crate::error::ParseError;

/// The CPU numbers of the first non-blank line of `lines` (`(index, line)`, as from
/// `text.lines().enumerate()`), in column order; `lines` is left after the header.
/// The numbers must strictly increase.
pub(super) fn take<'a>(
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<Vec<u32>, ParseError> {
    loop {
        match lines.next() {
            None => return Err(ParseError::new(0, "empty: no CPU header")),
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((i, l)) => return parse(l).map_err(|m| ParseError::new(i + 1, m)),
        }
    }
}

fn parse(line: &str) -> Result<Vec<u32>, String> {
    let mut cpus: Vec<u32> = Vec::new();
    for tok in line.split_ascii_whitespace() {
        let n = tok
            .strip_prefix("CPU")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| format!("header: expected CPU<n>, found {tok:?}"))?;
        if let Some(&last) = cpus.last() {
            if n <= last {
                return Err(format!("header: CPU{n} after CPU{last} (not increasing)"));
            }
        }
        cpus.push(n);
    }
    if cpus.is_empty() {
        return Err("header: no CPU columns".into());
    }
    Ok(cpus)
}
