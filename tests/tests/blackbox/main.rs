//! Black-box tests of the `natrix` binary over real sockets, most of them
//! side by side with nats-server 2.9.10. One test executable with a module
//! per area: linking an optimized executable costs far more than running
//! its tests, so the areas share one.

mod accounts;
mod auth;
mod clients;
mod cluster;
mod config;
mod consumer_groups;
mod https;
mod jetstream;
mod lame_duck;
mod leaf_auth;
mod leaf_urls;
mod monitor;
mod object_store;
mod raw;
#[path = "../../transcripts/replay.rs"]
#[allow(warnings, clippy::all, clippy::pedantic)]
mod replay;
mod route_perms;
mod system;
mod tls;
mod tls_map;
mod transcripts;
