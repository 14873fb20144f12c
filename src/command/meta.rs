//! Meta commands `mg ms md ma mn me`: responses are two-letter codes followed by the
//! return flags the client asked for, in the order it asked.

use super::core::{self, Origin};
use super::{Context, Flow};
use crate::protocol::ReplyBuffer;
use crate::protocol::meta::{
    MetaCommand, MetaRequest, compose, compose_status, push_flags, push_ttl,
};
use crate::store::{MetaGet, ValueRef};

/// Executes one meta request.
pub fn meta(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) -> Flow {
    ctx.counters.cmd_meta += 1;
    match request.command {
        MetaCommand::Get => get(ctx, out, request),
        MetaCommand::Set => set(ctx, out, request),
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
        let value = item.value.as_slice();
        if request.flags.has(b'v') {
            out.push(b"VA ");
            out.number(value.len() as u64);
        } else {
            out.push(b"HD");
        }
        push_flags(out, request, |out, flag| match flag {
            b'c' => {
                out.push(b" c");
                out.number(item.cas);
            }
            b'f' => {
                out.push(b" f");
                out.number(u64::from(item.flags));
            }
            b'h' => out.push(if item.fetched_before { b" h1" } else { b" h0" }),
            b'l' => {
                out.push(b" l");
                out.number(u64::from(item.last_access));
            }
            b's' => {
                out.push(b" s");
                out.number(value.len() as u64);
            }
            b't' => push_ttl(out, item.ttl),
            _ => {}
        });
        if item.token_taken {
            out.push(b" Z");
        }
        if item.stale {
            out.push(b" X");
        }
        if item.won {
            out.push(b" W");
        }
        out.push(b"\r\n");
        if request.flags.has(b'v') {
            match item.value {
                ValueRef::Inline(bytes) => out.push(bytes),
                ValueRef::Shared(bytes) => out.push_shared(bytes),
            }
            out.push(b"\r\n");
        }
    });
    if !found && !request.quiet() {
        compose_status(out, b"EN", request);
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
    let found = ctx.store.meta_get(&request.key, options, |item| {
        out.push(b"ME ");
        out.push(request.raw_key);
        let ttl = if item.ttl < 0 { -1 } else { item.ttl };
        out.push(
            format!(
                " exp={ttl} la={} cas={} fetch={} cls={} size={}\r\n",
                item.last_access,
                item.cas,
                if item.fetched_before { "yes" } else { "no" },
                item.class,
                item.size
            )
            .as_bytes(),
        );
    });
    if !found {
        out.push(b"EN\r\n");
    }
}
