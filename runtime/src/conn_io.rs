//! The per-connection tasks of the driver: a reader that reads into
//! chunks and hands them to the core task (within its read-ahead, and not
//! while the core pauses it), and a writer that writes what the core hands
//! it with vectored writes and reports what it wrote. What they say to the
//! core task and what it says to them are [`Inbound`] and [`Outbound`].

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use natrix_core::server::ConnId;
use natrix_core::time::Instant as CoreInstant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::driver::Clock;
use crate::tls::TlsConn;

/// Bytes read from a socket at once: an idle connection holds the small
/// size; a busy one grows to the large one (as nats-server's read buffer
/// does, to 64 KiB there: 256 KiB here costs a quarter of the reads and
/// events for large messages), and shrinks back when reads get small again.
const READ_BUFFER_MIN: usize = 512;
const READ_BUFFER_MAX: usize = 256 * 1024;
/// Bytes one connection may have read and the core not yet handled (the
/// driver bounds all connections together too): what a publisher has read
/// ahead is handled even when the core pauses it, so this bounds how far a
/// fast publisher overruns its subscribers' flow-control mark.
const READ_AHEAD_MAX: usize = 1024 * 1024;

/// What connection tasks tell the core task. Each carries the connection's
/// generation so that a late event from a finished connection is never
/// taken for a new one that reuses its id.
pub(crate) enum Inbound<S> {
    Accepted(S, SocketAddr, natrix_core::server::Listener),
    /// A dial the core asked for connected (to the host named, or failed,
    /// with why).
    Dialed(ConnId, S, SocketAddr, String),
    DialFailed(ConnId, String),
    Received(ConnId, u64, BytesMut),
    /// What a connection read in plaintext before its TLS handshake (a
    /// hub's `INFO` to a leaf node), outside the read-ahead budget.
    Preface(ConnId, u64, Vec<u8>),
    Written(ConnId, u64, usize, Vec<u8>),
    Closed(ConnId, u64),
    /// The handshake is done: the reading half of the TLS stream, the TLS
    /// version and the cipher suite, and the names in the client's
    /// certificate if it sent one.
    TlsReady(
        ConnId,
        u64,
        ReadHalf<TlsConn<S>>,
        (String, String),
        Option<Box<natrix_core::auth::PeerCertificate>>,
    ),
    TlsFailed(ConnId, u64, String),
}

/// What the core task tells a writer.
pub(crate) enum Outbound {
    Bytes(Vec<u8>),
    /// Run the TLS handshake after writing what was sent before this.
    StartTls,
    /// Stop after writing what was sent before this.
    Close,
}

/// Whether a connection's reader may read: the core pauses publishers that
/// feed a subscriber over its flow-control mark, and a reader never holds
/// more than [`READ_AHEAD_MAX`] bytes the core has not handled.
pub(crate) struct ReadGate {
    /// Paused until this clock instant (nanoseconds; 0: not paused).
    pub(crate) until_nanos: std::sync::atomic::AtomicU64,
    pub(crate) resumed: Notify,
    /// Permits for [`READ_AHEAD_MAX`]; the reader takes, the core gives back.
    pub(crate) read_ahead: Semaphore,
}

impl Default for ReadGate {
    fn default() -> Self {
        ReadGate {
            until_nanos: Default::default(),
            resumed: Notify::new(),
            read_ahead: Semaphore::new(READ_AHEAD_MAX),
        }
    }
}

/// Read-ahead permits a chunk of `len` bytes holds (a chunk may be larger
/// than the whole allowance).
pub(crate) fn read_ahead_permits(len: usize) -> usize {
    len.min(READ_AHEAD_MAX)
}

pub(crate) async fn read_loop<R: AsyncRead + Unpin, S>(
    mut read: R,
    id: ConnId,
    generation: u64,
    tx: mpsc::Sender<Inbound<S>>,
    budget: Arc<Semaphore>,
    (gate, clock): (Arc<ReadGate>, Clock),
) {
    let mut size = READ_BUFFER_MIN;
    let mut buf = BytesMut::new();
    loop {
        // Paused by the core (a subscriber this connection feeds is behind):
        // wait for the resume or the end of the stall.
        let until = gate.until_nanos.load(std::sync::atomic::Ordering::Acquire);
        if until > 0 {
            let at = clock.to_tokio(CoreInstant::from_nanos(until));
            tokio::select! {
                biased;
                _ = gate.resumed.notified() => {}
                _ = tokio::time::sleep_until(at) => {}
            }
            let _ = gate.until_nanos.compare_exchange(
                until,
                0,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        if buf.capacity() - buf.len() < size {
            buf.reserve(size);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if n >= size {
                    size = (size * 2).min(READ_BUFFER_MAX);
                } else if n < size / 4 {
                    size = (size / 2).max(READ_BUFFER_MIN);
                }
                let chunk = buf.split();
                // Wait for room in this connection's read-ahead, then in the
                // core's inbound byte budget.
                match gate
                    .read_ahead
                    .acquire_many(read_ahead_permits(chunk.len()) as u32)
                    .await
                {
                    Ok(permit) => permit.forget(),
                    Err(_) => return,
                }
                match budget.acquire_many(chunk.len() as u32).await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return,
                }
                if tx
                    .send(Inbound::Received(id, generation, chunk))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Inbound::Closed(id, generation)).await;
}

/// A connection's writer: writes `batch` (bytes queued before it
/// started), then what the core sends, until `Close`.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin, S>(
    mut write: W,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    id: ConnId,
    generation: u64,
    tx: mpsc::Sender<Inbound<S>>,
    mut batch: Vec<Vec<u8>>,
) {
    let mut closing = false;
    while !closing {
        if batch.is_empty() {
            match rx.recv().await {
                Some(Outbound::Bytes(b)) => batch.push(b),
                // Only a TLS connection's task acts on it, before this loop.
                Some(Outbound::StartTls) => {}
                Some(Outbound::Close) | None => closing = true,
            }
        }
        // Coalesce whatever else is queued into one vectored write.
        while !closing && batch.len() < 64 {
            match rx.try_recv() {
                Ok(Outbound::Bytes(b)) => batch.push(b),
                Ok(Outbound::StartTls) => {}
                Ok(Outbound::Close) => closing = true,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        if write_all_vectored(&mut write, &batch).await.is_err() {
            break;
        }
        for buf in batch.drain(..) {
            let n = buf.len();
            if tx
                .send(Inbound::Written(id, generation, n, buf))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let _ = write.shutdown().await;
    let _ = tx.send(Inbound::Closed(id, generation)).await;
}

async fn write_all_vectored<W: AsyncWrite + Unpin>(
    write: &mut W,
    bufs: &[Vec<u8>],
) -> io::Result<()> {
    let mut idx = 0;
    let mut off = 0;
    while idx < bufs.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&bufs[idx][off..]))
            .chain(bufs[idx + 1..].iter().map(|b| IoSlice::new(b)))
            .collect();
        let mut n = write.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 && idx < bufs.len() {
            let left = bufs[idx].len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}
