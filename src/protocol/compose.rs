//! Composing a data request's `Response` in the style its request asked for.

use super::binary;
use super::meta::{self, Echo};
use super::reply::ReplyBuffer;
use super::request::ReplyStyle;
use super::response::Response;

/// Appends the answer to a request for `key` that came to `response`, as text (nothing
/// under `noreply`), as a meta status with its return flags, or as a binary response to
/// its opcode.
pub fn compose(out: &mut ReplyBuffer, style: ReplyStyle<'_>, key: &[u8], response: Response) {
    match style {
        ReplyStyle::Text { noreply } => response.compose_text(out, noreply),
        ReplyStyle::Binary { opcode, opaque } => {
            binary::compose(out, opcode, opaque, key, response)
        }
        ReplyStyle::Meta { flags, raw_key } => {
            let echo = Echo {
                flags,
                raw_key,
                key,
            };
            meta::compose(out, &echo, response)
        }
    }
}
