//! The Redis read path: `MGET` written as RESP and its reply parsed in place, on pooled
//! connections that the request's own task drives.
//!
//! A lookup of 1,000 keys spends most of its client time turning the reply into values; the
//! general-purpose client builds a value tree and copies every value out, and hands the reply
//! between tasks. Here the reply stays in one buffer, each key's value is a span of it
//! ([`Fetched`]), and no other task is woken. Writes (the newer-wins script) keep the
//! general-purpose client.
//!
//! Connections come from the same parsed URL as the writer's: TCP, TLS (native-tls, verified
//! unless `#insecure`) or a Unix socket, with `AUTH` and `SELECT` as the URL asks. A connection
//! that fails is dropped; a pooled one that fails (the server restarted, say) is retried once on
//! a fresh connection, since `MGET` is a read (a timeout is not retried: a slow server would
//! only get the work twice). A request dropped halfway drops its connection, so a reply is
//! never read by the wrong request. At most [`MAX_CONNECTIONS`] are open at once; more
//! concurrent lookups wait for one.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long connecting (with its handshake) and one exchange may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections open at once (each concurrent lookup uses one); idle ones are kept for reuse.
pub const MAX_CONNECTIONS: usize = 64;

/// The longest bulk string a reply may hold (Redis's own `proto-max-bulk-len` default).
const MAX_BULK: usize = 512 * 1024 * 1024;

/// Values of many keys: spans of one buffer, in key order; `None` where a key has no value.
#[derive(Debug, Default, Clone)]
pub struct Fetched {
    data: Vec<u8>,
    spans: Vec<Option<(usize, usize)>>,
}

impl Fetched {
    /// Values appended one by one (a store that reads them separately).
    pub fn with_capacity(keys: usize) -> Self {
        Fetched {
            data: Vec::new(),
            spans: Vec::with_capacity(keys),
        }
    }

    pub fn push(&mut self, value: Option<&[u8]>) {
        self.spans.push(value.map(|v| {
            let start = self.data.len();
            self.data.extend_from_slice(v);
            (start, self.data.len())
        }));
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `i`-th key's value.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.spans[i].map(|(a, b)| &self.data[a..b])
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<&[u8]>> {
        self.spans.iter().map(|s| s.map(|(a, b)| &self.data[a..b]))
    }
}

/// Why an exchange failed: the connection (worth one retry on a fresh one), no answer in
/// time, or the reply.
#[derive(Debug)]
enum Failure {
    Connection(String),
    Timeout(String),
    Reply(String),
}

impl Failure {
    fn message(self) -> String {
        match self {
            Failure::Connection(m) | Failure::Timeout(m) | Failure::Reply(m) => m,
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

struct Conn {
    stream: Box<dyn Stream>,
}

/// Pooled read connections to one Redis.
pub struct MgetPool {
    info: ConnectionInfo,
    idle: Mutex<Vec<Conn>>,
    slots: tokio::sync::Semaphore,
}

/// The `MGET`s of `keys` in chunks of at most `chunk` keys, as RESP.
fn encode_mgets<K: AsRef<str>>(keys: &[K], chunk: usize) -> Vec<u8> {
    let bytes: usize = keys.iter().map(|k| k.as_ref().len() + 16).sum();
    let mut out = Vec::with_capacity(bytes + 32 * keys.len().div_ceil(chunk));
    for part in keys.chunks(chunk) {
        push_header(&mut out, b'*', part.len() + 1);
        push_bulk(&mut out, b"MGET");
        for k in part {
            push_bulk(&mut out, k.as_ref().as_bytes());
        }
    }
    out
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, s: &[u8]) {
    push_header(out, b'$', s.len());
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

/// A command of string arguments, as RESP.
fn encode_command(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    push_header(&mut out, b'*', args.len());
    for a in args {
        push_bulk(&mut out, a.as_bytes());
    }
    out
}

/// Reads the replies to pipelined `MGET`s as they arrive: where parsing stopped, and the
/// spans found so far. Parsing only ever moves past complete items, so it resumes where the
/// last read ended.
struct MgetReplies {
    /// Elements each reply must have, in order; `next` indexes it.
    expect: Vec<usize>,
    next: usize,
    /// Elements still to read of the current reply; `None` before its header.
    left: Option<usize>,
    pos: usize,
    spans: Vec<Option<(usize, usize)>>,
}

/// The line starting at `pos` (without its CRLF) and where the next begins, if complete.
fn line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let end = pos + buf.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[pos..end], end + 2))
}

fn number(s: &[u8]) -> Result<i64, Failure> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Failure::Reply(format!(
                "not a number in a reply: {:?}",
                String::from_utf8_lossy(s)
            ))
        })
}

impl MgetReplies {
    fn new(expect: Vec<usize>) -> Self {
        let keys = expect.iter().sum();
        MgetReplies {
            expect,
            next: 0,
            left: None,
            pos: 0,
            spans: Vec::with_capacity(keys),
        }
    }

    /// Parses what `buf` holds; `true` once every reply is complete.
    fn advance(&mut self, buf: &[u8]) -> Result<bool, Failure> {
        while self.next < self.expect.len() {
            let left = match self.left {
                Some(n) => n,
                None => {
                    let Some((head, after)) = line(buf, self.pos) else {
                        return Ok(false);
                    };
                    let n = match head.split_first() {
                        Some((b'*', n)) => number(n)?,
                        Some((b'-', msg)) => {
                            return Err(Failure::Reply(String::from_utf8_lossy(msg).into_owned()));
                        }
                        _ => {
                            return Err(Failure::Reply(format!(
                                "unexpected reply to MGET: {:?}",
                                String::from_utf8_lossy(head)
                            )));
                        }
                    };
                    let want = self.expect[self.next];
                    if n != want as i64 {
                        return Err(Failure::Reply(format!(
                            "MGET of {want} keys answered with {n} values"
                        )));
                    }
                    self.pos = after;
                    want
                }
            };
            self.left = Some(left);
            for done in 0..left {
                let Some((head, after)) = line(buf, self.pos) else {
                    self.left = Some(left - done);
                    return Ok(false);
                };
                match head.split_first() {
                    Some((b'$', n)) => {
                        let n = number(n)?;
                        if n == -1 {
                            self.spans.push(None);
                            self.pos = after;
                            continue;
                        }
                        let end = usize::try_from(n)
                            .ok()
                            .filter(|&n| n <= MAX_BULK)
                            .and_then(|n| after.checked_add(n))
                            .ok_or_else(|| {
                                Failure::Reply(format!("a bulk string of length {n}"))
                            })?;
                        if buf.len() < end + 2 {
                            self.left = Some(left - done);
                            return Ok(false);
                        }
                        if &buf[end..end + 2] != b"\r\n" {
                            return Err(Failure::Reply("a bulk string without its CRLF".into()));
                        }
                        self.spans.push(Some((after, end)));
                        self.pos = end + 2;
                    }
                    _ => {
                        return Err(Failure::Reply(format!(
                            "unexpected element in an MGET reply: {:?}",
                            String::from_utf8_lossy(head)
                        )));
                    }
                }
            }
            self.left = None;
            self.next += 1;
        }
        Ok(true)
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::Connection(format!("{what}: {e}"))
}

impl Conn {
    /// Sends `request` and reads until `replies` has all it expects; the reply buffer.
    async fn exchange(
        &mut self,
        request: &[u8],
        replies: &mut MgetReplies,
    ) -> Result<Vec<u8>, Failure> {
        self.stream.write_all(request).await.map_err(io("write"))?;
        self.stream.flush().await.map_err(io("write"))?;
        // About what a reply of small values takes; it grows for large ones.
        let keys: usize = replies.expect.iter().sum();
        let mut buf: Vec<u8> = Vec::with_capacity((keys * 64).clamp(1024, 1 << 20));
        loop {
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(buf.capacity());
            }
            let n = self.stream.read_buf(&mut buf).await.map_err(io("read"))?;
            if n == 0 {
                return Err(Failure::Connection(
                    "the server closed the connection".into(),
                ));
            }
            if replies.advance(&buf)? {
                return Ok(buf);
            }
        }
    }

    /// A simple command's `+OK`-style reply (AUTH, SELECT).
    async fn simple(&mut self, args: &[&str]) -> Result<(), Failure> {
        self.stream
            .write_all(&encode_command(args))
            .await
            .map_err(io("write"))?;
        self.stream.flush().await.map_err(io("write"))?;
        let mut buf = Vec::with_capacity(256);
        loop {
            let n = self.stream.read_buf(&mut buf).await.map_err(io("read"))?;
            if n == 0 {
                return Err(Failure::Connection(
                    "the server closed the connection".into(),
                ));
            }
            if let Some((head, _)) = line(&buf, 0) {
                return match head.split_first() {
                    Some((b'+', _)) => Ok(()),
                    _ => Err(Failure::Reply(format!(
                        "{} refused: {}",
                        args[0],
                        String::from_utf8_lossy(head.get(1..).unwrap_or_default())
                    ))),
                };
            }
        }
    }
}

impl MgetPool {
    pub fn new(info: ConnectionInfo) -> Self {
        MgetPool {
            info,
            idle: Mutex::new(Vec::new()),
            slots: tokio::sync::Semaphore::new(MAX_CONNECTIONS),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        // The pool's list stays valid whatever panicked while holding it.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let addr = self.info.addr();
        let stream: Box<dyn Stream> = match addr {
            ConnectionAddr::Tcp(host, port) => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io("connect"))?;
                tcp.set_nodelay(true).map_err(io("connect"))?;
                Box::new(tcp)
            }
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                tls_params,
            } => {
                if tls_params.is_some() {
                    return Err(Failure::Connection(
                        "TLS client certificates and custom roots are not supported for reads"
                            .into(),
                    ));
                }
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io("connect"))?;
                tcp.set_nodelay(true).map_err(io("connect"))?;
                let mut builder = native_tls::TlsConnector::builder();
                if *insecure {
                    builder
                        .danger_accept_invalid_certs(true)
                        .danger_accept_invalid_hostnames(true)
                        .use_sni(false);
                }
                let tls = builder
                    .build()
                    .map_err(|e| Failure::Connection(format!("tls: {e}")))?;
                let stream = tokio_native_tls::TlsConnector::from(tls)
                    .connect(host, tcp)
                    .await
                    .map_err(|e| Failure::Connection(format!("tls handshake: {e}")))?;
                Box::new(stream)
            }
            ConnectionAddr::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(io("connect"))?,
            ),
            other => {
                return Err(Failure::Connection(format!("unsupported address {other}")));
            }
        };
        let mut conn = Conn { stream };
        let settings = self.info.redis_settings();
        match (settings.username(), settings.password()) {
            (Some(user), Some(pw)) => match conn.simple(&["AUTH", user, pw]).await {
                // Redis before 6 knows no users: the password alone, as the redis crate does.
                Err(Failure::Reply(m)) if m.contains("wrong number of arguments") => {
                    conn.simple(&["AUTH", pw]).await?
                }
                other => other?,
            },
            (None, Some(pw)) => conn.simple(&["AUTH", pw]).await?,
            _ => {}
        }
        if settings.db() != 0 {
            conn.simple(&["SELECT", &settings.db().to_string()]).await?;
        }
        Ok(conn)
    }

    /// The values of `keys`, in order, by `MGET`s of at most `chunk` keys in one round trip.
    pub async fn mget<K: AsRef<str> + Sync>(
        &self,
        keys: &[K],
        chunk: usize,
    ) -> Result<Fetched, String> {
        if keys.is_empty() {
            return Ok(Fetched::default());
        }
        let request = encode_mgets(keys, chunk);
        let expect: Vec<usize> = keys.chunks(chunk).map(<[K]>::len).collect();
        let _slot = tokio::time::timeout(CONNECT_TIMEOUT, self.slots.acquire())
            .await
            .map_err(|_| format!("all {MAX_CONNECTIONS} connections busy for {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let pooled = self.idle().pop();
        if let Some(conn) = pooled {
            match self.run(conn, &request, expect.clone()).await {
                Ok(f) => return Ok(f),
                // A pooled connection may have died while idle: once more, on a fresh one.
                Err(Failure::Connection(_)) => {}
                Err(e) => return Err(e.message()),
            }
        }
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
            .map_err(Failure::message)?;
        self.run(conn, &request, expect)
            .await
            .map_err(Failure::message)
    }

    /// One exchange on `conn`, which goes back to the pool only if it succeeded.
    async fn run(
        &self,
        mut conn: Conn,
        request: &[u8],
        expect: Vec<usize>,
    ) -> Result<Fetched, Failure> {
        let mut replies = MgetReplies::new(expect);
        let data = tokio::time::timeout(RESPONSE_TIMEOUT, conn.exchange(request, &mut replies))
            .await
            .map_err(|_| Failure::Timeout(format!("no reply within {RESPONSE_TIMEOUT:?}")))??;
        let mut idle = self.idle();
        if idle.len() < MAX_CONNECTIONS {
            idle.push(conn);
        }
        Ok(Fetched {
            data,
            spans: replies.spans,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        push_header(&mut out, b'*', values.len());
        for v in values {
            match v {
                Some(v) => push_bulk(&mut out, v),
                None => out.extend_from_slice(b"$-1\r\n"),
            }
        }
        out
    }

    #[test]
    fn replies_parse_from_any_split() {
        let a: Vec<Option<&[u8]>> = vec![Some(b"x\r\ny"), None, Some(b""), Some(&[0, 255, 13])];
        let b: Vec<Option<&[u8]>> = vec![None, Some(b"0123456789")];
        let mut all = reply(&a);
        all.extend(reply(&b));
        let want: Vec<Option<&[u8]>> = a.iter().chain(&b).copied().collect();
        // Every way of cutting the bytes into two reads gives the same values.
        for cut in 0..=all.len() {
            let mut r = MgetReplies::new(vec![a.len(), b.len()]);
            let done = r.advance(&all[..cut]).unwrap();
            assert_eq!(done, cut == all.len(), "cut {cut}");
            assert!(r.advance(&all).unwrap(), "cut {cut}");
            let f = Fetched {
                data: all.clone(),
                spans: r.spans,
            };
            assert_eq!(f.iter().collect::<Vec<_>>(), want, "cut {cut}");
        }
    }

    #[test]
    fn bad_replies_are_errors() {
        let mut r = MgetReplies::new(vec![2]);
        let e = r
            .advance(b"-NOAUTH Authentication required.\r\n")
            .unwrap_err();
        assert!(e.message().contains("NOAUTH"));
        let mut r = MgetReplies::new(vec![2]);
        assert!(
            r.advance(b"*3\r\n")
                .unwrap_err()
                .message()
                .contains("2 keys")
        );
        let mut r = MgetReplies::new(vec![1]);
        assert!(r.advance(b"*1\r\n:5\r\n").is_err());
        let mut r = MgetReplies::new(vec![1]);
        assert!(r.advance(b"*1\r\n$2\r\nabXY").is_err());
        let mut r = MgetReplies::new(vec![1]);
        assert!(r.advance(b"*1\r\n$-2\r\n").is_err());
        let mut r = MgetReplies::new(vec![1]);
        let huge = format!("*1\r\n${}\r\nab", i64::MAX);
        assert!(
            r.advance(huge.as_bytes())
                .unwrap_err()
                .message()
                .contains("length")
        );
    }

    #[test]
    fn commands_are_resp() {
        assert_eq!(
            encode_mgets(&["a", "bc", "d"], 2),
            b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$2\r\nbc\r\n*2\r\n$4\r\nMGET\r\n$1\r\nd\r\n"
        );
        assert_eq!(
            encode_command(&["SELECT", "12"]),
            b"*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n"
        );
    }
}
