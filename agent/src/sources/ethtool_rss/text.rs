//! The text of `ethtool -x DEV` (sosreport `ethtool_-x_DEV`), for captured roots.

use super::{RssConfig, RssSource};
use crate::error::ParseError;

const TABLE_HEADER: &str = "RX flow hash indirection table for ";
const NOT_SUPPORTED: &str = "Operation not supported";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Start,
    Table,
    Key,
    Hfunc,
    /// A section this parser does not use (e.g. "RSS input transformation:",
    /// printed by ethtool 6.8+); its lines are skipped.
    Other,
}

/// Parse the text of `ethtool -x DEV` (ethtool.c `do_grxfh` / netlink/rss.c).
///
/// Tolerates what captures do to it: any indentation, unaligned index columns,
/// tables shorter than the ring count suggests, a key elided with "..." (then
/// `key` is `None`: a partial key is no key), "Operation not supported" for the
/// table and/or key, and a missing "RSS hash function:" section.
pub fn parse_ethtool_x(text: &str) -> Result<RssConfig, ParseError> {
    let mut section = Section::Start;
    let mut rx_rings = None;
    let mut indirection: Vec<u32> = Vec::new();
    let mut key = None;
    let mut hfunc = None;
    let mut seen_key_line = false;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }

        if let Some(rest) = line.strip_prefix(TABLE_HEADER) {
            if section != Section::Start {
                return Err(ParseError::new(line_no, "second indirection table header"));
            }
            rx_rings = Some(parse_ring_count(rest).ok_or_else(|| {
                ParseError::new(line_no, format!("no 'with N RX ring(s):' in {line:?}"))
            })?);
            section = Section::Table;
            continue;
        }
        if section == Section::Start {
            return Err(ParseError::new(
                line_no,
                format!("expected {TABLE_HEADER:?}..., found {line:?}"),
            ));
        }
        match line {
            "RSS hash key:" => {
                section = Section::Key;
                seen_key_line = false;
                continue;
            }
            "RSS hash function:" => {
                section = Section::Hfunc;
                continue;
            }
            _ => {}
        }

        match section {
            Section::Table => {
                if line == NOT_SUPPORTED {
                    if !indirection.is_empty() {
                        return Err(ParseError::new(
                            line_no,
                            "table rows before 'not supported'",
                        ));
                    }
                    continue;
                }
                if is_section_header(line) {
                    section = Section::Other;
                    continue;
                }
                parse_table_row(line, line_no, &mut indirection)?;
            }
            Section::Key => {
                if seen_key_line {
                    if is_section_header(line) {
                        section = Section::Other;
                        continue;
                    }
                    return Err(ParseError::new(
                        line_no,
                        format!("second key line {line:?}"),
                    ));
                }
                seen_key_line = true;
                if line == NOT_SUPPORTED {
                    continue;
                }
                key = parse_key(line, line_no)?;
            }
            Section::Hfunc => {
                let Some((name, state)) = line.split_once(':') else {
                    return Err(ParseError::new(
                        line_no,
                        format!("expected 'name: on|off', found {line:?}"),
                    ));
                };
                match state.trim() {
                    "on" => {
                        if hfunc.is_none() {
                            hfunc = Some(name.trim().to_string());
                        }
                    }
                    "off" => {}
                    // "Some other section:" (nothing after the colon).
                    "" => section = Section::Other,
                    other => {
                        return Err(ParseError::new(
                            line_no,
                            format!(
                                "hash function {:?} is {other:?}, expected on|off",
                                name.trim()
                            ),
                        ))
                    }
                }
            }
            // Start was rejected above; Other is skipped by design.
            Section::Start | Section::Other => {}
        }
    }

    if section == Section::Start {
        return Err(ParseError::new(0, format!("no {TABLE_HEADER:?}... line")));
    }
    Ok(RssConfig {
        indirection,
        key,
        hfunc,
        rx_rings,
        source: RssSource::Text,
    })
}

/// A header of a section we do not know: "Something else:" (no digits before the
/// colon, nothing after it).
fn is_section_header(line: &str) -> bool {
    line.ends_with(':') && !line.starts_with(|c: char| c.is_ascii_digit())
}

/// "eth0 with 40 RX ring(s):" -> 40.
fn parse_ring_count(rest: &str) -> Option<u32> {
    let (_, after) = rest.rsplit_once(" with ")?;
    let n = after.strip_suffix(" RX ring(s):")?;
    n.trim().parse().ok()
}

/// "  8:      8     9    10 ..." -> appends the values; the index must equal the
/// number of entries so far, so lost rows are caught, not silently skipped.
fn parse_table_row(line: &str, line_no: usize, table: &mut Vec<u32>) -> Result<(), ParseError> {
    let (index, values) = line.split_once(':').ok_or_else(|| {
        ParseError::new(line_no, format!("expected 'N: q q ...', found {line:?}"))
    })?;
    let index: usize = index
        .trim()
        .parse()
        .map_err(|_| ParseError::new(line_no, format!("bad row index {:?}", index.trim())))?;
    if index != table.len() {
        return Err(ParseError::new(
            line_no,
            format!("row index {index} but {} entries so far", table.len()),
        ));
    }
    let before = table.len();
    for value in values.split_whitespace() {
        let q = value
            .parse()
            .map_err(|_| ParseError::new(line_no, format!("bad queue number {value:?}")))?;
        table.push(q);
    }
    if table.len() == before {
        return Err(ParseError::new(
            line_no,
            format!("row {index} has no entries"),
        ));
    }
    Ok(())
}

/// "6d:5a:..." -> bytes; `None` when elided ("9a:b0:...:6a:ec").
fn parse_key(line: &str, line_no: usize) -> Result<Option<Vec<u8>>, ParseError> {
    let mut key = Vec::new();
    for part in line.split(':') {
        if part.contains("...") || part.contains('\u{2026}') {
            return Ok(None);
        }
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseError::new(line_no, format!("bad key byte {part:?}")));
        }
        let byte = u8::from_str_radix(part, 16)
            .map_err(|_| ParseError::new(line_no, format!("bad key byte {part:?}")))?;
        key.push(byte);
    }
    Ok(Some(key))
}
