//! What only the meta protocol has: `mg` (vivify, recache, stale markers and the item's
//! metadata as return flags) and `me`. Its stores, deletes and arithmetic arrive as
//! protocol-neutral requests and run in `command::core`.

use super::core;
use super::{Context, Flow};
use crate::protocol::ReplyBuffer;
use crate::protocol::meta::{Echo, MetaHit, compose_debug, compose_hit, compose_miss};
use crate::store::{MetaGet, MetaView};

/// What `mg` asks of the store beyond a plain get. `mg` keeps its own store call
/// (`Store::meta_get`): memcached counts its touches differently from `gat` (a hit with
/// `T` is a touch hit only, a miss no touch miss), and its replies report metadata read
/// before the access (`h`, `l`, `t`) and the recache markers.
#[derive(Debug, Clone, Copy)]
pub struct Get {
    /// `T`: new client exptime.
    pub touch: Option<i32>,
    /// `N`: create a missing item with this client exptime.
    pub vivify: Option<i32>,
    /// `R`: win the recache right below this remaining TTL.
    pub recache: Option<i32>,
    /// False under `u`.
    pub bump: bool,
}

/// `mg`: a hit is `VA`/`HD` with the return flags asked for, a miss `EN`.
pub fn get(ctx: &mut Context<'_>, out: &mut ReplyBuffer, echo: Echo<'_>, request: Get) -> Flow {
    let key = echo.key;
    ctx.counters.cmd_get += 1;
    let options = MetaGet {
        new_expiry: request.touch.map(|ttl| ctx.store.expiry(ttl)),
        vivify: request.vivify.map(|ttl| ctx.store.expiry(ttl)),
        recache_below: request.recache.map(i64::from),
        bump: request.bump,
    };
    if request.touch.is_some() {
        ctx.counters.cmd_touch += 1;
    }
    let found = ctx.store.meta_get(key, options, |item| {
        compose_hit(out, &echo, &hit_of(&item));
    });
    if !found {
        compose_miss(out, &echo);
    }
    Flow::Continue
}

/// The protocol's view of what the store reports of an item.
fn hit_of<'a>(item: &MetaView<'a>) -> MetaHit<'a> {
    MetaHit {
        flags: item.flags,
        cas: item.cas,
        value: core::value(&item.value),
        ttl: item.ttl,
        last_access: item.last_access,
        fetched_before: item.fetched_before,
        stale: item.stale,
        won: item.won,
        token_taken: item.token_taken,
        class: item.class,
        size: item.size,
    }
}

/// `me`: the item's metadata without touching it.
pub fn debug(ctx: &mut Context<'_>, out: &mut ReplyBuffer, key: &[u8], raw_key: &[u8]) -> Flow {
    let options = MetaGet {
        bump: false,
        ..MetaGet::default()
    };
    let mut answered = false;
    ctx.store.meta_get(key, options, |item| {
        answered = true;
        compose_debug(out, raw_key, Some(&hit_of(&item)));
    });
    if !answered {
        compose_debug(out, raw_key, None);
    }
    Flow::Continue
}
