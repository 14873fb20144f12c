//! `delete`.

use super::{Context, Flow, reply};
use crate::protocol::{Reply, ReplyBuffer};

/// Removes an item: `DELETED` or `NOT_FOUND`.
pub fn delete(ctx: &mut Context<'_>, out: &mut ReplyBuffer, key: &[u8], noreply: bool) -> Flow {
    ctx.stats
        .detail
        .record(key, ctx.settings.prefix_delimiter, |prefix| {
            prefix.deletes += 1
        });
    let found = ctx.store.delete(key);
    reply(
        out,
        if found {
            Reply::Deleted
        } else {
            Reply::NotFound
        },
        noreply,
    );
    Flow::Continue
}
