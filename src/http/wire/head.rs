//! Request heads: the request line and the header fields, read strictly and within the limits.
//!
//! Owns: [`parse_head`] and the [`Head`] it returns, including the reading of the fields that
//! decide framing and the connection (`Host`, `Content-Length`, `Transfer-Encoding`, `Connection`,
//! `Expect`).
//! Never: accepts a head that another parser could read differently (obs-fold, whitespace before a
//! colon, bare CR, conflicting lengths, `Transfer-Encoding` with `Content-Length`); buffers past a
//! limit while waiting for a line end; decodes or normalizes the target (that is the router's job).
//!
//! Choices (current behaviour, may change): only origin-form (`/path?query`) and, for `OPTIONS`,
//! asterisk-form (`*`) targets are accepted; absolute-form (`http://host/path`) is refused with 400
//! so that the authority can never disagree with `Host`. Field values must be UTF-8 (400 otherwise).

use super::{is_forbidden_ctl, is_token, Framing, HeadError, Limits, Method, Version};

/// One parsed request head. Field names are kept as sent; lookups are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The request method.
    pub method: Method,
    /// The request target as sent: a path starting with `/` plus an optional `?query`, or `*`.
    /// Not percent-decoded, dot segments not removed.
    pub target: String,
    /// The protocol version of the request.
    pub version: Version,
    /// Every header field in order: the name as sent, the value without surrounding SP/HTAB.
    pub headers: Vec<(String, String)>,
    /// How the body is delimited.
    pub body: Framing,
    /// Whether the connection may carry another request: HTTP/1.1 unless `Connection: close`;
    /// HTTP/1.0 only with `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` (case-insensitive) on an HTTP/1.1 request; HTTP/1.0 ignores it, as
    /// RFC 9110 requires.
    pub expect_continue: bool,
}

impl Head {
    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target up to (without) the first `?`.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The target after the first `?`, empty when there is none.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }
}

/// Looks for one complete head at the start of `buf`.
///
/// `Ok(None)`: more bytes are needed, and every byte so far is within the limits.
/// `Ok(Some((head, n)))`: the head is `buf[..n]`; the body (if any) and further requests follow.
/// `Err(_)`: refuse the request with [`HeadError::status`] and close the connection.
///
/// Limits are checked incrementally: a request line, a header line or the whole head that is
/// already over its limit is refused as soon as `buf` shows it, without waiting for a line end, and
/// every complete line is checked as soon as it arrives; so is a byte that can never be valid in
/// the line still arriving (a control byte; in the request line also non-ASCII). A line ends with CRLF or a bare LF; a CR
/// anywhere else is refused. Empty lines before the request line are skipped and count toward
/// [`Limits::max_request_line`] and [`Limits::max_head`].
///
/// Guaranteed: if a prefix of some input is refused, the whole input is refused too, and parsing
/// `buf[..n]` again gives the same head. Each call re-reads `buf` from the start (at most
/// [`Limits::max_head`] bytes), so callers should call again only when a new LF has arrived.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, HeadError> {
    let mut pos = 0;
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        let skip = if rest.starts_with(b"\n") {
            1
        } else if rest.starts_with(b"\r\n") {
            2
        } else {
            break;
        };
        pos += skip;
        if pos > limits.max_request_line {
            return Err(HeadError::UriTooLong);
        }
        if pos > limits.max_head {
            return Err(HeadError::HeadTooLarge);
        }
    }

    let line_limit = limits.max_request_line.saturating_sub(pos);
    let (request_line, mut pos) = match take_line(buf, pos, line_limit, HeadError::UriTooLong)? {
        Line::Complete(content, end) => (content, check_head_size(end, limits)?),
        Line::Partial(so_far) => {
            // Refuse what can never become a request line (a TLS hello, binary noise) at once.
            if !so_far.iter().all(|b| (0x20..=0x7e).contains(b)) {
                return Err(HeadError::BadRequest("invalid byte in request line"));
            }
            return partial(buf, limits);
        }
    };
    let (method, target, version) = parse_request_line(request_line)?;

    let mut fields: Vec<(&str, &str)> = Vec::new();
    loop {
        let line = take_line(buf, pos, limits.max_header_line, HeadError::HeaderTooLarge)?;
        let (content, end) = match line {
            Line::Complete(content, end) => (content, check_head_size(end, limits)?),
            Line::Partial(so_far) => {
                if so_far.iter().any(|b| is_forbidden_ctl(*b)) {
                    return Err(HeadError::BadRequest("control character in a field line"));
                }
                return partial(buf, limits);
            }
        };
        pos = end;
        if content.is_empty() {
            break;
        }
        if fields.len() >= limits.max_headers {
            return Err(HeadError::TooManyHeaders);
        }
        fields.push(parse_field(content)?);
    }

    let head = finish(method, target, version, &fields, limits)?;
    Ok(Some((head, pos)))
}

/// One line at a given offset.
enum Line<'a> {
    /// The content without its CRLF or LF, and the offset just after the LF.
    Complete(&'a [u8], usize),
    /// No LF yet, and the content so far (without a trailing CR) is within the limit.
    Partial(&'a [u8]),
}

/// Finds the line starting at `start`, refusing it with `too_long` once its content is over
/// `limit`; looks at no more than `limit + 2` bytes.
fn take_line(
    buf: &[u8],
    start: usize,
    limit: usize,
    too_long: HeadError,
) -> Result<Line<'_>, HeadError> {
    let rest = buf.get(start..).unwrap_or_default();
    let window = rest.get(..limit.saturating_add(2)).unwrap_or(rest);
    match window.iter().position(|b| *b == b'\n') {
        Some(lf) => {
            let with_cr = window.get(..lf).unwrap_or_default();
            let content = with_cr.strip_suffix(b"\r").unwrap_or(with_cr);
            if content.len() > limit {
                return Err(too_long);
            }
            Ok(Line::Complete(
                content,
                start.saturating_add(lf).saturating_add(1),
            ))
        }
        None => {
            // A trailing CR may be the first half of the line's CRLF.
            let content = rest.strip_suffix(b"\r").unwrap_or(rest);
            if content.len() > limit {
                return Err(too_long);
            }
            Ok(Line::Partial(content))
        }
    }
}

/// The head so far ends at `end`: refuse it if that is over the limit.
fn check_head_size(end: usize, limits: &Limits) -> Result<usize, HeadError> {
    if end > limits.max_head {
        return Err(HeadError::HeadTooLarge);
    }
    Ok(end)
}

/// No complete head yet: fine unless the bytes so far are already over the limit.
fn partial(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, HeadError> {
    if buf.len() > limits.max_head {
        return Err(HeadError::HeadTooLarge);
    }
    Ok(None)
}

/// `METHOD SP request-target SP HTTP-version`, single spaces only.
fn parse_request_line(line: &[u8]) -> Result<(Method, String, Version), HeadError> {
    let mut parts = line.split(|b| *b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next();
    let version = parts.next();
    if parts.next().is_some() {
        return Err(HeadError::BadRequest("malformed request line"));
    }
    let (Some(target), Some(version)) = (target, version) else {
        return Err(HeadError::BadRequest(
            "request line without an HTTP version",
        ));
    };
    if !is_token(method) {
        return Err(HeadError::BadRequest("invalid method"));
    }
    let method = parse_method(method)?;
    let version = parse_version(version)?;
    let target = parse_target(&method, target)?;
    Ok((method, target, version))
}

fn parse_method(token: &[u8]) -> Result<Method, HeadError> {
    Ok(match token {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        b"POST" => Method::Post,
        b"PUT" => Method::Put,
        b"PATCH" => Method::Patch,
        b"DELETE" => Method::Delete,
        b"OPTIONS" => Method::Options,
        other => Method::Other(ascii_string(other)?),
    })
}

/// `HTTP/1.0` and `HTTP/1.1`; any other `HTTP/<digits>[.<digits>]` is a version we don't speak
/// (505); anything else is not HTTP (400).
fn parse_version(version: &[u8]) -> Result<Version, HeadError> {
    match version {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        other => {
            let number = other.strip_prefix(b"HTTP/").unwrap_or_default();
            let mut numbers = number.splitn(2, |b| *b == b'.');
            let major = numbers.next().unwrap_or_default();
            let minor_ok = numbers.next().is_none_or(is_digits);
            if is_digits(major) && minor_ok {
                Err(HeadError::VersionNotSupported)
            } else {
                Err(HeadError::BadRequest("malformed HTTP version"))
            }
        }
    }
}

fn is_digits(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit)
}

/// Origin-form, or `*` for `OPTIONS`; visible ASCII only, no fragment.
fn parse_target(method: &Method, target: &[u8]) -> Result<String, HeadError> {
    if target.is_empty() {
        return Err(HeadError::BadRequest("empty request target"));
    }
    if !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(HeadError::BadRequest("invalid byte in request target"));
    }
    if target.contains(&b'#') {
        return Err(HeadError::BadRequest("fragment in request target"));
    }
    if target == b"*" {
        if *method != Method::Options {
            return Err(HeadError::BadRequest(
                "asterisk-form target is only for OPTIONS",
            ));
        }
    } else if !target.starts_with(b"/") {
        return Err(HeadError::BadRequest("request target is not origin-form"));
    }
    ascii_string(target)
}

fn ascii_string(bytes: &[u8]) -> Result<String, HeadError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| HeadError::BadRequest("invalid byte in request line"))
}

/// `name ":" OWS value OWS`; the name a token, the value free of controls (HTAB aside) and UTF-8.
fn parse_field(line: &[u8]) -> Result<(&str, &str), HeadError> {
    if line.starts_with(b" ") || line.starts_with(b"\t") {
        return Err(HeadError::BadRequest("folded or indented field line"));
    }
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return Err(HeadError::BadRequest("field line without a colon"));
    };
    let name = line.get(..colon).unwrap_or_default();
    let value = line.get(colon.saturating_add(1)..).unwrap_or_default();
    if !is_token(name) {
        return Err(HeadError::BadRequest("invalid field name"));
    }
    if value.iter().any(|b| is_forbidden_ctl(*b)) {
        return Err(HeadError::BadRequest("control character in a field value"));
    }
    let name =
        std::str::from_utf8(name).map_err(|_| HeadError::BadRequest("invalid field name"))?;
    let value = std::str::from_utf8(value)
        .map_err(|_| HeadError::BadRequest("field value is not UTF-8"))?;
    Ok((name, value.trim_matches([' ', '\t'])))
}

/// The whole head is in: read the fields that decide framing and the connection.
fn finish(
    method: Method,
    target: String,
    version: Version,
    fields: &[(&str, &str)],
    limits: &Limits,
) -> Result<Head, HeadError> {
    let values = |wanted: &'static str| {
        fields
            .iter()
            .filter(move |(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| *value)
    };
    // Comma-separated list elements across every field of that name, OWS trimmed.
    let elements = |wanted: &'static str| {
        values(wanted).flat_map(|value| value.split(',').map(|e| e.trim_matches([' ', '\t'])))
    };

    match values("host").count() {
        0 if version == Version::Http11 => {
            return Err(HeadError::BadRequest("missing Host field"));
        }
        0 | 1 => {}
        _ => return Err(HeadError::BadRequest("several Host fields")),
    }

    let mut content_length: Option<u64> = None;
    for element in elements("content-length") {
        let n = parse_content_length(element)?;
        if content_length.is_some_and(|seen| seen != n) {
            return Err(HeadError::BadRequest("conflicting Content-Length values"));
        }
        content_length = Some(n);
    }

    let has_transfer_encoding = values("transfer-encoding").next().is_some();
    let body = if has_transfer_encoding {
        if version == Version::Http10 {
            return Err(HeadError::BadRequest(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if content_length.is_some() {
            return Err(HeadError::BadRequest(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let mut codings = elements("transfer-encoding");
        if codings.clone().any(str::is_empty) {
            return Err(HeadError::BadRequest("empty transfer coding"));
        }
        match (codings.next(), codings.next()) {
            (Some(only), None) if only.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => {
                return Err(HeadError::NotImplemented(
                    "transfer coding other than chunked",
                ))
            }
        }
    } else if let Some(n) = content_length {
        if n > super::to_u64(limits.max_body) {
            return Err(HeadError::BodyTooLarge);
        }
        Framing::Length(n)
    } else {
        Framing::None
    };

    let has_token = |token: &str| elements("connection").any(|e| e.eq_ignore_ascii_case(token));
    let keep_alive = match version {
        Version::Http11 => !has_token("close"),
        Version::Http10 => has_token("keep-alive") && !has_token("close"),
    };
    let expect_continue = version == Version::Http11
        && values("expect").any(|v| v.eq_ignore_ascii_case("100-continue"));

    Ok(Head {
        method,
        target,
        version,
        headers: fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        body,
        keep_alive,
        expect_continue,
    })
}

/// One `Content-Length` element: ASCII digits only, fitting in a `u64`.
fn parse_content_length(element: &str) -> Result<u64, HeadError> {
    if !is_digits(element.as_bytes()) {
        return Err(HeadError::BadRequest(
            "Content-Length is not a decimal number",
        ));
    }
    element.bytes().try_fold(0u64, |n, digit| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(digit - b'0')))
            .ok_or(HeadError::BadRequest("Content-Length overflows"))
    })
}
