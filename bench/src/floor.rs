//! The physical limit a server's cost per byte is held against: a plain
//! loop that reads a publisher's `PUB` frames from one loopback socket and,
//! for `--subs 1`, writes the same bytes to another (`--subs 0`: reads and
//! drops them). No parsing, no routing, one 256 KiB buffer. The loop's own
//! CPU time per message is the floor for a server's CPU per message on the
//! same machine in the same run.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Instant;

use crate::conn::ClientRun;
use crate::frames::Frames;

/// Bytes the loop reads at once: natrix's largest read (its
/// `READ_BUFFER_MAX`), so that the floor reads no less at a time than the
/// server held against it.
const LOOP_BUFFER: usize = 256 * 1024;

pub struct FloorRun {
    pub publisher: ClientRun,
    /// Bytes the loop read, and bytes its reader got (0 when not forwarding).
    pub read_bytes: u64,
    pub forwarded_bytes: u64,
    /// The loop's CPU time, from the scheduler's nanosecond counter.
    pub loop_cpu_secs: f64,
}

/// Runs `msgs` frames of `payload` bytes through the loop; `forward` writes
/// them on to a reader.
pub fn run(subject: &str, payload: &[u8], msgs: u64, forward: bool) -> io::Result<FloorRun> {
    let frames = Frames::new(&[subject.to_string()], payload);
    let from_pub = TcpListener::bind("127.0.0.1:0")?;
    let pub_addr = from_pub.local_addr()?;
    let start = Instant::now();
    let publisher = std::thread::spawn(move || -> io::Result<ClientRun> {
        let mut s = TcpStream::connect(pub_addr)?;
        s.set_nodelay(true)?;
        let (mut done, mut next) = (0u64, 0usize);
        while done < msgs {
            let (batch, n) = frames.batch(next, msgs - done);
            s.write_all(batch)?;
            next = (next + n) % frames.len();
            done += n as u64;
        }
        s.shutdown(Shutdown::Write)?;
        Ok(ClientRun {
            msgs: done,
            secs: start.elapsed().as_secs_f64(),
            cut_off: false,
        })
    });
    let (mut input, _) = from_pub.accept()?;
    let mut output = None;
    let mut reader = None;
    if forward {
        let to_sub = TcpListener::bind("127.0.0.1:0")?;
        let sub_addr = to_sub.local_addr()?;
        reader = Some(std::thread::spawn(move || -> io::Result<u64> {
            let mut s = TcpStream::connect(sub_addr)?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                match s.read(&mut buf)? {
                    0 => return Ok(total),
                    n => total += n as u64,
                }
            }
        }));
        let (s, _) = to_sub.accept()?;
        s.set_nodelay(true)?;
        output = Some(s);
    }
    let cpu_before = thread_cpu_ns()?;
    let mut buf = vec![0u8; LOOP_BUFFER];
    let mut read_bytes = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read_bytes += n as u64;
        if let Some(out) = &mut output {
            out.write_all(&buf[..n])?;
        }
    }
    let cpu_after = thread_cpu_ns()?;
    drop(output);
    let publisher = publisher
        .join()
        .map_err(|_| io::Error::other("publisher thread panicked"))??;
    let forwarded_bytes = match reader {
        Some(r) => r
            .join()
            .map_err(|_| io::Error::other("reader thread panicked"))??,
        None => 0,
    };
    Ok(FloorRun {
        publisher,
        read_bytes,
        forwarded_bytes,
        loop_cpu_secs: cpu_after.saturating_sub(cpu_before) as f64 / 1e9,
    })
}

/// Nanoseconds the calling thread has been on a CPU.
pub fn thread_cpu_ns() -> io::Result<u64> {
    let line = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    line.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("unreadable /proc/thread-self/schedstat"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_byte_goes_through() {
        let r = super::run("floor.test", &[b'x'; 100], 20_000, true).unwrap();
        assert_eq!(r.publisher.msgs, 20_000);
        // "PUB floor.test 100\r\n" + payload + "\r\n", every frame.
        let frame = "PUB floor.test 100\r\n".len() as u64 + 102;
        assert_eq!(r.read_bytes, 20_000 * frame);
        assert_eq!(r.forwarded_bytes, r.read_bytes);
        let r = super::run("floor.test", &[b'x'; 100], 1_000, false).unwrap();
        assert_eq!((r.read_bytes, r.forwarded_bytes), (1_000 * frame, 0));
    }
}
