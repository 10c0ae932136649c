//! What the lock-step and turmoil harnesses share: drawing a seed's setup
//! (clients, their users and permissions, the fault schedule), the phases
//! of a run (faults, settling, the final round), and turning what happened
//! into a checked result. Each harness only moves bytes and time.

use std::collections::BTreeMap;

use natrix_core::Options;
use natrix_core::account::AccountConfig;
use natrix_core::auth::{Auth, Permissions, SubjectPermission, User, Users};
use natrix_core::config::Mutation;
use rand_core::Rng;

use crate::check::{self, Violation};
use crate::client::{
    JS_STREAM, JsPlan, JsRngs, KV_STREAM, KvPlan, Perms, Plan, PullPlan, SimClient, SubPlan,
    WORK_CONSUMER, WORK_STREAM, kv_stream_body, work_stream_body,
};
use crate::faults::{Fault, FaultMix};
use crate::history::{ClientId, Ev, History};
use crate::run::SeedResult;
use crate::seed;
use crate::world::Outcome;

/// Subjects a seed with users may deny (never a pattern a client
/// subscribes to literally, so a denial filters deliveries to wildcard
/// subscriptions instead of refusing a subscription).
pub const DENIABLE: [&str; 3] = ["a.2", "b.1", "b.x.y"];

/// The accounts of a seed that splits its users.
const ACCOUNTS: [&str; 2] = ["A", "B"];

/// Where a run stands: faults, healing, the final round, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Faults,
    Settling,
    Final,
    Done,
}

/// A seed's clients, users and faults. Every part draws from its own
/// labelled generator, so a new draw in one never shifts the others.
pub struct Setup {
    pub clients: Vec<SimClient>,
    pub mix: FaultMix,
    pub schedule: Vec<(u64, Fault)>,
    /// The users every client logs in as, when the seed configures them.
    pub users: Option<Users>,
    /// Accounts the users are split between (none: all in the global one).
    pub accounts: Vec<AccountConfig>,
}

impl Setup {
    /// Draws `2..2 + spread` clients and, with `faults`, a fault schedule
    /// over `[0, fault_phase_ns)`.
    pub fn draw(s: u64, spread: u32, faults: bool, fault_phase_ns: u64) -> Setup {
        let n_clients = 2 + (seed::rng(s, "shape", 0).next_u32() % spread) as usize;
        let with_users = seed::rng(s, "users", 0).next_u32().is_multiple_of(3);
        // Half the seeds with users split them between two isolated accounts.
        let with_accounts = with_users && seed::rng(s, "accounts", 0).next_u32().is_multiple_of(2);
        let mut users = Users::default();
        let clients: Vec<SimClient> = (0..n_clients)
            .map(|i| {
                let mut plan = Plan::draw(&mut seed::rng(s, "plan", i as u64));
                if with_users {
                    plan.perms = draw_perms(&mut seed::rng(s, "perms", i as u64));
                    plan.perms.account = with_accounts.then_some(ACCOUNTS[i % 2]);
                    users.by_name.insert(format!("u{i}"), user(&plan.perms));
                }
                let workload = seed::rng(s, "client", i as u64);
                SimClient::new(i, plan, workload, seed::rng(s, "backoff", i as u64))
            })
            .collect();
        let mix = if faults {
            FaultMix::draw(&mut seed::rng(s, "mix", 0))
        } else {
            FaultMix::none()
        };
        let schedule = mix.schedule(&mut seed::rng(s, "faults", 0), n_clients, fault_phase_ns);
        Setup {
            clients,
            mix,
            schedule,
            users: with_users.then_some(users),
            accounts: if with_accounts {
                ACCOUNTS.map(AccountConfig::new).to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// Gives the JetStream workload to the clients in client 0's account
    /// (a stream lives in one account): client 0 creates the stream and
    /// publishes, and in half the seeds creates a durable consumer and
    /// pulls from it; the others publish or not as drawn. Returns the
    /// stream's storage key.
    ///
    /// An eighth of the JetStream seeds also run a work queue: client 0
    /// creates stream `W` (work-queue retention) and publishes to it, and
    /// it and the next client in its account pull from its one consumer.
    /// Another eighth run a key-value workload: client 0 creates stream
    /// `K` (one, two or five revisions kept per key) and puts to its keys, and
    /// every client in its account reads the keys' latest revisions.
    pub fn join_jetstream(&mut self, s: u64) -> JsSeed {
        let account = self.clients[0].plan.perms.account;
        // Half the JetStream seeds pull: the others keep their pace.
        let pulls = seed::rng(s, "pulls", 0).next_u32().is_multiple_of(2);
        let mut more = seed::rng(s, "js-streams", 0);
        let roll = more.next_u32();
        let work_queue = roll % 8 == 2;
        let kv_history = (roll % 8 == 3).then(|| [1, 2, 5, 5][(roll / 8 % 4) as usize]);
        let mut work_pullers = 0;
        let mut seed_plan = JsSeed {
            key: storage_key(account.unwrap_or("$G"), JS_STREAM),
            restored_key: storage_key(account.unwrap_or("$G"), crate::client::RESTORED_STREAM),
            pulls: None,
            work_queue,
            kv: kv_history.is_some(),
        };
        for (i, client) in self.clients.iter_mut().enumerate() {
            if client.plan.perms.account != account {
                continue;
            }
            let mut rng = seed::rng(s, "js", i as u64);
            let mut plan = JsPlan::draw(&mut rng, i == 0);
            // Half the seeds store stream S's messages compressed.
            plan.compress = roll / 32 % 2 == 1;
            // Half back stream S up and restore it, once, a second or two in.
            if i == 0 && roll / 64 % 2 == 1 {
                plan.backup_at_ns = Some(1_000_000_000 + u64::from(roll / 128 % 1000) * 1_000_000);
            }
            let mut pull_rng = seed::rng(s, "consumer", i as u64);
            let mut streams_rng = seed::rng(s, "js-stream-work", i as u64);
            let mut rngs = Vec::new();
            if i == 0 && pulls {
                let mut pull = PullPlan::draw(&mut pull_rng);
                pull.draw_limits(&mut seed::rng(s, "consumer-limits", 0));
                seed_plan.pulls = Some(pull.clone());
                plan.pulls.push(pull);
                rngs.push(pull_rng);
            }
            if work_queue {
                if i == 0 {
                    plan.streams.push((WORK_STREAM, work_stream_body()));
                    plan.work_every_ns =
                        Some(40_000_000 + u64::from(streams_rng.next_u32() % 160) * 1_000_000);
                }
                if work_pullers < 2 {
                    work_pullers += 1;
                    let mut rng = seed::rng(s, "work-consumer", i as u64);
                    let mut pull = PullPlan::draw(&mut rng);
                    (pull.stream, pull.consumer) = (WORK_STREAM, WORK_CONSUMER);
                    plan.pulls.push(pull);
                    rngs.push(rng);
                }
            }
            if let Some(history) = kv_history {
                if i == 0 {
                    plan.streams.push((KV_STREAM, kv_stream_body(history)));
                }
                plan.kv = Some(KvPlan::draw(&mut streams_rng, i == 0));
            }
            let rngs = JsRngs {
                js: rng,
                pulls: rngs,
                streams: streams_rng,
            };
            client.join_jetstream(plan, rngs);
        }
        // A few seeds without the pull consumer share a partitioned one.
        if !pulls && seed::rng(s, "partitions", 0).next_u32().is_multiple_of(3) {
            crate::client::join_group(&mut self.clients, s);
        } else if !pulls {
            // The others a consumer with a priority group.
            crate::client::join_priority_group(&mut self.clients, s);
        }
        seed_plan
    }

    /// The server's options: `base` plus the seed's users and the planted
    /// bug, if any.
    pub fn options(&self, base: Options, mutation: Option<Mutation>) -> Options {
        Options {
            auth: self.users.clone().map_or(Auth::None, Auth::Users),
            accounts: self.accounts.clone(),
            mutation,
            ..base
        }
    }
}

/// The JetStream workloads a seed drew.
#[derive(Debug, Clone)]
pub struct JsSeed {
    /// Stream `S`'s storage key, and that of `SR` (its restored backup).
    pub key: String,
    pub restored_key: String,
    /// The plan of the client that pulls from `S`'s consumer, if one does.
    pub pulls: Option<PullPlan>,
    pub work_queue: bool,
    pub kv: bool,
}

/// Where the core stores stream `stream` of `account`: both names
/// percent-encoded (all but `[A-Za-z0-9_-]`), joined by `.`.
pub fn storage_key(account: &str, stream: &str) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!("{}.{}", encode(account), encode(stream))
}

fn draw_perms(rng: &mut rand_chacha::ChaCha8Rng) -> Perms {
    let mut deny = || {
        let n = rng.next_u32() as usize;
        n.is_multiple_of(2)
            .then(|| DENIABLE[(n / 2) % DENIABLE.len()])
    };
    Perms {
        login: true,
        account: None,
        publish_deny: deny(),
        subscribe_deny: deny(),
    }
}

fn user(perms: &Perms) -> User {
    let deny = |d: Option<&str>| {
        d.map(|d| SubjectPermission {
            allow: None,
            deny: vec![d.to_string()],
        })
    };
    User {
        password: "p".to_string(),
        permissions: Some(Permissions {
            publish: deny(perms.publish_deny),
            subscribe: deny(perms.subscribe_deny),
            response: None,
        }),
        account: perms.account.map(str::to_string),
        ..User::default()
    }
}

/// The phases of a run and what the final round began with.
#[derive(Debug)]
pub struct Phases {
    pub phase: Phase,
    /// Live subscriptions when the final round began: (client, epoch, sid, plan).
    pub final_subs: Vec<(ClientId, u32, u32, SubPlan)>,
    /// Responders connected and settled when the final round began.
    pub final_responders: Vec<ClientId>,
    pub converged: bool,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            phase: Phase::Faults,
            final_subs: Vec::new(),
            final_responders: Vec::new(),
            converged: false,
        }
    }
}

impl Phases {
    /// Faults end: nobody counts as settled until a fresh round trip.
    /// Returns the PING each client must send (empty when not connected).
    pub fn heal(&mut self, now: u64, clients: &mut [SimClient]) -> Vec<Vec<u8>> {
        self.phase = Phase::Settling;
        clients.iter_mut().map(|c| c.resettle(now)).collect()
    }

    /// While settling: when every client is back and settled, records the
    /// live subscriptions and responders and begins the final round.
    pub fn try_final(&mut self, now: u64, clients: &[SimClient], history: &mut History) -> bool {
        if self.phase != Phase::Settling || !clients.iter().all(|c| c.is_connected() && c.settled) {
            return false;
        }
        self.converged = true;
        self.phase = Phase::Final;
        history.push(now, Ev::FinalRound);
        for (c, client) in clients.iter().enumerate() {
            for (sid, plan) in client.live_subs() {
                self.final_subs.push((c, client.epoch, sid, plan));
            }
            if client.plan.responder.is_some() {
                self.final_responders.push(c);
            }
        }
        true
    }
}

/// Checks a run's outcome (plus what the harness itself saw go wrong).
pub fn result(seed: u64, outcome: Outcome, extra: Vec<Violation>) -> SeedResult {
    let mut violations = check::check(&outcome);
    violations.extend(extra);
    let messages = outcome
        .history
        .entries
        .iter()
        .filter(|e| matches!(e.ev, Ev::Recv { .. }))
        .count() as u64;
    SeedResult {
        seed,
        violations,
        trace_hash: outcome.trace_hash,
        steps: outcome.steps,
        sim_ns: outcome.sim_ns,
        messages,
        trace: outcome.trace,
        counts: outcome.counts,
    }
}

/// Counts one event of `kind`.
pub fn count(counts: &mut BTreeMap<&'static str, u64>, kind: &'static str) {
    *counts.entry(kind).or_default() += 1;
}
