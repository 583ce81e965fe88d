//! A loopback HTTP server that answers like the Hugging Face hub's `resolve` endpoint (ETag,
//! commit header, `Range` requests, 404s): the hub loader's tests without the internet. Shared
//! by `scfnet-backbones/tests/hub_offline.rs` and the CLI's tests (`#[path]`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// How the fake hub answers a file.
#[derive(Clone)]
pub struct Served {
    pub body: Vec<u8>,
    /// Bytes actually sent on a full download (fewer than `body` simulates a cut connection).
    pub send: usize,
}

/// A loopback server for at most `max_requests` requests; returns its URL and a request log.
pub fn fake_hub(
    files: HashMap<String, Served>,
    max_requests: usize,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).ok();
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = Some(v.trim().to_owned());
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
            log2.lock().unwrap().push(format!("{path} {range:?}"));
            let response = match files.get(path.trim_start_matches('/')) {
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
                Some(f) => {
                    let n = f.body.len();
                    let (start, body) = match range.as_deref() {
                        Some("0-0") => (0, f.body[..1].to_vec()),
                        Some(r) => {
                            let start: usize = r.trim_end_matches('-').parse().unwrap_or(0);
                            (start, f.body[start..f.send.max(start)].to_vec())
                        }
                        None => (0, f.body[..f.send].to_vec()),
                    };
                    let end = if range.as_deref() == Some("0-0") {
                        0
                    } else {
                        n - 1
                    };
                    let mut head = format!(
                        "HTTP/1.1 206 Partial Content\r\netag: \"blob-{n}\"\r\nx-repo-commit: {COMMIT}\r\n\
                         content-range: bytes {start}-{end}/{n}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    head.extend(body);
                    head
                }
            };
            stream.write_all(&response).ok();
            // Drain anything left so the client sees a clean close.
            let _ = reader.read(&mut [0u8; 16]);
        }
    });
    (url, log)
}
