//! The HTTP/1.1 server `sendtime serve` and `sendtime baseline` run: hyper's connection on
//! tokio, with the limits an endpoint open to a campaign tool's bursts needs.
//!
//! - **Header timeout**: a connection must deliver a whole request head within it from the
//!   moment the server waits for one — so one that trickles its head a byte a second, or
//!   sits idle between kept-alive requests, is closed when it runs out (hyper's timer runs
//!   whenever a connection waits for a head, idle keep-alive included).
//! - **Connection cap**: at most `max_connections` at once (by default the file limit less
//!   a reserve for the store's connections and files). At the cap the server asks every
//!   open connection to close once its request in flight is answered — idle ones close at
//!   once — and accepts again as they go: a few hundred idle connections never lock a new
//!   client out, and the process never runs out of file descriptors accepting.
//! - **Graceful shutdown**: on the signal, stop accepting, let requests in flight finish
//!   (up to [`crate::server::DRAIN`]), close.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

/// How long requests in flight may take to finish after the shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(10);

/// File descriptors kept for everything but client connections (the store's pooled
/// connections, log and data files, the runtime's own).
const FD_RESERVE: u64 = 64;

/// Connection limits of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest wait for a whole request head, idle keep-alive time included.
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl ServerLimits {
    /// `header_timeout`, and `max_connections` or, when `None`, the process's file limit
    /// less a reserve of 64 (at least 16).
    pub fn new(header_timeout: Duration, max_connections: Option<usize>) -> Self {
        let max_connections = max_connections.unwrap_or_else(|| {
            let limit = open_file_limit().unwrap_or(1_024);
            usize::try_from(limit.saturating_sub(FD_RESERVE).clamp(16, 1 << 20)).unwrap_or(16)
        });
        Self {
            header_timeout,
            max_connections: max_connections.max(1),
        }
    }
}

/// The soft limit on open files (`ulimit -n`), if the OS says.
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own; no other memory is touched.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    ok.then_some(limit.rlim_cur)
}

/// Serves `service` on `listener` within `limits` until `shutdown` completes, then drains.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let shed = Arc::new(Notify::new());
    let (stop, stopped) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection cap reached: closing open connections as their requests finish"
                );
                shed.notify_waiters();
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: free some,
                    // pause, go on (never a busy loop, never an exit).
                    tracing::warn!(error = %e, "accept failed");
                    shed.notify_waiters();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (builder, service, shed, stopped) = (
            builder.clone(),
            service.clone(),
            shed.clone(),
            stopped.clone(),
        );
        tokio::spawn(connection(stream, builder, service, shed, stopped, slot));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it closes: all slots back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(all)).await;
}

/// One connection, until the client closes it, a limit does, or the server sheds or stops.
async fn connection<S>(
    stream: TcpStream,
    builder: Arc<http1::Builder>,
    service: S,
    shed: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let service =
        tower::ServiceExt::map_request(service, |r: hyper::Request<Incoming>| r.map(Body::new));
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            () = shed.notified(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = stopped.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}
