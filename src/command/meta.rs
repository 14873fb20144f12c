//! Meta commands `mg ms md ma mn me`: responses are two-letter codes followed by the
//! return flags the client asked for, in the order it asked.

use super::core::{self, Origin};
use super::{Context, Flow};
use crate::protocol::ReplyBuffer;
use crate::protocol::meta::{
    MetaCommand, MetaHit, MetaRequest, compose, compose_debug, compose_hit, compose_miss,
};
use crate::store::{MetaGet, MetaView};

/// Executes one meta request.
pub fn meta(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) -> Flow {
    ctx.counters.cmd_meta += 1;
    match request.command {
        MetaCommand::Get => get(ctx, out, request),
        MetaCommand::Set => set(ctx, out, request),
        MetaCommand::SetTooLarge => {
            let response =
                core::too_large(ctx, request.set_mode, false, &request.key, Origin::Meta);
            compose(out, request, response);
        }
        MetaCommand::Delete => delete(ctx, out, request),
        MetaCommand::Arithmetic => arithmetic(ctx, out, request),
        MetaCommand::Debug => debug(ctx, out, request),
    }
    Flow::Continue
}

fn get(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) {
    ctx.counters.cmd_get += 1;
    let options = MetaGet {
        new_expiry: request.ttl.map(|ttl| ctx.store.expiry(ttl)),
        vivify: request.vivify.map(|ttl| ctx.store.expiry(ttl)),
        recache_below: request.recache.map(i64::from),
        bump: !request.flags.has(b'u'),
    };
    if request.ttl.is_some() {
        ctx.counters.cmd_touch += 1;
    }
    let found = ctx.store.meta_get(&request.key, options, |item| {
        compose_hit(out, request, &hit_of(&item));
    });
    if !found {
        compose_miss(out, request);
    }
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

fn set(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) {
    let store = core::Store {
        mode: request.set_mode,
        key: &request.key,
        flags: request.client_flags,
        exptime: request.ttl.unwrap_or(0),
        data: request.data,
        compare_cas: request.compare_cas,
        invalidate: request.flags.has(b'I'),
    };
    let response = core::store(ctx, store, Origin::Meta);
    compose(out, request, response);
}

fn delete(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) {
    let response = core::delete(
        ctx,
        &request.key,
        request.compare_cas,
        request.flags.has(b'I'),
        request.ttl,
        Origin::Meta,
    );
    compose(out, request, response);
}

fn arithmetic(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) {
    let arith = core::Arith {
        incr: request.incr,
        delta: request.delta,
        compare_cas: request.compare_cas,
        auto_create: request.vivify.map(|ttl| (ttl, request.initial)),
        new_ttl: request.ttl,
    };
    let response = core::arith(ctx, &request.key, arith);
    compose(out, request, response);
}

fn debug(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) {
    let options = MetaGet {
        bump: false,
        ..MetaGet::default()
    };
    let mut answered = false;
    ctx.store.meta_get(&request.key, options, |item| {
        answered = true;
        compose_debug(out, request, Some(&hit_of(&item)));
    });
    if !answered {
        compose_debug(out, request, None);
    }
}
