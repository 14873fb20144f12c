//! `incr` and `decr`.

use super::{Context, Flow, reply, reply_error};
use crate::protocol::{ProtocolError, Reply, ReplyBuffer};
use crate::store::ArithOutcome;

/// Adds to or subtracts from a decimal value and answers with the new number.
pub fn arithmetic(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    incr: bool,
    key: &[u8],
    delta: u64,
    noreply: bool,
) -> Flow {
    match ctx.store.arith(key, incr, delta) {
        ArithOutcome::Value(value) if !noreply => {
            out.number(value);
            out.push(b"\r\n");
        }
        ArithOutcome::Value(_) => {}
        ArithOutcome::NotFound => reply(out, Reply::NotFound, noreply),
        ArithOutcome::NonNumeric => reply_error(out, ProtocolError::NonNumericValue, noreply),
        ArithOutcome::OutOfMemory => reply_error(out, ProtocolError::OutOfMemory, noreply),
    }
    Flow::Continue
}
