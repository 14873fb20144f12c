//! Text/meta parser: whatever the bytes, parsing never panics, consumes at least one byte
//! and at most what it was given, every parsed key is at most 250 bytes, and a stored
//! value is exactly as long as its line announced.
#![no_main]

use ferrocached::protocol::{Frame, Limits, Request, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut rest = data;
    while let Frame::Request {
        request, consumed, ..
    } = parse(rest, &limits)
    {
        assert!(consumed > 0 && consumed <= rest.len());
        match &request {
            Request::Store { key, data, .. } => {
                assert!(key.len() <= 250);
                let line_end = rest.iter().position(|&b| b == b'\n').unwrap();
                let announced: usize = std::str::from_utf8(&rest[..line_end])
                    .ok()
                    .and_then(|line| line.split(' ').filter(|t| !t.is_empty()).nth(4))
                    .and_then(|token| token.trim_end_matches('\r').parse().ok())
                    .unwrap_or(data.len());
                assert_eq!(data.len(), announced);
            }
            Request::Touch { key, .. }
            | Request::Delete { key, .. }
            | Request::Arithmetic { key, .. } => {
                assert!(key.len() <= 250)
            }
            Request::Meta(meta) => assert!(meta.key.len() <= 250),
            _ => {}
        }
        rest = &rest[consumed..];
    }
});
