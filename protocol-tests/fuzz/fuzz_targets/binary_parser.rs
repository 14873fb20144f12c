//! Binary parser: frames never exceed their input, keys are at most 250 bytes, and the
//! extras, key and value add up to the announced body (also of a data request decoded
//! into a protocol-neutral one).
#![no_main]

use ferrocached::protocol::binary::parse_binary;
use ferrocached::protocol::{Frame, GetKeys, Limits, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut rest = data;
    while let Frame::Request {
        request, consumed, ..
    } = parse_binary(rest, &limits)
    {
        assert!(consumed > 0 && consumed <= rest.len());
        let body = || u32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
        match &request {
            Request::Binary(request) => {
                assert!(request.key.len() <= 250);
                let body = body();
                assert_eq!(
                    request.extras.len() + request.key.len() + request.value.len(),
                    body
                );
                assert_eq!(consumed, 24 + body);
            }
            // A data request decoded from the frame: its key and value are the frame's.
            Request::Store { key, data, .. } => {
                assert!(!key.is_empty() && key.len() <= 250);
                let extras = usize::from(rest[4]);
                assert_eq!(extras + key.len() + data.len(), body());
                assert_eq!(&rest[24 + extras..24 + extras + key.len()], &**key);
                assert_eq!(consumed, 24 + body());
            }
            Request::Get {
                keys: GetKeys::One(key),
                ..
            } => assert!(!key.is_empty() && key.len() <= 250),
            Request::Touch { key, .. } => assert!(!key.is_empty() && key.len() <= 250),
            Request::Delete { key, .. } | Request::Arithmetic { key, .. } => {
                assert!(!key.is_empty() && key.len() <= 250);
            }
            // Refused from its header alone: the key may be empty, never too long.
            Request::StoreTooLarge { key, .. } => assert!(key.len() <= 250),
            _ => {}
        }
        rest = &rest[consumed..];
    }
});
