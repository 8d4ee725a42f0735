//! Where bulk inputs come from: a local file, a local folder (every file under it), or every
//! object under `s3://bucket/prefix`. [`Objects::list`] names them (sorted by key, so a run
//! is repeatable), [`Objects::open`] reads one as a stream: a local file directly, an S3
//! object through a temporary file it is downloaded to in chunks (bounded memory whatever
//! its size, and a plain `Read` for parsers that are not async, such as Avro's).

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use std::fmt;
#[cfg(test)]
use std::io::Read;
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A source as given on the command line: a path, or `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local file, or a folder read recursively.
    Local(PathBuf),
    /// Every object whose key starts with `prefix` in `bucket` (an empty prefix: the bucket).
    S3 {
        /// The bucket's name.
        bucket: String,
        /// The key prefix, without the bucket.
        prefix: String,
    },
}

impl FromStr for Source {
    type Err = ObjectsError;
    fn from_str(s: &str) -> Result<Self, ObjectsError> {
        match s.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(ObjectsError::BadSource(format!(
                        "'{s}' names no bucket (expected s3://bucket/prefix)"
                    )));
                }
                Ok(Source::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                })
            }
            None if s.is_empty() => Err(ObjectsError::BadSource("an empty path".into())),
            None => Ok(Source::Local(PathBuf::from(s))),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Local(p) => write!(f, "{}", p.display()),
            Source::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// One file or object of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// A local path, or the S3 key (without the bucket).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// The S3 ETag (changes when the object is rewritten); `None` for local files.
    pub etag: Option<String>,
}

impl Object {
    /// Where it is, for messages: the path, or `s3://bucket/key`.
    pub fn location(&self, source: &Source) -> String {
        match source {
            Source::Local(_) => self.key.clone(),
            Source::S3 { bucket, .. } => format!("s3://{bucket}/{}", self.key),
        }
    }
}

/// Why a source could not be listed or read; every message names the path, bucket or key.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The source string is not a path or `s3://bucket/prefix`.
    #[error("bad source: {0}")]
    BadSource(String),
    /// A local file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An S3 call failed.
    #[error("{location}: {message}")]
    S3 {
        /// `s3://bucket/key-or-prefix`.
        location: String,
        /// The SDK's error, with its cause chain.
        message: String,
    },
}

/// How to reach S3: an endpoint for an emulator (path-style addressing), a region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// Overrides the endpoint (an S3 emulator such as moto's server). With an endpoint and no
    /// `AWS_ACCESS_KEY_ID` in the environment, fake static credentials are used.
    pub endpoint: Option<String>,
    /// Region; defaults to the SDK's chain, or `us-east-1` with an endpoint.
    pub region: Option<String>,
}

/// A source ready to list and read (an S3 client made once when the source is on S3).
#[derive(Debug, Clone)]
pub struct Objects {
    source: Source,
    client: Option<aws_sdk_s3::Client>,
}

/// The SDK error with its causes, one line.
fn sdk_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// An S3 client for `config` (no I/O until the first call).
pub async fn s3_client(config: &S3Config) -> aws_sdk_s3::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
        if config.region.is_none() {
            loader = loader.region(Region::new("us-east-1"));
        }
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "sendtime-local",
            ));
        }
    }
    let shared = loader.load().await;
    let mut s3 = aws_sdk_s3::config::Builder::from(&shared);
    if config.endpoint.is_some() {
        // Emulators answer on one host: bucket in the path, not in the host name.
        s3 = s3.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(s3.build())
}

impl Objects {
    /// The source, with an S3 client when it is on S3.
    pub async fn new(source: Source, config: &S3Config) -> Self {
        let client = match &source {
            Source::S3 { .. } => Some(s3_client(config).await),
            Source::Local(_) => None,
        };
        Self { source, client }
    }

    /// The source this reads.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Every file or object of the source, sorted by key: a file itself; a folder's files,
    /// recursively (hidden files skipped); every object under an S3 prefix (all pages).
    pub async fn list(&self) -> Result<Vec<Object>, ObjectsError> {
        let mut out = match (&self.source, &self.client) {
            (Source::S3 { bucket, prefix }, Some(client)) => {
                list_s3(client, bucket, prefix).await?
            }
            (Source::Local(path), _) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || list_local(&path))
                    .await
                    .map_err(|e| ObjectsError::BadSource(e.to_string()))??
            }
            (Source::S3 { .. }, None) => unreachable_client(&self.source)?,
        };
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Opens one object as a buffered stream (S3: downloaded to a temporary file first,
    /// chunk by chunk; the file is deleted when the reader is dropped).
    pub async fn open(&self, object: &Object) -> Result<Box<dyn BufRead + Send>, ObjectsError> {
        match (&self.source, &self.client) {
            (Source::Local(_), _) => {
                let file = std::fs::File::open(&object.key).map_err(|source| ObjectsError::Io {
                    path: object.key.clone(),
                    source,
                })?;
                Ok(Box::new(BufReader::with_capacity(256 * 1024, file)))
            }
            (Source::S3 { bucket, .. }, Some(client)) => {
                let file = download(client, bucket, &object.key).await?;
                Ok(Box::new(BufReader::with_capacity(256 * 1024, file)))
            }
            (Source::S3 { .. }, None) => unreachable_client(&self.source),
        }
    }
}

fn unreachable_client<T>(source: &Source) -> Result<T, ObjectsError> {
    Err(ObjectsError::BadSource(format!(
        "{source}: no S3 client (made by Objects::new)"
    )))
}

fn list_local(path: &Path) -> Result<Vec<Object>, ObjectsError> {
    let io = |source| ObjectsError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![Object {
            key: path.display().to_string(),
            size: meta.len(),
            etag: None,
        }]);
    }
    let mut out = Vec::new();
    let mut folders = vec![path.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|source| ObjectsError::Io {
            path: folder.display().to_string(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| ObjectsError::Io {
                path: folder.display().to_string(),
                source,
            })?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = entry.path();
            let meta = entry.metadata().map_err(|source| ObjectsError::Io {
                path: p.display().to_string(),
                source,
            })?;
            if meta.is_dir() {
                folders.push(p);
            } else if meta.is_file() {
                out.push(Object {
                    key: p.display().to_string(),
                    size: meta.len(),
                    etag: None,
                });
            }
        }
    }
    Ok(out)
}

async fn list_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<Object>, ObjectsError> {
    let mut out = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ObjectsError::S3 {
            location: format!("s3://{bucket}/{prefix}"),
            message: format!("cannot list: {}", sdk_message(&e)),
        })?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            // "Folder" placeholder objects that some consoles create.
            if key.ends_with('/') {
                continue;
            }
            out.push(Object {
                key: key.to_owned(),
                size: o.size().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().map(str::to_owned),
            });
        }
    }
    Ok(out)
}

async fn download(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<std::fs::File, ObjectsError> {
    let location = format!("s3://{bucket}/{key}");
    let s3 = |message: String| ObjectsError::S3 {
        location: location.clone(),
        message,
    };
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3(format!("cannot read: {}", sdk_message(&e))))?;
    let io = |source| ObjectsError::Io {
        path: location.clone(),
        source,
    };
    let mut file = tempfile::tempfile().map_err(io)?;
    let mut body = object.body;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| s3(format!("read interrupted: {}", sdk_message(&e))))?
    {
        file.write_all(&chunk).map_err(io)?;
    }
    file.rewind().map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_as_paths_or_s3_prefixes() {
        assert_eq!(
            "s3://b/currents/x".parse::<Source>().unwrap(),
            Source::S3 {
                bucket: "b".into(),
                prefix: "currents/x".into()
            }
        );
        assert_eq!(
            "s3://b".parse::<Source>().unwrap(),
            Source::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert!("s3:///x".parse::<Source>().is_err());
        assert_eq!(
            "out/recs.jsonl".parse::<Source>().unwrap(),
            Source::Local("out/recs.jsonl".into())
        );
    }

    #[tokio::test]
    async fn a_folder_lists_its_files_recursively_in_key_order_and_skips_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/2.avro"), b"xx").unwrap();
        std::fs::write(dir.path().join("a/1.avro"), b"x").unwrap();
        std::fs::write(dir.path().join(".state"), b"x").unwrap();
        let objects = Objects::new(Source::Local(dir.path().into()), &S3Config::default()).await;
        let listed = objects.list().await.unwrap();
        let names: Vec<_> = listed
            .iter()
            .map(|o| {
                o.key
                    .strip_prefix(&*dir.path().to_string_lossy())
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, ["/a/1.avro", "/a/b/2.avro"]);
        assert_eq!(listed[1].size, 2);
        let mut text = String::new();
        objects
            .open(&listed[1])
            .await
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "xx");
        let missing =
            Objects::new(Source::Local(dir.path().join("nope")), &S3Config::default()).await;
        assert!(missing
            .list()
            .await
            .unwrap_err()
            .to_string()
            .contains("nope"));
    }
}
