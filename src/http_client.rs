//! A small synchronous HTTP/1.1 client: enough for MCP over Streamable HTTP.
//!
//! Owns: `http://` and `https://` URLs, one connection per request (`Connection: close`),
//! connect, read and write timeouts on every socket, TLS (rustls; Mozilla's roots compiled in,
//! plus the PEM certificates of [`CA_FILE_ENV`] for private CAs), and response bodies as a
//! streaming reader (Content-Length, chunked, or until close), so an event stream is read event
//! by event.
//! Never: follows redirects; skips certificate or host-name checks; reads a header block over
//! [`MAX_HEAD`] bytes or a chunk-size line over 64 bytes.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest status line plus headers accepted.
const MAX_HEAD: usize = 64 * 1024;

/// The environment variable naming a PEM file of extra CA certificates (a private CA), trusted
/// besides Mozilla's roots.
pub(crate) const CA_FILE_ENV: &str = "AEGIS_CA_FILE";

/// Why a request failed before a response arrived.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// Not an `http(s)://host[:port]/path` URL.
    Url(String),
    /// TLS could not be set up (the CA file, the host name).
    Tls(String),
    /// Connecting, sending or reading the head failed.
    Io(io::Error),
    /// The response head is not HTTP/1.x.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(why) => write!(f, "bad URL: {why}"),
            ClientError::Tls(why) => write!(f, "TLS: {why}"),
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Protocol(why) => write!(f, "not an HTTP/1.x response: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

/// Headers the client or the bridge set themselves; configured headers may not.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "aegis-delegation",
];

/// Whether `name` may be a configured header: a token of letters, digits, `-` and `_`, and not
/// one the transport sets itself.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !RESERVED.contains(&name.to_ascii_lowercase().as_str())
}

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url {
    host: String,
    port: u16,
    path: String,
    tls: bool,
}

impl Url {
    /// Parses `http(s)://host[:port][/path]`.
    pub(crate) fn parse(text: &str) -> Result<Url, ClientError> {
        let (rest, tls) = match (text.strip_prefix("https://"), text.strip_prefix("http://")) {
            (Some(rest), _) => (rest, true),
            (None, Some(rest)) => (rest, false),
            _ => {
                return Err(ClientError::Url(
                    "the URL does not start with http:// or https://".into(),
                ))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(ClientError::Url("the URL has no plain host".into()));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse()
                    .map_err(|_| ClientError::Url("the URL's port is not a number".into()))?;
                (h, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let bad = |c: char| c.is_whitespace() || c.is_control();
        if host.is_empty() || host.contains(bad) || path.contains(bad) {
            return Err(ClientError::Url(
                "the URL has spaces or control characters".into(),
            ));
        }
        Ok(Url {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            tls,
        })
    }

    fn host_header(&self) -> String {
        if self.port == if self.tls { 443 } else { 80 } {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A response whose body is read as it arrives.
pub(crate) struct Response {
    /// The status code.
    pub status: u16,
    headers: Vec<(String, String)>,
    body: Box<dyn BufRead + Send>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({})", self.status)
    }
}

impl Response {
    /// A header's value (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body, read as it arrives.
    pub(crate) fn body(&mut self) -> &mut (dyn BufRead + Send) {
        &mut *self.body
    }

    /// The whole body, at most `max` bytes (an error beyond).
    pub(crate) fn read_all(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
        (&mut self.body).take(limit).read_to_end(&mut out)?;
        if out.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response body over {max} bytes"),
            ));
        }
        Ok(out)
    }
}

/// Sends one request and reads the response head; `timeout` bounds the connect and every read
/// and write (an event stream that stays silent longer ends with a timeout error), and
/// `deadline`, when given, the whole exchange: reading the body past it is a timeout error,
/// however the server trickles.
pub(crate) fn send(
    url: &Url,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
    deadline: Option<Instant>,
) -> Result<Response, ClientError> {
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| ClientError::Url(format!("{} does not resolve", url.host)))?;
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        url.path,
        url.host_header(),
        body.len()
    );
    for (name, value) in headers {
        if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
            return Err(ClientError::Url(format!(
                "header {name:?} is not a plain header"
            )));
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut conn: Box<dyn ReadWrite> = if url.tls {
        Box::new(tls_stream(&url.host, stream)?)
    } else {
        Box::new(stream)
    };
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()?;
    let mut reader = BufReader::new(conn);
    let (status, headers) = read_head(&mut reader)?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body: Box<dyn BufRead + Send> = if method == "HEAD" || status == 204 || status == 304 {
        Box::new(io::empty())
    } else if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Box::new(BufReader::new(Chunked::new(reader)))
    } else if let Some(length) = header("Content-Length") {
        let length: u64 = length
            .trim()
            .parse()
            .map_err(|_| ClientError::Protocol(format!("Content-Length {length:?}")))?;
        Box::new(reader.take(length))
    } else {
        Box::new(reader)
    };
    let body: Box<dyn BufRead + Send> = match deadline {
        Some(at) => Box::new(BufReader::new(Deadline { inner: body, at })),
        None => body,
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A reader that fails with a timeout once its deadline has passed.
struct Deadline {
    inner: Box<dyn BufRead + Send>,
    at: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.at {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the answer did not end in time",
            ));
        }
        self.inner.read(buf)
    }
}

fn read_head(reader: &mut impl BufRead) -> Result<(u16, Vec<(String, String)>), ClientError> {
    let mut used = 0;
    let mut line = |reader: &mut dyn BufRead| -> Result<String, ClientError> {
        let mut buf = Vec::new();
        let budget = u64::try_from(MAX_HEAD.saturating_sub(used)).unwrap_or(0);
        reader.take(budget).read_until(b'\n', &mut buf)?;
        used += buf.len();
        if !buf.ends_with(b"\n") {
            return Err(ClientError::Protocol("head cut short or too long".into()));
        }
        Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
    };
    let status_line = line(reader)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| ClientError::Protocol(status_line.clone()))?;
    let mut headers = Vec::new();
    loop {
        let header = line(reader)?;
        if header.is_empty() {
            return Ok((status, headers));
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
}

/// A connection, plain or TLS.
trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// The TLS client settings: Mozilla's roots, plus [`CA_FILE_ENV`]'s certificates; built once.
fn tls_config() -> Result<std::sync::Arc<rustls::ClientConfig>, ClientError> {
    static CONFIG: std::sync::OnceLock<Result<std::sync::Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            if let Ok(path) = std::env::var(CA_FILE_ENV) {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
                    .map_err(|e| format!("{CA_FILE_ENV} {path}: {e}"))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("{CA_FILE_ENV} {path}: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("{CA_FILE_ENV} {path}: {e}"))?;
                }
            }
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(std::sync::Arc::new(config))
        })
        .clone()
        .map_err(ClientError::Tls)
}

fn tls_stream(
    host: &str,
    tcp: TcpStream,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, ClientError> {
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|_| ClientError::Tls(format!("{host} is not a valid server name")))?;
    let conn = rustls::ClientConnection::new(tls_config()?, name)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// Decodes a chunked body as it arrives.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Chunked<R> {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }

    fn next_size(&mut self) -> io::Result<u64> {
        let mut line = Vec::new();
        (&mut self.inner).take(64).read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let size = text.trim().split(';').next().unwrap_or_default();
        u64::from_str_radix(size, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {text:?}"),
            )
        })
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            self.left = self.next_size()?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body cut short",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a chunk does not end with CRLF",
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_their_default_ports() {
        let url = Url::parse("http://127.0.0.1:8787/mcp/ws-1").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("127.0.0.1", 8787, "/mcp/ws-1")
        );
        assert_eq!(Url::parse("http://example.com").unwrap().path, "/");
        let tls = Url::parse("https://example.com/mcp").unwrap();
        assert_eq!(
            (tls.port, tls.tls, tls.host_header()),
            (443, true, "example.com".to_owned())
        );
        assert!(matches!(Url::parse("ftp://x"), Err(ClientError::Url(_))));
        assert!(matches!(
            Url::parse("http://u:p@x/"),
            Err(ClientError::Url(_))
        ));
        assert!(matches!(
            Url::parse("http://x:99999/"),
            Err(ClientError::Url(_))
        ));
    }

    #[test]
    fn chunked_bodies_decode_and_a_cut_one_is_an_error() {
        let raw: &[u8] = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        let mut out = String::new();
        Chunked::new(raw).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
        let cut: &[u8] = b"5\r\nhel";
        assert!(Chunked::new(cut)
            .read_to_string(&mut String::new())
            .is_err());
    }

    #[test]
    fn a_head_is_parsed_and_garbage_refused() {
        let mut ok: &[u8] = b"HTTP/1.1 202 Accepted\r\nMcp-Session-Id: abc\r\n\r\n";
        let (status, headers) = read_head(&mut ok).unwrap();
        assert_eq!(status, 202);
        assert_eq!(headers[0], ("Mcp-Session-Id".into(), "abc".into()));
        let mut bad: &[u8] = b"SSH-2.0-OpenSSH\r\n\r\n";
        assert!(read_head(&mut bad).is_err());
    }
}
