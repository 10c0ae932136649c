//! JetStream in monitoring: `/jsz` (and `JSZ` over NATS), the
//! `jetstream` section of `/varz`, and an account's `jetstream_enabled`.

use serde_json::{Value, json};

use super::config::Storage;
use crate::server::{AccountId, Server};

/// What `/jsz` may show beyond the totals.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JszDetail {
    pub accounts: bool,
    pub streams: bool,
    /// Each stream's consumers, as `CONSUMER.INFO` shows them (implies
    /// streams, as in nats-server).
    pub consumers: bool,
    pub config: bool,
}

impl Server {
    pub(crate) fn jetstream_enabled(&self) -> bool {
        self.jetstream.enabled
    }

    /// Whether `account` has JetStream.
    pub(crate) fn account_has_jetstream(&self, account: AccountId) -> bool {
        if !self.jetstream.enabled || Some(account) == self.system_account {
            return false;
        }
        // With only the global account (and the system account), the
        // global account has it; once accounts are configured, only those
        // configured with `jetstream` do, as in nats-server.
        let system = self
            .system_account
            .map(|a| self.accounts[a.0 as usize].name.clone());
        let global_only = self
            .opts
            .accounts
            .iter()
            .all(|c| Some(&c.name) == system.as_ref());
        if global_only {
            return account.0 == 0;
        }
        self.accounts[account.0 as usize]
            .config
            .as_ref()
            .is_some_and(|c| c.jetstream)
    }

    /// The configuration part of `/jsz` and `/varz`.
    fn js_config(&self) -> Value {
        let o = self.opts.jetstream.clone().unwrap_or_default();
        let mut config = json!({
            "max_memory": o.max_memory_store,
            "max_storage": o.max_file_store,
            "store_dir": format!("{}/jetstream", o.store_dir.trim_end_matches('/')),
        });
        if let Some(d) = o.sync_interval {
            config["sync_interval"] = json!(d.as_nanos() as u64);
        } else {
            config["sync_always"] = json!(true);
        }
        if !o.domain.is_empty() {
            config["domain"] = json!(o.domain);
        }
        if o.strict {
            config["strict"] = json!(true);
        }
        config
    }

    /// Usage totals: memory, storage, streams, messages, bytes.
    fn js_usage(&self, account: Option<AccountId>) -> (u64, u64, usize, u64, u64) {
        let (mut memory, mut storage, mut streams, mut msgs, mut bytes) = (0, 0, 0, 0, 0);
        for (_, s) in self.jetstream.streams.iter() {
            if account.is_some_and(|a| a != s.account) {
                continue;
            }
            streams += 1;
            msgs += s.state.msgs;
            bytes += s.state.bytes;
            match s.config.storage {
                Storage::Memory => memory += s.state.bytes,
                Storage::File => storage += s.state.bytes,
            }
        }
        (memory, storage, streams, msgs, bytes)
    }

    /// The body of `/jsz` (without `server_id` and `now`).
    pub(crate) fn jsz_body(&self, detail: JszDetail) -> Value {
        let (memory, storage, streams, messages, bytes) = self.js_usage(None);
        let accounts: Vec<AccountId> = (0..self.accounts.len())
            .map(|i| AccountId(i as u32))
            .filter(|&a| self.account_has_jetstream(a))
            .collect();
        let mut v = json!({
            "memory": memory, "storage": storage,
            "reserved_memory": 0, "reserved_storage": 0,
            "accounts": accounts.len(), "ha_assets": 0,
            "api": { "level": super::level::API_LEVEL, "total": self.jetstream.api_total, "errors": self.jetstream.api_errors },
            "config": self.js_config(),
            "streams": streams, "consumers": self.jetstream.consumers.len(),
            "messages": messages, "bytes": bytes,
        });
        if detail.accounts || detail.streams || detail.consumers {
            let details: Vec<Value> = accounts
                .iter()
                .map(|&a| self.jsz_account(a, detail))
                .collect();
            v["account_details"] = json!(details);
        }
        v
    }

    fn jsz_account(&self, account: AccountId, detail: JszDetail) -> Value {
        let name = &self.accounts[account.0 as usize].name;
        let (memory, storage, _, _, _) = self.js_usage(Some(account));
        let mut a = json!({
            "name": name, "id": name,
            "memory": memory, "storage": storage,
            "reserved_memory": 0, "reserved_storage": 0,
            "accounts": 0, "ha_assets": 0,
            "api": { "level": 0, "total": 0, "errors": 0 },
        });
        if detail.streams || detail.consumers {
            let mut streams: Vec<&super::Stream> = self
                .jetstream
                .streams
                .iter()
                .map(|(_, s)| s)
                .filter(|s| s.account == account)
                .collect();
            streams.sort_by(|x, y| x.config.name.cmp(&y.config.name));
            let streams: Vec<Value> = streams
                .into_iter()
                .map(|s| {
                    let mut d = json!({
                        "name": s.config.name,
                        "created": crate::time::rfc3339_nanos(s.created_unix_nanos),
                        "cluster": { "leader": self.info.server_name },
                        "state": {
                            "messages": s.state.msgs, "bytes": s.state.bytes,
                            "first_seq": s.state.first_seq, "last_seq": s.state.last_seq,
                            "num_subjects": s.state.num_subjects, "consumer_count": s.consumers.len(),
                        },
                    });
                    if detail.config {
                        d["config"] = serde_json::to_value(&s.config).expect("config is JSON");
                    }
                    if detail.consumers && !s.consumers.is_empty() {
                        let consumers: Vec<Value> = s
                            .consumers
                            .values()
                            .map(|&id| {
                                serde_json::to_value(self.consumer_info_json(id))
                                    .expect("consumer info is JSON")
                            })
                            .collect();
                        d["consumer_detail"] = json!(consumers);
                    }
                    d
                })
                .collect();
            a["stream_detail"] = json!(streams);
        }
        a
    }

    /// `/varz`'s `jetstream` section (`{}` with JetStream off).
    pub(crate) fn varz_jetstream(&self) -> Value {
        if !self.jetstream.enabled {
            return json!({});
        }
        let (memory, storage, _, _, _) = self.js_usage(None);
        let accounts = (0..self.accounts.len())
            .filter(|&i| self.account_has_jetstream(AccountId(i as u32)))
            .count();
        json!({
            "config": self.js_config(),
            "stats": {
                "memory": memory, "storage": storage,
                "reserved_memory": 0, "reserved_storage": 0,
                "accounts": accounts, "ha_assets": 0,
                "api": { "level": super::level::API_LEVEL, "total": self.jetstream.api_total, "errors": self.jetstream.api_errors },
            },
        })
    }
}
