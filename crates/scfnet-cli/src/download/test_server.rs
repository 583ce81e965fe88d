//! A loopback HTTP server for the download tests: plain and ranged GETs, a connection cut after
//! a number of bytes on the first full answer, 404s, HTML pages like Google Drive's, HEAD requests
//! and extra headers (the hub's `X-Repo-Commit`, an `ETag` of the route's own).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How one path is answered.
#[derive(Clone, Default)]
pub struct Route {
    /// The body.
    pub body: Vec<u8>,
    /// On the first answer without `Range`, send only this many bytes and close.
    pub cut_first_at: Option<usize>,
    /// Content type (default `application/octet-stream`).
    pub content_type: Option<String>,
    /// More headers of every answer; an `ETag` here replaces the default `"e<LENGTH>"`.
    pub headers: Vec<(String, String)>,
}

/// A running server: its base URL and the log of `PATH RANGE` lines it answered.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// One line per request.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Requests answered so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// Starts a server for `routes` (keys are paths without the query); it runs until the process ends.
pub fn serve(routes: HashMap<String, Route>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut cut_done: HashMap<String, bool> = HashMap::new();
        for stream in listener.incoming() {
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
                    range = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            let head_only = request.starts_with("HEAD ");
            let target = request.split_whitespace().nth(1).unwrap_or("").to_owned();
            let path = target.split('?').next().unwrap_or("").to_owned();
            log2.lock().unwrap().push(format!("{target} {range:?}"));
            let Some(route) = routes.get(&path) else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let n = route.body.len();
            let mut ctype = route
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into());
            // Extra headers ride on the content type's line; the default ETag gives way to one
            // of the route's.
            let own_etag = route
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("etag"));
            for (k, v) in &route.headers {
                ctype.push_str(&format!("\r\n{k}: {v}"));
            }
            let etag_line = |n: usize| {
                if own_etag {
                    String::new()
                } else {
                    format!("ETag: \"e{n}\"\r\n")
                }
            };
            let (head, body) = match range {
                Some(start) if start < n => (
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Type: {ctype}\r\n{}\
                         Content-Range: bytes {start}-{}/{n}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        etag_line(n),
                        n - 1,
                        n - start
                    ),
                    &route.body[start..],
                ),
                Some(_) => (
                    format!(
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{n}\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                    &route.body[..0],
                ),
                None => {
                    let send = match route.cut_first_at {
                        Some(k) if !cut_done.get(&path).copied().unwrap_or(false) => {
                            cut_done.insert(path.clone(), true);
                            k
                        }
                        _ => n,
                    };
                    (
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n{}\
                             Accept-Ranges: bytes\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n",
                            etag_line(n)
                        ),
                        &route.body[..send],
                    )
                }
            };
            let _ = stream.write_all(head.as_bytes());
            if !head_only {
                let _ = stream.write_all(body);
            }
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    Server { url, log }
}
