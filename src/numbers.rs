//! Decimal numbers as memcached reads and writes them, shared by the protocol (request
//! fields), the store (incr/decr read and rewrite stored values) and configuration.
//! A leaf module: it imports nothing from the crate, so neither layer depends on the other
//! for it.
//!
//! Parsing follows the exact acceptance rules of memcached's `safe_strto*` helpers,
//! including their quirks (flags wrap to 32 bits, exptime and length truncate to 32 bits),
//! because clients and tests observe those rules on the wire.

/// C `isspace`.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// What every `strto*` accepts: leading whitespace, an optional sign, at least one digit,
/// then the end of the text or whitespace. Returns whether a minus sign was present and
/// the digits.
fn sign_and_digits(text: &[u8]) -> Option<(bool, &[u8])> {
    let mut at = 0;
    while at < text.len() && is_space(text[at]) {
        at += 1;
    }
    let mut negative = false;
    if at < text.len() && (text[at] == b'+' || text[at] == b'-') {
        negative = text[at] == b'-';
        at += 1;
    }
    let digits_start = at;
    while at < text.len() && text[at].is_ascii_digit() {
        at += 1;
    }
    if at == digits_start || (at < text.len() && !is_space(text[at])) {
        return None;
    }
    Some((negative, &text[digits_start..at]))
}

/// Shared core of `strtoul`/`strtoull`: the (possibly negated, wrapping) value and
/// whether a minus sign was present.
fn parse_unsigned(text: &[u8]) -> Option<(u64, bool)> {
    let (negative, digits) = sign_and_digits(text)?;
    let value = digits.iter().try_fold(0u64, |value, &digit| {
        value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })?;
    Some((
        if negative {
            value.wrapping_neg()
        } else {
            value
        },
        negative,
    ))
}

/// memcached's `safe_strtoull`: rejects a negative number, accepts leading whitespace and
/// anything after a whitespace character (stored numbers padded by incr/decr).
pub fn strtoull(text: &[u8]) -> Option<u64> {
    let (value, negative) = parse_unsigned(text)?;
    if negative && (value as i64) < 0 {
        return None;
    }
    Some(value)
}

/// memcached's `safe_strtoul` into a `uint32_t`: parsed as 64 bits, then truncated.
pub fn strtoul32(text: &[u8]) -> Option<u32> {
    strtoull(text).map(|value| value as u32)
}

/// memcached's `safe_strtol` into an `int32_t`: parsed as a 64-bit long, then truncated.
pub fn strtol32(text: &[u8]) -> Option<i32> {
    let (negative, digits) = sign_and_digits(text)?;
    let value = digits.iter().try_fold(0i64, |value, &digit| {
        let digit = i64::from(digit - b'0');
        let value = value.checked_mul(10)?;
        if negative {
            value.checked_sub(digit)
        } else {
            value.checked_add(digit)
        }
    })?;
    Some(value as i32)
}

/// A u64 as decimal digits on the stack: incr/decr write the new number into a stored
/// value under the shard lock, where an allocation per request would be wasted.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    buffer: [u8; 20],
    start: usize,
}

impl Decimal {
    /// Formats `value` (at most 20 digits).
    pub fn new(value: u64) -> Self {
        let mut buffer = [0u8; 20];
        let start = put_decimal_before(&mut buffer, 20, value);
        Decimal { buffer, start }
    }

    /// The digits, most significant first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer[self.start..]
    }
}

/// Writes `value` in decimal so that it ends at `end` of `line`; returns where it
/// starts. Numbers are composed back to front, so a line of several (a `VALUE` line)
/// is written with no digit moved twice; two digits at a time (one division per pair,
/// not per digit), so a value up to 99 costs one step.
#[inline]
pub fn put_decimal_before(line: &mut [u8], mut end: usize, mut value: u64) -> usize {
    while value >= 100 {
        let pair = (value % 100) as usize * 2;
        value /= 100;
        end -= 2;
        line[end..end + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if value >= 10 {
        let pair = value as usize * 2;
        end -= 2;
        line[end..end + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        end -= 1;
        line[end] = b'0' + value as u8;
    }
    end
}

/// [`put_decimal_before`] with a space in front of the digits.
#[inline]
pub fn put_spaced_decimal_before(line: &mut [u8], end: usize, value: u64) -> usize {
    let start = put_decimal_before(line, end, value) - 1;
    line[start] = b' ';
    start
}

/// "00" to "99", each pair at twice its value.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoull_follows_memcached() {
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtoull(b"18446744073709551616"), None);
        assert_eq!(strtoull(b"-1"), None);
        assert_eq!(strtoull(b"-0"), Some(0));
        assert_eq!(strtoull(b" 12"), Some(12));
        assert_eq!(strtoull(b"12 "), Some(12));
        assert_eq!(strtoull(b"12x"), None);
        assert_eq!(strtoull(b""), None);
        assert_eq!(strtoull(b"x"), None);
    }

    #[test]
    fn decimal_formats_like_display() {
        for value in [
            0,
            7,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            12345,
            1 << 40,
            u64::MAX,
        ] {
            assert_eq!(Decimal::new(value).as_bytes(), value.to_string().as_bytes());
        }
    }

    #[test]
    fn flags_and_lengths_truncate_to_32_bits() {
        assert_eq!(strtoul32(b"4294967296"), Some(0));
        assert_eq!(strtoul32(b"4294967295"), Some(u32::MAX));
        assert_eq!(strtol32(b"4294967295"), Some(-1));
        assert_eq!(strtol32(b"2147483648"), Some(i32::MIN));
        assert_eq!(strtol32(b"-5"), Some(-5));
        assert_eq!(strtol32(b"99999999999999999999"), None);
        assert_eq!(strtol32(b"1x"), None);
    }
}
