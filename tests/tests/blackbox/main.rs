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
mod js_storage;
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

/// Returns once the server has read everything `client` sent before: a
/// message to a new inbox of its own comes back. (async-nats's `flush`
/// only writes to the socket: another connection's publish may still
/// reach the server first.)
pub(crate) async fn synced(client: &async_nats::Client) {
    use futures::StreamExt;
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    client.publish(inbox, "".into()).await.unwrap();
    natrix_tests::within("sync", sub.next()).await.unwrap();
}
