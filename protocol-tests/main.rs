//! Wire-level tests: byte-exact expectations run against ferrocached and against real
//! memcached 1.6 (see `support.rs`).

mod support;

mod auth;
mod binary;
mod clients;
mod commands;
mod connections;
mod debian;
mod deploy;
mod docker;
mod errors;
mod expiry;
mod fuzzing;
mod hostile;
mod io_engine;
mod memory;
mod meta;
mod operator;
mod package;
mod prometheus;
mod restart;
mod sasl;
mod server_ops;
mod sessions;
mod slabs;
mod startup;
mod store_stress;
mod tls;
mod twemproxy;
mod udp;
mod unix;
mod watch;
