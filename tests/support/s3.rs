//! An S3 emulator for tests: moto's server (PyPI `moto[server]`, installed into
//! `.tools/moto-venv` by `scripts/install-tools.sh`), started on a free loopback port for each
//! test that asks and killed when dropped. It speaks S3's REST API, so the code under test
//! makes real `aws-sdk-s3` calls (ListObjectsV2 pages, GetObject streams). A missing emulator
//! is a panic that says how to install it: these tests are never skipped.

use aws_sdk_s3::primitives::ByteStream;
use sendtime_objects::{s3_client, S3Config};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server; killed on drop.
pub struct S3Emulator {
    child: Child,
    /// `http://127.0.0.1:PORT`: pass as `--s3-endpoint`.
    pub endpoint: String,
}

/// Where `scripts/install-tools.sh` puts moto's server.
pub fn moto_server() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/moto-venv/bin/moto_server")
}

impl S3Emulator {
    /// Starts moto's server on a free port and waits (up to 30 s) until it accepts connections.
    pub async fn start() -> S3Emulator {
        let bin = moto_server();
        assert!(
            bin.exists(),
            "{} is missing: the S3 emulator is needed. Run scripts/install-tools.sh (scripts/test.sh does).",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let emulator = S3Emulator {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return emulator;
            }
            assert!(
                Instant::now() < deadline,
                "moto's server did not listen on {port} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An S3 client on the emulator (fake credentials, path-style).
    pub async fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
        })
        .await
    }

    /// Creates `bucket` (if it is not there yet) and puts `body` at `key`.
    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        let client = self.client().await;
        if client.head_bucket().bucket(bucket).send().await.is_err() {
            client
                .create_bucket()
                .bucket(bucket)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
        }
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.into()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
    }
}

impl Drop for S3Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
