//! A webhook receiver for the alert tests: a plain HTTP/1.1 server on 127.0.0.1 that
//! records every request and answers with scripted statuses.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    got: Vec<Received>,
    /// Statuses to answer with, in order; 200 once they run out.
    script: VecDeque<u16>,
}

/// A running receiver; it stops with the test process.
pub struct Receiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    /// Starts a receiver that answers the first requests with `statuses` (a 3xx with
    /// `location: /elsewhere`), then 200.
    pub fn start(statuses: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared {
            got: Vec::new(),
            script: statuses.iter().copied().collect(),
        }));
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&serving);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Receiver { url, shared }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().got.clone()
    }
}

fn serve(stream: TcpStream, shared: &Mutex<Shared>) {
    let mut reader = BufReader::new(stream.try_clone().expect("a stream clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let status = {
        let mut shared = shared.lock().unwrap();
        let status = shared.script.pop_front().unwrap_or(200);
        shared.got.push(Received {
            at: Instant::now(),
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            status,
        });
        status
    };
    let mut stream = stream;
    // A scripted redirect points elsewhere on this receiver, so following it shows.
    let location = if (300..400).contains(&status) {
        "location: /elsewhere\r\n"
    } else {
        ""
    };
    let answer = format!(
        "HTTP/1.1 {status} Scripted\r\n{location}content-length: 2\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nok"
    );
    let _ = stream.write_all(answer.as_bytes());
}
