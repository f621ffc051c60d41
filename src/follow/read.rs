//! One GET of a settings endpoint: ETag revalidation, a 1 MiB cap enforced while reading, and
//! the checks that tell a settings document from a login page or an error.

use std::time::Duration;

/// Documents larger than this are abandoned mid-read.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Why a read (or the whole cycle) changed nothing. `label` is the bounded word counted in
/// `om_gateway_server_config_reads_total{result}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{endpoint}: request failed: {message}")]
    Transport {
        endpoint: &'static str,
        message: String,
    },
    #[error("{endpoint}: timed out after {timeout:?}")]
    Timeout {
        endpoint: &'static str,
        timeout: Duration,
    },
    #[error("{endpoint}: HTTP status {status}")]
    Status { endpoint: &'static str, status: u16 },
    #[error("{endpoint}: the follow credential was refused (HTTP {status}); the token's user must be an OpenMetadata admin")]
    Unauthorized { endpoint: &'static str, status: u16 },
    #[error("{endpoint}: not JSON (content type {content_type})")]
    NotJson {
        endpoint: &'static str,
        content_type: String,
    },
    #[error("{endpoint}: document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { endpoint: &'static str },
    #[error("{endpoint}: not a settings document: {message}")]
    Invalid {
        endpoint: &'static str,
        message: String,
    },
    #[error("{0}")]
    Credential(String),
    #[error("the published values cannot be used: {0}")]
    InvalidValues(String),
    #[error("the published values could not be applied: {0}")]
    ApplyFailed(String),
}

impl ReadError {
    pub fn label(&self) -> &'static str {
        match self {
            ReadError::Transport { .. } => "transport_error",
            ReadError::Timeout { .. } => "timeout",
            ReadError::Status { .. } => "http_error",
            ReadError::Unauthorized { .. } => "unauthorized",
            ReadError::NotJson { .. } => "not_json",
            ReadError::TooLarge { .. } => "too_large",
            ReadError::Invalid { .. } => "invalid_document",
            ReadError::Credential(_) => "credential_unreadable",
            ReadError::InvalidValues(_) => "invalid_values",
            ReadError::ApplyFailed(_) => "apply_failed",
        }
    }
}

/// What one GET returned.
#[derive(Debug)]
pub enum Fetched {
    NotModified,
    Document {
        value: serde_json::Value,
        etag: Option<String>,
    },
}

/// GET `base` + `endpoint` as JSON, with `If-None-Match: etag` when given and `Authorization:
/// Bearer` when a credential is given. One deadline covers connecting, the head and the body.
pub async fn get(
    client: &reqwest::Client,
    base: &str,
    endpoint: &'static str,
    etag: Option<&str>,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<Fetched, ReadError> {
    tokio::time::timeout(timeout, get_unbounded(client, base, endpoint, etag, bearer))
        .await
        .map_err(|_| ReadError::Timeout { endpoint, timeout })?
}

async fn get_unbounded(
    client: &reqwest::Client,
    base: &str,
    endpoint: &'static str,
    etag: Option<&str>,
    bearer: Option<&str>,
) -> Result<Fetched, ReadError> {
    let mut request = client
        .get(format!("{base}{endpoint}"))
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(etag) = etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|error| transport(endpoint, error))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if matches!(status.as_u16(), 401 | 403) && bearer.is_some() {
        return Err(ReadError::Unauthorized {
            endpoint,
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        return Err(ReadError::Status {
            endpoint,
            status: status.as_u16(),
        });
    }
    let headers = response.headers();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !content_type.is_empty() && !content_type.contains("json") {
        return Err(ReadError::NotJson {
            endpoint,
            content_type,
        });
    }
    let new_etag = headers
        .get(reqwest::header::ETAG)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(ReadError::TooLarge { endpoint });
    }
    let body = read_capped(endpoint, response).await?;
    let value = serde_json::from_slice(&body).map_err(|error| ReadError::Invalid {
        endpoint,
        message: format!("invalid JSON: {error}"),
    })?;
    Ok(Fetched::Document {
        value,
        etag: new_etag,
    })
}

async fn read_capped(
    endpoint: &'static str,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport(endpoint, error))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(ReadError::TooLarge { endpoint });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn transport(endpoint: &'static str, error: reqwest::Error) -> ReadError {
    // The URL is left out: it may carry credentials in its userinfo.
    let error = error.without_url();
    ReadError::Transport {
        endpoint,
        message: crate::causes::describe_chain(&error),
    }
}
