//! Raw sockets for what an HTTP client library will not send: smuggling attempts, slow heads,
//! upgrades; and small special-purpose upstreams (connection counting, 101 + echo, resets).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Send `bytes` on a fresh connection and read until the peer closes or `limit` passes.
/// Returns what was read and whether the peer closed (false: still open at the deadline).
pub async fn exchange(address: SocketAddr, bytes: &[u8], limit: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    read_until_closed(&mut stream, limit).await
}

/// Read until EOF (or a reset) or until `limit` passes.
pub async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return (String::from_utf8_lossy(&received).into(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into(), true),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// Read one response head (up to the blank line) and return it.
pub async fn read_head(stream: &mut TcpStream, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut byte)).await {
            Ok(Ok(1)) => received.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&received).into()
}

/// The status code of a raw HTTP/1 response text, if it has one.
pub fn status_of(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

/// The body of a raw HTTP/1 response text (after the blank line).
pub fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// An upstream that answers 101 to anything (with the `Sec-WebSocket-Accept` RFC 6455 derives
/// from the request's key, when it sent one), records each request head, then echoes every byte
/// back over the upgraded connection.
pub struct EchoUpgradeUpstream {
    pub address: SocketAddr,
    pub heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoUpgradeUpstream {
    pub async fn start() -> EchoUpgradeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let task_heads = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let heads = task_heads.clone();
                tokio::spawn(async move {
                    let head = read_head(&mut stream, Duration::from_secs(5)).await;
                    if head.is_empty() {
                        return;
                    }
                    let answer = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{}\r\n",
                        header_of(&head, "sec-websocket-key")
                            .map(|key| format!("Sec-WebSocket-Accept: {}\r\n", websocket_accept(&key)))
                            .unwrap_or_default()
                    );
                    heads.lock().expect("lock").push(head);
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    let (mut reader, mut writer) = stream.split();
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        EchoUpgradeUpstream {
            address,
            heads,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }
}

impl Drop for EchoUpgradeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An upstream that reads one request head per connection and then does what `script` says:
/// write those bytes and close (a reset mid-response), counting connections accepted.
pub struct ScriptedUpstream {
    pub address: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedUpstream {
    pub async fn start(script: &'static [u8]) -> ScriptedUpstream {
        ScriptedUpstream::spawn(script, false).await
    }

    /// Like `start`, but the connection ends with a reset (RST, zero linger) instead of a close.
    pub async fn start_then_reset(script: &'static [u8]) -> ScriptedUpstream {
        ScriptedUpstream::spawn(script, true).await
    }

    async fn spawn(script: &'static [u8], reset: bool) -> ScriptedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = read_head(&mut stream, Duration::from_secs(5)).await;
                    let _ = stream.write_all(script).await;
                    if reset {
                        let _ = stream.flush().await;
                        #[allow(deprecated)]
                        let _ = stream.set_linger(Some(Duration::ZERO));
                    }
                    // Dropping the socket closes (or resets) it: the response stops here.
                });
            }
        });
        ScriptedUpstream {
            address,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP proxy in front of `target` that counts the connections it accepts: the number of
/// upstream connections the gateway opened.
pub struct ConnectionCounter {
    pub address: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectionCounter {
    pub async fn start(target: SocketAddr) -> ConnectionCounter {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (counter, closes) = (accepted.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let closes = closes.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    closes.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        ConnectionCounter {
            address,
            accepted,
            closed,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose client side (the gateway) has hung up.
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for ConnectionCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first value of header `name` in a raw request or response head.
pub fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// RFC 6455 §4.2.2: base64(SHA-1(key + the protocol's GUID)), written out independently of the
/// gateway's own code.
pub fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// How `UpgradeUpstream` answers every request head, whatever it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeAnswer {
    /// `101` naming `websocket`, with the accept value matching the request's key (if any).
    Matching,
    /// `101` naming `websocket`, without `Sec-WebSocket-Accept`.
    NoAccept,
    /// `101` naming `websocket`, with an accept value for another key.
    WrongAccept,
    /// `101` with the matching accept value but `Upgrade: h2c` (what Dropwizard's h2c connector
    /// answers).
    OtherProtocol,
}

/// An upstream that switches protocols on every request, even one that did not ask (the worst
/// an upstream could do), records each request head, then records and echoes every byte that
/// comes through the connection afterwards: what a tunnel would carry.
pub struct UpgradeUpstream {
    pub address: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    tunnelled: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl UpgradeUpstream {
    pub async fn start(answer: UpgradeAnswer) -> UpgradeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let tunnelled = Arc::new(Mutex::new(Vec::new()));
        let (task_heads, task_tunnelled) = (heads.clone(), tunnelled.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (heads, tunnelled) = (task_heads.clone(), task_tunnelled.clone());
                tokio::spawn(async move {
                    let head = read_head(&mut stream, Duration::from_secs(5)).await;
                    if head.is_empty() {
                        return;
                    }
                    let key = header_of(&head, "sec-websocket-key")
                        .unwrap_or_else(|| "dGhlIHNhbXBsZSBub25jZQ==".into());
                    heads.lock().expect("lock").push(head);
                    let (protocol, accept) = match answer {
                        UpgradeAnswer::Matching => ("websocket", Some(websocket_accept(&key))),
                        UpgradeAnswer::NoAccept => ("websocket", None),
                        UpgradeAnswer::WrongAccept => (
                            "websocket",
                            Some(websocket_accept("AAAAAAAAAAAAAAAAAAAAAA==")),
                        ),
                        UpgradeAnswer::OtherProtocol => ("h2c", Some(websocket_accept(&key))),
                    };
                    let accept = accept
                        .map(|accept| format!("Sec-WebSocket-Accept: {accept}\r\n"))
                        .unwrap_or_default();
                    let reply = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n{accept}\r\n"
                    );
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut buffer = [0u8; 4096];
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => {
                                tunnelled
                                    .lock()
                                    .expect("lock")
                                    .extend_from_slice(&buffer[..read]);
                                if stream.write_all(&buffer[..read]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        UpgradeUpstream {
            address,
            heads,
            tunnelled,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request head received, in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }

    /// Every byte received after a request head: what went through a tunnel.
    pub fn tunnelled(&self) -> String {
        String::from_utf8_lossy(&self.tunnelled.lock().expect("lock")).into()
    }
}

impl Drop for UpgradeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
