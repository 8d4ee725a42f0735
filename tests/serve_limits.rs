//! `sendtime serve` as an endpoint on the open network sees it: a client trickling its
//! request head is closed within the header timeout; hundreds of idle connections under a
//! low file limit do not lock a new client out; with caches off and DynamoDB black-holed,
//! an answer still comes within the request deadline.

use sendtime_tests::proxy::{Fault, FaultProxy};
use sendtime_tests::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(serve: &ServeProcess) -> String {
    serve.base_url.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_trickled_a_byte_a_second_is_closed_within_the_header_timeout() {
    // GIVEN serve with a 2 s header timeout
    let serve = ServeProcess::start(&["--header-timeout-ms", "2000"]).await;
    let mut slow = TcpStream::connect(addr(&serve)).await.unwrap();
    let started = Instant::now();
    // WHEN a client sends its request head one byte a second
    let head = b"GET /v1/users/u000001/cart HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut closed_after = None;
    for byte in head {
        if slow.write_all(std::slice::from_ref(byte)).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {
                // Answered (a 408 or nothing) and closed: either way the server is done.
                closed_after = Some(started.elapsed());
                break;
            }
            Err(_) => {} // still open: next byte
        }
    }
    // THEN the server closes it within the header timeout (plus a second's granularity)
    let closed_after = closed_after.expect("the connection outlived its whole head");
    assert!(
        closed_after <= Duration::from_millis(3_100),
        "closed after {closed_after:?}"
    );
    eprintln!("trickling client closed after {closed_after:?}");
    // AND a normal client is served
    let answer = reqwest::get(format!("{}/health", serve.base_url))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_idle_connections_do_not_lock_out_a_new_client_under_ulimit_256() {
    // GIVEN serve under `ulimit -n 256` (a cap of 192 connections)
    let serve = ServeProcess::start_with_file_limit(256, &[]).await;
    // AND 300 clients that connect and send nothing
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(addr(&serve)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // WHEN a new client asks for a block
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .get(format!(
            "{}/v1/users/u000001/recommendations",
            serve.base_url
        ))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("the new client was not served");
    // THEN it is served, promptly: at the cap the server closed idle connections
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["block"], "recommendations");
    eprintln!(
        "served after {:?} beside 300 idle connections",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // AND the server is still healthy for the next one
    let health = reqwest::get(format!("{}/health", serve.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_caches_off_and_dynamodb_black_holed_every_block_answers_within_the_deadline() {
    // GIVEN serve over DynamoDB Local through a fault proxy, every cache off, a 500 ms budget
    let store = fresh_dynamo_store("serve-hole").await;
    load_fixture(&store).await;
    let proxy = FaultProxy::start(&dynamodb_endpoint()).await;
    let serve = ServeProcess::start(&[
        "--table",
        store.table(),
        "--dynamodb-endpoint",
        &proxy.url,
        "--region",
        "us-east-1",
        "--request-budget-ms",
        "500",
        "--cache-user-ttl-secs",
        "0",
        "--cache-item-ttl-secs",
        "0",
        "--cache-popular-ttl-secs",
        "0",
        "--cache-answer-ttl-secs",
        "0",
        "--now",
        &now().to_rfc3339(),
    ])
    .await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{}{path}", serve.base_url);
        async move {
            let started = Instant::now();
            let answer = client.get(&url).send().await.unwrap();
            let status = answer.status().as_u16();
            let body: serde_json::Value = answer.json().await.unwrap();
            (status, body, started.elapsed())
        }
    };
    let (status, body, _) = get("/v1/users/alice/cart".into()).await;
    assert_eq!((status, body["degraded"].as_bool()), (200, Some(false)));
    // WHEN DynamoDB stops answering
    proxy.set(Fault::BlackHole);
    // THEN every block answers within the deadline, degraded
    for kind in sendtime_domain::BlockKind::ALL {
        let (status, body, elapsed) = get(format!("/v1/users/alice/{kind}")).await;
        assert_eq!(status, 200, "{kind}: {body}");
        assert_eq!(body["degraded"], true, "{kind}: {body}");
        assert!(
            elapsed <= Duration::from_millis(550),
            "{kind} took {elapsed:?}"
        );
        eprintln!(
            "{kind} with DynamoDB black-holed, caches off: {} in {elapsed:?}",
            body["degraded_reason"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_signatures_and_secrets_never_reach_the_logs() {
    use tokio::io::AsyncReadExt;
    let key = "k-3f9a1c7e5b2d-live";
    let hash: String = sendtime_api::auth::sha256(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let secret = "s-8d2e6a4f0c1b-live";
    // GIVEN serve with a key and a signing secret, logging everything (debug)
    let mut child = tokio::process::Command::new(sendtime_bin())
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--api-key-sha256",
            &hash,
            "--signing-secret",
            secret,
        ])
        .env("SENDTIME_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let base = loop {
        let mut buf = [0u8; 4096];
        let n = stdout.read(&mut buf).await.unwrap();
        assert!(n > 0, "serve exited");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("sendtime listening on "))
        {
            break line.split_whitespace().nth(3).unwrap().to_owned();
        }
    };
    let errors = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all).await;
        all
    });
    // WHEN callers present the key, a bearer token, good and bad signatures
    let client = reqwest::Client::new();
    let exp = (chrono::Utc::now().timestamp() + 600).to_string();
    let sig = sendtime_api::auth::sign(secret.as_bytes(), &format!("u000001|cart|{exp}|"));
    let forged = sendtime_api::auth::sign(b"guess", &format!("u000001|cart|{exp}|"));
    let url = format!("{base}/v1/users/u000001/cart");
    let statuses = [
        client
            .get(&url)
            .header("x-sendtime-key", key)
            .send()
            .await
            .unwrap()
            .status(),
        client
            .get(&url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status(),
        client
            .get(&url)
            .header("x-sendtime-key", "wrong-key-value")
            .send()
            .await
            .unwrap()
            .status(),
        client
            .get(format!("{url}?exp={exp}&sig={sig}"))
            .send()
            .await
            .unwrap()
            .status(),
        client
            .get(format!("{url}?exp={exp}&sig={forged}"))
            .send()
            .await
            .unwrap()
            .status(),
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 401, 200, 403]);
    // THEN, once it has flushed and stopped, its output holds none of them
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut rest = Vec::new();
    let _ = stdout.read_to_end(&mut rest).await;
    seen.extend(rest);
    seen.extend(errors.await.unwrap());
    let output = String::from_utf8_lossy(&seen);
    assert!(
        output.contains("\"status\":401") || output.contains("status=401"),
        "no request log: {output}"
    );
    for secret_text in [key, "wrong-key-value", secret, &sig, &forged, &hash] {
        assert!(
            !output.contains(secret_text),
            "{secret_text} appears in the logs:\n{output}"
        );
    }
}
