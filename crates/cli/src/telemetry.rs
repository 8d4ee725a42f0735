//! Logging set-up: human-readable text by default, one JSON object per line with
//! `--log-format json`. The filter comes from `SENDTIME_LOG` (e.g. `info,sendtime=debug`).
//!
//! A server (`serve`, `baseline`) logs one line per request, so its lines are not written
//! one `write` call each on the request's thread: they are appended to a buffer that a
//! background thread writes out in batches ([`LogBuffer`]). Other commands write each line
//! as it comes, in order with what they print.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Log line format on stderr, chosen by `--log-format` / `SENDTIME_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// How often the background thread writes a server's buffered log lines out.
pub const LOG_FLUSH_PERIOD: Duration = Duration::from_millis(50);

/// Past this many buffered bytes the flusher is woken before its period is up (a busy server
/// writes some 60 MB of request lines a second).
const LOG_BUFFER_WAKE: usize = 256 * 1024;

/// Past this many buffered bytes the request that adds a line writes the buffer out itself:
/// memory stays bounded and nothing is dropped when stderr is slower than the requests.
const LOG_BUFFER_LIMIT: usize = 16 * 1024 * 1024;

/// Installs the global tracing subscriber on stderr; a second call does nothing. `batched`
/// (servers): lines go through a [`LogBuffer`], flushed every [`LOG_FLUSH_PERIOD`] and when
/// the returned guard drops; otherwise each line is written as it comes and the guard is
/// empty.
pub fn init(format: LogFormat, batched: bool) -> Option<LogBuffer> {
    if batched {
        let buffer = LogBuffer::spawn(std::io::stderr(), LOG_FLUSH_PERIOD);
        install(format, false, buffer.handle());
        Some(buffer)
    } else {
        install(format, std::io::stderr().is_terminal(), std::io::stderr);
        None
    }
}

fn install<W>(format: LogFormat, ansi: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("SENDTIME_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    // A second init (tests calling run twice) is harmless; ignore the error.
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .event_format(sendtime_api::log_format::JsonLines { timestamp: true })
            .try_init(),
    };
}

/// Log lines appended under a short lock and written out in batches by a background thread
/// (every `period`, woken early past [`LOG_BUFFER_WAKE`]; by the appending thread itself only
/// past [`LOG_BUFFER_LIMIT`], when the output cannot keep up). Whole
/// lines only: tracing hands over each formatted line in one `write`. Dropping the last
/// handle — the guard [`init`] returns — writes out what is left.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
    /// The guard's own handle stops the flusher when dropped; clones handed to tracing don't.
    _stop: Option<Arc<StopOnDrop>>,
}

struct Shared {
    lines: Mutex<Vec<u8>>,
    out: Mutex<Box<dyn Write + Send>>,
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn lines(&self) -> MutexGuard<'_, Vec<u8>> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one whole line; wakes the flusher when the buffer crosses
    /// [`LOG_BUFFER_WAKE`], writes it out here past [`LOG_BUFFER_LIMIT`].
    fn append(&self, line: &[u8]) {
        let mut lines = self.lines();
        let before = lines.len();
        lines.extend_from_slice(line);
        let after = lines.len();
        drop(lines);
        if after >= LOG_BUFFER_LIMIT {
            self.flush(&mut Vec::new());
        } else if before < LOG_BUFFER_WAKE && after >= LOG_BUFFER_WAKE {
            // Under the flusher's lock: it is either waiting (and woken) or has yet to look
            // at the buffer's size (and sees it full): no wake-up is lost.
            let _flusher = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
            self.wake.notify_one();
        }
    }

    /// Writes out whatever is buffered; `spare` keeps the buffer's capacity for reuse. The
    /// output lock is taken first (then the buffer's, briefly), so batches leave in order.
    fn flush(&self, spare: &mut Vec<u8>) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *self.lines(), spare);
        if spare.is_empty() {
            return;
        }
        // A log write that fails has nowhere to be reported; keep serving.
        let _ = out.write_all(spare).and_then(|()| out.flush());
        spare.clear();
    }
}

struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        *self
            .0
            .stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.0.wake.notify_all();
        self.0.flush(&mut Vec::new());
    }
}

impl LogBuffer {
    /// Starts the flusher thread writing to `out` every `period`.
    pub fn spawn(out: impl Write + Send + 'static, period: Duration) -> Self {
        let shared = Arc::new(Shared {
            lines: Mutex::new(Vec::with_capacity(64 * 1024)),
            out: Mutex::new(Box::new(out)),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        });
        let flusher = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("sendtime-log".into())
            .spawn(move || {
                let mut spare = Vec::with_capacity(64 * 1024);
                loop {
                    {
                        let mut stopped = flusher
                            .stopped
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        if !*stopped && flusher.lines().len() < LOG_BUFFER_WAKE {
                            stopped = flusher
                                .wake
                                .wait_timeout(stopped, period)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                        }
                        if *stopped {
                            break; // the guard writes out what is left
                        }
                    } // not held while writing: a waking append never waits for the output
                    flusher.flush(&mut spare);
                }
            });
        if let Err(e) = spawned {
            // No thread: every line is then written by the request that adds it (past the
            // limit), and the rest when the guard drops.
            eprintln!("cannot start the log writer thread ({e}); logs are written on exit");
        }
        Self {
            _stop: Some(Arc::new(StopOnDrop(shared.clone()))),
            shared,
        }
    }

    /// A handle for tracing's writer: appends, never stops the flusher.
    fn handle(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _stop: None,
        }
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LineWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.shared)
    }
}

/// What tracing writes one line through: a borrow of the buffer (no reference count
/// touched per line).
pub struct LineWriter<'a>(&'a Shared);

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Write for LogBuffer {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.shared.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what the flusher writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn buffered_lines_come_out_whole_in_order_and_none_is_lost() {
        let sink = Sink::default();
        let buffer = LogBuffer::spawn(sink.clone(), Duration::from_millis(5));
        // GIVEN four threads logging more than the buffer holds, while the flusher runs
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = buffer.handle();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        // as tracing does: the whole line in one write
                        let line = format!("{{\"thread\":{t},\"line\":{i}}}\n");
                        writer.write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // WHEN the guard drops
        drop(buffer);
        // THEN every line is there once, whole, each thread's lines in order
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0u32; 4];
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let t = v["thread"].as_u64().unwrap() as usize;
            assert_eq!(v["line"].as_u64().unwrap() as u32, next[t], "{line}");
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 4]);
    }

    #[test]
    fn the_flusher_writes_lines_out_without_waiting_for_the_guard() {
        let sink = Sink::default();
        let buffer = LogBuffer::spawn(sink.clone(), Duration::from_millis(5));
        writeln!(buffer.handle(), "one line").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"one line\n");
        drop(buffer);
    }

    #[test]
    fn a_full_buffer_wakes_the_flusher_before_its_period() {
        let sink = Sink::default();
        // GIVEN a flusher that would otherwise wait an hour
        let buffer = LogBuffer::spawn(sink.clone(), Duration::from_secs(3600));
        let line = [b'x'; 1023];
        let mut writer = buffer.handle();
        // WHEN more than LOG_BUFFER_WAKE bytes are logged (but less than the limit)
        for _ in 0..(LOG_BUFFER_WAKE / 1024 + 1) {
            writer.write_all(&line).unwrap();
            writer.write_all(b"\n").unwrap();
        }
        // THEN the flusher writes them out without the appending threads doing it
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().len() < LOG_BUFFER_WAKE {
            assert!(
                std::time::Instant::now() < deadline,
                "the flusher was not woken"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(buffer);
    }
}
