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
    pub fn new(mut value: u64) -> Self {
        let mut buffer = [0u8; 20];
        let mut start = 20;
        loop {
            start -= 1;
            buffer[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        Decimal { buffer, start }
    }

    /// The digits, most significant first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer[self.start..]
    }
}

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
        for value in [0, 7, 10, 999, 1 << 40, u64::MAX] {
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
