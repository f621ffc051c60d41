//! HTTP for key sources: one GET with ETag revalidation, a size cap enforced while reading, and
//! the caching headers that decide the next refresh. No retries here; the store schedules them.

use std::time::Duration;

/// Responses larger than this are abandoned mid-read.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {0}")]
    Transport(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
}

impl FetchError {
    /// A bounded label for `om_gateway_jwks_fetch_total{result}`.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::Transport(_) => "transport_error",
            FetchError::Timeout(_) => "timeout",
            FetchError::Status(_) => "http_error",
            FetchError::TooLarge => "too_large",
        }
    }
}

/// What one fetch returned.
#[derive(Debug)]
pub enum Fetched {
    NotModified {
        max_age: Option<Duration>,
        date: Option<String>,
    },
    Document {
        body: Vec<u8>,
        etag: Option<String>,
        max_age: Option<Duration>,
        date: Option<String>,
    },
}

/// Build the client key sources use: rustls (aws-lc-rs) with the web PKI roots plus an optional
/// CA file, at most 3 redirects, connect and total timeouts.
pub fn build_client(
    fetch_timeout: Duration,
    ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, crate::tls::HttpClientError> {
    let tls = crate::tls::client_config(ca_file, false)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::limited(3))
        .connect_timeout(fetch_timeout)
        .timeout(fetch_timeout)
        .user_agent(concat!("om-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(crate::tls::HttpClientError::from)
}

/// GET `url`, revalidating with `etag` when given. One deadline covers connecting, the headers
/// and the whole body, so a server that trickles bytes cannot hold a fetch open past `timeout`.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    etag: Option<&str>,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    tokio::time::timeout(timeout, fetch_unbounded(client, url, etag, timeout))
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}

async fn fetch_unbounded(
    client: &reqwest::Client,
    url: &str,
    etag: Option<&str>,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    let mut request = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(etag) = etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    let response = request
        .send()
        .await
        .map_err(|error| transport_error(&error, timeout))?;
    let headers = response.headers();
    let max_age = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_max_age);
    let date = headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if response.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified { max_age, date });
    }
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let etag = headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // A stated length over the cap is refused before reading; a chunked body is capped as it
    // arrives (`read_capped`), never buffered whole first.
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let body = read_capped(response, timeout).await?;
    Ok(Fetched::Document {
        body,
        etag,
        max_age,
        date,
    })
}

async fn read_capped(
    mut response: reqwest::Response,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport_error(&error, timeout))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `max-age=N` from Cache-Control; `no-cache`/`no-store` count as 0 (the floor then applies).
pub fn parse_max_age(cache_control: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(value) = lower.strip_prefix("max-age=") {
            max_age = value
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

/// The client carries the same timeout as our deadline; whichever fires first, say "timeout".
fn transport_error(error: &reqwest::Error, timeout: Duration) -> FetchError {
    if error.is_timeout() {
        FetchError::Timeout(timeout)
    } else {
        FetchError::Transport(crate::causes::describe_chain(error))
    }
}
