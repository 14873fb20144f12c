//! The common storage line (`set <key> <flags> <exptime> <bytes> [noreply]`, and `add`,
//! `replace`, `append`, `prepend`, `cas` likewise) read in one pass from the front of
//! the input: the command word, the key, each number and the line end are found and
//! converted as the scan passes them, with no search for the line end first, no token
//! array and no second look at any byte.
//!
//! Only the plain form is taken here: single spaces, a key of printable bytes of at most
//! 250, plain decimal digits (a minus sign on exptime and the length), numbers too short
//! to overflow, a last word that is `noreply` where the command allows one more, and the
//! line's end (`\r\n` or `\n`) right after. Every other line (a tab, a double or trailing
//! space, a `+`, a long number, a stray word, a stray `\r`, a line not complete yet)
//! returns `None` and takes the general tokenizer's path, so both paths read a line
//! alike by construction; the tests check that on a table of edge cases.

use super::super::request::{KEY_MAX_LENGTH, StoreMode};
use super::first_space_or_control;

/// Digits of a number the scan converts itself: 18 cannot overflow an `i64` nor 19 a
/// `u64`, so the value equals what memcached's `strtol`/`strtoull` read before they
/// truncate it to 32 bits.
const MAX_SIGNED_DIGITS: usize = 18;
const MAX_UNSIGNED_DIGITS: usize = 19;

/// The fields of a plain storage line.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct StorageLine<'a> {
    pub(super) mode: StoreMode,
    /// Present for `cas`, which stores as `set` when the CAS matches.
    pub(super) compare_cas: Option<u64>,
    pub(super) key: &'a [u8],
    /// Truncated to 32 bits as memcached's `safe_strtoul` into a `uint32_t` does.
    pub(super) flags: u32,
    pub(super) exptime: i32,
    /// Still signed: the caller applies the general path's range check.
    pub(super) length: i32,
    pub(super) noreply: bool,
}

/// The fields of the plain storage line `input` starts with, and the bytes the line
/// takes (its line end included).
#[inline]
pub(super) fn storage_line(input: &[u8]) -> Option<(StorageLine<'_>, usize)> {
    let (mode, is_cas, rest) = command(input)?;
    let mut cursor = Cursor(rest);
    let key = cursor.key()?;
    let flags = cursor.unsigned()? as u32;
    cursor.space()?;
    let exptime = cursor.signed()? as i32;
    cursor.space()?;
    let length = cursor.signed()? as i32;
    let compare_cas = if is_cas {
        cursor.space()?;
        Some(cursor.unsigned()?)
    } else {
        None
    };
    let (noreply, line_end) = match cursor.0 {
        [b'\n', ..] => (false, 1),
        [b'\r', b'\n', ..] => (false, 2),
        [b' ', b'n', b'o', b'r', b'e', b'p', b'l', b'y', b'\n', ..] => (true, 9),
        [
            b' ',
            b'n',
            b'o',
            b'r',
            b'e',
            b'p',
            b'l',
            b'y',
            b'\r',
            b'\n',
            ..,
        ] => (true, 10),
        _ => return None,
    };
    let consumed = input.len() - cursor.0.len() + line_end;
    let fields = StorageLine {
        mode,
        compare_cas,
        key,
        flags,
        exptime,
        length,
        noreply,
    };
    Some((fields, consumed))
}

/// The storage command `line` starts with, whether it is `cas`, and the rest of the line
/// after the command's space.
#[inline]
fn command(line: &[u8]) -> Option<(StoreMode, bool, &[u8])> {
    let (mode, is_cas, word) = match line.first()? {
        b's' => (StoreMode::Set, false, &b"set "[..]),
        b'a' if line.get(1) == Some(&b'd') => (StoreMode::Add, false, &b"add "[..]),
        b'a' => (StoreMode::Append, false, &b"append "[..]),
        b'r' => (StoreMode::Replace, false, &b"replace "[..]),
        b'p' => (StoreMode::Prepend, false, &b"prepend "[..]),
        b'c' => (StoreMode::Set, true, &b"cas "[..]),
        _ => return None,
    };
    let rest = line.strip_prefix(word)?;
    Some((mode, is_cas, rest))
}

/// What the scan has not read yet.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    /// A key: at least one byte, at most [`KEY_MAX_LENGTH`], all above the space, ending
    /// at a single space (which is consumed).
    #[inline]
    fn key(&mut self) -> Option<&'a [u8]> {
        let end = first_space_or_control(self.0)?;
        if end == 0 || end > KEY_MAX_LENGTH || self.0[end] != b' ' {
            return None;
        }
        let key = &self.0[..end];
        self.0 = &self.0[end + 1..];
        Some(key)
    }

    /// One space.
    #[inline]
    fn space(&mut self) -> Option<()> {
        self.0 = self.0.strip_prefix(b" ")?;
        Some(())
    }

    /// Plain digits, then a space or a line end (neither consumed; what follows is the
    /// caller's to check).
    #[inline(always)]
    fn digits(&mut self, most: usize) -> Option<u64> {
        // One digit and a space (flags and exptime are mostly 0): one comparison.
        if let [digit @ b'0'..=b'9', b' ', ..] = self.0 {
            let value = u64::from(digit - b'0');
            self.0 = &self.0[1..];
            return Some(value);
        }
        let mut value = 0u64;
        let mut count = 0;
        while let Some(&byte) = self.0.get(count) {
            if !byte.is_ascii_digit() {
                if !matches!(byte, b' ' | b'\r' | b'\n') {
                    return None;
                }
                break;
            }
            count += 1;
            if count > most {
                return None;
            }
            value = value * 10 + u64::from(byte - b'0');
        }
        if count == 0 {
            return None;
        }
        self.0 = &self.0[count..];
        Some(value)
    }

    /// An unsigned number of plain digits.
    #[inline]
    fn unsigned(&mut self) -> Option<u64> {
        self.digits(MAX_UNSIGNED_DIGITS)
    }

    /// A number of plain digits, possibly after a minus sign.
    #[inline(always)]
    fn signed(&mut self) -> Option<i64> {
        if let Some(rest) = self.0.strip_prefix(b"-") {
            self.0 = rest;
            return Some(-(self.digits(MAX_SIGNED_DIGITS)? as i64));
        }
        Some(self.digits(MAX_SIGNED_DIGITS)? as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MAX_LINE_LENGTH, parse_general};
    use super::*;
    use crate::protocol::{Frame, Limits};

    /// Lines around every rule of the general path: token counts, spaces, signs, sizes,
    /// `noreply`, line ends, limits.
    fn edge_lines() -> Vec<Vec<u8>> {
        let long_key = "k".repeat(KEY_MAX_LENGTH);
        let too_long_key = "k".repeat(KEY_MAX_LENGTH + 1);
        let mut lines: Vec<String> = Vec::new();
        for command in ["set", "add", "replace", "append", "prepend", "cas"] {
            let cas = if command == "cas" { " 77" } else { "" };
            for tail in [
                format!("k 1 2 5{cas}"),
                format!("k 1 2 5{cas} noreply"),
                format!("k 1 2 5{cas} noreplyx"),
                format!("k 1 2 5{cas} foo"),
                format!("k 1 2 5{cas} foo noreply"),
                format!("k 1 2 5{cas} "),
                format!("k 1 2 5{cas}  "),
                format!("k 1 2 5{cas} noreply "),
                format!("k  1 2 5{cas}"),
                format!(" k 1 2 5{cas}"),
                format!("k\t1 2 5{cas}"),
                format!("k 1\t2 5{cas}"),
                format!("k 1 2\t 5{cas}"),
                format!("k 1 2 5\t{cas}"),
                format!("k 1 2 noreply{cas}"),
                format!("k 1 2{cas}"),
                format!("k 1{cas}"),
                format!("k{cas}"),
                String::new(),
                format!("k 1 -2 5{cas}"),
                format!("k 1 +2 5{cas}"),
                format!("k 1 - 5{cas}"),
                format!("k 1 2 -1{cas}"),
                format!("k 1 2 -0{cas}"),
                format!("k 1 2 +5{cas}"),
                format!("k -1 2 5{cas}"),
                format!("k -0 2 5{cas}"),
                format!("k +1 2 5{cas}"),
                format!("k 4294967295 2 5{cas}"),
                format!("k 4294967296 2 5{cas}"),
                format!("k 18446744073709551615 2 5{cas}"),
                format!("k 18446744073709551616 2 5{cas}"),
                format!("k 99999999999999999999 2 5{cas}"),
                format!("k 1 2147483648 5{cas}"),
                format!("k 1 4294967295 5{cas}"),
                format!("k 1 -2147483649 5{cas}"),
                format!("k 1 999999999999999999 5{cas}"),
                format!("k 1 9999999999999999999 5{cas}"),
                format!("k 1 -9999999999999999999 5{cas}"),
                format!("k 1 2 2147483647{cas}"),
                format!("k 1 2 2147483645{cas}"),
                format!("k 1 2 2147483646{cas}"),
                format!("k 1 2 4294967301{cas}"),
                format!("k 1 2 1048576{cas}"),
                format!("k 1 2 1048500{cas}"),
                format!("k 1x 2 5{cas}"),
                format!("k 1 2x 5{cas}"),
                format!("k 1 2 5x{cas}"),
                format!("k 1 2 0{cas}"),
                format!("k 00001 2 00005{cas}"),
                format!("{long_key} 1 2 5{cas}"),
                format!("{too_long_key} 1 2 5{cas}"),
                format!("{too_long_key} 1 2 5{cas} noreply"),
                format!("k 1 2 5 a b c d e f g h i j k l m n o p q r s t u v w x y z{cas}"),
            ] {
                lines.push(format!("{command} {tail}"));
            }
            lines.push(command.to_string());
            lines.push(format!("{command}  k 1 2 5{cas}"));
            lines.push(format!("{} k 1 2 5{cas}", command.to_uppercase()));
            lines.push(format!("{command}x k 1 2 5{cas}"));
        }
        for odd in [
            "cas k 1 2 5",
            "cas k 1 2 5 noreply",
            "cas k 1 2 5 -1",
            "cas k 1 2 5 18446744073709551615",
            "cas k 1 2 5 18446744073709551616",
            "set k 1 2 5 77",
            "ad k 1 2 5",
            "a k 1 2 5",
            "apend k 1 2 5",
            "s k 1 2 5",
        ] {
            lines.push(odd.to_string());
        }
        lines.into_iter().map(String::into_bytes).collect()
    }

    /// Every edge line, with its data block, parsed by `parse` (which takes the plain
    /// path where it can) and by the general path alone, under two end-of-line styles,
    /// with and without the data block, under default and small limits.
    #[test]
    fn plain_storage_lines_parse_as_the_general_path_does() {
        let small = Limits {
            item_size_max: 1024,
            ..Limits::default()
        };
        let mut plain = 0;
        for line in edge_lines() {
            for end in [
                &b"\r\n"[..],
                b"\n",
                b"\r\r\n",
                b"\rx\n",
                b" \r\n",
                b"\r",
                b"",
            ] {
                for data in [&b""[..], b"hello\r\n", b"hello\n!", b"hel"] {
                    let input = [&line[..], end, data].concat();
                    if storage_line(&input).is_some() {
                        plain += 1;
                    }
                    for limits in [&Limits::default(), &small] {
                        assert_eq!(
                            super::super::parse(&input, limits),
                            parse_general(&input, limits),
                            "{:?}",
                            String::from_utf8_lossy(&input)
                        );
                    }
                }
            }
        }
        assert!(plain > 500, "the plain path took {plain} inputs");
    }

    #[test]
    fn plain_lines_give_their_fields() {
        let fields = |line: &'static [u8]| storage_line(line).map(|(fields, _)| fields);
        assert_eq!(
            storage_line(b"cas key 4294967297 -3 12 99 noreply\r\ndata"),
            Some((
                StorageLine {
                    mode: StoreMode::Set,
                    compare_cas: Some(99),
                    key: b"key",
                    flags: 1,
                    exptime: -3,
                    length: 12,
                    noreply: true,
                },
                37
            ))
        );
        assert_eq!(
            storage_line(b"set k 0 0 1\ndata").map(|(_, at)| at),
            Some(12)
        );
        assert_eq!(
            fields(b"prepend k 0 0 1\r\n").unwrap().mode,
            StoreMode::Prepend
        );
        assert_eq!(
            fields(b"append k 0 0 1\r\n").unwrap().mode,
            StoreMode::Append
        );
        assert_eq!(fields(b"add k 0 0 1\r\n").unwrap().mode, StoreMode::Add);
        assert_eq!(
            fields(b"replace k 0 0 1\r\n").unwrap().mode,
            StoreMode::Replace
        );
        // Not plain: the general path reads these.
        assert_eq!(fields(b"set k 0 0 1 \r\n"), None);
        assert_eq!(fields(b"set k 0 0 1 junk\r\n"), None);
        assert_eq!(fields(b"set k 0 0 +1\r\n"), None);
        assert_eq!(fields(b"set k 0 0 1234567890123456789\r\n"), None);
        assert_eq!(fields(b"set k\r\n 0 0 1\r\n"), None);
        assert_eq!(fields(b"set k 0 0 1"), None, "not a whole line yet");
    }

    #[test]
    fn a_long_partial_storage_line_still_closes() {
        let line = format!("set {} 0 0 1", "k".repeat(MAX_LINE_LENGTH));
        let limits = Limits::default();
        assert_eq!(super::super::parse(line.as_bytes(), &limits), Frame::Close);
        // Complete, the same line is answered (its key is too long).
        let complete = format!("{line}\r\n");
        assert!(matches!(
            super::super::parse(complete.as_bytes(), &limits),
            Frame::Request { .. }
        ));
    }
}
