//! A static page server for the browser tests: a plain HTTP/1.1 server on 127.0.0.1
//! that answers `/` with one HTML page and `/node_modules/...` with the repository's
//! npm packages, so a page can load a tracker's ES module build as it ships, without a
//! bundler.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// A running page server; it stops with the test process.
pub struct Pages {
    /// The port it listens on (the page's origin is `http://<host>:<port>`).
    pub port: u16,
}

impl Pages {
    /// Serves `html` at every path that is not under `/node_modules/`.
    pub fn start(html: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().unwrap().port();
        let html = Arc::new(html);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let html = Arc::clone(&html);
                std::thread::spawn(move || serve(stream, &html));
            }
        });
        Pages { port }
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The file a `/node_modules/...` path names, if it stays inside `node_modules`. An
/// import without an extension (`./lib/tracker`, as TypeScript writes them) is the `.js`
/// file, as a bundler would resolve it.
fn module_file(path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.strip_prefix('/')?);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let file = repository().join(relative);
    if file.is_file() {
        return Some(file);
    }
    let with_js = file.with_extension("js");
    with_js.is_file().then_some(with_js)
}

fn serve(stream: TcpStream, html: &str) {
    let mut reader = BufReader::new(stream.try_clone().expect("a stream clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
    }
    let (status, media, body) = if path.starts_with("/node_modules/") {
        match module_file(&path).and_then(|f| std::fs::read(f).ok()) {
            // A module script must come with a JavaScript media type.
            Some(body) => ("200 OK", "text/javascript", body),
            None => ("404 Not Found", "text/plain", b"not found".to_vec()),
        }
    } else {
        (
            "200 OK",
            "text/html; charset=utf-8",
            html.as_bytes().to_vec(),
        )
    };
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {media}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}
