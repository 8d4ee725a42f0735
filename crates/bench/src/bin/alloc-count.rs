//! Allocations per request through the real server: the router `sendtime serve` runs (its
//! JSON request log included, written to a sink), on the benchmark dataset, over loopback
//! HTTP/1.1 keep-alive. A counting global allocator counts only on the server's threads, so
//! the client's work is not in the figures. For every block: with the answer cache off
//! (every request assembles from warm caches) and on (repeat calls); and the fixed-body
//! baseline for reference.
//!
//!   cargo run --release -p sendtime-bench --bin alloc-count [-- REQUESTS]
//!
//! Prints a Markdown table: allocations and allocated bytes per request.

use anyhow::{bail, Context};
use sendtime_api::{router_with, RouterOptions};
use sendtime_domain::BlockKind;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts allocations (and reallocations) made on threads that opted in.
struct Counting;

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn count(size: usize) {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no effect
// on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Starts `app` on its own runtime (threads counted), returns its address.
fn spawn_server<S>(app: S) -> anyhow::Result<SocketAddr>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(|| COUNTED.with(|c| c.set(true)))
        .build()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let _ = axum::serve(listener, tower::make::Shared::new(app)).await;
        })
    });
    Ok(addr)
}

/// One keep-alive connection sending GETs and reading whole answers.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    body: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let writer = TcpStream::connect(addr)?;
        writer.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(writer.try_clone()?),
            writer,
            body: Vec::new(),
        })
    }

    /// GET `path`; the status code.
    fn get(&mut self, path: &str) -> anyhow::Result<u16> {
        write!(self.writer, "GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n")?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body)?;
        Ok(status)
    }
}

/// Allocations and bytes per request over `paths`, after one unmeasured pass over them.
fn measure(addr: SocketAddr, paths: &[String]) -> anyhow::Result<(f64, f64)> {
    let mut client = Client::connect(addr)?;
    for path in paths {
        client.get(path)?;
    }
    let (a0, b0) = (ALLOCS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
    for path in paths {
        let status = client.get(path)?;
        if status != 200 {
            bail!("{path}: status {status}");
        }
    }
    let n = paths.len() as f64;
    let (a1, b1) = (ALLOCS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
    Ok(((a1 - a0) as f64 / n, (b1 - b0) as f64 / n))
}

fn main() -> anyhow::Result<()> {
    let requests: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("REQUESTS must be a number")?,
        None => 5_000,
    };
    // The deployed request log: one JSON line per request, written to a sink (`SENDTIME_LOG`
    // = `off` leaves it out, to see its share).
    let filter = std::env::var("SENDTIME_LOG").unwrap_or_else(|_| "info".to_owned());
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::sink)
        .init();
    let users = requests.min(sendtime_bench::USERS);
    println!("| server | block | allocations / request | bytes allocated / request |");
    println!("|---|---|---|---|");
    // `ALLOC_ONLY=recommendations` (a block name) measures that block only, answer cache
    // off: a short run to profile (e.g. under heaptrack).
    let only: Option<BlockKind> = std::env::var("ALLOC_ONLY")
        .ok()
        .and_then(|b| b.parse().ok());
    let modes: &[(&str, bool)] = match only {
        Some(_) => &[("answer cache off", false)],
        None => &[("answer cache off", false), ("answer cache on", true)],
    };
    for &(label, answer_cache) in modes {
        let addr = spawn_server(router_with(
            sendtime_bench::service(answer_cache),
            RouterOptions::default(),
        ))?;
        for kind in BlockKind::ALL
            .into_iter()
            .filter(|k| only.is_none_or(|o| o == *k))
        {
            let paths: Vec<String> = (0..requests)
                .map(|n| format!("/v1/users/{}/{kind}", sendtime_bench::user(n, users)))
                .collect();
            let (allocs, bytes) = measure(addr, &paths)?;
            println!("| {label} | {kind} | {allocs:.1} | {bytes:.0} |");
        }
    }
    if only.is_some() {
        return Ok(());
    }
    let body = axum::body::Bytes::from(vec![b'x'; 1_392]);
    let addr = spawn_server(sendtime_cli::commands::baseline::app(body))?;
    let paths: Vec<String> = (0..requests).map(|n| format!("/v1/users/u{n}/x")).collect();
    let (allocs, bytes) = measure(addr, &paths)?;
    println!("| baseline (fixed body) | — | {allocs:.1} | {bytes:.0} |");
    Ok(())
}
