//! The text of `ethtool -S DEV` (sosreport `ethtool_-S_DEV`), for captured roots.

use crate::error::ParseError;

const HEADER: &str = "NIC statistics:";

/// Parse the text of `ethtool -S DEV` (sosreport `ethtool_-S_DEV`): an optional
/// "NIC statistics:" header, then one `name: value` per line. Names may contain spaces
/// and colons (bnxt_en "[0]: rx_ucast_packets", be2net "rxq0: rx_pkts"), so the value is
/// what follows the last colon. '#' comment lines and blank lines are skipped; ethtool's
/// "no stats available" (lo, dummy) gives an empty list.
pub fn parse_ethtool_s(text: &str) -> Result<Vec<(String, u64)>, ParseError> {
    let mut stats = Vec::new();
    let mut header_seen = false;
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == HEADER {
            if header_seen || !stats.is_empty() {
                return Err(ParseError::new(
                    line_no,
                    format!("repeated '{HEADER}' header (two outputs concatenated?)"),
                ));
            }
            header_seen = true;
            continue;
        }
        if line == "no stats available" && stats.is_empty() {
            continue;
        }
        let Some((name, value)) = line.rsplit_once(':') else {
            return Err(ParseError::new(
                line_no,
                format!("expected 'name: value', found {line:?}"),
            ));
        };
        let name = name.trim_end();
        let value = value.trim();
        if name.is_empty() {
            return Err(ParseError::new(line_no, "statistic without a name"));
        }
        let value: u64 = value.parse().map_err(|_| {
            ParseError::new(
                line_no,
                format!("value {value:?} of {name:?} is not an unsigned integer"),
            )
        })?;
        stats.push((name.to_string(), value));
    }
    Ok(stats)
}
