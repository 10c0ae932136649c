//! The system account's services: requests on `$SYS.REQ.…` subjects,
//! answered by handlers inside the core. Each service is an internal
//! subscription (see the module above); a request reaches its handler
//! through the sublist like any message, and the answer is published as
//! the server on the request's reply subject.

use serde_json::{Value, json};

use super::options::{self, Field, Options};
use super::{AccountEndpoint, InternalMsg, Service};
use crate::server::monitor::Query;
use crate::server::{AccountId, LogLevel, Server};
use crate::time::Now;

/// What a service answers.
enum Answer {
    Data(Value),
    /// The endpoint refused the options (`code` 500, `data` null).
    Failed(String),
    /// Not for this server: no answer at all.
    Skip,
}

/// The per-server monitoring services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerEndpoint {
    Statsz,
    Varz,
    Connz,
    Subsz,
    Routez,
    Gatewayz,
    Leafz,
    Accountz,
    Jsz,
    Healthz,
}

impl ServerEndpoint {
    pub(super) const ALL: [(ServerEndpoint, &'static str); 10] = [
        (ServerEndpoint::Subsz, "SUBSZ"),
        (ServerEndpoint::Routez, "ROUTEZ"),
        (ServerEndpoint::Gatewayz, "GATEWAYZ"),
        (ServerEndpoint::Leafz, "LEAFZ"),
        (ServerEndpoint::Accountz, "ACCOUNTZ"),
        (ServerEndpoint::Jsz, "JSZ"),
        (ServerEndpoint::Statsz, "STATSZ"),
        (ServerEndpoint::Varz, "VARZ"),
        (ServerEndpoint::Connz, "CONNZ"),
        (ServerEndpoint::Healthz, "HEALTHZ"),
    ];

    /// The Go options type (named in decoding errors) and its fields.
    fn options(self) -> (&'static str, &'static [Field]) {
        match self {
            ServerEndpoint::Statsz => ("StatszEventOptions", options::NONE),
            ServerEndpoint::Varz => ("VarzEventOptions", options::NONE),
            ServerEndpoint::Connz => ("ConnzEventOptions", options::CONNZ),
            ServerEndpoint::Subsz => ("SubszEventOptions", options::SUBSZ),
            ServerEndpoint::Routez => ("RoutezEventOptions", options::ROUTEZ),
            ServerEndpoint::Gatewayz => ("GatewayzEventOptions", options::GATEWAYZ),
            ServerEndpoint::Leafz => ("LeafzEventOptions", options::LEAFZ),
            ServerEndpoint::Accountz => ("AccountzEventOptions", options::ACCOUNTZ),
            ServerEndpoint::Jsz => ("JszEventOptions", options::JSZ),
            ServerEndpoint::Healthz => ("HealthzEventOptions", options::HEALTHZ),
        }
    }
}

impl Server {
    /// Runs the handler of one message an internal subscription took.
    pub(super) fn serve(&mut self, service: Service, m: &InternalMsg) {
        let (reply, body) = (m.reply.as_deref(), m.body());
        match service {
            Service::Statsz => self.statsz_request(reply, body),
            Service::Server(ServerEndpoint::Statsz) => self.statsz_request(reply, body),
            Service::Server(endpoint) => {
                let (type_name, fields) = endpoint.options();
                self.z_request(m.account, reply, body, (type_name, fields), |s, now, o| {
                    s.server_data(endpoint, now, o)
                });
            }
            Service::Account(endpoint) => {
                // `$SYS.REQ.ACCOUNT.<acc>.<endpoint>`: the account is the
                // fourth token (`PING` included, as nats-server has it).
                let acc = m.subject.split(|&b| b == b'.').nth(3).unwrap_or_default();
                let acc = String::from_utf8_lossy(acc).into_owned();
                self.account_request(reply, body, acc, endpoint);
            }
            Service::Imported(endpoint) => {
                // The importing account asks about itself; the answer goes
                // back into that account.
                let acc = self.accounts[m.account.0 as usize].name.clone();
                match endpoint {
                    AccountEndpoint::Connz => {
                        let (type_name, fields) = ("ConnzEventOptions", options::CONNZ);
                        self.z_request(m.account, reply, body, (type_name, fields), |s, now, o| {
                            let mut o = o.query.clone();
                            o.insert("acc".into(), acc);
                            endpoint_answer(s.connz(now, &Query::from_pairs(o)))
                        });
                    }
                    AccountEndpoint::Statz => {
                        let fields = ("AccountStatzEventOptions", options::ACCOUNT_STATZ);
                        self.z_request(m.account, reply, body, fields, |s, now, o| {
                            s.account_statz(now, Some(std::slice::from_ref(&acc)), o)
                        });
                    }
                    _ => unreachable!("only CONNZ and STATZ are imported"),
                }
            }
            Service::AccountPingStatz => {
                let fields = ("AccountStatzEventOptions", options::ACCOUNT_STATZ);
                self.z_request(m.account, reply, body, fields, |s, now, o| {
                    let names = o.list("accounts").to_vec();
                    s.account_statz(now, (!names.is_empty()).then_some(&names[..]), o)
                });
            }
            Service::DebugSubscribers => self.debug_subscribers(m),
            Service::ClaimsUpdate => self.claims_update(m),
            Service::Cluster => {}
            Service::JsApi
            | Service::JsStream(_)
            | Service::JsAck(_)
            | Service::JsFlow(_)
            | Service::JsSnapshotAck(_)
            | Service::JsRestore(_) => {
                unreachable!("JetStream's messages are served by the JetStream module")
            }
        }
    }

    /// `account_statz` for `names` (every account for `None`); nothing
    /// when no account qualifies and unused ones were not asked for.
    fn account_statz(&self, now: Now, names: Option<&[String]>, o: &Options) -> Answer {
        let unused = o.get("unused") == "true";
        let list = self.account_stats(names, unused);
        if list.is_empty() && !unused {
            return Answer::Skip;
        }
        Answer::Data(self.stamped(now, json!({ "account_statz": list })))
    }

    /// `$SYS.REQ.ACCOUNT.<acc>.<name>`.
    fn account_request(
        &mut self,
        reply: Option<&[u8]>,
        body: &[u8],
        acc: String,
        endpoint: AccountEndpoint,
    ) {
        let Some(sys) = self.system_account else {
            return;
        };
        match endpoint {
            AccountEndpoint::Connz => self.z_request(
                sys,
                reply,
                body,
                ("ConnzEventOptions", options::CONNZ),
                |s, now, o| {
                    let mut o = o.query.clone();
                    o.insert("acc".into(), acc);
                    endpoint_answer(s.connz(now, &Query::from_pairs(o)))
                },
            ),
            AccountEndpoint::Subsz => self.z_request(
                sys,
                reply,
                body,
                ("SubszEventOptions", options::SUBSZ),
                |s, now, o| {
                    let mut o = o.query.clone();
                    o.insert("subs".into(), "true".into());
                    o.insert("acc".into(), acc);
                    endpoint_answer(s.subsz(now, &Query::from_pairs(o)))
                },
            ),
            AccountEndpoint::Leafz => self.z_request(
                sys,
                reply,
                body,
                ("LeafzEventOptions", options::LEAFZ),
                |s, now, _| Answer::Data(s.leafz(now, false)),
            ),
            AccountEndpoint::Jsz => self.z_request(
                sys,
                reply,
                body,
                ("JszEventOptions", options::JSZ),
                |_, _, _| Answer::Failed("jetstream not enabled".into()),
            ),
            AccountEndpoint::Info => self.z_request(
                sys,
                reply,
                body,
                ("AccInfoEventOptions", options::NONE),
                |s, now, _| match s.account_id(&acc) {
                    Some(id) => {
                        let is_system = Some(id) == s.system_account;
                        Answer::Data(s.account_detail(now, id, is_system))
                    }
                    None => Answer::Failed(format!("Account {acc} does not exist")),
                },
            ),
            AccountEndpoint::Statz => self.z_request(
                sys,
                reply,
                body,
                ("AccountStatzEventOptions", options::ACCOUNT_STATZ),
                |s, now, o| {
                    let unused = o.get("unused") == "true";
                    let list = s.account_stats(Some(std::slice::from_ref(&acc)), unused);
                    if list.is_empty() && !unused {
                        return Answer::Skip;
                    }
                    Answer::Data(s.stamped(now, json!({ "account_statz": list })))
                },
            ),
            AccountEndpoint::Conns => self.conns_request(reply, body, &acc),
        }
    }

    /// `$SYS.REQ.ACCOUNT.<acc>.CONNS`: the account's connection counts,
    /// when it has local connections.
    fn conns_request(&mut self, reply: Option<&[u8]>, body: &[u8], acc: &str) {
        let Some(reply) = reply else {
            return;
        };
        if !body.is_empty() {
            // `{"acc":"<name>"}`, which must name the subject's account.
            let named = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("acc").and_then(Value::as_str).map(str::to_owned));
            if named.as_deref() != Some(acc) {
                return;
            }
        }
        let Some(id) = self.account_id(acc) else {
            return;
        };
        if self.accounts[id.0 as usize].num_conns == 0 {
            return;
        }
        let Some(Value::Object(stats)) = self
            .account_stats(Some(&[acc.to_string()]), true)
            .into_iter()
            .next()
        else {
            return;
        };
        let event = self.event_header("io.nats.server.advisory.v1.account_connections");
        let mut m = event;
        m.extend(stats);
        let body = Value::Object(m).to_string();
        self.publish_internal(self.system_account, reply, body.as_bytes());
    }

    /// `$SYS.DEBUG.SUBSCRIBERS`: how many clients subscribe to the subject
    /// in the body (optionally in the queue group after it), in the
    /// requester's account.
    fn debug_subscribers(&mut self, m: &InternalMsg) {
        let Some(reply) = m.reply.as_deref() else {
            return;
        };
        let text = String::from_utf8_lossy(m.body()).trim().to_string();
        let mut args = text.split(' ');
        let subject = args.next().unwrap_or_default().as_bytes();
        let queue = args.next().map(str::as_bytes);
        let n = self.count_subscribers(m.account, subject, queue);
        self.publish_internal(Some(m.account), reply, n.to_string().as_bytes());
    }

    /// Subscriptions of clients in `account` that a message on `subject`
    /// (or, with a wildcard, on any subject it covers) would reach; with a
    /// queue, only that queue group's members.
    fn count_subscribers(&self, account: AccountId, subject: &[u8], queue: Option<&[u8]>) -> usize {
        self.subs
            .iter()
            .filter(|(_, s)| s.account == account && s.shadow.is_none())
            .filter(|(_, s)| {
                self.conns
                    .get(s.conn.0)
                    .is_some_and(|c| !c.kind.is_internal())
            })
            .filter(|(_, s)| match queue {
                Some(q) => s.queue.as_deref() == Some(q),
                None => true,
            })
            .filter(|(_, s)| {
                if crate::subject::is_literal(subject) {
                    crate::subject::matches(&s.subject, subject)
                } else {
                    crate::subject::is_subset_match(&s.subject, subject)
                }
            })
            .count()
    }

    /// `$SYS.REQ.ACCOUNT.<acc>.CLAIMS.UPDATE` and
    /// `$SYS.ACCOUNT.<acc>.CLAIMS.UPDATE`: an account JWT to apply. Without
    /// operator mode (natrix has none yet) no update can apply: the answer
    /// says why.
    fn claims_update(&mut self, m: &InternalMsg) {
        let Some(reply) = m.reply.as_deref() else {
            return;
        };
        let acc = m
            .subject
            .split(|&b| b == b'.')
            .rev()
            .nth(2)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_default();
        let body = m.body();
        let description = if body.is_empty() {
            "jwt update error - request body is empty".to_string()
        } else if body.split(|&b| b == b'.').count() != 3 {
            "jwt update resulted in error - expected 3 chunks".to_string()
        } else {
            "jwt update resulted in error - not in operator mode".to_string()
        };
        let error = json!({ "account": acc, "code": 500, "description": description });
        let header = self.server_header();
        let body = format!("{{\"error\":{error},\"server\":{header}}}");
        self.publish_internal(self.system_account, reply, body.as_bytes());
    }

    fn server_data(&mut self, endpoint: ServerEndpoint, now: Now, o: &Options) -> Answer {
        let q = Query::from_pairs(o.query.clone());
        match endpoint {
            ServerEndpoint::Varz => {
                let process = self.system.process.clone();
                Answer::Data(self.varz(now, &process))
            }
            ServerEndpoint::Connz => endpoint_answer(self.connz(now, &q)),
            ServerEndpoint::Subsz => endpoint_answer(self.subsz(now, &q)),
            ServerEndpoint::Routez => Answer::Data(self.routez(now, false)),
            ServerEndpoint::Gatewayz => Answer::Data(self.gatewayz(now)),
            ServerEndpoint::Leafz => Answer::Data(self.leafz(now, false)),
            ServerEndpoint::Accountz => endpoint_answer(self.accountz(now, &q)),
            ServerEndpoint::Jsz => Answer::Data(self.jsz(now, Default::default())),
            ServerEndpoint::Healthz => match self.healthz(&q) {
                Ok((v, warning)) => {
                    if let Some(w) = warning {
                        self.log(LogLevel::Warn, w);
                    }
                    Answer::Data(v)
                }
                Err(bad) => endpoint_answer(Err(bad)),
            },
            ServerEndpoint::Statsz => unreachable!("statsz has its own request"),
        }
    }

    /// nats-server's `zReq`: no reply, no answer; options that do not
    /// decode get a 400, options for another server nothing, an endpoint
    /// error a 500.
    fn z_request(
        &mut self,
        account: AccountId,
        reply: Option<&[u8]>,
        body: &[u8],
        (type_name, fields): (&str, &[Field]),
        answer: impl FnOnce(&mut Self, Now, &Options) -> Answer,
    ) {
        let Some(reply) = reply else {
            return;
        };
        let now = self.now;
        let response = match options::decode(type_name, body, fields) {
            Err(e) => Some(format!(",\"error\":{}", api_error(400, &e))),
            Ok(o) if o.filtered_out(&self.info.server_name, &self.opts.host) => None,
            Ok(o) => match answer(self, now, &o) {
                Answer::Data(v) => Some(format!(",\"data\":{v}")),
                Answer::Failed(e) => {
                    Some(format!(",\"data\":null,\"error\":{}", api_error(500, &e)))
                }
                Answer::Skip => None,
            },
        };
        if let Some(rest) = response {
            let header = self.server_header();
            let body = format!("{{\"server\":{header}{rest}}}");
            self.publish_internal(Some(account), reply, body.as_bytes());
        }
    }

    /// `$SYS.REQ.SERVER.PING` and `…STATSZ`: the statsz message, on the
    /// reply subject or, without one, on the server's statsz subject.
    fn statsz_request(&mut self, reply: Option<&[u8]>, body: &[u8]) {
        let subject = match reply {
            Some(r) => r.to_vec(),
            None => self.statsz_subject().into_bytes(),
        };
        match options::decode("StatszEventOptions", body, options::NONE) {
            Err(e) => {
                let header = self.server_header();
                let body = format!("{{\"server\":{header},\"error\":{}}}", api_error(400, &e));
                self.publish_internal(self.system_account, &subject, body.as_bytes());
            }
            Ok(o) if o.filtered_out(&self.info.server_name, &self.opts.host) => {}
            Ok(_) => self.send_statsz(&subject),
        }
    }
}

fn endpoint_answer(r: Result<Value, crate::server::MonitorResponse>) -> Answer {
    match r {
        Ok(v) => Answer::Data(v),
        Err(bad) => Answer::Failed(String::from_utf8_lossy(&bad.body).into_owned()),
    }
}

fn api_error(code: u16, description: &str) -> String {
    json!({ "code": code, "description": description }).to_string()
}
