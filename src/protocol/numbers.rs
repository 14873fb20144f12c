//! Number parsing with the exact acceptance rules of memcached's `safe_strto*` helpers,
//! including their quirks (flags wrap to 32 bits, exptime and length truncate to 32 bits),
//! because clients and tests observe those rules on the wire.

/// C `isspace`.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Shared core of `strtoul`/`strtoull`: leading whitespace, a sign, digits, and then the
/// end of the text or whitespace. Returns the (possibly negated, wrapping) value and
/// whether a minus sign was present.
fn parse_unsigned(text: &[u8]) -> Option<(u64, bool)> {
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
    let mut value: u64 = 0;
    while at < text.len() && text[at].is_ascii_digit() {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(text[at] - b'0'))?;
        at += 1;
    }
    if at == digits_start || (at < text.len() && !is_space(text[at])) {
        return None;
    }
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
    let mut value: i64 = 0;
    while at < text.len() && text[at].is_ascii_digit() {
        let digit = i64::from(text[at] - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
        at += 1;
    }
    if at == digits_start || (at < text.len() && !is_space(text[at])) {
        return None;
    }
    Some(value as i32)
}

/// Room for the decimal digits of any `u64`.
pub const U64_DIGITS: usize = 20;

/// Writes `value` in decimal into the end of `digits` and returns those digits: the one
/// integer formatter of the reply path (no allocation, unlike `to_string`).
pub fn format_u64(value: u64, digits: &mut [u8; U64_DIGITS]) -> &[u8] {
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    &digits[start..]
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
