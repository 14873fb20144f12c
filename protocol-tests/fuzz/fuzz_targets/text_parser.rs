//! Text/meta parser: whatever the bytes, parsing never panics, consumes at least one byte
//! and at most what it was given, every parsed key is at most 250 bytes, and a stored
//! value is exactly as long as its line announced.
#![no_main]

use ferrocached::protocol::{Frame, GetKeys, Limits, Request, parse};
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
                // `ms <key> <length> ...` announces its length third, the text
                // storage verbs fifth.
                let announced: usize = std::str::from_utf8(&rest[..line_end])
                    .ok()
                    .and_then(|line| {
                        let words: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
                        let length_at = if words.first() == Some(&"ms") { 2 } else { 4 };
                        words.get(length_at).copied()
                    })
                    .and_then(|token| token.trim_end_matches('\r').parse().ok())
                    .unwrap_or(data.len());
                assert_eq!(data.len(), announced);
            }
            Request::Touch { key, .. } => assert!(key.len() <= 250),
            Request::StoreTooLarge { key, .. }
            | Request::Delete { key, .. }
            | Request::Arithmetic { key, .. }
            | Request::MetaDebug { key, .. } => assert!(key.len() <= 250),
            Request::Get {
                keys: GetKeys::One(key),
                ..
            } => assert!(key.len() <= 250),
            Request::Get {
                keys: GetKeys::List(keys),
                ..
            } => assert!(keys.iter().all(|key| key.len() <= 250)),
            _ => {}
        }
        rest = &rest[consumed..];
    }
});
