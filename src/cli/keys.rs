//! `om-gateway keys`: the drain view of a running gateway, read from its admin listener's
//! `/keys`. For each trusted key: its verifications, last use and the principals seen with it in
//! the last 24 h; then the kids no source publishes any more, and whether tokens still present
//! them. Exit 0 when the view was printed, 1 when the gateway could not be asked.

use super::{EXIT_FAILURE, EXIT_OK};
use anyhow::Context;
use clap::Args;
use serde_json::Value;

/// Names printed per key; the rest are counted.
const NAMES_SHOWN: usize = 10;

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The gateway's admin listener (default: 127.0.0.1 on the port of OM_GATEWAY_ADMIN_LISTEN,
    /// else 127.0.0.1:9090).
    #[arg(long = "admin-url", value_name = "URL")]
    admin_url: Option<String>,
}

pub fn keys(args: KeysArgs) -> i32 {
    let base = args.admin_url.unwrap_or_else(default_admin_url);
    let url = format!("{}/keys", base.trim_end_matches('/'));
    match fetch(&url) {
        Ok(view) => {
            print!("{}", render_drain_view(&view, unix_now()));
            EXIT_OK
        }
        Err(error) => {
            eprintln!("om-gateway keys: {url}: {error:#}");
            EXIT_FAILURE
        }
    }
}

/// The admin address of a gateway in this container, as `healthcheck` finds it.
fn default_admin_url() -> String {
    let listen = std::env::var("OM_GATEWAY_ADMIN_LISTEN").unwrap_or_default();
    let port = listen
        .parse::<std::net::SocketAddr>()
        .map(|address| address.port())
        .unwrap_or(9090);
    format!("http://127.0.0.1:{port}")
}

fn fetch(url: &str) -> anyhow::Result<Value> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        let response = client.get(url).send().await?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "answered {status}");
        let body = response.bytes().await?;
        serde_json::from_slice::<Value>(&body).context("the answer is not the gateway's /keys JSON")
    })
}

/// The drain view as text, one line per key (times relative to `now`, Unix seconds).
pub fn render_drain_view(view: &Value, now: u64) -> String {
    let mut out = String::from("Keys trusted now:\n");
    let keys = view["keys"].as_array().cloned().unwrap_or_default();
    if keys.is_empty() {
        out.push_str("  (none)\n");
    }
    for key in &keys {
        let usage = &key["usage"];
        let alg = key["alg"].as_str().unwrap_or("no alg");
        let source = key["source"].as_str().unwrap_or("?");
        let used = match usage["lastUse"].as_u64() {
            Some(last) => format!(
                "{}, last used {}; {}",
                plural(usage["verifications"].as_u64().unwrap_or(0), "verification"),
                ago(now, last),
                principals(usage)
            ),
            None => "not used since the gateway started".into(),
        };
        out.push_str(&format!(
            "  kid {} ({alg}, {source}): {used}\n",
            kid_text(&key["kid"])
        ));
    }
    out.push_str("Kids no source publishes any more:\n");
    let retired = view["retiredKids"].as_array().cloned().unwrap_or_default();
    if retired.is_empty() {
        out.push_str("  (none)\n");
    }
    for kid in &retired {
        let sources: Vec<&str> = kid["sources"]
            .as_array()
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let presented = kid["presentedSinceRetired"].as_u64().unwrap_or(0);
        let still = match (presented, kid["lastPresented"].as_u64()) {
            (0, _) | (_, None) => "not presented since".to_string(),
            (count, Some(last)) => format!(
                "still presented {}, last {} (each refused with 401)",
                plural(count, "time"),
                ago(now, last)
            ),
        };
        let before = match kid["lastUse"].as_u64() {
            Some(last) => format!(
                "before that last used {}; {}",
                ago(now, last),
                principals(kid)
            ),
            None => "never used before that".into(),
        };
        out.push_str(&format!(
            "  kid {}: no source publishes it since {} (was {}); {still}; {before}\n",
            kid_text(&kid["kid"]),
            ago(now, kid["retiredAt"].as_u64().unwrap_or(now)),
            sources.join(", "),
        ));
    }
    out
}

/// `3 principals in the last 24 h: ingestion-bot, alice, …`
fn principals(usage: &Value) -> String {
    let count = usage["principalsLast24h"].as_u64().unwrap_or(0);
    let at_least = if usage["principalsCapped"].as_bool() == Some(true) {
        "at least "
    } else {
        ""
    };
    let names: Vec<&str> = usage["principals"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut text = format!("{at_least}{} in the last 24 h", plural(count, "principal"));
    if !names.is_empty() {
        text.push_str(": ");
        text.push_str(
            &names
                .iter()
                .take(NAMES_SHOWN)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
        );
        let unnamed = count.saturating_sub(NAMES_SHOWN.min(names.len()) as u64);
        if unnamed > 0 {
            text.push_str(&format!(", … ({unnamed} more)"));
        }
    }
    text
}

fn kid_text(kid: &Value) -> String {
    kid.as_str().map_or_else(|| "(none)".into(), str::to_string)
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`.
fn ago(now: u64, then: u64) -> String {
    let seconds = now.saturating_sub(then);
    match seconds {
        0..=119 => format!("{seconds} s ago"),
        120..=7199 => format!("{} min ago", seconds / 60),
        7200..=172_799 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
