//! What happened in a run, as the simulated clients saw it. The checkers
//! read only this.

/// Index of a simulated client.
pub type ClientId = usize;

/// A message id, unique in a run (carried in the payload).
pub type MsgId = u64;

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// The client's connection number `epoch` saw the server's INFO.
    Connected { client: ClientId, epoch: u32 },
    /// The connection ended (the server closed it, or the client crashed).
    Disconnected {
        client: ClientId,
        epoch: u32,
        crashed: bool,
    },
    Sub {
        client: ClientId,
        epoch: u32,
        sid: u32,
        pattern: String,
        queue: Option<String>,
        max: Option<u64>,
    },
    /// A publish. `complete` is false when the client crashed part-way
    /// through sending it: it must never be delivered.
    Pub {
        client: ClientId,
        epoch: u32,
        msg: MsgId,
        subject: String,
        seq: u64,
        reply: Option<String>,
        complete: bool,
        final_round: bool,
    },
    Recv {
        client: ClientId,
        epoch: u32,
        sid: u32,
        subject: String,
        reply: Option<String>,
        /// The message id in the payload (`None` for a status or a reply).
        msg: Option<MsgId>,
        /// A reply to request `answers` (payload `a<id>`).
        answers: Option<MsgId>,
        no_responders: bool,
    },
    Err {
        client: ClientId,
        epoch: u32,
        text: String,
    },
    /// Every client settled and the final round began.
    FinalRound,
}

/// A timestamped event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at_ns: u64,
    pub ev: Ev,
}

/// The run's history.
#[derive(Debug, Default)]
pub struct History {
    pub entries: Vec<Entry>,
}

impl History {
    pub fn push(&mut self, at_ns: u64, ev: Ev) {
        self.entries.push(Entry { at_ns, ev });
    }
}
