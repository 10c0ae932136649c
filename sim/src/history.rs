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
        /// The digest of the headers and payload sent.
        digest: u64,
        /// The publisher's permissions deny this subject: the server must
        /// drop it and answer with a permissions violation.
        denied: bool,
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
        /// The digest of the headers and payload received.
        digest: u64,
    },
    /// The client sent `UNSUB sid` (and a PING right behind it).
    Unsub {
        client: ClientId,
        epoch: u32,
        sid: u32,
    },
    /// The PONG to the PING behind `UNSUB sid` arrived: the server has
    /// processed the UNSUB, so nothing more may arrive on `sid`.
    Unsubscribed {
        client: ClientId,
        epoch: u32,
        sid: u32,
    },
    Err {
        client: ClientId,
        epoch: u32,
        text: String,
    },
    /// Every client settled and the final round began.
    FinalRound,
    /// A JetStream publish was acknowledged (boxed: it is big and rare).
    JsAck(Box<JsAck>),
    /// A JetStream request was answered with an error, or a publish
    /// acknowledged with one (counted; not a violation by itself).
    JsError { client: ClientId, text: String },
    /// The server confirmed a restore of stream `S`'s snapshot, asked for
    /// at `snapshot_asked_ns`, as stream `SR` up to `last_seq`.
    JsRestored {
        client: ClientId,
        snapshot_asked_ns: u64,
        last_seq: u64,
    },
    /// The JetStream consumer delivered a message to the client that
    /// pulls (boxed: it is big).
    JsDelivery(Box<JsDelivery>),
    /// A client that pulls sent a double ack of sequence `seq` of
    /// `stream` on its connection `epoch`, with reply subject `reply`.
    JsConsumerAck {
        client: ClientId,
        epoch: u32,
        stream: &'static str,
        seq: u64,
        reply: String,
    },
    /// The server answered the double ack sent with reply `reply`: the
    /// ack of `seq` is durable. `lifetime` is the server lifetime that
    /// accepted the connection it came on.
    JsConsumerAcked {
        client: ClientId,
        lifetime: u32,
        stream: &'static str,
        seq: u64,
        reply: String,
    },
    /// A client asked `stream` for a message (`$JS.API.STREAM.MSG.GET` or
    /// `$JS.API.DIRECT.GET`), its answer to come to `reply`.
    JsRead {
        client: ClientId,
        stream: &'static str,
        of: ReadOf,
        reply: String,
    },
    /// The answer to the read sent with reply `reply`.
    JsReadAnswer {
        client: ClientId,
        reply: String,
        answer: ReadAnswer,
    },
    /// What a member of the partitioned group saw and did.
    Part(Box<crate::check_partition::PartEv>),
    /// What a member of the priority group saw and did.
    Prio(Box<crate::check_priority::PrioEv>),
}

/// What a read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOf {
    /// The message at this sequence.
    Seq(u64),
    /// The last message on this subject.
    LastOf(String),
}

/// What a read got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAnswer {
    /// The message at this sequence.
    Found(u64),
    /// No such message (`404`, `no message found`).
    NotFound,
    /// Another error (no such stream yet, a bad request): no evidence.
    Other,
}

/// One delivery of the JetStream consumer, as the client that pulls got
/// it: the stream sequence and delivery count from its `$JS.ACK` reply
/// subject, and the message's subject and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsDelivery {
    pub client: ClientId,
    pub epoch: u32,
    /// The stream the consumer reads (each stream has one consumer).
    pub stream: &'static str,
    /// The server lifetime (restarts so far) that accepted the connection
    /// it arrived on: the lifetime that sent it.
    pub lifetime: u32,
    pub seq: u64,
    /// The delivery count (1: its first delivery, as far as the server
    /// knows).
    pub deliveries: u64,
    /// The consumer sequence: it grows with every delivery of one server
    /// lifetime, whichever client it goes to.
    pub consumer_seq: u64,
    pub subject: String,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

/// A JetStream publish (`msg`, recorded as a `Pub` too) was acknowledged:
/// the server promises it is durably in `stream` at `seq`. The exact
/// headers and payload sent are kept for the `acked-durable` checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsAck {
    pub client: ClientId,
    pub msg: MsgId,
    pub stream: String,
    pub seq: u64,
    /// Acknowledged as a duplicate of an earlier publish with the same
    /// `Nats-Msg-Id` (stored at `seq` with that publish's bytes).
    pub duplicate: bool,
    pub subject: String,
    pub msg_id: Option<String>,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

/// A digest of a message's headers (if any) and payload, as sent or received.
pub fn digest(headers: Option<&[u8]>, payload: &[u8]) -> u64 {
    let mut h = crate::seed::mix(headers.map_or(0, |h| h.len() as u64 + 1));
    for part in [headers.unwrap_or_default(), payload] {
        for chunk in part.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = crate::seed::mix(h ^ u64::from_le_bytes(w));
        }
        h = crate::seed::mix(h ^ part.len() as u64);
    }
    h
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
