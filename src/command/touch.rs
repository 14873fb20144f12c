//! `touch`.

use super::{Context, Flow, reply};
use crate::protocol::{Reply, ReplyBuffer};

/// Sets a new exptime on an item: `TOUCHED` or `NOT_FOUND`.
pub fn touch(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    key: &[u8],
    exptime: i32,
    noreply: bool,
) -> Flow {
    ctx.counters.cmd_touch += 1;
    let found = ctx.store.touch(key, exptime);
    reply(
        out,
        if found {
            Reply::Touched
        } else {
            Reply::NotFound
        },
        noreply,
    );
    Flow::Continue
}
