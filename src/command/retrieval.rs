//! `get`, `gets`, `gat`, `gats`.

use super::{Context, Flow};
use crate::protocol::{KEY_MAX_LENGTH, Keys, ProtocolError, Reply, ReplyBuffer};
use crate::store::ValueRef;

/// Answers a get-family request: one `VALUE` block per hit, then `END`.
pub fn get(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    keys: Keys<'_>,
    with_cas: bool,
    new_exptime: Option<i32>,
) -> Flow {
    // memcached drops the hits it queued when a later key is too long; checking first
    // gives the same bytes on the wire.
    if keys.iter().any(|key| key.len() > KEY_MAX_LENGTH) {
        out.error(ProtocolError::BadFormat);
        return Flow::Continue;
    }
    for key in keys.iter() {
        ctx.counters.cmd_get += 1;
        if new_exptime.is_some() {
            ctx.counters.cmd_touch += 1;
        }
        let hit = ctx.store.fetch(key, new_exptime, |item| {
            let value = item.value.as_slice();
            out.value_header(
                item.key,
                item.flags,
                value.len(),
                with_cas.then_some(item.cas),
            );
            match item.value {
                ValueRef::Inline(bytes) => out.push(bytes),
                ValueRef::Shared(bytes) => out.push_shared(bytes),
            }
            out.push(b"\r\n");
        });
        ctx.stats
            .detail
            .record(key, ctx.settings.prefix_delimiter, |prefix| {
                prefix.gets += 1;
                prefix.hits += u64::from(hit);
            });
    }
    out.reply(Reply::End);
    Flow::Continue
}
