//! Meta commands `mg ms md ma mn me`: responses are two-letter codes followed by the
//! return flags the client asked for, in the order it asked.

use super::{Context, Flow};
use crate::protocol::meta::{MetaCommand, MetaRequest, base64_encode};
use crate::protocol::{ProtocolError, ReplyBuffer};
use crate::store::{
    MetaArith, MetaArithOutcome, MetaDeleteOutcome, MetaGet, StoreOutcome, ValueRef,
};

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

/// Appends the return flags in request order: `k` (base64 again under `b`) and `O` here,
/// the item flags through `item`; ` b` closes a base64 key.
fn push_flags(
    out: &mut ReplyBuffer,
    request: &MetaRequest<'_>,
    mut item: impl FnMut(&mut ReplyBuffer, u8),
) {
    for (flag, token) in request.flags.iter() {
        match flag {
            b'k' => {
                out.push(b" k");
                out.push(&key_as_sent(request));
            }
            b'O' => {
                out.push(b" O");
                out.push(token);
            }
            other => item(out, other),
        }
    }
    if request.flags.has(b'b') && request.flags.has(b'k') {
        out.push(b" b");
    }
}

/// Appends the flags every code echoes: `k` and `O`.
fn echo_key_and_opaque(out: &mut ReplyBuffer, request: &MetaRequest<'_>) {
    push_flags(out, request, |_, _| {});
}

fn key_as_sent(request: &MetaRequest<'_>) -> Vec<u8> {
    if request.flags.has(b'b') {
        base64_encode(&request.key)
    } else {
        request.raw_key.to_vec()
    }
}

/// A status code with the echoed flags, e.g. `NF kfoo O1`.
fn status(out: &mut ReplyBuffer, code: &[u8], request: &MetaRequest<'_>) {
    out.push(code);
    echo_key_and_opaque(out, request);
    out.push(b"\r\n");
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
        status(out, b"EN", request);
    }
}

fn push_ttl(out: &mut ReplyBuffer, ttl: i64) {
    out.push(b" t");
    if ttl < 0 {
        out.push(b"-1");
    } else {
        out.number(ttl as u64);
    }
}

fn set(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) {
    ctx.counters.cmd_set += 1;
    let outcome = ctx.store.meta_store(
        super::storage::store_mode(request.set_mode),
        &request.key,
        request.client_flags,
        request.ttl.unwrap_or(0),
        request.data,
        request.compare_cas,
        request.flags.has(b'I'),
    );
    let code: &[u8] = match outcome {
        StoreOutcome::Stored(_) if request.quiet() => return,
        StoreOutcome::Stored(cas) => {
            out.push(b"HD");
            if request.flags.has(b'c') {
                out.push(b" c");
                out.number(cas);
            }
            echo_key_and_opaque(out, request);
            out.push(b"\r\n");
            return;
        }
        StoreOutcome::NotStored => b"NS",
        StoreOutcome::Exists => b"EX",
        StoreOutcome::NotFound => b"NF",
        StoreOutcome::OutOfMemory => {
            ctx.counters.store_no_memory += 1;
            out.error(ProtocolError::OutOfMemoryStoring);
            return;
        }
    };
    status(out, code, request);
}

fn delete(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) {
    let outcome = ctx.store.meta_delete(
        &request.key,
        request.compare_cas,
        request.flags.has(b'I'),
        request.ttl,
    );
    let code: &[u8] = match outcome {
        MetaDeleteOutcome::Deleted if request.quiet() => return,
        MetaDeleteOutcome::Deleted => b"HD",
        MetaDeleteOutcome::NotFound => b"NF",
        MetaDeleteOutcome::Exists => b"EX",
    };
    status(out, code, request);
}

fn arithmetic(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &MetaRequest<'_>) {
    let outcome = ctx.store.meta_arith(
        &request.key,
        MetaArith {
            incr: request.incr,
            delta: request.delta,
            compare: request.compare_cas,
            vivify: request
                .vivify
                .map(|ttl| (ctx.store.expiry(ttl), request.initial)),
            new_expiry: request.ttl.map(|ttl| ctx.store.expiry(ttl)),
        },
    );
    let code: &[u8] = match outcome {
        MetaArithOutcome::Value { created: false, .. }
            if request.quiet() && !request.flags.has(b'v') =>
        {
            return;
        }
        MetaArithOutcome::Value {
            value, cas, ttl, ..
        } => {
            let digits = value.to_string();
            if request.flags.has(b'v') {
                out.push(b"VA ");
                out.number(digits.len() as u64);
            } else {
                out.push(b"HD");
            }
            push_flags(out, request, |out, flag| match flag {
                b't' => push_ttl(out, ttl),
                b'c' => {
                    out.push(b" c");
                    out.number(cas);
                }
                _ => {}
            });
            out.push(b"\r\n");
            if request.flags.has(b'v') {
                out.push(digits.as_bytes());
                out.push(b"\r\n");
            }
            return;
        }
        MetaArithOutcome::NotFound => b"NF",
        MetaArithOutcome::NotStored => b"NS",
        MetaArithOutcome::Exists => b"EX",
        MetaArithOutcome::NonNumeric => {
            out.error(ProtocolError::NonNumericValue);
            return;
        }
    };
    status(out, code, request);
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
