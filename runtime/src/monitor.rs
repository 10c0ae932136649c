//! The monitoring listener (`-m/--http_port`, or `-ms/--https_port` over
//! TLS with the client certificate). It only carries requests to the core
//! task and answers back: the core builds every answer (`Server::monitor`).
//! What only the process knows — resident memory, CPU time, cores — is
//! read here from `/proc`.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use natrix_core::server::{MonitorResponse, ProcessInfo};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// A monitoring request on its way to the core task.
pub struct MonitorRequest {
    pub path: String,
    pub query: String,
    pub reply: oneshot::Sender<MonitorResponse>,
}

/// Serves HTTP on `listener`, or HTTPS with the configuration `tls` holds
/// at each accept (a reload replaces it), forwarding each request to the
/// core task. Clients are not asked for certificates, as in nats-server.
pub async fn serve(
    listener: TcpListener,
    to_core: mpsc::Sender<MonitorRequest>,
    tls: Option<watch::Receiver<Arc<rustls::ServerConfig>>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let to_core = to_core.clone();
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(Arc::clone(&t.borrow())));
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, to_core).await,
                Some(acceptor) => {
                    // A failed handshake ends only this connection (nats-server
                    // logs it at most as an HTTP server error).
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, to_core).await;
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, to_core: mpsc::Sender<MonitorRequest>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let to_core = to_core.clone();
        async move { Ok::<_, Infallible>(answer(req, &to_core).await) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn answer(
    req: Request<Incoming>,
    to_core: &mpsc::Sender<MonitorRequest>,
) -> Response<Full<Bytes>> {
    let (tx, rx) = oneshot::channel();
    let request = MonitorRequest {
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        reply: tx,
    };
    let reply = match to_core.send(request).await {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    let r = reply.unwrap_or(MonitorResponse {
        status: 503,
        content_type: "text/plain; charset=utf-8",
        body: b"server is shutting down\n".to_vec(),
        warning: None,
    });
    Response::builder()
        .status(r.status)
        .header("Content-Type", r.content_type)
        .header("Access-Control-Allow-Origin", "*")
        .body(Full::new(Bytes::from(r.body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Resident memory, CPU use since start and cores, from `/proc/self`.
/// `(http_port, https_port)` are the bound monitoring ports (0: not that one).
pub fn process_info(
    http_host: &str,
    (http_port, https_port): (u16, u16),
    uptime: Duration,
) -> ProcessInfo {
    let mem_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    let cpu_secs = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let ticks: f64 =
                after.get(11)?.parse::<f64>().ok()? + after.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0);
    let cpu_percent = if uptime.is_zero() {
        0.0
    } else {
        (cpu_secs / uptime.as_secs_f64() * 1000.0).round() / 10.0
    };
    ProcessInfo {
        http_host: http_host.to_string(),
        http_port,
        https_port,
        mem_bytes,
        cpu_percent,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        http_req_stats: Default::default(),
    }
}

/// Binds the monitoring port.
pub async fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind((host, port)).await
}
