//! `incr` and `decr`.

use super::{Context, Flow, reply, reply_error};
use crate::protocol::{ProtocolError, Reply, ReplyBuffer};
use crate::store::{MetaArith, MetaArithOutcome};

/// Adds to or subtracts from a decimal value and answers with the new number.
pub fn arithmetic(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    incr: bool,
    key: &[u8],
    delta: u64,
    noreply: bool,
) -> Flow {
    // The one arithmetic path of all protocols: text asks for no CAS, creation or TTL.
    let outcome = ctx.store.meta_arith(
        key,
        MetaArith {
            incr,
            delta,
            compare: None,
            vivify: None,
            new_expiry: None,
        },
    );
    match outcome {
        MetaArithOutcome::Value { value, .. } if !noreply => {
            out.number(value);
            out.push(b"\r\n");
        }
        MetaArithOutcome::Value { .. } => {}
        MetaArithOutcome::NotFound => reply(out, Reply::NotFound, noreply),
        MetaArithOutcome::NonNumeric => reply_error(out, ProtocolError::NonNumericValue, noreply),
        // Without a CAS to compare nothing else answers `Exists`; `NotStored` is no memory.
        MetaArithOutcome::NotStored | MetaArithOutcome::Exists => {
            reply_error(out, ProtocolError::OutOfMemory, noreply)
        }
    }
    Flow::Continue
}
