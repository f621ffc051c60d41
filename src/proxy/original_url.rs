//! Absolute URLs and authorities as a client may write them into a header: the `X-Original-URL`
//! ingress-nginx builds as `$scheme://$http_host$request_uri` (so its authority is whatever the
//! client sent as `Host`), and the `Host` header itself.
//!
//! The one question that matters is where the authority ends and the path begins: a parser that
//! ends it somewhere else than the server behind the ingress does judges another path. So only
//! the plain form is accepted: `http[s]://host[:port]/path[?query][#fragment]`, the host a DNS
//! name, a dotted IPv4 address or a bracketed IPv6 address, the port digits only. Everything
//! else (userinfo, `?` or `#` inside the authority, an empty port, an empty path) is an error,
//! never a guess. Pure functions; `tests/it/properties.rs` and the `original_url` fuzz target
//! compare them with the `url` crate (WHATWG URL parsing, what browsers and most proxies do).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a URL or authority was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginalUrlError {
    #[error("X-Original-URL is not an absolute http(s) URL")]
    NotAbsolute,
    #[error("X-Original-URL has a space or control character")]
    BadCharacter,
    #[error("X-Original-URL's authority is not host[:port]: {0}")]
    BadAuthority(AuthorityError),
    #[error("X-Original-URL's path is empty or does not start with `/`")]
    BadPath,
}

/// Why an authority (`host[:port]`) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("the host is empty")]
    EmptyHost,
    #[error("the host is not a DNS name, IPv4 address or bracketed IPv6 address")]
    BadHost,
    #[error("the port is not 0-65535")]
    BadPort,
}

/// The path and query (without any fragment) of an absolute `http` or `https` URL, exactly as
/// written, or why the URL is refused.
pub fn path_of_original_url(url: &str) -> Result<&str, OriginalUrlError> {
    if url.bytes().any(|byte| byte <= b' ' || byte == 0x7f) {
        return Err(OriginalUrlError::BadCharacter);
    }
    let (scheme, rest) = url.split_once("://").ok_or(OriginalUrlError::NotAbsolute)?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(OriginalUrlError::NotAbsolute);
    }
    // RFC 3986 §3.2: the authority ends at the first `/`, `?` or `#`.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    check_authority(authority).map_err(OriginalUrlError::BadAuthority)?;
    let without_fragment = target.split('#').next().unwrap_or("");
    if !without_fragment.starts_with('/') {
        return Err(OriginalUrlError::BadPath);
    }
    Ok(without_fragment)
}

/// `host[:port]` (RFC 9110 §7.2, the `Host` header's form), with the host restricted as the
/// module says. A trailing dot (a fully qualified name) is allowed.
pub fn check_authority(authority: &str) -> Result<(), AuthorityError> {
    let (host, port) = split_port(authority)?;
    if let Some(port) = port {
        if port.is_empty()
            || !port.bytes().all(|byte| byte.is_ascii_digit())
            || port.parse::<u16>().is_err()
        {
            return Err(AuthorityError::BadPort);
        }
    }
    check_host(host)
}

/// The host and the port text after its `:` (if any), splitting after a bracketed IPv6 literal.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), AuthorityError> {
    if authority.starts_with('[') {
        let close = authority.find(']').ok_or(AuthorityError::BadHost)?;
        let (host, after) = authority.split_at(close + 1);
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|port| (host, Some(port)))
                .ok_or(AuthorityError::BadHost),
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn check_host(host: &str) -> Result<(), AuthorityError> {
    if host.is_empty() {
        return Err(AuthorityError::EmptyHost);
    }
    if let Some(literal) = host.strip_prefix('[') {
        let inner = literal.strip_suffix(']').ok_or(AuthorityError::BadHost)?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| AuthorityError::BadHost);
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_'))
    });
    if !labels_ok {
        return Err(AuthorityError::BadHost);
    }
    // A name whose last label is a number is an IPv4 address to a WHATWG parser (which also
    // reads `0x7f.1` or `127.1` as 127.0.0.1): only the dotted-decimal form is accepted.
    let last = name.rsplit('.').next().unwrap_or(name);
    let numeric = last.bytes().all(|byte| byte.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .or_else(|| last.strip_prefix("0X"))
            .is_some_and(|hex| hex.bytes().all(|byte| byte.is_ascii_hexdigit()));
    if numeric && (host != name || host.parse::<Ipv4Addr>().is_err()) {
        return Err(AuthorityError::BadHost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: Result<&str, OriginalUrlError>) {
        assert_eq!(path_of_original_url(url), expected, "{url}");
    }

    #[test]
    fn original_urls() {
        use AuthorityError::*;
        use OriginalUrlError::*;
        check("https://om.example/api/v1/x?q=1", Ok("/api/v1/x?q=1"));
        check("http://om.example:8585/api", Ok("/api"));
        check("HTTP://OM.Example./api#frag", Ok("/api"));
        check("http://[::1]:8443/a?b#c", Ok("/a?b"));
        check("http://10.0.0.1/a", Ok("/a"));
        check("http://om_gateway/a", Ok("/a"));
        check("http://om.example/", Ok("/"));
        check(
            "http://om.example/a?next=http://x/y",
            Ok("/a?next=http://x/y"),
        );
        check(
            "http://om.example:?/api/v1/bots",
            Err(BadAuthority(BadPort)),
        );
        check("http://om.example:/api", Err(BadAuthority(BadPort)));
        check("http://om.example:80x/api", Err(BadAuthority(BadPort)));
        check("http://om.example:65536/api", Err(BadAuthority(BadPort)));
        check("http://om.example:+80/api", Err(BadAuthority(BadPort)));
        check("http://om.example?/api", Err(BadPath));
        check("http://om.example#/api", Err(BadPath));
        check("http://om.example", Err(BadPath));
        check("http://admin@om.example/api", Err(BadAuthority(BadHost)));
        check("http://a:b@om.example/api", Err(BadAuthority(BadPort)));
        check("http:///api", Err(BadAuthority(EmptyHost)));
        check("http://:80/api", Err(BadAuthority(EmptyHost)));
        check("http://[::1/api", Err(BadAuthority(BadHost)));
        check("http://[::1]x/api", Err(BadAuthority(BadHost)));
        check("http://[fe80::1%25eth0]/api", Err(BadAuthority(BadHost)));
        check("http://[v1.x]/api", Err(BadAuthority(BadHost)));
        check("http://om..example/api", Err(BadAuthority(BadHost)));
        check("http://.om.example/api", Err(BadAuthority(BadHost)));
        check("http://om%2eexample/api", Err(BadAuthority(BadHost)));
        check("http://om.example\\@evil/api", Err(BadAuthority(BadHost)));
        check("http://1.2.3.256/api", Err(BadAuthority(BadHost)));
        check("http://0x7f.1/api", Err(BadAuthority(BadHost)));
        check("http://127.1/api", Err(BadAuthority(BadHost)));
        check("http://1.2.3.4./api", Err(BadAuthority(BadHost)));
        check("http://a.0x/api", Err(BadAuthority(BadHost)));
        check("http://om .example/api", Err(BadCharacter));
        check("http://om.example/a\tb", Err(BadCharacter));
        check("om.example/api", Err(NotAbsolute));
        check("https:/om.example/api", Err(NotAbsolute));
        check("ftp://om.example/api", Err(NotAbsolute));
        check("/api/v1/x", Err(NotAbsolute));
    }
}
