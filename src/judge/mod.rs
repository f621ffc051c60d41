//! The one place a request is judged. The proxy, forward-auth and `inspect` each build a
//! [`Question`] (`question.rs`) and ask [`Judge::decide`]; none of them decides anything itself.
//!
//! A decision, in order:
//! 1. Public paths need no token, but only when every reading of the path is public.
//! 2. The activity feed (`/api/v1/push/feed`) takes its own credential: the feed cookie bound to
//!    the requested `userId`, or a bearer token whose principal resolved to that id
//!    (`proxy::feed`).
//! 3. Otherwise the bearer token is verified (`verify`), `X-Impersonate-User` is refused for
//!    anyone but a bot (OpenMetadata's `JwtFilter`: "Only bot users can impersonate other users"),
//!    and every reading of the path must be allowed by the route rules (`policy`).
//!
//! Owns the order of those checks and the `om_gateway_auth_decisions_total` count. Leaves token
//! checks to `verify`, rule matching to `policy`, the feed cookie's format to `proxy::feed`, and
//! the HTTP wording of a refusal to `error`.

mod question;

#[cfg(test)]
mod parity;

pub use question::{Arrival, Question};

use crate::error::Rejection;
use crate::metrics::Metrics;
use crate::policy::{PathError, Policy};
use crate::proxy::feed::{self, FeedSessions};
use crate::revocation::{RevocationCheck, Standing};
use crate::verify::{bearer_token, fingerprint, AuthError, Authenticator, Principal, TokenDigest};
use std::sync::Arc;

/// `X-Impersonate-User`, the server's `JwtFilter.IMPERSONATE_USER_HEADER`.
pub const IMPERSONATE_USER: &str = "x-impersonate-user";

/// The judge of one configuration generation.
pub struct Judge {
    policy: Policy,
    authenticator: Authenticator,
    /// Process-wide (reloads keep feed cookies valid).
    feed: Arc<FeedSessions>,
    /// The opt-in check that the server still accepts a verified token.
    revocation: Option<RevocationCheck>,
    metrics: Arc<Metrics>,
}

/// What the judge decided.
#[derive(Debug)]
pub enum Verdict {
    Allow(Allowed),
    Deny(Refused),
}

/// An allowed request: the route it falls under and who is calling (none on a public path or a
/// feed request admitted by its cookie).
#[derive(Debug, Clone)]
pub struct Allowed {
    pub route: String,
    pub principal: Option<Arc<Principal>>,
    pub fingerprint: Option<String>,
    /// The bounded reason label: `public_path`, `feed_cookie` or `authorized`.
    pub reason: &'static str,
    /// On the feed path: the `userId` the request was bound to.
    pub feed_user: Option<String>,
}

/// A refused request, with the route label and token fingerprint for the access log.
#[derive(Debug)]
pub struct Refused {
    pub rejection: Rejection,
    pub route: String,
    pub fingerprint: Option<String>,
}

// === impl Verdict ===

impl Verdict {
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow(_))
    }

    pub fn route(&self) -> &str {
        match self {
            Verdict::Allow(allowed) => &allowed.route,
            Verdict::Deny(refused) => &refused.route,
        }
    }
}

// === impl Judge ===

impl Judge {
    pub fn new(
        policy: Policy,
        authenticator: Authenticator,
        feed: Arc<FeedSessions>,
        metrics: Arc<Metrics>,
    ) -> Judge {
        Judge {
            policy,
            authenticator,
            feed,
            revocation: None,
            metrics,
        }
    }

    /// Ask the server about every verified token (see `revocation`).
    pub fn with_revocation_check(mut self, check: Option<RevocationCheck>) -> Judge {
        self.revocation = check;
        self
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn feed_sessions(&self) -> &Arc<FeedSessions> {
        &self.feed
    }

    /// Count a request refused before it could be asked (a bad path, method or forward-auth
    /// description), so `om_gateway_auth_decisions_total` sees every refusal.
    pub fn count_refused_question(&self, rejection: &Rejection) {
        self.metrics.auth_decision("deny", rejection.reason());
    }

    /// Judge one request. Counts the decision once, whatever it is.
    pub async fn decide(&self, question: &Question<'_>) -> Verdict {
        let verdict = self.judge(question).await;
        match &verdict {
            Verdict::Allow(allowed) => self.metrics.auth_decision("allow", allowed.reason),
            Verdict::Deny(refused) => self
                .metrics
                .auth_decision("deny", refused.rejection.reason()),
        }
        verdict
    }

    /// The order of the checks; each step refuses with its own rejection.
    async fn judge(&self, question: &Question<'_>) -> Verdict {
        let path = &question.path;
        if path.iter().all(|reading| self.policy.is_public(reading)) {
            return Verdict::Allow(Allowed {
                route: "public".into(),
                principal: None,
                fingerprint: None,
                reason: "public_path",
                feed_user: None,
            });
        }
        let feed_readings = path
            .iter()
            .filter(|reading| feed::is_feed_path(reading))
            .count();
        let on_feed = feed_readings > 0;
        if on_feed && feed_readings != path.iter().count() {
            // One reading is the feed and another is not: no credential fits both.
            return refuse(Rejection::BadPath(PathError::FeedAmbiguous), "feed", None);
        }
        if on_feed && !question.headers.contains_key(http::header::AUTHORIZATION) {
            return self.feed_by_cookie(question);
        }
        match self.bearer(question, on_feed).await {
            Ok(allowed) => Verdict::Allow(allowed),
            Err(refused) => Verdict::Deny(refused),
        }
    }

    /// A request with a bearer token: verified, still accepted by the server (opt-in),
    /// impersonating only as a bot, allowed by the rules under every path reading, and on the
    /// feed bound to the requested `userId`.
    async fn bearer(&self, question: &Question<'_>, on_feed: bool) -> Result<Allowed, Refused> {
        let headers = question.headers;
        let route_name = || {
            self.policy
                .route_for(&question.method, question.path.forwarded())
                .name
                .clone()
        };
        let authenticated = match self.authenticator.authenticate(headers).await {
            Ok(authenticated) => authenticated,
            Err(error) => {
                tracing::debug!(reason = error.reason(), detail = %error, "authentication failed");
                let fingerprint = bearer_token(headers).ok().map(fingerprint);
                return Err(refused(Rejection::Auth(error), route_name(), fingerprint));
            }
        };
        let fingerprint = Some(authenticated.fingerprint);
        let digest = authenticated.digest;
        let principal = authenticated.principal;
        let refuse_with = |rejection: Rejection, route: String| {
            Err(refused(rejection, route, fingerprint.clone()))
        };
        if let Some(rejection) = self.server_refuses(headers, &digest).await {
            return refuse_with(rejection, route_name());
        }
        // JwtFilter.filter: a non-empty X-Impersonate-User from anyone but a bot is refused.
        let impersonates = headers
            .get_all(IMPERSONATE_USER)
            .iter()
            .any(|value| !value.as_bytes().is_empty());
        if impersonates && !principal.is_bot {
            return refuse_with(Rejection::ImpersonationForbidden, route_name());
        }
        let mut route = None;
        for reading in question.path.iter() {
            match self.policy.authorize(&principal, &question.method, reading) {
                Ok(allowed) => {
                    route.get_or_insert_with(|| allowed.name.clone());
                }
                Err(denied) => {
                    let name = denied.route.clone();
                    return refuse_with(Rejection::Forbidden(denied), name);
                }
            }
        }
        let route = route.unwrap_or_else(route_name);
        let mut feed_user = None;
        if on_feed {
            match self
                .feed
                .check(headers, question.query, Some(&principal), unix_now())
            {
                Ok(user) => feed_user = Some(user),
                Err(error) => return refuse_with(Rejection::Feed(error), route),
            }
        }
        Ok(Allowed {
            route,
            principal: Some(principal),
            fingerprint,
            reason: "authorized",
            feed_user,
        })
    }

    /// The opt-in revocation check: `Some` when the server no longer accepts the (verified)
    /// token, or cannot be asked and the check fails closed.
    async fn server_refuses(
        &self,
        headers: &http::HeaderMap,
        digest: &TokenDigest,
    ) -> Option<Rejection> {
        let check = self.revocation.as_ref()?;
        let token = bearer_token(headers).ok()?;
        match check.standing(token, digest).await {
            Standing::Accepted => None,
            Standing::Revoked => Some(Rejection::Auth(AuthError::Revoked)),
            Standing::Unavailable => Some(Rejection::RevocationUnavailable),
        }
    }

    /// A feed request without a token: its cookie must bind the requested `userId`.
    fn feed_by_cookie(&self, question: &Question<'_>) -> Verdict {
        match self
            .feed
            .check(question.headers, question.query, None, unix_now())
        {
            Ok(user) => Verdict::Allow(Allowed {
                route: "feed".into(),
                principal: None,
                fingerprint: None,
                reason: "feed_cookie",
                feed_user: Some(user),
            }),
            Err(error) => refuse(Rejection::Feed(error), "feed", None),
        }
    }
}

fn refuse(rejection: Rejection, route: impl Into<String>, fingerprint: Option<String>) -> Verdict {
    Verdict::Deny(refused(rejection, route, fingerprint))
}

fn refused(rejection: Rejection, route: impl Into<String>, fingerprint: Option<String>) -> Refused {
    Refused {
        rejection,
        route: route.into(),
        fingerprint,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
