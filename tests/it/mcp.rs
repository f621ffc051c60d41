//! Issue 15: OpenMetadata 2.x serves an MCP server under `/mcp` whose tools read and write
//! entities (`McpServer`, `OAuthHttpStatelessServerTransportProvider`). The gateway protects it
//! like `/api` and keeps public exactly what the server serves without a token: the OAuth
//! discovery documents (`OAuthWellKnownFilter` at the root, and under `/mcp/.well-known/`), and
//! the OAuth flow's own endpoints (`/mcp/authorize`, `/token`, `/register`, `/revoke`,
//! `/login`, `/callback`).

use crate::support::gateway::Stack;
use crate::support::raw::raw_request;

async fn proxy(stack: &Stack, method: &str, target: &str, token: Option<&str>) -> u16 {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| {
            vec![
                ("Authorization", value),
                ("Accept", "application/json, text/event-stream"),
            ]
        })
        .unwrap_or_default();
    raw_request(stack.gateway.proxy(), method, target, &headers)
        .await
        .status
}

async fn forward_auth(stack: &Stack, method: &str, target: &str, token: Option<&str>) -> u16 {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("X-Original-Method", method), ("X-Original-URI", target)];
    if let Some(value) = bearer.as_deref() {
        headers.push(("Authorization", value));
    }
    raw_request(stack.gateway.proxy(), "GET", "/_gateway/auth", &headers)
        .await
        .status
}

#[tokio::test]
async fn mcp_needs_a_token_and_its_oauth_endpoints_stay_public() {
    let stack = Stack::start("").await;
    let token = stack.key.tokens().personal();
    for (method, target) in [
        ("POST", "/mcp"),
        ("GET", "/mcp"),
        ("POST", "/mcp/"),
        ("GET", "/mcp/sse"),
        ("POST", "/mcp/messages?sessionId=1"),
        ("POST", "/mcp/tools/call"),
        ("POST", "//mcp"),
        ("POST", "/x/../mcp"),
        ("POST", "/%6Dcp"),
        ("POST", "/mcp/.well-known/../messages"),
    ] {
        assert_eq!(
            proxy(&stack, method, target, None).await,
            401,
            "{method} {target} without a token"
        );
        assert_eq!(
            forward_auth(&stack, method, target, None).await,
            401,
            "forward-auth {method} {target} without a token"
        );
    }
    assert_eq!(proxy(&stack, "POST", "/mcp", Some(&token)).await, 200);
    assert_eq!(stack.upstream.last().uri, "/mcp");
    assert_eq!(
        forward_auth(&stack, "POST", "/mcp", Some(&token)).await,
        200
    );

    for (method, target) in [
        ("GET", "/.well-known/oauth-authorization-server"),
        ("GET", "/.well-known/oauth-authorization-server/mcp"),
        ("GET", "/.well-known/oauth-protected-resource"),
        ("GET", "/.well-known/oauth-protected-resource/mcp"),
        ("GET", "/.well-known/openid-configuration/mcp"),
        ("GET", "/mcp/.well-known/oauth-authorization-server"),
        ("GET", "/mcp/.well-known/oauth-protected-resource"),
        ("GET", "/mcp/authorize?client_id=c&response_type=code"),
        ("POST", "/mcp/token"),
        ("POST", "/mcp/register"),
        ("POST", "/mcp/revoke"),
        ("GET", "/mcp/login"),
        ("GET", "/mcp/callback?code=x&state=y"),
    ] {
        assert_eq!(
            proxy(&stack, method, target, None).await,
            200,
            "{method} {target} is public"
        );
    }
    // The web UI around it stays public.
    assert_eq!(proxy(&stack, "GET", "/mcpx", None).await, 200);
    assert_eq!(proxy(&stack, "GET", "/explore/tables", None).await, 200);
}
