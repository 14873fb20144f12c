//! Binary parser: frames never exceed their input, keys are at most 250 bytes, and the
//! extras, key and value add up to the announced body.
#![no_main]

use ferrocached::protocol::binary::parse_binary;
use ferrocached::protocol::{Frame, Limits, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut rest = data;
    while let Frame::Request {
        request, consumed, ..
    } = parse_binary(rest, &limits)
    {
        assert!(consumed > 0 && consumed <= rest.len());
        if let Request::Binary(request) = &request {
            assert!(request.key.len() <= 250);
            let body = u32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
            assert_eq!(
                request.extras.len() + request.key.len() + request.value.len(),
                body
            );
            assert_eq!(consumed, 24 + body);
        }
        rest = &rest[consumed..];
    }
});
