//! `delete`.

use super::{Context, Flow, reply};
use crate::protocol::{Reply, ReplyBuffer};
use crate::store::MetaDeleteOutcome;

/// Removes an item: `DELETED` or `NOT_FOUND`.
pub fn delete(ctx: &mut Context<'_>, out: &mut ReplyBuffer, key: &[u8], noreply: bool) -> Flow {
    super::detail_delete(ctx, key);
    // The one delete path of all protocols; without a CAS it cannot answer `Exists`.
    let found = ctx.store.meta_delete(key, None, false, None) == MetaDeleteOutcome::Deleted;
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
