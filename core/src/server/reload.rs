//! Configuration reload (`SIGHUP`): apply what may change on a running
//! server, refuse the rest, as nats-server 2.9 does.
//!
//! Reloadable: `debug`, `trace`, authorization (user, password, token,
//! users, nkeys, permissions, timeout), `tls` (new connections get the new
//! settings; the driver loads the new certificates), `max_connections`,
//! `max_control_line`, `max_payload`, `ping_interval`, `ping_max`,
//! `write_deadline`, `max_traced_msg_len`, `mappings`. `no_auth_user` may
//! only be dropped together with its user. Anything else that differs
//! refuses the whole reload with nats-server's `config reload not supported
//! for <Field>: old=<v>, new=<v>`, and nothing changes. Every reload checks
//! every client again (see [`Server::reload`]). Lowering `max_connections`
//! closes clients until the server is within it.

use super::client::go_quote;
use super::{CloseReason, ConnId, LogLevel, Server};
use crate::auth::Auth;
use crate::config::Options;
use crate::server::conn::ConnKind;
use crate::time::go_duration;

/// One reloadable difference, and the line nats-server logs for it.
fn changes(old: &Options, new: &Options) -> Result<Vec<String>, String> {
    let refuse = |field: &str, o: String, n: String| {
        Err(format!(
            "config reload not supported for {field}: old={o}, new={n}"
        ))
    };
    // Settings nats-server cannot change on a running server.
    if old.host != new.host {
        return refuse("Host", old.host.clone(), new.host.clone());
    }
    if old.port != new.port && new.port != 0 {
        return refuse("Port", old.port.to_string(), new.port.to_string());
    }
    if old.cluster != new.cluster {
        // natrix does not add or drop routes on a reload (nats-server
        // changes some route settings; natrix keeps them all as started).
        let show = |c: &Option<crate::config::cluster::ClusterOptions>| match c {
            Some(c) => format!(
                "{{name:{} port:{} routes:{}}}",
                c.name,
                c.port,
                c.routes.len()
            ),
            None => "{}".to_string(),
        };
        return refuse("Cluster", show(&old.cluster), show(&new.cluster));
    }
    if old.server_name != new.server_name {
        return refuse(
            "ServerName",
            old.server_name.clone(),
            new.server_name.clone(),
        );
    }
    if old.max_pending != new.max_pending {
        return refuse(
            "MaxPending",
            old.max_pending.to_string(),
            new.max_pending.to_string(),
        );
    }
    if old.max_subscriptions != new.max_subscriptions {
        return refuse(
            "MaxSubs",
            old.max_subscriptions.to_string(),
            new.max_subscriptions.to_string(),
        );
    }
    if old.no_header_support != new.no_header_support {
        return refuse(
            "NoHeaderSupport",
            old.no_header_support.to_string(),
            new.no_header_support.to_string(),
        );
    }
    if old.disable_sublist_cache != new.disable_sublist_cache {
        return refuse(
            "NoSublistCache",
            old.disable_sublist_cache.to_string(),
            new.disable_sublist_cache.to_string(),
        );
    }
    if old.lame_duck_duration != new.lame_duck_duration {
        return refuse(
            "LameDuckDuration",
            go_duration(old.lame_duck_duration),
            go_duration(new.lame_duck_duration),
        );
    }
    if old.lame_duck_grace_period != new.lame_duck_grace_period {
        return refuse(
            "LameDuckGracePeriod",
            go_duration(old.lame_duck_grace_period),
            go_duration(new.lame_duck_grace_period),
        );
    }
    if old.http_base_path != new.http_base_path {
        return refuse(
            "HTTPBasePath",
            old.http_base_path.clone(),
            new.http_base_path.clone(),
        );
    }
    if old.max_closed_clients != new.max_closed_clients {
        return refuse(
            "MaxClosedClients",
            old.max_closed_clients.to_string(),
            new.max_closed_clients.to_string(),
        );
    }
    let mut out = Vec::new();
    if old.trace != new.trace {
        out.push(format!("Reloaded: trace = {}", new.trace));
    }
    if old.debug != new.debug {
        out.push(format!("Reloaded: debug = {}", new.debug));
    }
    if old.no_auth_user != new.no_auth_user {
        // Dropping the no_auth_user is allowed only with its user gone too.
        let dropped_with_user = !old.no_auth_user.is_empty()
            && new.no_auth_user.is_empty()
            && !matches!(&new.auth, Auth::Users(u) if u.by_name.contains_key(&old.no_auth_user));
        if !dropped_with_user {
            return refuse(
                "NoAuthUser",
                old.no_auth_user.clone(),
                new.no_auth_user.clone(),
            );
        }
    }
    let users = |a: &Auth| match a {
        Auth::Users(u) => (Some(u.by_name.clone()), Some(u.by_nkey.clone())),
        _ => (None, None),
    };
    let (_, old_nkeys) = users(&old.auth);
    let (_, new_nkeys) = users(&new.auth);
    if old_nkeys.filter(|n| !n.is_empty()) != new_nkeys.filter(|n| !n.is_empty()) {
        out.push("Reloaded: authorization nkey users".to_string());
    }
    // nats-server reports these on every reload, changed or not, and
    // checks every client again.
    out.push("Reloaded: authorization users".to_string());
    out.push("Reloaded: accounts".to_string());
    let (old_user, old_token) = match &old.auth {
        Auth::UserPassword { user, password } => (Some((user, password)), None),
        Auth::Token(t) => (None, Some(t)),
        _ => (None, None),
    };
    let (new_user, new_token) = match &new.auth {
        Auth::UserPassword { user, password } => (Some((user, password)), None),
        Auth::Token(t) => (None, Some(t)),
        _ => (None, None),
    };
    if old_user.map(|u| u.0) != new_user.map(|u| u.0) {
        out.push("Reloaded: authorization username".to_string());
    }
    if old_user.map(|u| u.1) != new_user.map(|u| u.1) {
        out.push("Reloaded: authorization password".to_string());
    }
    if old_token != new_token {
        out.push("Reloaded: authorization token".to_string());
    }
    if old.tls != new.tls {
        let (o, n) = (old.tls.as_ref(), new.tls.as_ref());
        fn material(
            t: Option<&crate::config::TlsOptions>,
        ) -> Option<(&str, &str, Option<&str>, bool, bool)> {
            t.map(|t| {
                let files = (t.cert_file.as_str(), t.key_file.as_str());
                (
                    files.0,
                    files.1,
                    t.ca_file.as_deref(),
                    t.verify,
                    t.handshake_first,
                )
            })
        }
        if material(o) != material(n) {
            let state = if n.is_some() { "enabled" } else { "disabled" };
            out.push(format!("Reloaded: tls = {state}"));
        }
        let timeout = |t: Option<&crate::config::TlsOptions>| t.map(|t| t.timeout);
        if let Some(t) = timeout(n)
            && timeout(o) != Some(t)
        {
            out.push(format!("Reloaded: tls timeout = {}", t.as_secs_f64()));
        }
    }
    if old.auth_timeout() != new.auth_timeout() {
        out.push(format!(
            "Reloaded: authorization timeout = {}",
            new.auth_timeout().as_secs_f64()
        ));
    }
    if old.max_connections != new.max_connections {
        out.push(format!(
            "Reloaded: max_connections = {}",
            new.max_connections
        ));
    }
    if old.max_control_line != new.max_control_line {
        out.push(format!(
            "Reloaded: max_control_line = {}",
            new.max_control_line
        ));
    }
    if old.max_payload != new.max_payload {
        out.push(format!("Reloaded: max_payload = {}", new.max_payload));
    }
    if old.ping_interval != new.ping_interval {
        out.push(format!(
            "Reloaded: ping_interval = {}",
            go_duration(new.ping_interval)
        ));
    }
    if old.ping_max != new.ping_max {
        out.push(format!("Reloaded: ping_max = {}", new.ping_max));
    }
    if old.write_deadline != new.write_deadline {
        out.push(format!(
            "Reloaded: write_deadline = {}",
            go_duration(new.write_deadline)
        ));
    }
    if old.max_traced_msg_len != new.max_traced_msg_len {
        out.push(format!(
            "Reloaded: max_traced_msg_len = {}",
            new.max_traced_msg_len
        ));
    }
    Ok(out)
}

impl Server {
    /// Applies `new` options to the running server, or refuses them all
    /// with the reason (nothing changes then). On success the lines to log
    /// have been emitted as `Log` actions, ending with `Reloaded server
    /// configuration`.
    pub(crate) fn reload(&mut self, mut new: Options) -> Result<(), String> {
        // The port a driver bound (port 0 in the file: any) stays.
        if new.port == 0 {
            new.port = self.opts.port;
        }
        if let (Some(old), Some(c)) = (&self.opts.cluster, new.cluster.as_mut())
            && c.port == 0
        {
            c.port = old.port;
        }
        new.validate()?;
        let lines = changes(&self.opts, &new)?;
        let fewer_conns = new.max_connections < self.opts.max_connections;
        // A planted bug is not configuration: it survives a reload.
        new.mutation = self.opts.mutation;
        self.info.max_payload = i32::try_from(new.max_payload).unwrap_or(i32::MAX);
        self.info.auth_required = new.advertises_auth();
        let accounts_changed = self.opts.accounts != new.accounts
            || self.opts.system_account != new.system_account
            || self.opts.no_system_account != new.no_system_account;
        self.accounts[0].mappings = new.mappings.clone();
        self.info.tls_required = new.tls.is_some();
        self.info.tls_verify = new.tls.as_ref().is_some_and(|t| t.verify);
        self.opts = new;
        for line in lines {
            self.log(LogLevel::Info, line);
        }
        let moved = self
            .live_clients()
            .into_iter()
            .any(|id| self.account_of_user(id) != self.conns[id.0].account);
        if accounts_changed || moved {
            self.rebuild_accounts();
        }
        self.recheck_authorization();
        if fewer_conns {
            self.close_over_max_connections();
        }
        self.log(LogLevel::Info, "Reloaded server configuration".to_string());
        Ok(())
    }

    /// Replaces the accounts with those of the new options: every
    /// subscription leaves its old sublist (shadows and response routes go),
    /// every client is bound again to its user's account, and its
    /// subscriptions go into that account's sublist.
    fn rebuild_accounts(&mut self) {
        self.uninstall_system();
        let mut parents: Vec<super::SubId> = self
            .subs
            .iter()
            .filter(|(_, s)| s.shadow.is_none())
            .map(|(k, _)| super::SubId(k as u32))
            .collect();
        parents.sort_by_key(|h| h.0);
        for &h in &parents {
            let shadows = self.shadows_of.remove(&h).unwrap_or_default();
            for sh in shadows {
                let s = self.subs.remove(sh.0 as usize);
                self.accounts[s.account.0 as usize].sublist.remove(
                    &s.subject,
                    s.queue.as_deref(),
                    sh,
                );
            }
            let s = &self.subs[h.0 as usize];
            self.accounts[s.account.0 as usize]
                .sublist
                .remove(&s.subject, s.queue.as_deref(), h);
        }
        let old_names: Vec<String> = self.accounts.iter().map(|a| a.name.clone()).collect();
        let (accounts, system) = super::accounts::build(&self.opts);
        self.accounts = accounts;
        self.system_account = system;
        let conns: Vec<ConnId> = self.conns.iter().map(|(k, _)| ConnId(k)).collect();
        for id in conns {
            let account = self.account_of_user(id);
            let c = &mut self.conns[id.0];
            c.account = account;
            if c.registered {
                self.accounts[account.0 as usize].num_conns += 1;
            }
        }
        for h in parents {
            let s = &self.subs[h.0 as usize];
            let conn = s.conn;
            // A route's interest stays in the account of the same name.
            let route = self.conns[conn.0].kind == super::ConnKind::Route;
            let account = if route {
                match self.account_id(&old_names[s.account.0 as usize]) {
                    Some(a) => a,
                    None => {
                        let s = self.subs.remove(h.0 as usize);
                        self.conns[conn.0].subs.remove(&s.sid);
                        continue;
                    }
                }
            } else {
                self.conns[conn.0].account
            };
            let s = &mut self.subs[h.0 as usize];
            s.account = account;
            let (subject, queue) = (s.subject.clone(), s.queue.clone());
            let inserted =
                self.accounts[account.0 as usize]
                    .sublist
                    .insert(&subject, queue.as_deref(), h);
            assert!(inserted.is_ok(), "a subscription's subject was valid");
            let weight = i64::from(self.subs[h.0 as usize].weight);
            self.interest_changed(account, &subject, queue.as_deref(), conn, weight);
            if !route {
                self.add_shadow_subs(account, h);
            }
        }
        self.install_system();
        self.install_jetstream();
    }

    /// The account of the user a client logged in as (`$G` for none).
    fn account_of_user(&self, id: ConnId) -> super::AccountId {
        let c = &self.conns[id.0];
        let Auth::Users(users) = &self.opts.auth else {
            return super::AccountId::GLOBAL;
        };
        let user = if !c.opts.nkey.is_empty() {
            users.by_nkey.get(&c.opts.nkey)
        } else {
            users.by_name.get(&c.opts.user)
        };
        user.and_then(|u| u.account.as_deref())
            .and_then(|name| self.account_id(name))
            .unwrap_or(super::AccountId::GLOBAL)
    }

    fn live_clients(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.kind == ConnKind::Client && !c.closing)
            .map(|(k, _)| ConnId(k))
            .collect()
    }

    /// Every client that has sent `CONNECT` is checked again, as
    /// nats-server does on every reload: one that logged in with a user name
    /// or nkey that is no longer in the users list is closed without a word;
    /// one whose credentials fail now gets `-ERR 'Authorization Violation'`
    /// and is closed; the others get their user's new permissions and lose
    /// the subscriptions these no longer allow. A client still to
    /// authenticate gets its timer afresh.
    fn recheck_authorization(&mut self) {
        let required = self.opts.auth.required();
        for id in self.live_clients() {
            let c = &self.conns[id.0];
            if c.tls_pending.is_some() {
                // Its auth timer starts with the end of the handshake.
                continue;
            }
            if !c.connect_received {
                let at = required.then(|| self.now.instant + self.opts.auth_timeout());
                self.conns[id.0].awaiting_auth = required;
                self.set_deadline(id, super::timers::Timer::Auth, at);
                continue;
            }
            if self.user_is_gone(id) {
                self.close(id, CloseReason::ClientClosed, true);
                continue;
            }
            if !self.authenticate(id) {
                self.auth_violation(id);
                continue;
            }
            self.remove_unauthorized_subs(id);
        }
    }

    /// A client that logged in by name or nkey whose user is not in the
    /// users list any more (a single `--user` is not in it either).
    fn user_is_gone(&self, id: ConnId) -> bool {
        let c = &self.conns[id.0];
        let users = match &self.opts.auth {
            Auth::Users(u) => Some(u),
            _ => None,
        };
        if !c.opts.nkey.is_empty() {
            !users.is_some_and(|u| u.by_nkey.contains_key(&c.opts.nkey))
        } else if !c.opts.user.is_empty() {
            !users.is_some_and(|u| u.by_name.contains_key(&c.opts.user))
        } else {
            false
        }
    }

    fn remove_unauthorized_subs(&mut self, id: ConnId) {
        let c = &mut self.conns[id.0];
        let Some(perms) = &mut c.perms else {
            return;
        };
        perms.reset_delivery_filter();
        let mut handles: Vec<super::SubId> = c.subs.values().copied().collect();
        handles.sort_by_key(|h| h.0);
        let mut removed = Vec::new();
        for h in handles {
            let sub = &self.subs[h.0 as usize];
            let plain = perms.can_subscribe(&sub.subject, None);
            let queued = sub
                .queue
                .as_deref()
                .is_some_and(|q| perms.can_subscribe(&sub.subject, Some(q)));
            if !plain && !queued {
                removed.push((h, sub.subject.clone(), sub.sid.clone()));
            }
        }
        for (h, subject, sid) in removed {
            self.unsubscribe(h);
            let (subject, sid) = (go_quote(&subject), go_quote(&sid));
            self.send_err(
                id,
                &format!("Permissions Violation for Subscription to {subject} (sid {sid})"),
            );
            let user = self.conns[id.0].auth_user();
            self.log(
                LogLevel::Info,
                format!("Removed sub {subject} (sid {sid}) for {user} - not authorized"),
            );
        }
    }

    /// Closes clients (newest first) until within `max_connections`.
    fn close_over_max_connections(&mut self) {
        let mut ids = self.live_clients();
        if ids.len() <= self.opts.max_connections {
            return;
        }
        ids.sort_by_key(|id| std::cmp::Reverse(self.conns[id.0].cid));
        let excess = ids.len() - self.opts.max_connections;
        for &id in ids.iter().take(excess) {
            self.send_err(id, "maximum connections exceeded");
            self.close(id, CloseReason::MaxConnectionsExceeded, true);
        }
        self.log(
            LogLevel::Info,
            format!("Closed {excess} connections to fall within max_connections"),
        );
    }
}
