//! The binary protocol's own opcodes (QUIT, FLUSH, NOOP, VERSION, VERBOSITY, STAT, SASL)
//! and its single-key get. Its stores, deletes, incr/decr and TOUCH arrive parsed into
//! protocol-neutral requests and run in `command::core` like the text protocol's; the
//! status codes and quiet rules are composed in `protocol::binary`.

use super::core;
use super::{Context, Flow};
use crate::protocol::binary::{
    SASL_AUTHENTICATED, SASL_MECHANISMS, Status, be_exptime, be_u32, compose, compose_error,
    compose_hit, opcode, write_response,
};
use crate::protocol::{BinaryRequest, ReplyBuffer};

/// Executes one binary request, appending its response (if any).
pub fn execute(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &BinaryRequest<'_>) -> Flow {
    use opcode::*;
    let op = request.opcode;
    let reply =
        |out: &mut ReplyBuffer, status: Status| compose_error(out, op, status, request.opaque);
    match op {
        // A well-formed data request was parsed into a protocol-neutral one and runs
        // through `command::core`; one that reaches here has malformed extras, key or
        // value.
        GET | GETQ | GETK | GETKQ | GAT | GATQ | GATK | GATKQ | TOUCH | SET | SETQ | ADD | ADDQ
        | REPLACE | REPLACEQ | APPEND | APPENDQ | PREPEND | PREPENDQ | DELETE | DELETEQ
        | INCREMENT | INCREMENTQ | DECREMENT | DECREMENTQ => invalid(out, op, request.opaque),
        QUIT => {
            write_response(out, op, Status::Ok, request.opaque, 0, &[], &[], 0);
            Flow::Close
        }
        QUITQ => Flow::Close,
        FLUSH | FLUSHQ => {
            ctx.counters.cmd_flush += 1;
            if !ctx.settings.flush_enabled {
                reply(out, Status::InvalidArguments);
                return Flow::Continue;
            }
            let delay = match request.extras.len() {
                0 => None,
                4 => Some(be_exptime(request.extras, 0)),
                _ => return invalid(out, op, request.opaque),
            };
            ctx.store
                .flush_all(delay.map(crate::protocol::Exptime::seconds));
            if op == FLUSH {
                write_response(out, op, Status::Ok, request.opaque, 0, &[], &[], 0);
            }
            Flow::Continue
        }
        NOOP => {
            write_response(out, op, Status::Ok, request.opaque, 0, &[], &[], 0);
            Flow::Continue
        }
        VERSION => {
            version(out, op, request.opaque);
            Flow::Continue
        }
        VERBOSITY => {
            // The level is the 4-byte extras, capped at 2 as the text command caps it.
            if request.extras.len() == 4 {
                ctx.stats.set_verbosity(be_u32(request.extras, 0).min(2));
            }
            write_response(out, op, Status::Ok, request.opaque, 0, &[], &[], 0);
            Flow::Continue
        }
        STAT => stat(ctx, out, request),
        _ => {
            reply(out, Status::UnknownCommand);
            Flow::Continue
        }
    }
}

/// VERSION's response: the version string as the body.
fn version(out: &mut ReplyBuffer, op: u8, opaque: u32) {
    let version = super::admin::VERSION.as_bytes();
    write_response(out, op, Status::Ok, opaque, 0, &[], &[], version.len());
    out.push(version);
}

/// A malformed request: "Invalid arguments", then the connection closes (as memcached).
pub fn invalid(out: &mut ReplyBuffer, op: u8, opaque: u32) -> Flow {
    compose_error(out, op, Status::InvalidArguments, opaque);
    Flow::Close
}

/// A binary get of one key (GET, GETK, GAT, GATK and their quiet forms).
pub fn get(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    key: &[u8],
    touch: Option<crate::protocol::Exptime>,
    op: u8,
    opaque: u32,
) -> Flow {
    let hit = core::get(ctx, key, touch, |hit| compose_hit(out, op, opaque, &hit));
    if !hit {
        compose(out, op, opaque, key, crate::protocol::Response::NotFound);
    }
    Flow::Continue
}

/// STAT: the text protocol's group, one response per line, then an empty terminator.
fn stat(ctx: &mut Context<'_>, out: &mut ReplyBuffer, request: &BinaryRequest<'_>) -> Flow {
    let group = crate::protocol::stats_group(request.key);
    // The caller's own counters belong in the figures it asks for.
    ctx.stats.absorb(ctx.counters);
    let Some(pairs) = super::stats_pairs(ctx.store, ctx.settings, ctx.stats, ctx.tls, group) else {
        compose_error(out, request.opcode, Status::NotFound, request.opaque);
        return Flow::Continue;
    };
    for (name, value) in pairs {
        let (name, value) = (name.as_bytes(), value.as_bytes());
        write_response(
            out,
            request.opcode,
            Status::Ok,
            request.opaque,
            0,
            &[],
            name,
            value.len(),
        );
        out.push(value);
    }
    write_response(
        out,
        request.opcode,
        Status::Ok,
        request.opaque,
        0,
        &[],
        &[],
        0,
    );
    Flow::Continue
}

/// What SASL made of a request on a not-yet-authenticated binary connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslStep {
    /// The client is now authenticated.
    Authenticated,
    /// Answered (mechanism list, version); still unauthenticated.
    Answered,
    /// Refused with "Auth failure."; memcached closes the connection.
    Refused,
}

/// SASL PLAIN for `-S`: before authentication only SASL_LIST_MECHS, SASL_AUTH and
/// VERSION are served, as in memcached.
pub fn sasl(
    auth: &crate::auth::AuthFile,
    out: &mut ReplyBuffer,
    request: &BinaryRequest<'_>,
) -> SaslStep {
    use opcode::*;
    let op = request.opcode;
    match op {
        SASL_LIST_MECHS => {
            let body = SASL_MECHANISMS;
            write_response(out, op, Status::Ok, request.opaque, 0, &[], &[], body.len());
            out.push(body);
            SaslStep::Answered
        }
        VERSION => {
            version(out, op, request.opaque);
            SaslStep::Answered
        }
        SASL_AUTH if request.key == SASL_MECHANISMS => {
            // PLAIN: [authzid] NUL authcid NUL password.
            let mut parts = request.value.split(|&byte| byte == 0);
            let (_authzid, user, password) = (parts.next(), parts.next(), parts.next());
            let credentials = match (user, password, parts.next()) {
                (Some(user), Some(password), None) => [user, b" ", password].concat(),
                _ => Vec::new(),
            };
            if !credentials.is_empty() && auth.check(&credentials) {
                let body = SASL_AUTHENTICATED;
                write_response(out, op, Status::Ok, request.opaque, 0, &[], &[], body.len());
                out.push(body);
                SaslStep::Authenticated
            } else {
                compose_error(out, op, Status::AuthError, request.opaque);
                SaslStep::Refused
            }
        }
        _ => {
            compose_error(out, op, Status::AuthError, request.opaque);
            SaslStep::Refused
        }
    }
}
