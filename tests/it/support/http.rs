//! Raw HTTP/1.1 for the tests, over `TcpStream` and nothing else: one client (`send`, `send_raw`
//! for bytes no well-behaved client writes, `parse_response` for answers read by hand, and `head`
//! and `connect` for tests that hold a stream open or send half a request; `KeepAlive` for many
//! requests on one connection), the reading of one
//! request (`read_request`), a one-shot receiver (`receive_one`) and a fake endpoint (`Endpoint`,
//! plain or TLS) for the gate's outgoing requests.
//! Never: follows redirects, retries, or hides a status: what the gate answers is what a test sees.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One answer: its status, its head (status line and headers) and its body (de-chunked).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    /// The JSON body, or for server-sent events the answer among them (the last data line).
    pub fn json(&self) -> serde_json::Value {
        if self.body.starts_with("event:") {
            let last = self
                .body
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_default();
            return serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {}", self.body));
        }
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The value of header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name)
    }
}

/// The value of header `name` (any case) in a request or response head.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A request head for `addr`: the request line, `Host` (unless `headers` name one), `headers`,
/// and the blank line.
pub fn head(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        text.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text
}

/// A connection to `addr` whose reads give up after `timeout`.
pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    Ok(stream)
}

/// Sends one request (`Connection: close`, a `Content-Length`) and reads the whole answer.
pub fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<Response> {
    let body = body.unwrap_or_default();
    let length = body.len().to_string();
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    all.push(("Content-Length", &length));
    let text = head(addr, method, path, &all) + body;
    send_raw(addr, text.as_bytes(), timeout)
}

/// Sends `bytes` as they are (a request the client above would not write) and reads until the
/// server closes: the answer, for requests that end with `Connection: close` or are refused.
pub fn send_raw(addr: &str, bytes: &[u8], timeout: Duration) -> std::io::Result<Response> {
    let mut stream = connect(addr, timeout)?;
    // A server may answer (413, 401…) and close before it has read a whole body; the answer is
    // still there to read.
    let _ = stream.write_all(bytes);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(parse_response(&String::from_utf8_lossy(&raw)))
}

/// A kept-alive HTTP/1.1 connection: requests one after the other on one TCP connection, as a
/// pooled client sends them; each answer read by its `Content-Length` or its chunks.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
    addr: String,
}

impl KeepAlive {
    /// A connection to `addr` whose reads give up after `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<KeepAlive> {
        Ok(KeepAlive {
            reader: BufReader::new(connect(addr, timeout)?),
            addr: addr.to_owned(),
        })
    }

    /// Sends one request (with a `Content-Length`) and reads its answer; the connection stays
    /// open for the next one.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let body = body.unwrap_or_default();
        let length = body.len().to_string();
        let mut all = headers.to_vec();
        all.push(("Content-Length", &length));
        let text = head(&self.addr, method, path, &all) + body;
        self.reader.get_mut().write_all(text.as_bytes())?;
        let (head, bytes) = read_message(&mut self.reader);
        if head.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut response = parse_response(&head);
        response.body = match header(&head, "Transfer-Encoding") {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => self.read_chunks()?,
            _ => String::from_utf8_lossy(&bytes).into_owned(),
        };
        Ok(response)
    }

    /// A chunked body, to its last chunk.
    fn read_chunks(&mut self) -> std::io::Result<String> {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            self.reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk)?;
            if size == 0 {
                return Ok(String::from_utf8_lossy(&body).into_owned());
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

/// One whole answer as read from a connection: status, head and (de-chunked) body.
pub fn parse_response(raw: &str) -> Response {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Response {
        status,
        headers: head.to_owned(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    }
}

/// The payload of a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Reads from `stream` into `seen` until `want` appears in what came so far.
pub fn read_until(stream: &mut TcpStream, seen: &mut String, want: &str) {
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        match stream.read(&mut buf) {
            Ok(0) => panic!("the stream ended before {want:?}: {seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("no {want:?} in time ({e}): {seen}"),
        }
    }
}

/// Reads one message's head (up to the blank line) and its `Content-Length` body; what a
/// connection closed early leaves out is simply missing.
pub fn read_message<R: BufRead>(reader: &mut R) -> (String, Vec<u8>) {
    let (mut head, mut length) = (String::new(), 0);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    (head, body)
}

/// A receiver on 127.0.0.1 for one request: its URL (ending in `path`) and a thread that
/// answers the first request with 204 and returns its head and body.
pub fn receive_one(path: &str) -> (String, std::thread::JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let (head, body) = read_message(&mut BufReader::new(stream.try_clone().unwrap()));
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        (head, String::from_utf8(body).unwrap())
    });
    (url, handle)
}

/// What an [`Endpoint`] answers: the JSON for a request's head and body.
pub type Answer = Box<dyn Fn(&str, &str) -> String + Send>;

/// An HTTP endpoint on 127.0.0.1 (plain or TLS) that answers every request with the JSON
/// that `answer(head, body)` returns (as a 200, or the status of [`Endpoint::refusing`]); counts
/// requests; stopped and joined on drop.
pub struct Endpoint {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    pub fn start(path: &str, tls: Option<Arc<rustls::ServerConfig>>, answer: Answer) -> Endpoint {
        Endpoint::launch(path, tls, 200, answer)
    }

    /// A plain endpoint that answers every request with `status` and `body` (a server that
    /// refuses the gate: 401, 404, 503…).
    pub fn refusing(path: &str, status: u16, body: &'static str) -> Endpoint {
        Endpoint::launch(path, None, status, Box::new(move |_, _| body.to_owned()))
    }

    fn launch(
        path: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
        status: u16,
        answer: Answer,
    ) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (hits, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (h, s) = (Arc::clone(&hits), Arc::clone(&stop));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = stream else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                match &tls {
                    None => {
                        exchange(tcp, status, &answer);
                    }
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(Arc::clone(config)).unwrap();
                        let stream = rustls::StreamOwned::new(conn, tcp);
                        let mut tls = exchange(stream, status, &answer);
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                };
            }
        });
        Endpoint {
            url: format!("{scheme}://{addr}{path}"),
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops answering: later requests find nothing listening.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one request and writes `answer`'s JSON with `status`.
fn exchange<S: Read + Write>(mut stream: S, status: u16, answer: &Answer) -> S {
    let (head, body) = read_message(&mut BufReader::new(&mut stream));
    let reply = answer(&head, &String::from_utf8_lossy(&body));
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    stream
}
