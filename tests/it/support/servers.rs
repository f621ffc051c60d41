//! Controllable HTTP servers for tests, all on 127.0.0.1:0.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// How the key endpoint behaves; change it while the test runs.
#[derive(Debug, Clone)]
pub struct JwksBehaviour {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
    /// Close the connection without answering: new connections at accept, kept-alive ones at
    /// their next request.
    pub drop_connection: bool,
    /// When set, every answer waits until the gate opens (see [`JwksServer::hold`]): a fetch the
    /// test can keep in flight for as long as it needs, instead of guessing a delay.
    pub gate: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Opens a [`JwksServer`] held by [`JwksServer::hold`].
pub struct Gate(tokio::sync::watch::Sender<bool>);

impl Gate {
    /// Let every held answer (and every later one) go.
    pub fn open(&self) {
        self.0.send_replace(true);
    }
}

pub struct JwksServer {
    pub address: SocketAddr,
    behaviour: Arc<Mutex<JwksBehaviour>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(body: String) -> JwksServer {
        let behaviour = Arc::new(Mutex::new(JwksBehaviour {
            status: 200,
            body,
            delay: Duration::ZERO,
            headers: vec![("content-type".into(), "application/json".into())],
            drop_connection: false,
            gate: None,
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (task_behaviour, task_hits) = (behaviour.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let behaviour = task_behaviour.clone();
                let hits = task_hits.clone();
                tokio::spawn(async move {
                    let current = behaviour.lock().expect("lock").clone();
                    if current.drop_connection {
                        hits.fetch_add(1, Ordering::SeqCst);
                        drop(stream);
                        return;
                    }
                    let service = service_fn(move |request: Request<Incoming>| {
                        let behaviour = behaviour.clone();
                        let hits = hits.clone();
                        async move {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let current = behaviour.lock().expect("lock").clone();
                            if current.drop_connection {
                                // A connection kept alive from an earlier fetch: a service
                                // error makes hyper close it without an answer.
                                return Err(std::io::Error::other("dropping the connection"));
                            }
                            if let Some(mut gate) = current.gate.clone() {
                                let _ = gate.wait_for(|open| *open).await;
                            }
                            tokio::time::sleep(current.delay).await;
                            let mut response =
                                Response::new(Full::new(Bytes::from(current.body.clone())));
                            *response.status_mut() =
                                StatusCode::from_u16(current.status).expect("status");
                            for (name, value) in &current.headers {
                                response.headers_mut().insert(
                                    http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                                    http::HeaderValue::from_str(value).expect("value"),
                                );
                            }
                            let etag = current
                                .headers
                                .iter()
                                .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
                                .map(|(_, v)| v.clone());
                            if let (Some(etag), Some(sent)) =
                                (etag, request.headers().get("if-none-match"))
                            {
                                if sent.to_str().ok() == Some(etag.as_str()) {
                                    *response.status_mut() = StatusCode::NOT_MODIFIED;
                                    *response.body_mut() = Full::new(Bytes::new());
                                }
                            }
                            Ok::<_, std::io::Error>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JwksServer {
            address,
            behaviour,
            hits,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.address)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn update(&self, change: impl FnOnce(&mut JwksBehaviour)) {
        change(&mut self.behaviour.lock().expect("lock"));
    }

    pub fn set_body(&self, body: String) {
        self.update(|b| b.body = body);
    }

    /// From now on, answers (already counted in `hits`) wait until the returned gate opens.
    pub fn hold(&self) -> Gate {
        let (sender, receiver) = tokio::sync::watch::channel(false);
        self.update(|b| b.gate = Some(receiver));
        Gate(sender)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body_len: usize,
    pub body_digest: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// How the upstream answers.
#[derive(Debug, Clone)]
pub struct UpstreamBehaviour {
    pub status: u16,
    pub delay: Duration,
    /// Bytes of response body to send (streamed in 64 KiB chunks); 0 sends a small JSON body.
    pub body_bytes: usize,
}

pub struct Upstream {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Recorded>>>,
    behaviour: Arc<Mutex<UpstreamBehaviour>>,
    task: tokio::task::JoinHandle<()>,
}

pub const UPSTREAM_BODY: &str = r#"{"data":[{"name":"dim_customer"}],"paging":{"total":1}}"#;

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(UpstreamBehaviour {
            status: 200,
            delay: Duration::ZERO,
            body_bytes: 0,
        }));
        let (task_received, task_behaviour) = (received.clone(), behaviour.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let received = task_received.clone();
                let behaviour = task_behaviour.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let received = received.clone();
                        let behaviour = behaviour.clone();
                        async move { Ok::<_, Infallible>(answer(request, &received, &behaviour).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            address,
            received,
            behaviour,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.received.lock().expect("lock").clone()
    }

    pub fn last(&self) -> Recorded {
        self.received()
            .last()
            .cloned()
            .expect("the upstream received a request")
    }

    pub fn update(&self, change: impl FnOnce(&mut UpstreamBehaviour)) {
        change(&mut self.behaviour.lock().expect("lock"));
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    request: Request<Incoming>,
    received: &Mutex<Vec<Recorded>>,
    behaviour: &Mutex<UpstreamBehaviour>,
) -> Response<UpstreamBody> {
    let (parts, body) = request.into_parts();
    // Read the body chunk by chunk, hashing as we go: large bodies are never held whole.
    let mut body = body;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut body_len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            body_len += data.len();
            context.update(data);
        }
    }
    let body_digest: String = context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    received.lock().expect("lock").push(Recorded {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map(|pq| pq.to_string())
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body_len,
        body_digest,
    });
    let current = behaviour.lock().expect("lock").clone();
    tokio::time::sleep(current.delay).await;
    let body: UpstreamBody = if current.body_bytes == 0 {
        Full::new(Bytes::from_static(UPSTREAM_BODY.as_bytes())).boxed()
    } else {
        RepeatBody {
            chunk: Bytes::from(vec![b'x'; 64 * 1024]),
            remaining: current.body_bytes.div_ceil(64 * 1024),
        }
        .boxed()
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(current.status).expect("status");
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// `remaining` copies of `chunk`, produced on demand: a large response never sits in memory.
pub struct RepeatBody {
    pub chunk: Bytes,
    pub remaining: usize,
}

impl http_body::Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        self.remaining -= 1;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(self.chunk.clone()))))
    }
}
