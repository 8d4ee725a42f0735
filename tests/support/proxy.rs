//! A TCP fault proxy for store tests: forwards loopback connections to a backend (DynamoDB
//! Local) and, when told, adds latency, resets connections, black-holes them or trickles
//! their bytes. The fault is read for every chunk, so it hits pooled connections already
//! open as well as new ones.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the bytes passing through it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forwards everything at once.
    None,
    /// Holds every chunk this long before forwarding it.
    Latency(Duration),
    /// Resets every connection (RST) as soon as it carries a byte, new ones at once.
    Reset,
    /// Swallows every byte and never answers; new connections are accepted and ignored.
    BlackHole,
    /// Forwards one byte per period.
    Trickle(Duration),
}

/// A running proxy; dropped with the test's runtime.
pub struct FaultProxy {
    /// Where clients connect: `http://127.0.0.1:{port}`.
    pub url: String,
    fault: Arc<Mutex<Fault>>,
}

impl FaultProxy {
    /// Starts a proxy to `backend` (an `http://host:port` URL), forwarding faithfully.
    pub async fn start(backend: &str) -> FaultProxy {
        let upstream: SocketAddr = backend
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("backend is http://ip:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy addr"));
        let fault = Arc::new(Mutex::new(Fault::None));
        let shared = fault.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = shared.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    match current(&fault) {
                        Fault::Reset => return reset(client),
                        Fault::BlackHole => return swallow(client).await,
                        _ => {}
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return reset(client);
                    };
                    let _ = server.set_nodelay(true);
                    // RST instead of FIN whenever the proxy drops a side.
                    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let up = pump(client_read, server_write, fault.clone());
                    let down = pump(server_read, client_write, fault);
                    // Either direction ending ends the connection.
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        FaultProxy { url, fault }
    }

    /// Switches the fault from now on.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }
}

fn current(fault: &Mutex<Fault>) -> Fault {
    *fault.lock().unwrap_or_else(|p| p.into_inner())
}

fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn swallow(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Copies `from` to `to` chunk by chunk, applying the fault in force for each chunk. Returns
/// when either side closes or the fault is `Reset` (the caller then drops both sides: RST).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, fault: Arc<Mutex<Fault>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let sent = match current(&fault) {
            Fault::None => to.write_all(chunk).await,
            Fault::Latency(d) => {
                tokio::time::sleep(d).await;
                to.write_all(chunk).await
            }
            Fault::Reset => return,
            Fault::BlackHole => Ok(()),
            Fault::Trickle(period) => {
                let mut result = Ok(());
                for byte in chunk {
                    tokio::time::sleep(period).await;
                    result = to.write_all(std::slice::from_ref(byte)).await;
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
