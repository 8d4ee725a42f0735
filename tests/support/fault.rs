//! An in-process HTTP server that misbehaves on purpose, for campaign-send tests: 429 with
//! `Retry-After`, 500/503, answers slower than the client's timeout, connection resets, in
//! configurable proportions and time windows. It records every request it receives.

use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub p429: f64,
    /// `Retry-After` value sent with 429s (seconds), if any.
    pub retry_after: Option<String>,
    pub p500: f64,
    pub p503: f64,
    /// Share answered after `slow` (longer than the client's timeout).
    pub p_slow: f64,
    pub slow: Duration,
    /// Share of connections reset without an answer.
    pub p_reset: f64,
    /// Latency of normal answers.
    pub latency: Duration,
    /// Faults apply only between these offsets from server start (always if `None`).
    pub window: Option<(Duration, Duration)>,
    /// Users whose every request gets a 500.
    pub always_500: HashSet<String>,
    /// The first request of every key gets 429 (with `retry_after`).
    pub first_attempt_429: bool,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Duration,
    pub user: String,
    pub block: String,
    /// What the server did: a status code, or 0 for a reset.
    pub answer: u16,
}

pub struct FaultServer {
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl FaultServer {
    pub async fn start(faults: Faults) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let seen: Arc<Mutex<HashMap<(String, String), u32>>> = Arc::default();
        let faults = Arc::new(faults);
        let started = Instant::now();
        let log = hits.clone();
        tokio::spawn(async move {
            let mut n: u64 = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                n += 1;
                let (faults, log, seen) = (faults.clone(), log.clone(), seen.clone());
                let mut rng = rand::rngs::StdRng::seed_from_u64(n);
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(1024);
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                    let (user, block) = match parts.as_slice() {
                        ["v1", "users", u, b] => {
                            (u.to_string(), b.split('?').next().unwrap_or("").to_string())
                        }
                        _ => (String::new(), String::new()),
                    };
                    let at = started.elapsed();
                    let attempt = {
                        let mut s = seen.lock().unwrap();
                        let c = s.entry((user.clone(), block.clone())).or_default();
                        *c += 1;
                        *c
                    };
                    let active = faults.window.is_none_or(|(a, b)| at >= a && at < b);
                    let roll: f64 = rng.random();
                    let mut edge = 0.0;
                    let mut pick = |p: f64| {
                        edge += if active { p } else { 0.0 };
                        roll < edge
                    };
                    let answer: u16 = if faults.always_500.contains(&user) {
                        500
                    } else if (faults.first_attempt_429 && attempt == 1) || pick(faults.p429) {
                        429
                    } else if pick(faults.p500) {
                        500
                    } else if pick(faults.p503) {
                        503
                    } else if pick(faults.p_reset) {
                        0
                    } else if pick(faults.p_slow) {
                        1
                    } else {
                        200
                    };
                    log.lock().unwrap().push(Hit {
                        at,
                        user: user.clone(),
                        block: block.clone(),
                        answer: if answer == 1 { 200 } else { answer },
                    });
                    if answer == 0 {
                        // RST instead of FIN: the client sees a connection reset.
                        if let Ok(std) = stream.into_std() {
                            let _ = socket2::SockRef::from(&std).set_linger(Some(Duration::ZERO));
                            drop(std);
                        }
                        return;
                    }
                    tokio::time::sleep(if answer == 1 {
                        faults.slow
                    } else {
                        faults.latency
                    })
                    .await;
                    let status = if answer == 1 { 200 } else { answer };
                    let body = if status == 200 {
                        format!(
                            r#"{{"user_id":"{user}","block":"{block}","eligible":true,"reason":null,"stage":"reminder","source":"cart","degraded":false,"items":[]}}"#
                        )
                    } else {
                        format!(r#"{{"error":{{"code":"fault_{status}","message":"injected"}}}}"#)
                    };
                    let reason = match status {
                        200 => "OK",
                        429 => "Too Many Requests",
                        500 => "Internal Server Error",
                        _ => "Service Unavailable",
                    };
                    let retry = match (&faults.retry_after, status) {
                        (Some(v), 429) => format!("retry-after: {v}\r\n"),
                        _ => String::new(),
                    };
                    let response = format!(
                        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{retry}\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        FaultServer { url, hits }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// The largest number of hits in any window of `width` (sliding over hit times).
pub fn max_in_window(hits: &[Hit], width: Duration) -> usize {
    let mut times: Vec<Duration> = hits.iter().map(|h| h.at).collect();
    times.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= width {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}
