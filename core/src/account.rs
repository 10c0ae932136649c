//! Accounts as configured: isolated subject spaces, what each one exports
//! (streams and services, public or to named accounts) and what it imports
//! from the others, with nats-server 2.9's rules for authorizing an import
//! and for refusing one that would close a cycle.
//!
//! This is plain data and its checks. The server turns it into live
//! accounts (sublists, shadow subscriptions, response routes) in
//! `server::accounts`.

use std::time::Duration;

use crate::auth::permissions::subset;
use crate::mapping::Mappings;
use crate::subject;

/// The account of every client whose user names no other.
pub const GLOBAL_ACCOUNT: &str = "$G";
/// The system account when `system_account` does not name one.
pub const DEFAULT_SYSTEM_ACCOUNT: &str = "$SYS";
/// How long the route for a service response lives without a response
/// (nats-server's default response threshold).
pub const DEFAULT_RESPONSE_THRESHOLD: Duration = Duration::from_secs(120);
/// nats-server gives up looking for an import cycle this deep.
const MAX_CYCLE_SEARCH_DEPTH: usize = 1024;

/// How many responses a service request may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseType {
    /// One response; the route back closes after it.
    #[default]
    Singleton,
    /// Any number of responses until the threshold passes without one.
    Stream,
    /// Like `Stream`; an empty message ends it.
    Chunked,
}

impl ResponseType {
    /// As `/accountz` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Singleton => "Singleton",
            ResponseType::Stream => "Stream",
            ResponseType::Chunked => "Chunked",
        }
    }
}

/// Who may import an export.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportAuth {
    /// The accounts allowed; empty: every account (a public export).
    pub approved: Vec<String>,
    /// `account_token_position`: the importing account's name must be this
    /// (1-based) token of the imported subject; 0: not used.
    pub account_token_position: usize,
}

impl ExportAuth {
    fn allows(&self, account: &str, subject: &str) -> bool {
        if self.account_token_position > 0 {
            let token = subject.split('.').nth(self.account_token_position - 1);
            return token == Some(account);
        }
        self.approved.is_empty() || self.approved.iter().any(|a| a == account)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamExport {
    pub subject: String,
    pub auth: ExportAuth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceExport {
    pub subject: String,
    pub auth: ExportAuth,
    pub response_type: ResponseType,
    pub threshold: Duration,
}

/// Messages published on `from` in `account` are delivered in the
/// importing account as `to` (the same subject, a prefix, or a mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamImport {
    pub account: String,
    pub from: String,
    pub to: String,
}

/// Requests published on `from` in the importing account go to `to` in
/// `account`, the exporter; responses come back to the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImport {
    pub account: String,
    pub from: String,
    pub to: String,
}

/// `limits {}` of an account; -1 is no limit (nats-server's `NoLimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    pub max_connections: i64,
    pub max_subscriptions: i64,
    pub max_payload: i64,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            max_connections: -1,
            max_subscriptions: -1,
            max_payload: -1,
        }
    }
}

/// One configured account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountConfig {
    pub name: String,
    pub stream_exports: Vec<StreamExport>,
    pub service_exports: Vec<ServiceExport>,
    pub stream_imports: Vec<StreamImport>,
    pub service_imports: Vec<ServiceImport>,
    pub mappings: Mappings,
    pub limits: AccountLimits,
    /// `jetstream: enabled` (or a `jetstream {}` block): the account may
    /// use JetStream. With accounts configured, only these may.
    pub jetstream: bool,
    /// The limits of the `jetstream {}` block.
    pub jetstream_limits: JetStreamLimits,
}

/// An account's JetStream limits (nats-server's `JetStreamAccountLimits`);
/// -1 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JetStreamLimits {
    pub max_memory: i64,
    pub max_store: i64,
    pub max_streams: i64,
    pub max_consumers: i64,
    pub max_ack_pending: i64,
    pub memory_max_stream_bytes: i64,
    pub store_max_stream_bytes: i64,
    pub max_bytes_required: bool,
}

impl Default for JetStreamLimits {
    fn default() -> Self {
        JetStreamLimits {
            max_memory: -1,
            max_store: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            store_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

impl AccountConfig {
    pub fn new(name: &str) -> Self {
        AccountConfig {
            name: name.to_string(),
            ..AccountConfig::default()
        }
    }

    /// Adds (or replaces) a stream export. nats-server's
    /// `ErrInvalidSubject` when the account token position is not a `*`.
    pub fn add_stream_export(&mut self, subject: &str, auth: ExportAuth) -> Result<(), String> {
        check_token_position(subject, auth.account_token_position)?;
        self.stream_exports.retain(|e| e.subject != subject);
        self.stream_exports.push(StreamExport {
            subject: subject.to_string(),
            auth,
        });
        Ok(())
    }

    pub fn add_service_export(
        &mut self,
        subject: &str,
        auth: ExportAuth,
        response_type: ResponseType,
        threshold: Option<Duration>,
    ) -> Result<(), String> {
        check_token_position(subject, auth.account_token_position)?;
        self.service_exports.retain(|e| e.subject != subject);
        self.service_exports.push(ServiceExport {
            subject: subject.to_string(),
            auth,
            response_type,
            threshold: threshold.unwrap_or(DEFAULT_RESPONSE_THRESHOLD),
        });
        Ok(())
    }

    /// Whether `account` may import `subject` as a stream.
    pub fn stream_import_authorized(&self, account: &str, subject: &str) -> bool {
        if !subject::is_valid_subject(subject.as_bytes()) {
            return false;
        }
        let exact = self.stream_exports.iter().find(|e| e.subject == subject);
        let export = exact.or_else(|| {
            self.stream_exports
                .iter()
                .find(|e| subset(subject.as_bytes(), e.subject.as_bytes()))
        });
        export.is_some_and(|e| e.auth.allows(account, subject))
    }

    /// Whether `account` may import `subject` as a service.
    pub fn service_import_authorized(&self, account: &str, subject: &str) -> bool {
        if !subject::is_valid_subject(subject.as_bytes()) {
            return false;
        }
        self.service_export(subject)
            .is_some_and(|e| e.auth.allows(account, subject))
    }

    /// The service export that covers `subject`: one with exactly that
    /// subject, else the first whose subject covers it.
    pub fn service_export(&self, subject: &str) -> Option<&ServiceExport> {
        let exact = self.service_exports.iter().find(|e| e.subject == subject);
        exact.or_else(|| {
            self.service_exports
                .iter()
                .find(|e| subset(subject.as_bytes(), e.subject.as_bytes()))
        })
    }
}

fn check_token_position(subject: &str, position: usize) -> Result<(), String> {
    if position > 0 && subject.split('.').nth(position - 1) != Some("*") {
        return Err("invalid subject".to_string());
    }
    Ok(())
}

/// Adds a stream import of `from` in `exporter` to `importer`, delivered
/// as `prefix.from` (with a prefix) or as `to` (empty: as `from`), after
/// nats-server's checks, in its words.
pub fn add_stream_import(
    accounts: &mut [AccountConfig],
    importer: usize,
    exporter: usize,
    from: &str,
    prefix: &str,
    to: &str,
) -> Result<(), String> {
    let importer_name = accounts[importer].name.clone();
    if !accounts[exporter].stream_import_authorized(&importer_name, from) {
        return Err("stream import not authorized".to_string());
    }
    let to = if !prefix.is_empty() {
        if !subject::is_literal(prefix.as_bytes()) {
            return Err("stream import prefix can not contain wildcard tokens".to_string());
        }
        if prefix.ends_with('.') {
            format!("{prefix}{from}")
        } else {
            format!("{prefix}.{from}")
        }
    } else if to.is_empty() {
        from.to_string()
    } else {
        to.to_string()
    };
    let mut visited = vec![importer_name];
    if stream_cycle(accounts, exporter, &to, &mut visited)? {
        return Err("import forms a cycle".to_string());
    }
    if !subject::is_literal(from.as_bytes()) && to != from {
        crate::mapping::Transform::new(from, &tokenize(&to)).map_err(|e| {
            format!(
                "failed to create mapping transform for stream import subject {from:?} to {to:?}: {e}"
            )
        })?;
    }
    let exporter_name = accounts[exporter].name.clone();
    let imports = &mut accounts[importer].stream_imports;
    if imports
        .iter()
        .any(|i| i.account == exporter_name && i.from == from)
    {
        return Err("stream import already exists".to_string());
    }
    imports.push(StreamImport {
        account: exporter_name,
        from: from.to_string(),
        to,
    });
    Ok(())
}

/// Adds a service import: requests on `from` in `importer` go to `to` in
/// `exporter`.
pub fn add_service_import(
    accounts: &mut [AccountConfig],
    importer: usize,
    exporter: usize,
    from: &str,
    to: &str,
) -> Result<(), String> {
    let to = if to.is_empty() { from } else { to };
    if !subject::is_valid_subject(from.as_bytes()) || !subject::is_valid_subject(to.as_bytes()) {
        return Err("invalid subject".to_string());
    }
    let importer_name = accounts[importer].name.clone();
    if !accounts[exporter].service_import_authorized(&importer_name, to) {
        return Err("service import not authorized".to_string());
    }
    let mut visited = vec![importer_name];
    if service_cycle(accounts, exporter, from, &mut visited)? {
        return Err("import forms a cycle".to_string());
    }
    if let Some(dup) = accounts[importer]
        .service_imports
        .iter()
        .find(|i| i.from == from)
    {
        return Err(format!(
            "duplicate service import subject {from:?}, previously used in import for account {:?}, subject {:?}",
            dup.account, dup.to
        ));
    }
    if !subject::is_literal(to.as_bytes()) && to != from {
        crate::mapping::Transform::new(to, &tokenize(from)).map_err(|e| {
            format!(
                "failed to create mapping transform for service import subject {from:?} to {to:?}: {e}"
            )
        })?;
    }
    let exporter_name = accounts[exporter].name.clone();
    accounts[importer].service_imports.push(ServiceImport {
        account: exporter_name,
        from: from.to_string(),
        to: to.to_string(),
    });
    Ok(())
}

fn index_of(accounts: &[AccountConfig], name: &str) -> Option<usize> {
    accounts.iter().position(|a| a.name == name)
}

/// nats-server's `checkServiceImportsForCycles`, run in `account`.
fn service_cycle(
    accounts: &[AccountConfig],
    account: usize,
    from: &str,
    visited: &mut Vec<String>,
) -> Result<bool, String> {
    if visited.len() >= MAX_CYCLE_SEARCH_DEPTH {
        return Err("search cycle depth exhausted".to_string());
    }
    let mut from = from.to_string();
    for si in &accounts[account].service_imports {
        if !subjects_collide(&from, &si.to) {
            continue;
        }
        if visited.contains(&si.account) {
            return Ok(true);
        }
        let name = accounts[account].name.clone();
        if !visited.contains(&name) {
            visited.push(name);
        }
        if subset(si.from.as_bytes(), from.as_bytes()) {
            from.clone_from(&si.from);
        }
        if let Some(next) = index_of(accounts, &si.account)
            && service_cycle(accounts, next, &from, visited)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// nats-server's `checkStreamImportsForCycles`, run in `account`.
fn stream_cycle(
    accounts: &[AccountConfig],
    account: usize,
    to: &str,
    visited: &mut Vec<String>,
) -> Result<bool, String> {
    if visited.len() >= MAX_CYCLE_SEARCH_DEPTH {
        return Err("search cycle depth exhausted".to_string());
    }
    let acc = &accounts[account];
    let exported = acc
        .stream_exports
        .iter()
        .any(|e| subset(to.as_bytes(), e.subject.as_bytes()));
    if !exported {
        return Ok(false);
    }
    let mut to = to.to_string();
    for si in &acc.stream_imports {
        if !subjects_collide(&to, &si.to) {
            continue;
        }
        if visited.contains(&si.account) {
            return Ok(true);
        }
        if !visited.contains(&acc.name) {
            visited.push(acc.name.clone());
        }
        if subset(si.to.as_bytes(), to.as_bytes()) {
            to.clone_from(&si.to);
        }
        if let Some(next) = index_of(accounts, &si.account)
            && stream_cycle(accounts, next, &to, visited)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether some subject could match both `a` and `b` (nats-server's
/// `SubjectsCollide`).
pub fn subjects_collide(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let ta: Vec<&str> = a.split('.').collect();
    let tb: Vec<&str> = b.split('.').collect();
    let wild = |t: &[&str]| (t.contains(&"*"), t.last() == Some(&">"));
    let (pa, fa) = wild(&ta);
    let (pb, fb) = wild(&tb);
    let (la, lb) = (!(pa || fa), !(pb || fb));
    if la && lb {
        return false;
    }
    if la {
        return subset(a.as_bytes(), b.as_bytes());
    }
    if lb {
        return subset(b.as_bytes(), a.as_bytes());
    }
    if !fa && !fb && ta.len() != tb.len() {
        return false;
    }
    if (ta.len() < tb.len() && !fa) || (tb.len() < ta.len() && !fb) {
        return false;
    }
    ta.iter()
        .zip(&tb)
        .all(|(x, y)| matches!(*x, "*" | ">") || matches!(*y, "*" | ">") || x == y)
}

/// Numbers the `*` tokens of a destination as `$1`, `$2`, ... (nats-server's
/// `transformTokenize`), so a mapping can place them.
pub fn tokenize(subject: &str) -> String {
    let mut n = 0;
    subject
        .split('.')
        .map(|t| {
            if t == "*" {
                n += 1;
                format!("${n}")
            } else {
                t.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The reverse of [`tokenize`]: `$n` tokens back to `*`.
pub fn untokenize(subject: &str) -> String {
    subject
        .split('.')
        .map(|t| {
            if t.len() > 1 && t.starts_with('$') && t[1..].bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                t
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Vec<AccountConfig> {
        vec![AccountConfig::new("A"), AccountConfig::new("B")]
    }

    #[test]
    fn stream_imports_need_an_export() {
        let mut accs = two();
        assert_eq!(
            add_stream_import(&mut accs, 1, 0, "x.>", "p", ""),
            Err("stream import not authorized".into())
        );
        let auth = ExportAuth {
            approved: vec!["B".into()],
            ..ExportAuth::default()
        };
        accs[0].add_stream_export("x.>", auth).unwrap();
        add_stream_import(&mut accs, 1, 0, "x.y", "p", "").unwrap();
        assert_eq!(accs[1].stream_imports[0].to, "p.x.y");
        assert_eq!(
            add_stream_import(&mut accs, 1, 0, "x.y", "q", ""),
            Err("stream import already exists".into())
        );
        assert_eq!(
            add_stream_import(&mut accs, 1, 0, "x.z", "p.*", ""),
            Err("stream import prefix can not contain wildcard tokens".into())
        );
        // Not approved for another account.
        accs.push(AccountConfig::new("C"));
        assert_eq!(
            add_stream_import(&mut accs, 2, 0, "x.y", "", ""),
            Err("stream import not authorized".into())
        );
        // A wider subject than exported is not covered.
        assert_eq!(
            add_stream_import(&mut accs, 1, 0, ">", "", ""),
            Err("stream import not authorized".into())
        );
    }

    #[test]
    fn service_cycles_are_refused() {
        let mut accs = two();
        for a in &mut accs {
            a.add_service_export("q", ExportAuth::default(), ResponseType::Singleton, None)
                .unwrap();
        }
        add_service_import(&mut accs, 0, 1, "q", "q").unwrap();
        assert_eq!(
            add_service_import(&mut accs, 1, 0, "q", "q"),
            Err("import forms a cycle".into())
        );
        // Another subject is not a cycle.
        accs[0]
            .add_service_export("r", ExportAuth::default(), ResponseType::Stream, None)
            .unwrap();
        add_service_import(&mut accs, 1, 0, "r", "r").unwrap();
        assert_eq!(
            add_service_import(&mut accs, 1, 0, "r", "r"),
            Err(
                "duplicate service import subject \"r\", previously used in import for account \"A\", subject \"r\""
                    .into()
            )
        );
    }

    #[test]
    fn stream_cycles_are_refused() {
        let mut accs = two();
        for a in &mut accs {
            a.add_stream_export("q", ExportAuth::default()).unwrap();
        }
        add_stream_import(&mut accs, 0, 1, "q", "", "").unwrap();
        assert_eq!(
            add_stream_import(&mut accs, 1, 0, "q", "", ""),
            Err("import forms a cycle".into())
        );
    }

    #[test]
    fn token_position() {
        let mut a = AccountConfig::new("A");
        let auth = ExportAuth {
            account_token_position: 2,
            ..ExportAuth::default()
        };
        assert_eq!(
            a.add_stream_export("x.y", auth.clone()),
            Err("invalid subject".into())
        );
        a.add_stream_export("x.*", auth).unwrap();
        assert!(a.stream_import_authorized("B", "x.B"));
        assert!(!a.stream_import_authorized("B", "x.C"));
    }

    #[test]
    fn collisions() {
        assert!(subjects_collide("a.b", "a.*"));
        assert!(subjects_collide("a.*", "*.b"));
        assert!(subjects_collide("a.>", "a.b.c"));
        assert!(!subjects_collide("a.*", "a.b.c"));
        assert!(!subjects_collide("a.b", "a.c"));
        assert_eq!(tokenize("p.*.x.*"), "p.$1.x.$2");
        assert_eq!(untokenize("p.$1.x.$2"), "p.*.x.*");
    }
}
