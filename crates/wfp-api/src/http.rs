//! HTTP/1.1 message framing for the API, both ends: a start line, headers, and a body sized by
//! `Content-Length` (requests and ordinary answers) or chunked (the event stream only). Every
//! read is bounded ([`Limits`]); anything else is a typed [`HttpError`], never a panic.

use std::io::{self, BufRead, Read, Write};

/// Size limits for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Start line plus headers.
    pub max_head: usize,
    /// Body.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: 16 * 1024,
            max_body: 1024 * 1024,
        }
    }
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The peer closed the connection before the first byte (a clean end of a keep-alive
    /// connection).
    #[error("connection closed")]
    Closed,
    /// The socket failed or timed out.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// Start line and headers exceed [`Limits::max_head`] (431).
    #[error("header section larger than {0} bytes")]
    HeadTooLarge(usize),
    /// The body exceeds [`Limits::max_body`] (413).
    #[error("body of {got} bytes exceeds the limit of {limit}")]
    BodyTooLarge {
        /// The announced length.
        got: u64,
        /// The limit.
        limit: usize,
    },
    /// Not HTTP/1.1 as this API speaks it (400).
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// One request or response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// `GET /v1/state HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (empty for a chunked answer, which the caller reads with [`ChunkedReader`]).
    pub body: Vec<u8>,
}

impl Message {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when the body is chunked.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }

    /// A request's method and target.
    pub fn request_line(&self) -> Result<(&str, &str), HttpError> {
        let mut parts = self.start.split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some("HTTP/1.1" | "HTTP/1.0"), None) if !m.is_empty() => Ok((m, t)),
            _ => Err(HttpError::Malformed(format!(
                "bad request line {:?}",
                self.start
            ))),
        }
    }

    /// A response's status code.
    pub fn status(&self) -> Result<u16, HttpError> {
        self.start
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| HttpError::Malformed(format!("bad status line {:?}", self.start)))
    }
}

fn read_line(r: &mut impl BufRead, budget: &mut usize, limit: usize) -> Result<String, HttpError> {
    let mut buf = Vec::new();
    let cap = u64::try_from(*budget).unwrap_or(u64::MAX);
    let n = r.by_ref().take(cap).read_until(b'\n', &mut buf)?;
    *budget = budget.saturating_sub(n);
    if buf.last() != Some(&b'\n') {
        return Err(if n == 0 {
            HttpError::Closed
        } else if *budget == 0 {
            HttpError::HeadTooLarge(limit)
        } else {
            HttpError::Malformed("truncated header section".into())
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| HttpError::Malformed("header is not UTF-8".into()))
}

/// Reads one message (head, then a `Content-Length` body unless chunked).
pub fn read_message(r: &mut impl BufRead, limits: &Limits) -> Result<Message, HttpError> {
    let mut budget = limits.max_head;
    let start = read_line(r, &mut budget, limits.max_head)?;
    let mut headers = Vec::new();
    loop {
        let line = match read_line(r, &mut budget, limits.max_head) {
            Err(HttpError::Closed) => {
                return Err(HttpError::Malformed("truncated header section".into()))
            }
            other => other?,
        };
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut msg = Message {
        start,
        headers,
        body: Vec::new(),
    };
    if msg.is_chunked() {
        return Ok(msg);
    }
    let len: u64 = match msg.header("content-length") {
        None => 0,
        Some(v) => v
            .parse()
            .map_err(|_| HttpError::Malformed(format!("bad Content-Length {v:?}")))?,
    };
    if len > u64::try_from(limits.max_body).unwrap_or(u64::MAX) {
        return Err(HttpError::BodyTooLarge {
            got: len,
            limit: limits.max_body,
        });
    }
    let mut body = Vec::new();
    r.by_ref().take(len).read_to_end(&mut body)?;
    if u64::try_from(body.len()).ok() != Some(len) {
        return Err(HttpError::Malformed("truncated body".into()));
    }
    msg.body = body;
    Ok(msg)
}

/// Writes a request with an optional JSON body.
pub fn write_request(
    w: &mut impl Write,
    method: &str,
    target: &str,
    body: Option<&[u8]>,
) -> io::Result<()> {
    let body = body.unwrap_or_default();
    // One buffer, one write: a formatted write straight to a socket costs a syscall per piece.
    let mut out = Vec::with_capacity(128 + body.len());
    write!(
        out,
        "{method} {target} HTTP/1.1\r\nHost: wfpd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

/// The reason phrase of the status codes the API uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes a JSON answer with `Content-Length`; `close` adds `Connection: close`.
pub fn write_response(w: &mut impl Write, status: u16, body: &[u8], close: bool) -> io::Result<()> {
    write_response_typed(w, status, "application/json", body, close)
}

/// Writes an answer of `content_type` with `Content-Length`; `close` adds `Connection: close`.
pub fn write_response_typed(
    w: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(128 + body.len());
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}\r\n",
        reason(status),
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )?;
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

/// Starts a chunked answer (the event stream: one JSON object per line).
pub fn write_stream_head(w: &mut impl Write) -> io::Result<()> {
    w.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
    )?;
    w.flush()
}

/// Writes one chunk (an empty `data` ends the stream).
pub fn write_chunk(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(data.len() + 12);
    write!(out, "{:x}\r\n", data.len())?;
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    w.write_all(&out)?;
    w.flush()
}

/// Reads the body of a chunked answer.
pub struct ChunkedReader<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> ChunkedReader<R> {
    /// Over the connection, positioned after the head.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            left: 0,
            done: false,
        }
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut budget = 64;
        let line = read_line(&mut self.inner, &mut budget, 64).map_err(io::Error::other)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        self.left = u64::from_str_radix(size, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if self.left == 0 {
            self.done = true;
        }
        Ok(())
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            self.next_chunk()?;
            if self.done {
                return Ok(0);
            }
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= u64::try_from(n).unwrap_or(0);
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_and_refuses_oversized_or_truncated_ones() {
        let limits = Limits {
            max_head: 128,
            max_body: 8,
        };
        let ok = b"POST /v1/filters HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        let m = read_message(&mut &ok[..], &limits).unwrap();
        assert_eq!(m.request_line().unwrap(), ("POST", "/v1/filters"));
        assert_eq!(m.body, b"{}");
        let big = b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789";
        assert!(matches!(
            read_message(&mut &big[..], &limits),
            Err(HttpError::BodyTooLarge { got: 9, .. })
        ));
        let long_head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(200));
        assert!(matches!(
            read_message(&mut long_head.as_bytes(), &limits),
            Err(HttpError::HeadTooLarge(128))
        ));
        for bad in [
            &b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"[..],
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(
                matches!(
                    read_message(&mut &bad[..], &limits),
                    Err(HttpError::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            read_message(&mut &b""[..], &limits),
            Err(HttpError::Closed)
        ));
    }

    #[test]
    fn chunked_bodies_read_back() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello ").unwrap();
        write_chunk(&mut out, b"world\n").unwrap();
        write_chunk(&mut out, b"").unwrap();
        let mut text = String::new();
        ChunkedReader::new(&out[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello world\n");
    }
}
