//! What only the meta protocol has: `mg` (the item's metadata as return flags, the
//! recache markers) and `me`. Its stores, deletes and arithmetic arrive as
//! protocol-neutral requests and run in `command::core`, like `mg`'s store access.

use super::core::{self, MetaGet};
use super::{Context, Flow};
use crate::protocol::ReplyBuffer;
use crate::protocol::meta::{Echo, compose_debug, compose_hit, compose_miss};

/// `mg`: a hit is `VA`/`HD` with the return flags asked for, a miss `EN`.
pub fn get(ctx: &mut Context<'_>, out: &mut ReplyBuffer, echo: Echo<'_>, request: MetaGet) -> Flow {
    let found = core::meta_get(ctx, echo.key, request, |hit| compose_hit(out, &echo, hit));
    if !found {
        compose_miss(out, &echo);
    }
    Flow::Continue
}

/// `me`: one line of the item's metadata, or `EN`.
pub fn debug(ctx: &mut Context<'_>, out: &mut ReplyBuffer, key: &[u8], raw_key: &[u8]) -> Flow {
    let found = core::inspect(ctx, key, |hit| compose_debug(out, raw_key, Some(hit)));
    if !found {
        compose_debug(out, raw_key, None);
    }
    Flow::Continue
}
