//! Enumerator names of a kernel enum, read from the kernel's BTF
//! (/sys/kernel/btf/vmlinux), so drop and reset reasons can be named on the
//! running kernel instead of from a table that drifts between versions.
//!
//! Format: include/uapi/linux/btf.h and Documentation/bpf/btf.rst. The
//! reader walks the type section only as far as needed to skip each kind's
//! trailing data; it understands kinds 1..=19 (BTF_KIND_ENUM64, Linux 6.0,
//! is the last) and stops with an error at an unknown kind.

use std::collections::BTreeMap;
use std::fs;
use std::io;

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";
const BTF_MAGIC: u16 = 0xeb9f;
const BTF_TYPE_SIZE: usize = 12;

const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;

/// Why an enum could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BtfEnumError {
    #[error("reading {KERNEL_BTF}: {0}")]
    Io(#[from] io::Error),
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("unknown BTF kind {0}")]
    UnknownKind(u32),
}

fn u16_at(data: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        data.get(offset..offset + 2)?.try_into().ok()?,
    ))
}

fn u32_at(data: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

/// NUL-terminated string at `offset` of the string section.
fn string_at(strings: &[u8], offset: u32) -> Option<&str> {
    let tail = strings.get(offset as usize..)?;
    let end = tail.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&tail[..end]).ok()
}

/// Bytes following the 12-byte `struct btf_type` for `kind` with `vlen`
/// members (Documentation/bpf/btf.rst, "Type encoding").
fn trailing_bytes(kind: u32, vlen: usize) -> Result<usize, BtfEnumError> {
    Ok(match kind {
        1 => 4,             // INT: u32 encoding
        2 | 7..=12 => 0,    // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC
        3 => 12,            // ARRAY: struct btf_array
        4 | 5 => 12 * vlen, // STRUCT, UNION: struct btf_member
        6 => 8 * vlen,      // ENUM: struct btf_enum
        13 => 8 * vlen,     // FUNC_PROTO: struct btf_param
        14 => 4,            // VAR: struct btf_var
        15 => 12 * vlen,    // DATASEC: struct btf_var_secinfo
        16 | 18 => 0,       // FLOAT, TYPE_TAG
        17 => 4,            // DECL_TAG: struct btf_decl_tag
        19 => 12 * vlen,    // ENUM64: struct btf_enum64
        other => return Err(BtfEnumError::UnknownKind(other)),
    })
}

/// Enumerators of the enum named `name` in raw BTF `data` (little-endian
/// only: the probes are built for bpfel). Ok(empty) when there is no such
/// enum.
pub(crate) fn parse_enum(data: &[u8], name: &str) -> Result<BTreeMap<i64, String>, BtfEnumError> {
    let malformed = BtfEnumError::Malformed;
    if u16_at(data, 0) != Some(BTF_MAGIC) {
        return Err(malformed("bad magic (not little-endian BTF)"));
    }
    let header = |offset| u32_at(data, offset).ok_or(malformed("short header"));
    let hdr_len = header(4)? as usize;
    let (type_off, type_len) = (header(8)? as usize, header(12)? as usize);
    let (str_off, str_len) = (header(16)? as usize, header(20)? as usize);
    let section = |off: usize, len: usize| {
        let start = hdr_len.checked_add(off)?;
        data.get(start..start.checked_add(len)?)
    };
    let types = section(type_off, type_len).ok_or(malformed("type section out of range"))?;
    let strings = section(str_off, str_len).ok_or(malformed("string section out of range"))?;

    let mut offset = 0;
    while offset + BTF_TYPE_SIZE <= types.len() {
        let name_off = u32_at(types, offset).ok_or(malformed("short type"))?;
        let info = u32_at(types, offset + 4).ok_or(malformed("short type"))?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let signed = info >> 31 == 1;
        let body = offset + BTF_TYPE_SIZE;
        let next = body + trailing_bytes(kind, vlen)?;
        if next > types.len() {
            return Err(malformed("type runs past the type section"));
        }
        if (kind == KIND_ENUM || kind == KIND_ENUM64) && string_at(strings, name_off) == Some(name)
        {
            return enumerators(&types[body..next], strings, kind, vlen, signed);
        }
        offset = next;
    }
    Ok(BTreeMap::new())
}

fn enumerators(
    body: &[u8],
    strings: &[u8],
    kind: u32,
    vlen: usize,
    signed: bool,
) -> Result<BTreeMap<i64, String>, BtfEnumError> {
    let malformed = BtfEnumError::Malformed;
    let stride = if kind == KIND_ENUM64 { 12 } else { 8 };
    let mut values = BTreeMap::new();
    for i in 0..vlen {
        let at = i * stride;
        let name_off = u32_at(body, at).ok_or(malformed("short enumerator"))?;
        let low = u32_at(body, at + 4).ok_or(malformed("short enumerator"))?;
        let value = if kind == KIND_ENUM64 {
            let high = u32_at(body, at + 8).ok_or(malformed("short enumerator"))?;
            ((u64::from(high) << 32) | u64::from(low)) as i64
        } else if signed {
            i64::from(low as i32)
        } else {
            i64::from(low)
        };
        let name = string_at(strings, name_off).ok_or(malformed("enumerator name"))?;
        values.entry(value).or_insert_with(|| name.to_owned());
    }
    Ok(values)
}

/// Enumerators of kernel enum `name`, value -> name (the first name when
/// several share a value).
pub(crate) fn kernel_enum(name: &str) -> Result<BTreeMap<i64, String>, BtfEnumError> {
    parse_enum(&fs::read(KERNEL_BTF)?, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with an INT, a STRUCT with one member, and the enum
    /// `color { RED = 0, GREEN = 2 }` plus a signed enum and an ENUM64.
    fn sample_btf() -> Vec<u8> {
        let strings = b"\0int\0s\0x\0color\0RED\0GREEN\0neg\0MINUS\0big\0HUGE\0";
        let off = |s: &str| {
            let needle = format!("\0{s}\0");
            (strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap()
                + 1) as u32
        };
        let info = |kind: u32, vlen: u32, flag: u32| (flag << 31) | (kind << 24) | vlen;
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        push(&[off("int"), info(1, 0, 0), 4, 0x20]); // INT + encoding
        push(&[off("s"), info(4, 1, 0), 4, off("x"), 1, 0]); // STRUCT + 1 member
        push(&[
            off("color"),
            info(6, 2, 0),
            4,
            off("RED"),
            0,
            off("GREEN"),
            2,
        ]);
        push(&[off("neg"), info(6, 1, 1), 4, off("MINUS"), (-3i32) as u32]);
        push(&[off("big"), info(19, 1, 0), 8, off("HUGE"), 1, 1]);
        let mut blob = Vec::new();
        blob.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        blob.extend_from_slice(&[1, 0]); // version, flags
        for word in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            blob.extend_from_slice(&word.to_le_bytes());
        }
        blob.extend_from_slice(&types);
        blob.extend_from_slice(strings);
        blob
    }

    #[test]
    fn finds_enum_after_skipping_other_kinds() {
        let values = parse_enum(&sample_btf(), "color").unwrap();
        assert_eq!(
            values,
            BTreeMap::from([(0, "RED".to_owned()), (2, "GREEN".to_owned())])
        );
    }

    #[test]
    fn reads_signed_and_64_bit_enums() {
        let neg = parse_enum(&sample_btf(), "neg").unwrap();
        assert_eq!(neg, BTreeMap::from([(-3, "MINUS".to_owned())]));
        let big = parse_enum(&sample_btf(), "big").unwrap();
        assert_eq!(big, BTreeMap::from([((1i64 << 32) | 1, "HUGE".to_owned())]));
    }

    #[test]
    fn missing_enum_is_empty_and_garbage_is_an_error() {
        assert!(parse_enum(&sample_btf(), "nope").unwrap().is_empty());
        assert!(matches!(
            parse_enum(b"not btf at all, clearly", "color"),
            Err(BtfEnumError::Malformed(_))
        ));
        let mut truncated = sample_btf();
        truncated.truncate(40);
        assert!(parse_enum(&truncated, "color").is_err());
    }
}
