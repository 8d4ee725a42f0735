//! `sendtime baseline`: the physical limit of the HTTP stack. The same stack as
//! `sendtime serve` (its hyper server on tokio, default runtime), answering every GET with one body loaded
//! once at start-up (e.g. a real recommendations answer saved from `serve`): no routing by
//! block, no store, no JSON encoding, no request log. `scripts/bench.sh` measures every block
//! against it.

use crate::commands::serve::shutdown_signal;
use anyhow::Context;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use clap::Args;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `sendtime baseline`: the address and the body every answer carries.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub addr: SocketAddr,
    /// The bytes every GET is answered with, as `application/json` (read once at start).
    #[arg(long)]
    pub body: PathBuf,
    /// The same connection limits as `serve`.
    #[command(flatten)]
    pub connections: crate::commands::serve::ConnectionArgs,
}

impl BaselineArgs {
    /// Reads `--body`, binds `--addr`, prints `baseline listening on http://ADDR`, then
    /// answers every GET with those bytes until Ctrl-C or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        let body = Bytes::from(
            std::fs::read(&self.body)
                .with_context(|| format!("cannot read --body {}", self.body.display()))?,
        );
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("cannot listen on {} (choose another --addr)", self.addr))?;
        let local = listener.local_addr()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "baseline listening on http://{local} answering every GET with {} bytes of {}",
                body.len(),
                self.body.display()
            )?;
            out.flush()?;
        }
        crate::server::serve(
            listener,
            app(body),
            self.connections.limits(),
            shutdown_signal(),
        )
        .await;
        Ok(())
    }
}

/// The baseline's service: every request, whatever its path, answered with `body` (a
/// reference-counted clone per response, no copy) — no router, as the block route skips
/// axum's router too.
pub fn app(
    body: Bytes,
) -> impl tower::Service<axum::extract::Request, Response = Response, Error = Infallible, Future: Send>
       + Clone
       + Send
       + 'static {
    let json = HeaderValue::from_static("application/json");
    tower::service_fn(move |_: axum::extract::Request| {
        let answer = ([(CONTENT_TYPE, json.clone())], body.clone()).into_response();
        std::future::ready(Ok::<_, Infallible>(answer))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_get_gets_the_same_bytes_as_json() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Bytes::from_static(br#"{"items":[1,2,3]}"#);
        let server = tokio::spawn(async move {
            axum::serve(listener, tower::make::Shared::new(app(body))).await
        });
        for path in ["/v1/users/u000001/recommendations", "/", "/anything?x=1"] {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
                .await
                .unwrap();
            let mut answer = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer)
                .await
                .unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(
                answer.contains("content-type: application/json"),
                "{answer}"
            );
            assert!(answer.ends_with(r#"{"items":[1,2,3]}"#), "{answer}");
        }
        server.abort();
    }
}
