//! RawConfig → Config: defaults, environment overrides, and every check, with every problem
//! reported at once (file, line, key path, what is wrong).

use super::duration::parse_duration;
use super::env::apply_overrides;
use super::lines::LineIndex;
use super::raw::*;
use super::*;
use crate::policy::{PathMatch, Requirement};
use std::collections::{BTreeMap, HashSet};

const DEFAULT_JWKS_PATH: &str = "/api/v1/system/config/jwks";
/// openmetadata.yaml's defaults for `jwtTokenConfiguration.jwtissuer` and `keyId`.
pub const DEFAULT_OPENMETADATA_ISSUER: &str = "open-metadata.org";
pub const DEFAULT_OPENMETADATA_KEY_ID: &str = "Gb389a-9f76-gdjs-a92j-0242bk94356";

/// Collects problems and knows where each key came from.
struct Problems {
    file_name: Option<String>,
    index: LineIndex,
    /// Keys set by OpenMetadata's file rather than ours: reported against that file.
    openmetadata_name: Option<String>,
    openmetadata_keys: HashSet<&'static str>,
    /// Keys the running server published (`Config::with_published`): reported against the
    /// endpoint that published them.
    published: Vec<(String, &'static str)>,
    problems: Vec<ConfigProblem>,
}

/// What a `Config` was built from: the merged raw configuration (file, openmetadata.yaml,
/// environment) and how to name the inputs in messages. `Config::with_published` builds from a
/// copy of it with the server's settings filled in, through the same `build`.
#[derive(Debug)]
pub(crate) struct Layers {
    pub(super) raw: RawConfig,
    pub(super) provenance: Provenance,
    file_name: Option<String>,
    openmetadata_name: Option<String>,
    openmetadata_keys: HashSet<&'static str>,
    /// `OM_GATEWAY_FOLLOW_TOKEN`, read with the rest of the environment.
    env_token: Option<Secret>,
}

impl Problems {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        let block = key.split(['.', '[']).take(2).collect::<Vec<_>>().join(".");
        let published = self
            .published
            .iter()
            .find(|(_, published_key)| {
                key.strip_prefix(published_key)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            })
            .map(|(endpoint, _)| endpoint.clone());
        let (file, position) = if let Some(endpoint) = published {
            (Some(endpoint), None)
        } else if self.openmetadata_keys.contains(block.as_str()) {
            (self.openmetadata_name.clone(), None)
        } else {
            (self.file_name.clone(), self.index.locate(key))
        };
        self.problems.push(ConfigProblem {
            file,
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// A problem with an environment variable (no file, no line).
    fn add_environment(&mut self, variable: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            file: Some("environment".into()),
            line: None,
            column: None,
            key: variable.to_string(),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, value: Option<&String>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(text) => parse_duration(text).unwrap_or_else(|message| {
                self.add(key, message.0);
                default
            }),
        }
    }

    /// A duration that must be more than zero (a zero timeout would refuse everything).
    fn positive_duration(
        &mut self,
        key: &str,
        value: Option<&String>,
        default: Duration,
    ) -> Duration {
        let duration = self.duration(key, value, default);
        if duration.is_zero() {
            self.add(key, "must be more than 0");
            return default;
        }
        duration
    }

    /// A count within `range` (inclusive), or `default` when absent.
    fn bounded(
        &mut self,
        key: &str,
        value: Option<u64>,
        default: usize,
        range: (u64, u64),
    ) -> usize {
        let Some(value) = value else { return default };
        if !(range.0..=range.1).contains(&value) {
            self.add(key, format!("must be between {} and {}", range.0, range.1));
            return default;
        }
        usize::try_from(value).unwrap_or(default)
    }

    fn socket_addr(&mut self, key: &str, value: Option<&String>, default: &str) -> SocketAddr {
        let text = value.map(String::as_str).unwrap_or(default);
        let fallback = || SocketAddr::from(([127, 0, 0, 1], 0));
        match text.parse::<SocketAddr>() {
            Ok(address) => address,
            Err(_) => match text.strip_prefix(':').map(str::parse::<u16>) {
                // `:8080` means every interface, as Go-style tools write it.
                Some(Ok(port)) => SocketAddr::from(([0, 0, 0, 0], port)),
                _ => {
                    self.add(
                        key,
                        format!("`{text}` is not a socket address; expected e.g. 0.0.0.0:8080"),
                    );
                    fallback()
                }
            },
        }
    }
}

pub(super) fn load(input: LoadInput<'_>) -> Result<Config, ConfigError> {
    let environment = input.environment;
    let (mut raw, file_name, index) = match &input.gateway_file {
        Some(file) => (
            parse_gateway_file(file)?,
            Some(file.name.clone()),
            LineIndex::build(&file.text),
        ),
        None => (RawConfig::default(), None, LineIndex::default()),
    };
    let mut provenance = Provenance::default();
    provenance.record_set_keys(&raw, &Origin::File);
    let mut problems = Problems {
        file_name,
        index,
        openmetadata_name: None,
        openmetadata_keys: HashSet::new(),
        published: Vec::new(),
        problems: Vec::new(),
    };
    if let Some(file) = &input.openmetadata_file {
        problems.openmetadata_name = Some(file.name.clone());
        let server = super::openmetadata::read(&file.name, &file.text, environment)
            .map_err(|problems| ConfigError { problems })?;
        merge_openmetadata(&mut raw, server, &mut problems.openmetadata_keys);
        for key in &problems.openmetadata_keys {
            provenance.set(
                gateway_key_of_openmetadata_key(key),
                Origin::OpenMetadataYaml,
            );
        }
    }
    problems
        .problems
        .extend(apply_overrides(&mut raw, environment));
    for (variable, key) in super::env::overridden_keys(environment) {
        provenance.set(key, Origin::Env(variable));
    }
    let env_token = environment
        .var("OM_GATEWAY_FOLLOW_TOKEN")
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty())
        .map(Secret::new);
    if env_token.is_some() {
        provenance.set(
            "openmetadata.followToken",
            Origin::Env("OM_GATEWAY_FOLLOW_TOKEN"),
        );
    }
    let layers = std::sync::Arc::new(Layers {
        raw: raw.clone(),
        provenance: provenance.clone(),
        file_name: problems.file_name.clone(),
        openmetadata_name: problems.openmetadata_name.clone(),
        openmetadata_keys: problems.openmetadata_keys.clone(),
        env_token,
    });
    let config = build(raw, provenance, layers, &mut problems);
    if problems.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            problems: problems.problems,
        })
    }
}

/// Build again from `raw` (the base layers with the server's published values filled in): the
/// same checks as a load, with problems in a published key reported against its endpoint.
pub(super) fn rebuild(
    layers: &std::sync::Arc<Layers>,
    raw: RawConfig,
    provenance: Provenance,
    published: Vec<(String, &'static str)>,
) -> Result<Config, ConfigError> {
    let mut problems = Problems {
        file_name: layers.file_name.clone(),
        index: LineIndex::default(),
        openmetadata_name: layers.openmetadata_name.clone(),
        openmetadata_keys: layers.openmetadata_keys.clone(),
        published,
        problems: Vec::new(),
    };
    let config = build(raw, provenance, layers.clone(), &mut problems);
    if problems.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            problems: problems.problems,
        })
    }
}

/// `merge_openmetadata` names jwtTokenConfiguration's keys as openmetadata.yaml spells them.
fn gateway_key_of_openmetadata_key(key: &str) -> &str {
    match key {
        "jwtTokenConfiguration.jwtissuer" => "openmetadata.jwtIssuer",
        "jwtTokenConfiguration.keyId" => "openmetadata.keyId",
        "jwtTokenConfiguration.rsapublicKeyFilePath" => "openmetadata.publicKeyFile",
        other => other,
    }
}

fn parse_gateway_file(file: &ConfigText) -> Result<RawConfig, ConfigError> {
    if file.text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_saphyr::from_str::<RawConfig>(&file.text).map_err(|error| {
        let location = error.location();
        let (line, column) = (
            location.map(|l| l.line() as usize),
            location.map(|l| l.column() as usize),
        );
        let key = line
            .and_then(|line| key_at_line(&file.text, line))
            .unwrap_or_default();
        let message = super::yaml_error_message(&error);
        ConfigError {
            problems: vec![ConfigProblem {
                file: Some(file.name.clone()),
                line,
                column,
                key,
                message,
            }],
        }
    })
}

/// The key path whose key sits on `line` (serde names the field, the index names its parents).
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let index = LineIndex::build(text);
    index.key_on_line(line)
}

/// openmetadata.yaml supplies its blocks; keys the gateway file sets explicitly win. `origin`
/// records which keys came from it (for messages located against that file).
fn merge_openmetadata(
    raw: &mut RawConfig,
    server: super::openmetadata::OpenMetadataAuth,
    origin: &mut HashSet<&'static str>,
) {
    // Take each listed field from the server's block where ours leaves it unset.
    macro_rules! take_unset {
        ($ours:expr, $theirs:expr, $block:literal, $($field:ident => $key:literal),+ $(,)?) => {{
            let (ours, theirs) = ($ours, $theirs);
            $(
                if ours.$field.is_none() && theirs.$field.is_some() {
                    ours.$field = theirs.$field;
                    origin.insert(concat!($block, ".", $key));
                }
            )+
        }};
    }
    if let Some(theirs) = server.authentication {
        take_unset!(
            raw.authentication_configuration.get_or_insert_with(Default::default),
            theirs,
            "authenticationConfiguration",
            provider => "provider",
            public_key_urls => "publicKeyUrls",
            jwt_principal_claims => "jwtPrincipalClaims",
            jwt_principal_claims_mapping => "jwtPrincipalClaimsMapping",
            token_validation_algorithm => "tokenValidationAlgorithm",
        );
    }
    if let Some(theirs) = server.authorizer {
        take_unset!(
            raw.authorizer_configuration.get_or_insert_with(Default::default),
            theirs,
            "authorizerConfiguration",
            admin_principals => "adminPrincipals",
            principal_domain => "principalDomain",
            enforce_principal_domain => "enforcePrincipalDomain",
            allowed_domains => "allowedDomains",
            use_roles_from_provider => "useRolesFromProvider",
        );
    }
    if let Some(theirs) = server.jwt_token {
        take_unset!(
            raw.openmetadata.get_or_insert_with(Default::default),
            theirs,
            "jwtTokenConfiguration",
            jwt_issuer => "jwtissuer",
            key_id => "keyId",
            public_key_file => "rsapublicKeyFilePath",
        );
    }
}

fn build(
    raw: RawConfig,
    provenance: Provenance,
    layers: std::sync::Arc<Layers>,
    problems: &mut Problems,
) -> Config {
    let (startup, server) = build_server(raw.server.unwrap_or_default(), problems);
    let upstream = build_upstream(raw.upstream.unwrap_or_default(), problems);
    let raw_openmetadata = raw.openmetadata.unwrap_or_default();
    let follow = build_follow(
        &raw_openmetadata,
        &provenance,
        layers.env_token.as_ref(),
        problems,
    );
    let openmetadata = build_openmetadata(raw_openmetadata);
    let auth = build_auth(
        raw.authentication_configuration.unwrap_or_default(),
        &upstream,
        &openmetadata,
        problems,
    );
    let authorizer = build_authorizer(raw.authorizer_configuration.unwrap_or_default());
    let jwks = build_jwks(raw.jwks.unwrap_or_default(), problems);
    let cache = raw.token_cache.unwrap_or_default();
    let token_cache = TokenCacheConfig {
        max_entries: cache.max_entries.unwrap_or(100_000),
        ttl: problems.duration(
            "tokenCache.ttl",
            cache.ttl.as_ref(),
            Duration::from_secs(300),
        ),
    };
    let forward_auth_path = raw
        .forward_auth
        .and_then(|forward_auth| forward_auth.path)
        .unwrap_or_else(|| "/_gateway/auth".into());
    if !forward_auth_path.starts_with('/') {
        problems.add("forwardAuth.path", "must start with `/`");
    }
    let public_paths = raw
        .public_paths
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(position, text)| {
            parse_public_path(text, &format!("publicPaths[{position}]"), problems)
        })
        .collect();
    let routes = build_routes(raw.routes.unwrap_or_default(), problems);
    let feed = build_feed(raw.feed.unwrap_or_default(), problems);
    let default_route = raw.default_route.unwrap_or_default();
    let default_route = RouteRule {
        name: "default".into(),
        path: PathMatch::Any,
        methods: None,
        require: build_require(
            default_route.require.unwrap_or_default(),
            "defaultRoute.require",
            problems,
        ),
        deny: default_route.deny.unwrap_or(false),
    };
    Config {
        startup,
        server,
        upstream,
        auth,
        authorizer,
        jwks,
        token_cache,
        forward_auth_path,
        public_paths,
        default_public_paths: raw.default_public_paths.unwrap_or(true),
        routes,
        default_route,
        feed,
        source_file: None,
        openmetadata_file: None,
        openmetadata,
        revocation: build_revocation(raw.revocation_check.unwrap_or_default(), problems),
        follow,
        provenance,
        layers,
    }
}

fn build_revocation(
    raw: RawRevocationCheck,
    problems: &mut Problems,
) -> crate::revocation::RevocationSettings {
    let defaults = crate::revocation::RevocationSettings::default();
    let fail_open = match raw.on_unavailable.as_deref().unwrap_or("open") {
        "open" => true,
        "closed" => false,
        other => {
            problems.add(
                "revocationCheck.onUnavailable",
                format!("`{other}` is not one of open, closed"),
            );
            true
        }
    };
    crate::revocation::RevocationSettings {
        enabled: raw.enabled.unwrap_or(false),
        recheck_interval: problems.positive_duration(
            "revocationCheck.recheckInterval",
            raw.recheck_interval.as_ref(),
            defaults.recheck_interval,
        ),
        timeout: problems.positive_duration(
            "revocationCheck.timeout",
            raw.timeout.as_ref(),
            defaults.timeout,
        ),
        fail_open,
        max_entries: raw.max_entries.unwrap_or(defaults.max_entries).max(1),
    }
}

/// `openmetadata.followServerConfig`, `followInterval`, `followToken`. Following is on by
/// default exactly when the operator named no key source in the gateway's file or environment:
/// then the server's own settings are the best description of whom to trust.
fn build_follow(
    raw: &RawOpenMetadata,
    provenance: &Provenance,
    env_token: Option<&Secret>,
    problems: &mut Problems,
) -> FollowConfig {
    let explicit_key_source = [
        "authenticationConfiguration.publicKeyUrls",
        "authenticationConfiguration.keySources",
        "authenticationConfiguration.publicKeyFiles",
    ]
    .iter()
    .any(|key| provenance.origin(key).is_explicit());
    let file_token = raw
        .follow_token
        .as_ref()
        .and_then(|token| token.token_file.as_ref())
        .map(|path| PathBuf::from(path.trim()));
    if let Some(path) = &file_token {
        if !path.is_file() {
            problems.add(
                "openmetadata.followToken.tokenFile",
                format!("{} is not a readable file", path.display()),
            );
        }
    }
    if raw
        .follow_token
        .as_ref()
        .is_some_and(|token| token.token_file.is_none())
    {
        problems.add("openmetadata.followToken", "needs tokenFile");
    }
    FollowConfig {
        enabled: raw.follow_server_config.unwrap_or(!explicit_key_source),
        interval: problems.positive_duration(
            "openmetadata.followInterval",
            raw.follow_interval.as_ref(),
            Duration::from_secs(60),
        ),
        token: env_token
            .cloned()
            .map(FollowToken::Env)
            .or(file_token.map(FollowToken::File)),
    }
}

fn build_server(raw: RawServer, problems: &mut Problems) -> (StartupConfig, ServerConfig) {
    let tls = raw.tls.and_then(|tls| match (tls.cert_file, tls.key_file) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert_file: cert.into(),
            key_file: key.into(),
            reload_interval: problems.positive_duration(
                "server.tls.reloadInterval",
                tls.reload_interval.as_ref(),
                Duration::from_secs(5),
            ),
        }),
        (None, None) => None,
        _ => {
            problems.add("server.tls", "needs both certFile and keyFile");
            None
        }
    });
    let log_format = match raw.log_format.as_deref().unwrap_or("json") {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        other => {
            problems.add(
                "server.logFormat",
                format!("`{other}` is not one of json, text"),
            );
            LogFormat::Json
        }
    };
    let max_header_bytes = raw.max_header_bytes.unwrap_or(65_536);
    if !(8192..=1 << 24).contains(&max_header_bytes) {
        problems.add("server.maxHeaderBytes", "must be between 8192 and 16777216");
    }
    let startup = StartupConfig {
        listen: problems.socket_addr("server.listen", raw.listen.as_ref(), "0.0.0.0:8080"),
        admin_listen: problems.socket_addr(
            "server.adminListen",
            raw.admin_listen.as_ref(),
            "127.0.0.1:9090",
        ),
        tls,
        max_header_bytes: max_header_bytes.clamp(8192, 1 << 24) as usize,
        shutdown_grace_period: problems.duration(
            "server.shutdownGracePeriod",
            raw.shutdown_grace_period.as_ref(),
            Duration::from_secs(25),
        ),
        log_format,
        header_read_timeout: problems.positive_duration(
            "server.headerReadTimeout",
            raw.header_read_timeout.as_ref(),
            Duration::from_secs(10),
        ),
        max_connections: problems.bounded(
            "server.maxConnections",
            raw.max_connections,
            10_000,
            (1, 1_000_000),
        ),
        workers: problems.bounded("server.workers", raw.workers, default_workers(), (1, 256)),
    };
    let server = ServerConfig {
        request_timeout: problems.duration(
            "server.requestTimeout",
            raw.request_timeout.as_ref(),
            // OpenMetadata's Python SDK waits 300 s and retries a 504, writes included.
            Duration::from_secs(300),
        ),
        max_uri_bytes: problems.bounded(
            "server.maxUriBytes",
            raw.max_uri_bytes,
            8192,
            (256, 65_000),
        ),
        access_log: raw.access_log.unwrap_or(true),
        websocket_paths: build_websocket_paths(raw.websocket_paths, problems),
    };
    (startup, server)
}

/// `server.websocketPaths`: the same forms as `publicPaths` (exact, or `/prefix/**`); the list
/// given replaces the default, the activity feed.
fn build_websocket_paths(raw: Option<Vec<String>>, problems: &mut Problems) -> Vec<PathRule> {
    let Some(raw) = raw else {
        let feed = format!("{}/**", crate::proxy::feed::FEED_PATH);
        return parse_public_path(&feed, "server.websocketPaths", problems)
            .into_iter()
            .collect();
    };
    raw.iter()
        .enumerate()
        .filter_map(|(position, text)| {
            let key = format!("server.websocketPaths[{position}]");
            let rule = parse_public_path(text, &key, problems)?;
            if matches!(&rule.pattern, PathMatch::Prefix(prefix) if prefix.is_empty()) {
                problems.add(&key, "`/**` would allow WebSocket tunnels on every path; list the paths that serve WebSockets");
                return None;
            }
            Some(rule)
        })
        .collect()
}

/// The feed cookie keys: each from its variable (value or file) or its `feed.*File` setting.
fn build_feed(raw: RawFeed, problems: &mut Problems) -> FeedConfig {
    let key_configured = raw.key_from_environment.is_some() || raw.key_file.is_some();
    let previous_variable = raw
        .previous_key_from_environment
        .as_ref()
        .map(super::feed_key::EnvironmentKey::variable);
    let previous_configured = previous_variable.is_some() || raw.previous_key_file.is_some();
    let key = feed_key(
        raw.key_from_environment,
        raw.key_file,
        "feed.keyFile",
        problems,
    );
    let previous_key = feed_key(
        raw.previous_key_from_environment,
        raw.previous_key_file,
        "feed.previousKeyFile",
        problems,
    );
    if previous_configured && !key_configured {
        let message = "needs a current key (feed.keyFile or OM_GATEWAY_FEED_KEY): the previous key is only accepted, never used to sign";
        match previous_variable {
            Some(variable) => problems.add_environment(variable, message),
            None => problems.add("feed.previousKeyFile", message),
        }
    }
    FeedConfig { key, previous_key }
}

/// One feed key, read and decoded; problems name the variable or the setting, never the key.
fn feed_key(
    from_environment: Option<super::feed_key::EnvironmentKey>,
    file: Option<String>,
    setting: &str,
    problems: &mut Problems,
) -> Option<FeedKey> {
    use super::feed_key::{decode_feed_key, read_key_file, EnvironmentKey};
    let (text, origin, path, variable) = match (from_environment, file) {
        (Some(EnvironmentKey::Value { variable, value }), _) => {
            (Ok(value), variable.to_string(), None, Some(variable))
        }
        (Some(EnvironmentKey::File { variable, path }), _) => {
            let path = PathBuf::from(path);
            (
                read_key_file(&path).map_err(|error| error.to_string()),
                format!("{} ({variable})", path.display()),
                Some(path),
                Some(variable),
            )
        }
        (None, Some(path)) => {
            let path = PathBuf::from(path);
            (
                read_key_file(&path).map_err(|error| error.to_string()),
                format!("{} ({setting})", path.display()),
                Some(path),
                None,
            )
        }
        (None, None) => return None,
    };
    let decoded = text.and_then(|text| match &path {
        Some(path) => {
            decode_feed_key(&text).map_err(|problem| format!("{}: {problem}", path.display()))
        }
        None => decode_feed_key(&text),
    });
    match decoded {
        Ok(bytes) => Some(FeedKey::new(bytes, origin, path)),
        Err(message) => {
            match variable {
                Some(variable) => problems.add_environment(variable, message),
                None => problems.add(setting, message),
            }
            None
        }
    }
}

/// One worker per CPU this process may use (the cgroup quota counts), at most 256.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(256)
}

fn build_upstream(raw: RawUpstream, problems: &mut Problems) -> UpstreamConfig {
    let text = raw.url.unwrap_or_else(|| "http://localhost:8585".into());
    let url = match text.trim_end_matches('/').parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http") | Some("https"))
                && uri.authority().is_some()
                && matches!(uri.path(), "" | "/") =>
        {
            uri
        }
        _ => {
            problems.add(
                "upstream.url",
                format!("`{text}` is not an http(s) URL with a host and no path, e.g. http://localhost:8585"),
            );
            http::Uri::from_static("http://localhost:8585")
        }
    };
    let tls = raw.tls.unwrap_or_default();
    UpstreamConfig {
        url,
        connect_timeout: problems.duration(
            "upstream.connectTimeout",
            raw.connect_timeout.as_ref(),
            Duration::from_secs(2),
        ),
        timeout: problems.duration(
            "upstream.timeout",
            raw.timeout.as_ref(),
            Duration::from_secs(300),
        ),
        ca_file: tls.ca_file.map(PathBuf::from),
        insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
        pool_idle_timeout: problems.positive_duration(
            "upstream.poolIdleTimeout",
            raw.pool_idle_timeout.as_ref(),
            Duration::from_secs(90),
        ),
        pool_max_idle_per_host: problems.bounded(
            "upstream.poolMaxIdlePerHost",
            raw.pool_max_idle_per_host,
            512,
            (0, 100_000),
        ),
    }
}

fn build_auth(
    raw: RawAuthentication,
    upstream: &UpstreamConfig,
    openmetadata: &OpenMetadataConfig,
    problems: &mut Problems,
) -> AuthConfig {
    let prefix = "authenticationConfiguration";
    let mut key_sources: Vec<KeySourceConfig> = Vec::new();
    for (position, source) in raw.key_sources.unwrap_or_default().into_iter().enumerate() {
        check_key_url(
            &source.url,
            &format!("{prefix}.keySources[{position}].url"),
            problems,
        );
        key_sources.push(KeySourceConfig {
            url: source.url,
            issuers: source.issuers.unwrap_or_default(),
            audiences: source.audiences.unwrap_or_default(),
            ca_file: source.ca_file.map(PathBuf::from),
        });
    }
    let mut key_files: Vec<KeyFileConfig> = raw
        .public_key_files
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(position, file)| {
            let entry = match file {
                RawKeyFile::Path(path) => KeyFileConfig {
                    path: path.into(),
                    kid: None,
                    issuers: Vec::new(),
                },
                RawKeyFile::WithKid(with_kid) => KeyFileConfig {
                    path: with_kid.file.into(),
                    kid: with_kid.kid,
                    issuers: Vec::new(),
                },
            };
            if !entry.path.is_file() {
                problems.add(
                    &format!("{prefix}.publicKeyFiles[{position}]"),
                    format!("{} is not a readable file", entry.path.display()),
                );
            }
            entry
        })
        .collect();
    let urls = raw.public_key_urls.unwrap_or_default();
    for (position, url) in urls.into_iter().enumerate() {
        check_key_url(
            &url,
            &format!("{prefix}.publicKeyUrls[{position}]"),
            problems,
        );
        if !key_sources.iter().any(|source| source.url == url) {
            key_sources.push(KeySourceConfig {
                url,
                issuers: Vec::new(),
                audiences: Vec::new(),
                ca_file: None,
            });
        }
    }
    let mapping = build_mapping(
        raw.jwt_principal_claims_mapping.unwrap_or_default(),
        &format!("{prefix}.jwtPrincipalClaimsMapping"),
        problems,
    );
    let algorithm_text = raw
        .token_validation_algorithm
        .unwrap_or_else(|| "RS256".into());
    // OpenMetadata 2.x's AuthenticationConfiguration.TokenValidationAlgorithm: RS and ES.
    let token_validation_algorithm = match algorithm_text.trim() {
        "RS256" => jsonwebtoken::Algorithm::RS256,
        "RS384" => jsonwebtoken::Algorithm::RS384,
        "RS512" => jsonwebtoken::Algorithm::RS512,
        "ES256" => jsonwebtoken::Algorithm::ES256,
        "ES384" => jsonwebtoken::Algorithm::ES384,
        other => {
            problems.add(
                &format!("{prefix}.tokenValidationAlgorithm"),
                format!("`{other}` is not one of RS256, RS384, RS512, ES256, ES384 (ES512 is not supported)"),
            );
            jsonwebtoken::Algorithm::RS256
        }
    };
    let allow_tokens_without_expiry =
        match raw.allow_tokens_without_expiry.as_deref().unwrap_or("bots") {
            "bots" => ExpiryPolicy::Bots,
            "all" => ExpiryPolicy::All,
            "none" => ExpiryPolicy::None,
            other => {
                problems.add(
                    &format!("{prefix}.allowTokensWithoutExpiry"),
                    format!("`{other}` is not one of bots, all, none"),
                );
                ExpiryPolicy::Bots
            }
        };
    let principal_claims = raw
        .jwt_principal_claims
        .unwrap_or_else(|| vec!["email".into(), "preferred_username".into(), "sub".into()])
        .into_iter()
        .map(|claim| claim.to_ascii_lowercase())
        .collect::<Vec<_>>();
    if principal_claims.is_empty() {
        problems.add(
            &format!("{prefix}.jwtPrincipalClaims"),
            "must name at least one claim",
        );
    }
    if openmetadata.trust_server_key {
        trust_openmetadata_key(openmetadata, upstream, &mut key_sources, &mut key_files);
    }
    AuthConfig {
        provider: raw.provider.unwrap_or_else(|| "basic".into()),
        key_sources,
        key_files,
        principal_claims,
        principal_claims_mapping: mapping,
        token_validation_algorithm,
        issuers: raw.issuers.unwrap_or_default(),
        audiences: raw.audiences.unwrap_or_default(),
        clock_skew: problems.duration(
            &format!("{prefix}.clockSkew"),
            raw.clock_skew.as_ref(),
            Duration::from_secs(30),
        ),
        allow_tokens_without_expiry,
        roles_claim: raw
            .roles_claim
            .unwrap_or_else(|| "roles".into())
            .to_ascii_lowercase(),
    }
}

/// OpenMetadata's `MultiUrlJwkProvider` asks its `LocalJwkProvider` (the key the server signs bot
/// and personal access tokens with) before any `publicKeyUrls` entry, so the server trusts that
/// key whatever the list says. The gateway reads the same key from the upstream's public
/// `/api/v1/system/config/jwks`, and from `rsapublicKeyFilePath` when that file is readable here,
/// bound to OpenMetadata's issuer. A URL the operator listed keeps the binding they gave it.
fn trust_openmetadata_key(
    openmetadata: &OpenMetadataConfig,
    upstream: &UpstreamConfig,
    key_sources: &mut Vec<KeySourceConfig>,
    key_files: &mut Vec<KeyFileConfig>,
) {
    let url = format!(
        "{}{DEFAULT_JWKS_PATH}",
        upstream.url.to_string().trim_end_matches('/')
    );
    if !key_sources.iter().any(|source| source.url == url) {
        key_sources.push(KeySourceConfig {
            url,
            issuers: vec![openmetadata.issuer.clone()],
            audiences: Vec::new(),
            ca_file: upstream.ca_file.clone(),
        });
    }
    if let Some(path) = &openmetadata.public_key_file {
        // The path is the server's; in another container it often does not exist. The URL above
        // carries the same key, so an unreadable file is skipped, not an error.
        if path.is_file() && !key_files.iter().any(|file| &file.path == path) {
            key_files.push(KeyFileConfig {
                path: path.clone(),
                kid: Some(openmetadata.key_id.clone()).filter(|kid| !kid.is_empty()),
                issuers: vec![openmetadata.issuer.clone()],
            });
        }
    }
}

/// `jwtPrincipalClaimsMapping` as `SecurityUtil.buildPrincipalClaimsMapping` and
/// `validatePrincipalClaimsMapping` read it: `name:claim` pairs, only `username` and `email`,
/// both required when any is given. The server drops malformed entries silently; here they are
/// configuration errors.
fn build_mapping(
    entries: Vec<String>,
    key: &str,
    problems: &mut Problems,
) -> Option<crate::verify::PrincipalMapping> {
    let mut username = None;
    let mut email = None;
    for (position, entry) in entries.iter().enumerate() {
        let parts: Vec<&str> = entry.split(':').map(str::trim).collect();
        match parts.as_slice() {
            ["username", claim] if !claim.is_empty() => username = Some(claim.to_string()),
            ["email", claim] if !claim.is_empty() => email = Some(claim.to_string()),
            [name, claim] if !name.is_empty() && !claim.is_empty() => problems.add(
                &format!("{key}[{position}]"),
                format!("`{name}` is not a mapped field: only username and email are allowed"),
            ),
            _ => problems.add(
                &format!("{key}[{position}]"),
                format!("`{entry}` is not `name:claim`, e.g. username:preferred_username"),
            ),
        }
    }
    match (username, email) {
        (Some(username_claim), Some(email_claim)) => Some(crate::verify::PrincipalMapping {
            username_claim,
            email_claim,
        }),
        (None, None) => None,
        _ => {
            problems.add(
                key,
                "needs both `username:<claim>` and `email:<claim>`, as OpenMetadata requires",
            );
            None
        }
    }
}

fn build_openmetadata(raw: RawOpenMetadata) -> OpenMetadataConfig {
    OpenMetadataConfig {
        trust_server_key: raw.trust_server_key.unwrap_or(true),
        issuer: raw
            .jwt_issuer
            .map(|issuer| issuer.trim().to_string())
            .unwrap_or_else(|| DEFAULT_OPENMETADATA_ISSUER.into()),
        key_id: raw
            .key_id
            .map(|kid| kid.trim().to_string())
            .unwrap_or_else(|| DEFAULT_OPENMETADATA_KEY_ID.into()),
        public_key_file: raw
            .public_key_file
            .map(|path| PathBuf::from(path.trim()))
            .filter(|path| !path.as_os_str().is_empty()),
    }
}

fn check_key_url(url: &str, key: &str, problems: &mut Problems) {
    match url.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http") | Some("https")) && uri.host().is_some() => {
        }
        _ => problems.add(key, format!("`{url}` is not an http(s) URL")),
    }
}

fn build_authorizer(raw: RawAuthorizer) -> AuthorizerConfig {
    AuthorizerConfig {
        admin_principals: raw.admin_principals.unwrap_or_else(|| vec!["admin".into()]),
        principal_domain: raw
            .principal_domain
            .unwrap_or_else(|| "open-metadata.org".into()),
        enforce_principal_domain: raw.enforce_principal_domain.unwrap_or(false),
        allowed_domains: raw.allowed_domains.unwrap_or_default(),
        use_roles_from_provider: raw.use_roles_from_provider.unwrap_or(false),
    }
}

fn build_jwks(raw: RawJwks, problems: &mut Problems) -> JwksConfig {
    let config = JwksConfig {
        refresh_interval: problems.duration(
            "jwks.refreshInterval",
            raw.refresh_interval.as_ref(),
            Duration::from_secs(600),
        ),
        min_refresh_interval: problems.duration(
            "jwks.minRefreshInterval",
            raw.min_refresh_interval.as_ref(),
            Duration::from_secs(30),
        ),
        fetch_timeout: problems.duration(
            "jwks.fetchTimeout",
            raw.fetch_timeout.as_ref(),
            Duration::from_secs(5),
        ),
        max_stale: problems.duration(
            "jwks.maxStale",
            raw.max_stale.as_ref(),
            Duration::from_secs(86_400),
        ),
    };
    if config.min_refresh_interval > config.refresh_interval {
        problems.add(
            "jwks.minRefreshInterval",
            "must not exceed jwks.refreshInterval",
        );
    }
    if config.fetch_timeout.is_zero() {
        problems.add("jwks.fetchTimeout", "must be above 0");
    }
    config
}

/// `publicPaths` entries: an exact path, or a segment-aware prefix written `/prefix/**`.
fn parse_public_path(text: &str, key: &str, problems: &mut Problems) -> Option<PathRule> {
    if !text.starts_with('/') {
        problems.add(key, format!("`{text}` must start with `/`"));
        return None;
    }
    let pattern = match text.strip_suffix("/**").or_else(|| text.strip_suffix("/*")) {
        Some(prefix) => PathMatch::Prefix(prefix.to_string()),
        None => PathMatch::Exact(text.to_string()),
    };
    if let PathMatch::Prefix(checked) | PathMatch::Exact(checked) = &pattern {
        if !checked.is_empty() {
            check_path(checked, key, problems);
        }
    }
    Some(PathRule {
        pattern,
        source: text.to_string(),
    })
}

fn build_routes(raw_routes: Vec<RawRoute>, problems: &mut Problems) -> Vec<RouteRule> {
    let mut names = HashSet::new();
    let mut routes = Vec::new();
    for (position, raw) in raw_routes.into_iter().enumerate() {
        let key = format!("routes[{position}]");
        let name = raw.name.clone().unwrap_or_else(|| key.clone());
        if !names.insert(name.clone()) {
            problems.add(
                &format!("{key}.name"),
                format!("`{name}` is used by an earlier route"),
            );
        }
        let matcher = raw.matcher.unwrap_or_default();
        let (path, methods) = build_match(matcher, &format!("{key}.match"), problems);
        routes.push(RouteRule {
            name,
            path,
            methods,
            require: build_require(
                raw.require.unwrap_or_default(),
                &format!("{key}.require"),
                problems,
            ),
            deny: raw.deny.unwrap_or(false),
        });
    }
    routes
}

fn build_match(
    raw: RawMatch,
    key: &str,
    problems: &mut Problems,
) -> (PathMatch, Option<Vec<http::Method>>) {
    let given = [
        raw.path.is_some(),
        raw.path_prefix.is_some(),
        raw.path_regex.is_some(),
    ];
    if given.iter().filter(|set| **set).count() > 1 {
        problems.add(key, "give only one of path, pathPrefix, pathRegex");
    }
    let path = if let Some(path) = raw.path {
        check_path(&path, &format!("{key}.path"), problems);
        PathMatch::Exact(path)
    } else if let Some(prefix) = raw.path_prefix {
        check_path(&prefix, &format!("{key}.pathPrefix"), problems);
        PathMatch::Prefix(prefix.trim_end_matches('/').to_string())
    } else if let Some(pattern) = raw.path_regex {
        // Anchored: a rule names whole paths, never a substring of one.
        match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => PathMatch::Regex(regex),
            Err(error) => {
                problems.add(
                    &format!("{key}.pathRegex"),
                    format!("invalid regex: {error}"),
                );
                PathMatch::Any
            }
        }
    } else {
        PathMatch::Any
    };
    let methods = raw.methods.map(|methods| {
        methods
            .iter()
            .enumerate()
            .filter_map(|(position, method)| {
                let upper = method.to_ascii_uppercase();
                match http::Method::from_bytes(upper.as_bytes()) {
                    Ok(parsed) if upper.bytes().all(|b| b.is_ascii_uppercase()) => Some(parsed),
                    _ => {
                        problems.add(
                            &format!("{key}.methods[{position}]"),
                            format!("`{method}` is not an HTTP method"),
                        );
                        None
                    }
                }
            })
            .collect()
    });
    (path, methods)
}

/// Requests are matched in normalised form, so a rule path that is not normalised would never
/// match anything: say so at load instead of letting the rule silently do nothing.
fn check_path(path: &str, key: &str, problems: &mut Problems) {
    if !path.starts_with('/') {
        problems.add(key, format!("`{path}` must start with `/`"));
        return;
    }
    match crate::policy::normalize_path(path) {
        Ok(normalised) if normalised == path => {}
        Ok(normalised) => problems.add(
            key,
            format!("`{path}` is not in normalised form; requests are matched as `{normalised}`"),
        ),
        Err(error) => problems.add(key, format!("`{path}` can never match a request: {error}")),
    }
}

fn build_require(raw: RawRequire, key: &str, problems: &mut Problems) -> Requirement {
    let claims: BTreeMap<String, RawClaimValue> = raw.claims.unwrap_or_default();
    let claims = claims
        .into_iter()
        .map(|(name, value)| {
            let values = match value {
                RawClaimValue::One(value) => vec![value],
                RawClaimValue::Many(values) => values,
            };
            if values.is_empty() {
                problems.add(
                    &format!("{key}.claims.{name}"),
                    "needs at least one accepted value",
                );
            }
            (name.to_ascii_lowercase(), values)
        })
        .collect();
    Requirement {
        is_bot: raw.is_bot,
        token_types: raw.token_types.unwrap_or_default(),
        roles_any: raw.roles_any.unwrap_or_default(),
        roles_all: raw.roles_all.unwrap_or_default(),
        principals: raw.principals.unwrap_or_default(),
        email_domains: raw
            .email_domains
            .unwrap_or_default()
            .into_iter()
            .map(|domain| domain.trim_start_matches('@').to_ascii_lowercase())
            .collect(),
        claims,
    }
}
