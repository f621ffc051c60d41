//! Cross-checks the deployment files under `deploy/` against om-gateway's contract:
//! environment variable names, listen ports, probe paths, forward-auth URLs, identity headers,
//! the Dockerfile's HEALTHCHECK, and the metric names (and labels) used by the Grafana dashboard
//! and the Prometheus rules. `.ci/validate-deploy.sh` validates the same files against Kubernetes
//! schemas, hadolint, compose and promtool, and runs this to check that they agree with the
//! gateway itself.
//!
//! The contract comes from the gateway crate (`om_gateway::contract`): its variables, metrics,
//! identity headers and defaults, so a rename in the gateway is a problem here until deploy/
//! follows. `check_deploy_tree` is a pure function of the files under a directory and that
//! contract: it returns one line per problem, each naming the file. The tests run it on `deploy/`
//! and on a deliberately broken copy of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use om_gateway::contract::{MetricDescriptor, MetricKind};

/// What the deployment files must agree with, read from the gateway.
#[derive(Debug, Clone)]
pub struct Contract {
    pub listen: String,
    pub admin_listen: String,
    pub forward_auth_path: String,
    pub variables: Vec<String>,
    pub identity_headers: Vec<String>,
    pub metrics: Vec<MetricDescriptor>,
}

impl Contract {
    pub fn of_the_gateway() -> Result<Contract, String> {
        let defaults =
            om_gateway::contract::defaults().map_err(|e| format!("the gateway's defaults: {e}"))?;
        let metrics =
            om_gateway::contract::metrics().map_err(|e| format!("the gateway's metrics: {e}"))?;
        Ok(Contract {
            listen: defaults.listen.to_string(),
            admin_listen: defaults.admin_listen.to_string(),
            forward_auth_path: defaults.forward_auth_path,
            variables: om_gateway::contract::environment_variables()
                .iter()
                .map(|v| v.to_string())
                .collect(),
            identity_headers: om_gateway::contract::identity_headers()
                .into_iter()
                .map(String::from)
                .collect(),
            metrics,
        })
    }
}

/// The admin listener's probe endpoints (CONTRACT.md, "Admin listener").
const PROBE_PATHS: &[&str] = &["/healthz", "/readyz"];
/// Environment variables with these prefixes are meant for the gateway.
const ENV_PREFIXES: &[&str] = &["OM_GATEWAY_", "AUTHENTICATION_", "AUTHORIZER_"];
/// Labels Prometheus itself attaches to scraped series (and our relabelling adds).
const TARGET_LABELS: &[&str] = &[
    "instance",
    "job",
    "namespace",
    "pod",
    "container",
    "service",
    "endpoint",
];

/// Keys of the gateway's configuration file (unknown keys are an error for the gateway).
const CONFIG_KEYS: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "listen",
            "adminListen",
            "tls",
            "maxHeaderBytes",
            "requestTimeout",
            "shutdownGracePeriod",
            "logFormat",
            "headerReadTimeout",
            "maxUriBytes",
            "maxConnections",
            "accessLog",
            "workers",
        ],
    ),
    (
        "upstream",
        &[
            "url",
            "connectTimeout",
            "timeout",
            "tls",
            "poolIdleTimeout",
            "poolMaxIdlePerHost",
        ],
    ),
    (
        "authenticationConfiguration",
        &[
            "provider",
            "publicKeyUrls",
            "jwtPrincipalClaims",
            "jwtPrincipalClaimsMapping",
            "tokenValidationAlgorithm",
            "keySources",
            "publicKeyFiles",
            "issuers",
            "audiences",
            "clockSkew",
            "allowTokensWithoutExpiry",
            "rolesClaim",
        ],
    ),
    (
        "authorizerConfiguration",
        &[
            "adminPrincipals",
            "principalDomain",
            "enforcePrincipalDomain",
            "allowedDomains",
        ],
    ),
    (
        "jwks",
        &[
            "refreshInterval",
            "minRefreshInterval",
            "fetchTimeout",
            "maxStale",
        ],
    ),
    ("tokenCache", &["maxEntries", "ttl"]),
    ("forwardAuth", &["path"]),
    ("publicPaths", &[]),
    ("defaultPublicPaths", &[]),
    ("routes", &[]),
    ("defaultRoute", &[]),
    ("feed", &["keyFile", "previousKeyFile"]),
];

// ------------------------------------------------------------------ the tree

struct Doc {
    file: String,
    value: Value,
}

#[derive(Default, Clone, PartialEq)]
struct ConfigFacts {
    listen: Option<String>,
    admin_listen: Option<String>,
    forward_auth_path: Option<String>,
}

struct Gateway {
    file: String,
    what: String,
    env: BTreeMap<String, String>,
    uses_config: bool,
    sidecar: bool,
    kube: bool,
    /// Kubernetes container (its ports and probes), or None for compose.
    container: Option<Map<String, Value>>,
    /// compose service definition, or None for Kubernetes.
    service: Option<Map<String, Value>>,
}

struct Checker {
    contract: Contract,
    problems: Vec<String>,
    docs: Vec<Doc>,
    dockerfiles: Vec<(String, String)>,
    config: ConfigFacts,
    image_env: BTreeMap<String, String>,
}

/// Reads every YAML and JSON file and every Dockerfile under `root` and returns the
/// problems found, one line each, naming the file (relative to `root`).
pub fn check_deploy_tree(root: &Path, contract: &Contract) -> Vec<String> {
    let mut checker = Checker {
        contract: contract.clone(),
        problems: Vec::new(),
        docs: Vec::new(),
        dockerfiles: Vec::new(),
        config: ConfigFacts::default(),
        image_env: BTreeMap::new(),
    };
    let mut files = Vec::new();
    list_files(root, &mut files);
    files.sort();
    if files.is_empty() {
        checker
            .problems
            .push(format!("{}: no files", root.display()));
    }
    for path in &files {
        checker.load(root, path);
    }
    checker.run();
    checker.problems
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

impl Checker {
    fn problem(&mut self, file: &str, msg: String) {
        self.problems.push(format!("{file}: {msg}"));
    }

    fn load(&mut self, root: &Path, path: &Path) {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                if name.ends_with(".yaml")
                    || name.ends_with(".yml")
                    || name.ends_with(".json")
                    || name.starts_with("Dockerfile")
                {
                    self.problem(&rel, format!("cannot read: {e}"));
                }
                return;
            }
        };
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            match parse_yaml_documents(&text) {
                Ok(values) => {
                    for value in values {
                        self.docs.push(Doc {
                            file: rel.clone(),
                            value,
                        });
                    }
                }
                Err(e) => self.problem(&rel, format!("invalid YAML: {e}")),
            }
        } else if name.ends_with(".json") {
            match serde_json::from_str::<Value>(&text) {
                Ok(value) => self.docs.push(Doc { file: rel, value }),
                Err(e) => self.problem(&rel, format!("invalid JSON: {e}")),
            }
        } else if name == "Dockerfile"
            || name.starts_with("Dockerfile.")
            || name.ends_with(".Dockerfile")
        {
            self.dockerfiles.push((rel, text));
        }
    }

    fn run(&mut self) {
        self.read_gateway_configs();
        self.check_dockerfiles();
        let gateways = self.find_gateways();
        if gateways.is_empty() {
            self.problems.push(
                "no om-gateway container or compose service found under the tree".to_string(),
            );
        }
        let mut port_names: BTreeMap<String, u16> = BTreeMap::new();
        let mut proxy_ports = BTreeSet::new();
        let mut admin_ports = BTreeSet::new();
        for gw in &gateways {
            let (proxy, admin) = self.check_gateway(gw);
            proxy_ports.extend(proxy);
            admin_ports.extend(admin);
            if let Some(c) = &gw.container {
                for (name, port) in container_ports(c) {
                    if let Some(name) = name {
                        port_names.insert(name, port);
                    }
                }
            }
        }
        let gateway_ports: BTreeSet<u16> = proxy_ports.union(&admin_ports).copied().collect();
        let services = self.check_services(&port_names, &gateway_ports, &proxy_ports);
        self.check_network_policies(&port_names, &gateway_ports);
        self.check_forward_auth(&services, &proxy_ports);
        self.check_compose_exposure();
        self.check_metrics();
    }

    /// In a compose file with the gateway, the gateway is the only way in.
    fn check_compose_exposure(&mut self) {
        let mut found = Vec::new();
        for doc in &self.docs {
            let Some(services) = compose_services(&doc.value) else {
                continue;
            };
            if !services
                .values()
                .filter_map(Value::as_object)
                .any(is_gateway_compose_service)
            {
                continue;
            }
            for (name, svc) in services {
                let Some(svc) = svc.as_object() else { continue };
                let publishes = svc
                    .get("ports")
                    .and_then(Value::as_array)
                    .is_some_and(|p| !p.is_empty());
                if publishes && !is_gateway_compose_service(svc) {
                    found.push((doc.file.clone(), name.clone()));
                }
            }
        }
        for (file, name) in found {
            self.problem(&file, format!("compose service '{name}' publishes ports; only om-gateway may, or clients could bypass it"));
        }
    }

    // ------------------------------------------------------ gateway config files

    fn read_gateway_configs(&mut self) {
        let mut configs: Vec<(String, Value)> = Vec::new();
        for doc in &self.docs {
            if is_gateway_config(&doc.value) {
                configs.push((doc.file.clone(), doc.value.clone()));
            }
            if kind_of(&doc.value) == Some("ConfigMap") {
                if let Some(data) = doc.value.get("data").and_then(Value::as_object) {
                    for (key, text) in data {
                        let Some(text) = text.as_str() else { continue };
                        if !(key.ends_with(".yaml") || key.ends_with(".yml")) {
                            continue;
                        }
                        if let Ok(values) = parse_yaml_documents(text) {
                            for v in values {
                                if is_gateway_config(&v) {
                                    configs.push((format!("{} (data.{key})", doc.file), v));
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut seen: Vec<(String, ConfigFacts)> = Vec::new();
        for (file, cfg) in &configs {
            self.check_config_keys(file, cfg);
            let text = |pointer: &str| {
                cfg.pointer(pointer)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let facts = ConfigFacts {
                listen: text("/server/listen"),
                admin_listen: text("/server/adminListen"),
                forward_auth_path: text("/forwardAuth/path"),
            };
            for (what, value) in [
                ("server.listen", &facts.listen),
                ("server.adminListen", &facts.admin_listen),
            ] {
                if let Some(v) = value {
                    if port_of(v).is_none() {
                        self.problem(file, format!("{what} '{v}' has no port"));
                    }
                }
            }
            if let Some(p) = &facts.forward_auth_path {
                if !p.starts_with('/') {
                    self.problem(file, format!("forwardAuth.path '{p}' must start with /"));
                }
            }
            seen.push((file.clone(), facts));
        }
        if let Some((first_file, first)) = seen.first().cloned() {
            for (file, facts) in seen.iter().skip(1) {
                if *facts != first {
                    self.problem(
                        file,
                        format!("listen addresses or forwardAuth.path differ from {first_file}; the checks assume one gateway configuration"),
                    );
                }
            }
            self.config = first;
        }
    }

    fn check_config_keys(&mut self, file: &str, cfg: &Value) {
        let Some(obj) = cfg.as_object() else { return };
        for (key, value) in obj {
            match CONFIG_KEYS.iter().find(|(k, _)| k == key) {
                None => self.problem(file, format!("'{key}' is not a key of the gateway configuration (unknown keys are an error)")),
                Some((_, sub)) if !sub.is_empty() => {
                    if let Some(inner) = value.as_object() {
                        for k in inner.keys() {
                            if !sub.contains(&k.as_str()) {
                                self.problem(file, format!("'{key}.{k}' is not a key of the gateway configuration"));
                            }
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }

    // ------------------------------------------------------------ Dockerfiles

    fn check_dockerfiles(&mut self) {
        let dockerfiles = self.dockerfiles.clone();
        for (file, text) in &dockerfiles {
            let instructions = dockerfile_instructions(text);
            // Only the final stage is the image.
            let start = instructions
                .iter()
                .rposition(|(i, _)| i == "FROM")
                .unwrap_or(0);
            let last = &instructions[start..];
            let mut env = BTreeMap::new();
            let mut exposed = BTreeSet::new();
            let mut user = None;
            let mut healthcheck = None;
            let mut entrypoint = None;
            for (instr, args) in last {
                match instr.as_str() {
                    "ENV" => env.extend(parse_dockerfile_env(args)),
                    "EXPOSE" => {
                        for p in args.split_whitespace() {
                            match p.split('/').next().unwrap_or("").parse::<u16>() {
                                Ok(n) => {
                                    exposed.insert(n);
                                }
                                Err(_) => {
                                    self.problem(file, format!("EXPOSE {p} is not a port number"))
                                }
                            }
                        }
                    }
                    "USER" => user = Some(args.trim().to_string()),
                    "HEALTHCHECK" => healthcheck = Some(args.trim().to_string()),
                    "ENTRYPOINT" => entrypoint = Some(args.trim().to_string()),
                    _ => {}
                }
            }
            for name in env.keys() {
                self.check_env_name(file, "the image (ENV)", name);
            }
            match &healthcheck {
                None => self.problem(file, "the final stage has no HEALTHCHECK".to_string()),
                Some(hc) => {
                    let cmd = hc.find("CMD").map(|i| &hc[i + 3..]).unwrap_or("");
                    let words = command_words(cmd);
                    let ok = words.first().is_some_and(|w| w.ends_with("om-gateway"))
                        && words.get(1).is_some_and(|w| w == "healthcheck");
                    if !ok {
                        self.problem(file, format!("HEALTHCHECK must run `om-gateway healthcheck` (the image has no shell or curl), found: {hc}"));
                    }
                }
            }
            match &user {
                None => self.problem(
                    file,
                    "the final stage sets no USER (it would run as root)".to_string(),
                ),
                Some(u) => {
                    let name = u.split(':').next().unwrap_or("");
                    if name == "root" || name == "0" {
                        self.problem(file, format!("USER {u} runs as root"));
                    }
                }
            }
            if !entrypoint
                .as_deref()
                .is_some_and(|e| e.contains("om-gateway"))
            {
                self.problem(file, "ENTRYPOINT must start om-gateway".to_string());
            }
            let proxy = env
                .get("OM_GATEWAY_LISTEN")
                .cloned()
                .unwrap_or_else(|| self.contract.listen.clone());
            let admin = env
                .get("OM_GATEWAY_ADMIN_LISTEN")
                .cloned()
                .unwrap_or_else(|| self.contract.admin_listen.clone());
            for (what, addr) in [("proxy", proxy), ("admin", admin)] {
                if let Some(p) = port_of(&addr) {
                    if !exposed.contains(&p) {
                        self.problem(file, format!("the {what} port {p} is not in EXPOSE"));
                    }
                }
            }
            self.image_env.extend(env);
        }
    }

    // ------------------------------------------------ gateway containers/services

    fn find_gateways(&self) -> Vec<Gateway> {
        let mut out = Vec::new();
        let configmaps: BTreeMap<String, Map<String, Value>> = self
            .docs
            .iter()
            .filter(|d| kind_of(&d.value) == Some("ConfigMap"))
            .filter_map(|d| {
                Some((
                    name_of(&d.value)?.to_string(),
                    d.value.get("data")?.as_object()?.clone(),
                ))
            })
            .collect();
        // A Secret's keys become variable names through envFrom too: `stringData` with its
        // values, `data` (base64) by name only.
        let secrets: BTreeMap<String, Map<String, Value>> = self
            .docs
            .iter()
            .filter(|d| kind_of(&d.value) == Some("Secret"))
            .filter_map(|d| {
                let mut keys = Map::new();
                for (k, _) in d
                    .value
                    .get("data")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    keys.insert(k.clone(), Value::String(String::new()));
                }
                for (k, v) in d
                    .value
                    .get("stringData")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    keys.insert(k.clone(), v.clone());
                }
                Some((name_of(&d.value)?.to_string(), keys))
            })
            .collect();
        for doc in &self.docs {
            if let Some(services) = compose_services(&doc.value) {
                for (name, svc) in services {
                    let Some(svc) = svc.as_object() else { continue };
                    if !is_gateway_compose_service(svc) {
                        continue;
                    }
                    let env = compose_environment(svc.get("environment"));
                    let uses_config = env.contains_key("OM_GATEWAY_CONFIG")
                        || value_text(svc.get("command")).contains("--config");
                    out.push(Gateway {
                        file: doc.file.clone(),
                        what: format!("compose service '{name}'"),
                        env,
                        uses_config,
                        sidecar: false,
                        kube: false,
                        container: None,
                        service: Some(svc.clone()),
                    });
                }
                continue;
            }
            let owner = name_of(&doc.value).map(str::to_string);
            let mut found = Vec::new();
            find_containers(&doc.value, owner.as_deref(), &mut found);
            for (container, sidecar) in found {
                let name = container
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let mut env = BTreeMap::new();
                for e in container
                    .get("env")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(n) = e.get("name").and_then(Value::as_str) {
                        env.insert(
                            n.to_string(),
                            e.get("value").map(scalar_text).unwrap_or_default(),
                        );
                    }
                }
                for ef in container
                    .get("envFrom")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let prefix = ef.get("prefix").and_then(Value::as_str).unwrap_or("");
                    let sources = [
                        ("/configMapRef/name", &configmaps),
                        ("/secretRef/name", &secrets),
                    ];
                    for (pointer, objects) in sources {
                        let Some(name) = ef.pointer(pointer).and_then(Value::as_str) else {
                            continue;
                        };
                        for (k, v) in objects.get(name).into_iter().flatten() {
                            let value = scalar_text(v);
                            // An empty value (a base64 `data` key) names a variable; it does
                            // not set a listen address.
                            if !value.is_empty() || !k.ends_with("LISTEN") {
                                env.insert(format!("{prefix}{k}"), value);
                            }
                        }
                    }
                }
                let uses_config = env.contains_key("OM_GATEWAY_CONFIG")
                    || value_text(container.get("args")).contains("--config")
                    || value_text(container.get("command")).contains("--config");
                out.push(Gateway {
                    file: doc.file.clone(),
                    what: format!("container '{name}'"),
                    env,
                    uses_config,
                    sidecar,
                    kube: true,
                    container: Some(container),
                    service: None,
                });
            }
        }
        out
    }

    fn effective(
        &self,
        gw: &Gateway,
        var: &str,
        from_config: &Option<String>,
        default: &str,
    ) -> String {
        if let Some(v) = gw.env.get(var) {
            return v.clone();
        }
        if let Some(v) = self.image_env.get(var) {
            return v.clone();
        }
        if gw.uses_config {
            if let Some(v) = from_config {
                return v.clone();
            }
        }
        default.to_string()
    }

    fn check_env_name(&mut self, file: &str, what: &str, name: &str) {
        if ENV_PREFIXES.iter().any(|p| name.starts_with(p))
            && !self.contract.variables.iter().any(|known| known == name)
        {
            self.problem(
                file,
                format!("{what}: environment variable {name} is not one that om-gateway reads"),
            );
        }
    }

    /// Checks one gateway; returns its (proxy, admin) ports.
    fn check_gateway(&mut self, gw: &Gateway) -> (Option<u16>, Option<u16>) {
        let file = gw.file.as_str();
        let what = gw.what.as_str();
        for name in gw.env.keys() {
            self.check_env_name(file, what, name);
        }
        let listen = self.effective(
            gw,
            "OM_GATEWAY_LISTEN",
            &self.config.listen.clone(),
            &self.contract.listen.clone(),
        );
        let admin_listen = self.effective(
            gw,
            "OM_GATEWAY_ADMIN_LISTEN",
            &self.config.admin_listen.clone(),
            &self.contract.admin_listen.clone(),
        );
        let proxy = port_of(&listen);
        let admin = port_of(&admin_listen);
        if proxy.is_none() {
            self.problem(
                file,
                format!("{what}: listen address '{listen}' has no port"),
            );
        }
        if admin.is_none() {
            self.problem(
                file,
                format!("{what}: admin listen address '{admin_listen}' has no port"),
            );
        }
        if !gw.sidecar {
            for var in ["OM_GATEWAY_UPSTREAM_URL", "AUTHENTICATION_PUBLIC_KEYS"] {
                if let Some(v) = gw.env.get(var) {
                    if v.contains("localhost") || v.contains("127.0.0.1") {
                        self.problem(
                            file,
                            format!("{what}: {var}={v} points at localhost, which inside this container is the gateway itself, not OpenMetadata"),
                        );
                    }
                }
            }
        }
        if let Some(c) = &gw.container {
            self.check_kube_container(gw, c, proxy, admin, &admin_listen);
        }
        if let Some(svc) = &gw.service {
            self.check_compose_service(gw, svc, proxy, admin);
        }
        (proxy, admin)
    }

    fn check_kube_container(
        &mut self,
        gw: &Gateway,
        c: &Map<String, Value>,
        proxy: Option<u16>,
        admin: Option<u16>,
        admin_listen: &str,
    ) {
        let file = gw.file.as_str();
        let what = gw.what.as_str();
        let ports = container_ports(c);
        let by_name: BTreeMap<String, u16> = ports
            .iter()
            .filter_map(|(n, p)| Some((n.clone()?, *p)))
            .collect();
        for (_, p) in &ports {
            if Some(*p) != proxy && Some(*p) != admin {
                self.problem(file, format!("{what}: containerPort {p} is neither the proxy port {} nor the admin port {}", fmt_port(proxy), fmt_port(admin)));
            }
        }
        if let Some(p) = proxy {
            if !ports.iter().any(|(_, q)| *q == p) {
                self.problem(
                    file,
                    format!("{what}: the proxy port {p} is not declared in ports"),
                );
            }
        }
        let mut has_http_probe = false;
        for probe_kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
            let Some(probe) = c.get(probe_kind) else {
                if gw.kube && probe_kind == "readinessProbe" {
                    self.problem(
                        file,
                        format!("{what}: no readinessProbe (/readyz tells when keys are loaded)"),
                    );
                }
                continue;
            };
            if let Some(http) = probe.get("httpGet") {
                has_http_probe = true;
                let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
                if !PROBE_PATHS.contains(&path) {
                    self.problem(
                        file,
                        format!(
                            "{what}: {probe_kind} path {path} is not one of {}",
                            PROBE_PATHS.join(", ")
                        ),
                    );
                } else if probe_kind == "livenessProbe" && path != "/healthz" {
                    self.problem(file, format!("{what}: livenessProbe must use /healthz, not {path} (a key source outage would restart the pods)"));
                }
                let port = match http.get("port") {
                    Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    Some(Value::String(s)) => by_name.get(s).copied().or_else(|| s.parse().ok()),
                    _ => None,
                };
                if port.is_none() || port != admin {
                    self.problem(
                        file,
                        format!(
                            "{what}: {probe_kind} port {} is not the admin port {}",
                            http.get("port").map(scalar_text).unwrap_or_default(),
                            fmt_port(admin)
                        ),
                    );
                }
            } else if let Some(exec) = probe.get("exec") {
                let words: Vec<String> = exec
                    .get("command")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(scalar_text)
                    .collect();
                if !(words.first().is_some_and(|w| w.ends_with("om-gateway"))
                    && words.iter().any(|w| w == "healthcheck"))
                {
                    self.problem(
                        file,
                        format!("{what}: {probe_kind} exec must run `om-gateway healthcheck`"),
                    );
                }
            } else if let Some(tcp) = probe.get("tcpSocket") {
                let port = match tcp.get("port") {
                    Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    Some(Value::String(s)) => by_name.get(s).copied(),
                    _ => None,
                };
                if port.is_none() || (port != proxy && port != admin) {
                    self.problem(
                        file,
                        format!("{what}: {probe_kind} tcpSocket port is not a gateway port"),
                    );
                }
            } else {
                self.problem(
                    file,
                    format!("{what}: {probe_kind} has no httpGet, exec or tcpSocket"),
                );
            }
        }
        if gw.sidecar {
            self.check_feed_key(gw, c);
        }
        if has_http_probe && is_loopback(admin_listen) {
            self.problem(
                file,
                format!("{what}: the admin listener is {admin_listen}; kubelet probes connect to the pod IP, so set OM_GATEWAY_ADMIN_LISTEN=0.0.0.0:<port>"),
            );
        }
    }

    /// Issue 14: a gateway in proxy mode next to OpenMetadata issues feed cookies; with more
    /// than one OpenMetadata pod, every sidecar must share the key, from a Secret (never a
    /// literal in a manifest).
    fn check_feed_key(&mut self, gw: &Gateway, c: &Map<String, Value>) {
        let file = gw.file.as_str();
        let what = gw.what.as_str();
        let entry = c
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|e| {
                matches!(
                    e.get("name").and_then(Value::as_str),
                    Some("OM_GATEWAY_FEED_KEY" | "OM_GATEWAY_FEED_KEY_FILE")
                )
            });
        match entry {
            None => self.problem(
                file,
                format!("{what}: no OM_GATEWAY_FEED_KEY from a Secret: each replica would draw its own feed cookie key, and a feed reconnect on another pod gets 401"),
            ),
            Some(e)
                if e.get("name").and_then(Value::as_str) == Some("OM_GATEWAY_FEED_KEY")
                    && e.pointer("/valueFrom/secretKeyRef/name").is_none() =>
            {
                self.problem(
                    file,
                    format!("{what}: OM_GATEWAY_FEED_KEY must come from a Secret (valueFrom.secretKeyRef), never a value written in a manifest"),
                )
            }
            Some(_) => {}
        }
    }

    fn check_compose_service(
        &mut self,
        gw: &Gateway,
        svc: &Map<String, Value>,
        proxy: Option<u16>,
        admin: Option<u16>,
    ) {
        let file = gw.file.as_str();
        let what = gw.what.as_str();
        for p in svc
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let target = compose_container_port(p);
            if target.is_none() || (target != proxy && target != admin) {
                self.problem(
                    file,
                    format!("{what}: published port {} does not lead to the proxy port {} or the admin port {}", scalar_text(p), fmt_port(proxy), fmt_port(admin)),
                );
            }
        }
        for p in svc
            .get("expose")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let port = scalar_text(p)
                .split('/')
                .next()
                .unwrap_or("")
                .parse::<u16>()
                .ok();
            if port.is_none() || (port != proxy && port != admin) {
                self.problem(
                    file,
                    format!(
                        "{what}: exposed port {} is not a gateway port",
                        scalar_text(p)
                    ),
                );
            }
        }
        if let Some(hc) = svc.get("healthcheck") {
            let disabled = hc.get("disable").and_then(Value::as_bool).unwrap_or(false);
            let words = match hc.get("test") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(scalar_text)
                    .filter(|w| w != "CMD" && w != "CMD-SHELL")
                    .collect::<Vec<_>>(),
                Some(Value::String(s)) => command_words(s),
                _ => Vec::new(),
            };
            let ok = words.first().is_some_and(|w| w.ends_with("om-gateway"))
                && words.get(1).is_some_and(|w| w == "healthcheck");
            if !disabled && !ok {
                self.problem(file, format!("{what}: healthcheck must run `om-gateway healthcheck` (the image has no shell or curl)"));
            }
        }
    }

    // --------------------------------------------------------------- Services

    /// Checks the Services in front of the gateway; returns name → [(port, target port)].
    fn check_services(
        &mut self,
        port_names: &BTreeMap<String, u16>,
        gateway_ports: &BTreeSet<u16>,
        proxy_ports: &BTreeSet<u16>,
    ) -> BTreeMap<String, Vec<(u16, u16)>> {
        // Service patches applied by a kustomization that also adds a gateway container
        // (the sidecar mode) front the gateway whatever their names.
        let patched_services = self.services_patched_next_to_gateway();
        let mut out = BTreeMap::new();
        let services: Vec<(String, Value)> = self
            .docs
            .iter()
            .filter(|d| kind_of(&d.value) == Some("Service"))
            .map(|d| (d.file.clone(), d.value.clone()))
            .collect();
        for (file, svc) in services {
            let name = name_of(&svc).unwrap_or("?").to_string();
            let ports: Vec<Value> = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let targets_gateway_name = ports.iter().any(|p| {
                p.get("targetPort")
                    .and_then(Value::as_str)
                    .is_some_and(|t| port_names.contains_key(t))
            });
            let fronts = name.starts_with("om-gateway")
                || targets_gateway_name
                || patched_services.contains(&file);
            if !fronts {
                continue;
            }
            let mut resolved = Vec::new();
            for p in &ports {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    continue;
                }
                let Some(port) = p
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
                else {
                    self.problem(&file, format!("Service {name}: a port without a number"));
                    continue;
                };
                let target = match p.get("targetPort") {
                    None => Some(port),
                    Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    Some(Value::String(s)) => match port_names.get(s) {
                        Some(n) => Some(*n),
                        None => {
                            self.problem(&file, format!("Service {name}: targetPort '{s}' is not a port name of the om-gateway container"));
                            continue;
                        }
                    },
                    Some(other) => {
                        self.problem(
                            &file,
                            format!(
                                "Service {name}: targetPort {other} is neither a number nor a name"
                            ),
                        );
                        continue;
                    }
                };
                match target {
                    Some(t) if gateway_ports.contains(&t) => resolved.push((port, t)),
                    _ => self.problem(
                        &file,
                        format!(
                            "Service {name}: port {port} targets {}, not a gateway port ({})",
                            p.get("targetPort").map(scalar_text).unwrap_or_default(),
                            join_ports(gateway_ports)
                        ),
                    ),
                }
            }
            if !resolved.iter().any(|(_, t)| proxy_ports.contains(t)) {
                self.problem(
                    &file,
                    format!(
                        "Service {name}: no port leads to the gateway's proxy port ({})",
                        join_ports(proxy_ports)
                    ),
                );
            }
            out.insert(name, resolved);
        }
        out
    }

    fn services_patched_next_to_gateway(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for doc in &self.docs {
            if kind_of(&doc.value) != Some("Kustomization") {
                continue;
            }
            let dir = match doc.file.rfind('/') {
                Some(i) => &doc.file[..i + 1],
                None => "",
            };
            let patch_files: Vec<String> = doc
                .value
                .get("patches")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("path").and_then(Value::as_str))
                .chain(
                    doc.value
                        .get("patchesStrategicMerge")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                )
                .map(|p| format!("{dir}{}", p.trim_start_matches("./")))
                .collect();
            let adds_gateway = self.docs.iter().any(|d| {
                patch_files.contains(&d.file) && {
                    let mut found = Vec::new();
                    find_containers(&d.value, None, &mut found);
                    !found.is_empty()
                }
            });
            if adds_gateway {
                for d in &self.docs {
                    if patch_files.contains(&d.file) && kind_of(&d.value) == Some("Service") {
                        out.insert(d.file.clone());
                    }
                }
            }
        }
        out
    }

    fn check_network_policies(
        &mut self,
        port_names: &BTreeMap<String, u16>,
        gateway_ports: &BTreeSet<u16>,
    ) {
        let policies: Vec<(String, Value)> = self
            .docs
            .iter()
            .filter(|d| kind_of(&d.value) == Some("NetworkPolicy"))
            .map(|d| (d.file.clone(), d.value.clone()))
            .collect();
        for (file, np) in policies {
            let app = np
                .pointer("/spec/podSelector/matchLabels/app.kubernetes.io~1name")
                .and_then(Value::as_str);
            if app != Some("openmetadata") {
                continue;
            }
            let name = name_of(&np).unwrap_or("?").to_string();
            for rule in np
                .pointer("/spec/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ports = rule
                    .get("ports")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if ports.is_empty() {
                    self.problem(&file, format!("NetworkPolicy {name}: an ingress rule without ports opens OpenMetadata's own ports"));
                }
                for p in ports {
                    let port = match p.get("port") {
                        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                        Some(Value::String(s)) => port_names.get(s).copied(),
                        _ => None,
                    };
                    if !port.is_some_and(|p| gateway_ports.contains(&p)) {
                        self.problem(
                            &file,
                            format!(
                                "NetworkPolicy {name}: admits port {}, not a gateway port ({})",
                                p.get("port").map(scalar_text).unwrap_or_default(),
                                join_ports(gateway_ports)
                            ),
                        );
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ forward auth

    fn check_forward_auth(
        &mut self,
        services: &BTreeMap<String, Vec<(u16, u16)>>,
        proxy_ports: &BTreeSet<u16>,
    ) {
        let forward_path = self
            .config
            .forward_auth_path
            .clone()
            .unwrap_or_else(|| self.contract.forward_auth_path.clone());
        let docs: Vec<(String, Value)> = self
            .docs
            .iter()
            .map(|d| (d.file.clone(), d.value.clone()))
            .collect();
        for (file, value) in &docs {
            // Any mention of the gateway's reserved path must be the forward-auth path.
            let mut strings = Vec::new();
            collect_strings(value, &mut strings);
            for s in strings {
                if let Some(i) = s.find("/_gateway/") {
                    let path: String = s[i..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '?' && *c != '"' && *c != ',')
                        .collect();
                    if path != forward_path {
                        self.problem(file, format!("forward-auth path {path} is not the gateway's forwardAuth.path {forward_path}"));
                    }
                }
            }
            let kind = kind_of(value).unwrap_or("");
            let name = name_of(value).unwrap_or("?").to_string();
            if kind == "Ingress" {
                let ann = value
                    .pointer("/metadata/annotations")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if let Some(url) = ann
                    .get("nginx.ingress.kubernetes.io/auth-url")
                    .and_then(Value::as_str)
                {
                    self.check_auth_url(
                        file,
                        &format!("Ingress {name} auth-url"),
                        url,
                        &forward_path,
                        services,
                        proxy_ports,
                    );
                    // ingress-nginx adds X-Original-URI to the subrequest only when auth-method is set.
                    let method = ann
                        .get("nginx.ingress.kubernetes.io/auth-method")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("HEAD") {
                        self.problem(
                            file,
                            format!("Ingress {name}: auth-url needs nginx.ingress.kubernetes.io/auth-method: GET, or ingress-nginx sends no X-Original-URI"),
                        );
                    }
                }
                if let Some(h) = ann
                    .get("nginx.ingress.kubernetes.io/auth-response-headers")
                    .and_then(Value::as_str)
                {
                    let headers: Vec<String> = h.split(',').map(|s| s.trim().to_string()).collect();
                    self.check_identity_headers(
                        file,
                        &format!("Ingress {name} auth-response-headers"),
                        &headers,
                    );
                }
            }
            if kind == "Middleware" {
                if let Some(fa) = value.pointer("/spec/forwardAuth") {
                    match fa.get("address").and_then(Value::as_str) {
                        Some(url) => self.check_auth_url(
                            file,
                            &format!("Middleware {name} forwardAuth.address"),
                            url,
                            &forward_path,
                            services,
                            proxy_ports,
                        ),
                        None => self.problem(
                            file,
                            format!("Middleware {name}: forwardAuth without address"),
                        ),
                    }
                    if fa.get("trustForwardHeader").and_then(Value::as_bool) == Some(true) {
                        self.problem(file, format!("Middleware {name}: trustForwardHeader lets clients choose the X-Forwarded-Uri the gateway judges"));
                    }
                    let headers: Vec<String> = fa
                        .get("authResponseHeaders")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(scalar_text)
                        .collect();
                    self.check_identity_headers(
                        file,
                        &format!("Middleware {name} authResponseHeaders"),
                        &headers,
                    );
                }
            }
            if kind == "SecurityPolicy" {
                if let Some(http) = value.pointer("/spec/extAuth/http") {
                    let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
                    if path != forward_path {
                        self.problem(file, format!("SecurityPolicy {name}: extAuth.http.path {path} is not the gateway's forwardAuth.path {forward_path}"));
                    }
                    let refs: Vec<Value> = http
                        .get("backendRefs")
                        .and_then(Value::as_array)
                        .cloned()
                        .or_else(|| http.get("backendRef").map(|r| vec![r.clone()]))
                        .unwrap_or_default();
                    if refs.is_empty() {
                        self.problem(
                            file,
                            format!("SecurityPolicy {name}: extAuth.http has no backendRefs"),
                        );
                    }
                    for r in refs {
                        let svc = r.get("name").and_then(Value::as_str).unwrap_or("?");
                        let port = r
                            .get("port")
                            .and_then(Value::as_u64)
                            .and_then(|n| u16::try_from(n).ok());
                        self.check_service_port(
                            file,
                            &format!("SecurityPolicy {name} backendRef"),
                            svc,
                            port,
                            services,
                            proxy_ports,
                        );
                    }
                    let headers: Vec<String> = http
                        .get("headersToBackend")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(scalar_text)
                        .collect();
                    self.check_identity_headers(
                        file,
                        &format!("SecurityPolicy {name} headersToBackend"),
                        &headers,
                    );
                } else if value.pointer("/spec/extAuth").is_some() {
                    self.problem(
                        file,
                        format!(
                            "SecurityPolicy {name}: om-gateway answers HTTP ext_authz, not gRPC"
                        ),
                    );
                }
            }
        }
    }

    fn check_auth_url(
        &mut self,
        file: &str,
        what: &str,
        url: &str,
        forward_path: &str,
        services: &BTreeMap<String, Vec<(u16, u16)>>,
        proxy_ports: &BTreeSet<u16>,
    ) {
        let Some((scheme, rest)) = url.split_once("://") else {
            self.problem(file, format!("{what}: '{url}' is not an http URL"));
            return;
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split('?').next().unwrap_or("");
        if path != forward_path {
            self.problem(
                file,
                format!("{what}: path {path} is not the gateway's forwardAuth.path {forward_path}"),
            );
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok()),
            None => (authority, Some(if scheme == "https" { 443 } else { 80 })),
        };
        let svc = host.split('.').next().unwrap_or("");
        self.check_service_port(file, what, svc, port, services, proxy_ports);
    }

    fn check_service_port(
        &mut self,
        file: &str,
        what: &str,
        svc: &str,
        port: Option<u16>,
        services: &BTreeMap<String, Vec<(u16, u16)>>,
        proxy_ports: &BTreeSet<u16>,
    ) {
        match services.get(svc) {
            None => self.problem(
                file,
                format!("{what}: Service '{svc}' is not a Service of om-gateway under this tree"),
            ),
            Some(ports) => {
                let ok = ports
                    .iter()
                    .any(|(p, t)| Some(*p) == port && proxy_ports.contains(t));
                if !ok {
                    self.problem(file, format!("{what}: port {} of Service '{svc}' does not lead to the gateway's proxy port ({})", fmt_port(port), join_ports(proxy_ports)));
                }
            }
        }
    }

    fn check_identity_headers(&mut self, file: &str, what: &str, headers: &[String]) {
        let known = self.contract.identity_headers.clone();
        for h in headers {
            if !known.contains(&h.to_ascii_lowercase()) {
                self.problem(
                    file,
                    format!(
                        "{what}: {h} is not an identity header the gateway sets ({})",
                        known.join(", ")
                    ),
                );
            }
        }
    }

    // ----------------------------------------------------------------- metrics

    fn check_metrics(&mut self) {
        let docs: Vec<(String, Value)> = self
            .docs
            .iter()
            .map(|d| (d.file.clone(), d.value.clone()))
            .collect();
        for (file, value) in &docs {
            if value.get("panels").is_some() {
                // A Grafana dashboard: every query, and the templating queries.
                let mut exprs = Vec::new();
                collect_key_strings(value, "expr", &mut exprs);
                for e in exprs {
                    self.check_promql(file, &e);
                }
                for var in value
                    .pointer("/templating/list")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let q = match var.get("query") {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Object(o)) => o
                            .get("query")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        _ => String::new(),
                    };
                    if let Some(inner) = q
                        .strip_prefix("label_values(")
                        .and_then(|s| s.strip_suffix(')'))
                    {
                        if let Some((selector, _label)) = inner.rsplit_once(',') {
                            self.check_promql(file, selector);
                        }
                    }
                }
            }
            if let Some(groups) = value.get("groups").and_then(Value::as_array) {
                // A Prometheus rule file.
                let mut alert_names = BTreeSet::new();
                let mut n = 0;
                for g in groups {
                    for r in g
                        .get("rules")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        n += 1;
                        match r.get("expr").map(scalar_text) {
                            Some(e) if !e.trim().is_empty() => self.check_promql(file, &e),
                            _ => self.problem(
                                file,
                                format!(
                                    "rule {} has no expr",
                                    r.get("alert").map(scalar_text).unwrap_or_default()
                                ),
                            ),
                        }
                        if let Some(a) = r.get("alert").and_then(Value::as_str) {
                            if !alert_names.insert(a.to_string()) {
                                self.problem(file, format!("alert {a} is defined twice"));
                            }
                        }
                    }
                }
                if n == 0 {
                    self.problem(file, "a rule file with no rules".to_string());
                }
            }
            if let (Some(tests), Some(rule_files)) = (
                value.get("tests").and_then(Value::as_array),
                value.get("rule_files").and_then(Value::as_array),
            ) {
                // promtool rule unit tests: their input series and the rule files they load.
                let dir = match file.rfind('/') {
                    Some(i) => &file[..i + 1],
                    None => "",
                };
                for rf in rule_files.iter().filter_map(Value::as_str) {
                    let target = format!("{dir}{rf}");
                    if !self.docs.iter().any(|d| d.file == target) {
                        self.problem(file, format!("rule file {rf} is not under the tree"));
                    }
                }
                for t in tests {
                    for s in t
                        .get("input_series")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(series) = s.get("series").and_then(Value::as_str) {
                            self.check_promql(file, series);
                        }
                    }
                }
            }
        }
    }

    fn check_promql(&mut self, file: &str, expr: &str) {
        for (metric, labels) in promql_selectors(expr) {
            if !metric.starts_with("om_gateway_") {
                self.problem(
                    file,
                    format!("metric {metric} is not an om-gateway metric (prefix om_gateway_)"),
                );
                continue;
            }
            let mut allowed: Vec<&str> = TARGET_LABELS.to_vec();
            let mut known = false;
            let metrics = self.contract.metrics.clone();
            for MetricDescriptor {
                name,
                kind,
                labels: metric_labels,
            } in &metrics
            {
                if metric == *name {
                    if *kind == MetricKind::Histogram {
                        self.problem(
                            file,
                            format!(
                                "histogram {metric} is queried without _bucket, _sum or _count"
                            ),
                        );
                    }
                    known = true;
                } else if *kind == MetricKind::Histogram
                    && [("_bucket", true), ("_sum", false), ("_count", false)]
                        .iter()
                        .any(|(suffix, bucket)| {
                            let hit = metric == format!("{name}{suffix}");
                            if hit && *bucket {
                                allowed.push("le");
                            }
                            hit
                        })
                {
                    known = true;
                } else {
                    continue;
                }
                allowed.extend(metric_labels.iter().map(String::as_str));
                break;
            }
            if !known {
                self.problem(
                    file,
                    format!("metric {metric} is not one the gateway exports"),
                );
                continue;
            }
            for label in labels {
                if !allowed.contains(&label.as_str()) {
                    self.problem(file, format!("metric {metric} has no label {label}"));
                }
            }
        }
    }
}

// ------------------------------------------------------------------ helpers

fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|v| !v.is_null()).collect())
}

fn kind_of(v: &Value) -> Option<&str> {
    v.get("kind").and_then(Value::as_str)
}

fn name_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/name").and_then(Value::as_str)
}

fn is_gateway_config(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    let foreign = [
        "apiVersion",
        "kind",
        "services",
        "groups",
        "panels",
        "sidecars",
        "scrape_configs",
        "tests",
        "resources",
    ];
    !foreign.iter().any(|k| o.contains_key(*k))
        && (o.contains_key("server") || o.contains_key("upstream") || o.contains_key("forwardAuth"))
}

fn is_gateway_image(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str)
        .is_some_and(|i| i.contains("om-gateway"))
}

/// Finds the om-gateway containers in a Kubernetes object, a patch, or Helm values
/// (`sidecars`), with whether each sits in OpenMetadata's own pod.
fn find_containers(v: &Value, owner: Option<&str>, out: &mut Vec<(Map<String, Value>, bool)>) {
    match v {
        Value::Object(o) => {
            let lists = ["containers", "initContainers", "sidecars"];
            let siblings: Vec<&Value> = lists
                .iter()
                .filter_map(|k| o.get(*k))
                .filter_map(Value::as_array)
                .flatten()
                .collect();
            let next_to_openmetadata = siblings.iter().any(|c| {
                c.get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|i| i.contains("openmetadata/server"))
                    || c.get("name").and_then(Value::as_str) == Some("openmetadata")
            });
            for key in lists {
                for c in o.get(key).and_then(Value::as_array).into_iter().flatten() {
                    if let Some(c) = c.as_object() {
                        if is_gateway_image(c.get("image")) {
                            let sidecar = next_to_openmetadata
                                || owner == Some("openmetadata")
                                || key == "sidecars";
                            out.push((c.clone(), sidecar));
                        }
                    }
                }
            }
            for (k, child) in o {
                if !lists.contains(&k.as_str()) {
                    find_containers(child, owner, out);
                }
            }
        }
        Value::Array(a) => {
            for child in a {
                find_containers(child, owner, out);
            }
        }
        _ => {}
    }
}

fn container_ports(c: &Map<String, Value>) -> Vec<(Option<String>, u16)> {
    c.get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = p
                .get("containerPort")?
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())?;
            Some((
                p.get("name").and_then(Value::as_str).map(str::to_string),
                port,
            ))
        })
        .collect()
}

fn compose_services(v: &Value) -> Option<&Map<String, Value>> {
    let o = v.as_object()?;
    if o.contains_key("apiVersion") || o.contains_key("kind") {
        return None;
    }
    let services = o.get("services")?.as_object()?;
    services
        .values()
        .any(|s| s.get("image").is_some() || s.get("build").is_some())
        .then_some(services)
}

fn is_gateway_compose_service(svc: &Map<String, Value>) -> bool {
    let dockerfile = match svc.get("build") {
        Some(Value::Object(b)) => b.get("dockerfile").and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    is_gateway_image(svc.get("image")) || dockerfile.ends_with("deploy/docker/Dockerfile")
}

fn compose_environment(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match v {
        Some(Value::Object(o)) => {
            for (k, val) in o {
                env.insert(k.clone(), interpolate(&scalar_text(val)));
            }
        }
        Some(Value::Array(a)) => {
            for item in a {
                let s = scalar_text(item);
                let (k, val) = s.split_once('=').unwrap_or((s.as_str(), ""));
                env.insert(k.to_string(), interpolate(val));
            }
        }
        _ => {}
    }
    env
}

/// compose's `${NAME:-default}` / `${NAME-default}` → default, `${NAME}` → "".
fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &after[..end];
        if let Some((_, default)) = inner.split_once(":-").or_else(|| inner.split_once('-')) {
            out.push_str(default);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The container side of a compose `ports` entry.
fn compose_container_port(p: &Value) -> Option<u16> {
    match p {
        Value::Object(o) => o
            .get("target")
            .map(scalar_text)
            .and_then(|t| t.parse().ok()),
        other => {
            let s = scalar_text(other);
            let s = s.split('/').next().unwrap_or("");
            s.rsplit(':').next().and_then(|t| t.parse().ok())
        }
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn value_text(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Array(a)) => a.iter().map(scalar_text).collect::<Vec<_>>().join(" "),
        Some(other) => scalar_text(other),
    }
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.trim().parse().ok())
}

fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

fn fmt_port(p: Option<u16>) -> String {
    p.map(|p| p.to_string()).unwrap_or_else(|| "?".to_string())
}

fn join_ports(ports: &BTreeSet<u16>) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

fn collect_key_strings(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| collect_key_strings(x, key, out)),
        Value::Object(o) => {
            for (k, x) in o {
                if k == key {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                }
                collect_key_strings(x, key, out);
            }
        }
        _ => {}
    }
}

/// Dockerfile instructions of the text: (INSTRUCTION, arguments), continuation
/// lines joined and comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') && current.is_empty() {
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        if let Some(stripped) = trimmed.strip_suffix('\\') {
            current.push_str(stripped);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let full = std::mem::take(&mut current);
        let full = full.trim();
        if full.is_empty() {
            continue;
        }
        let (instr, args) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
        out.push((instr.to_ascii_uppercase(), args.trim().to_string()));
    }
    out
}

/// `ENV A=1 B="x y"` or `ENV A 1`.
fn parse_dockerfile_env(args: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let words = command_words(args);
    if words.len() >= 2 && !words[0].contains('=') {
        env.insert(words[0].clone(), words[1..].join(" "));
        return env;
    }
    for w in words {
        if let Some((k, v)) = w.split_once('=') {
            env.insert(k.to_string(), v.to_string());
        }
    }
    env
}

/// The words of an exec-form JSON array or a shell-form command line.
fn command_words(s: &str) -> Vec<String> {
    let s = s.trim();
    if s.starts_with('[') {
        if let Ok(words) = serde_json::from_str::<Vec<String>>(s) {
            return words;
        }
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The metric selectors of a PromQL expression: (metric name, label names in its
/// matcher). Functions, aggregation keywords and their label lists, string literals,
/// range and subquery brackets, numbers, durations and Grafana `$variables` are
/// skipped.
fn promql_selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    // 1. Empty every string literal, drop every [...] range.
    let mut cleaned = String::new();
    let mut chars = expr.chars().peekable();
    let mut depth_bracket = 0usize;
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            while let Some(d) = chars.next() {
                if d == '\\' && c != '`' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
            if depth_bracket == 0 {
                cleaned.push_str("\"\"");
            }
            continue;
        }
        if c == '[' {
            depth_bracket += 1;
            continue;
        }
        if c == ']' {
            depth_bracket = depth_bracket.saturating_sub(1);
            continue;
        }
        if depth_bracket == 0 {
            cleaned.push(c);
        }
    }
    // 2. Walk the tokens.
    let bytes: Vec<char> = cleaned.chars().collect();
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut last_metric: Option<usize> = None;
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let matching = |open: usize, o: char, cl: char| {
        let mut depth = 0usize;
        let mut j = open;
        while j < bytes.len() {
            if bytes[j] == o {
                depth += 1;
            } else if bytes[j] == cl {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            j += 1;
        }
        bytes.len()
    };
    while i < bytes.len() {
        let c = bytes[i];
        if c == '{' {
            let end = matching(i, '{', '}');
            let inner: String = bytes[i + 1..end.min(bytes.len())].iter().collect();
            let labels: Vec<String> = inner
                .split(',')
                .map(|m| {
                    m.split(['=', '!', '~'])
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .filter(|l| !l.is_empty())
                .collect();
            if let Some(m) = last_metric.take() {
                out[m].1 = labels;
            }
            i = end + 1;
            continue;
        }
        if c == '$' {
            i += 1;
            if i < bytes.len() && bytes[i] == '{' {
                i = matching(i, '{', '}') + 1;
            } else {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_') {
                    i += 1;
                }
            }
            last_metric = None;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit())
        {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '.' || bytes[i] == '_')
            {
                i += 1;
            }
            last_metric = None;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_' || bytes[i] == ':')
            {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            let next = skip_ws(i);
            let followed_by_paren = next < bytes.len() && bytes[next] == '(';
            let grouping = [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ];
            if grouping.contains(&word.as_str()) {
                if followed_by_paren {
                    i = matching(next, '(', ')') + 1;
                }
                last_metric = None;
                continue;
            }
            // Operators, and aggregations, which may be followed by `by (...)` rather than `(`.
            let keywords = [
                "and",
                "or",
                "unless",
                "bool",
                "offset",
                "inf",
                "nan",
                "Inf",
                "NaN",
                "sum",
                "min",
                "max",
                "avg",
                "group",
                "stddev",
                "stdvar",
                "count",
                "count_values",
                "bottomk",
                "topk",
                "quantile",
                "limitk",
                "limit_ratio",
            ];
            if followed_by_paren || keywords.contains(&word.as_str()) {
                last_metric = None;
                continue;
            }
            out.push((word, Vec::new()));
            last_metric = Some(out.len() - 1);
            continue;
        }
        if !c.is_whitespace() {
            last_metric = None;
        }
        i += 1;
    }
    out
}

// -------------------------------------------------------------------- tests

/// The repository's deploy/ directory.
pub fn deploy_dir() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).join("deploy")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract::of_the_gateway().expect("the gateway's contract")
    }

    fn copy_tree(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("create dir");
        for entry in fs::read_dir(from).expect("read dir").flatten() {
            let path = entry.path();
            let target = to.join(entry.file_name());
            if path.is_dir() {
                copy_tree(&path, &target);
            } else {
                fs::copy(&path, &target).expect("copy file");
            }
        }
    }

    fn break_file(root: &Path, rel: &str, from: &str, to: &str) {
        let path = root.join(rel);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {rel}: {e}"));
        assert!(
            text.contains(from),
            "{rel} no longer contains {from:?}; update this test"
        );
        fs::write(&path, text.replacen(from, to, 1)).expect("write broken file");
    }

    fn assert_named(problems: &[String], file: &str, needle: &str) {
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(file) && p.contains(needle)),
            "expected a problem in {file} naming {needle:?}; got:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn deploy_tree_agrees_with_the_gateway_contract() {
        let problems = check_deploy_tree(&deploy_dir(), &contract());
        assert!(
            problems.is_empty(),
            "deploy/ disagrees with the gateway:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn deploy_check_names_each_deliberate_break() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("deploy");
        copy_tree(&deploy_dir(), &root);
        assert!(
            check_deploy_tree(&root, &contract()).is_empty(),
            "the copy should start clean"
        );

        let ext_auth = "kubernetes/overlays/ext-auth/deployment.yaml";
        let compose = "compose/docker-compose.yml";
        let ingress = "kubernetes/overlays/ext-auth-ingress-nginx/ingress.yaml";
        let alerts = "prometheus/alerts.yaml";
        let dockerfile = "docker/Dockerfile";
        let sidecar_service = "kubernetes/overlays/sidecar/service-patch.yaml";
        let sidecar = "kubernetes/overlays/sidecar/deployment-sidecar-patch.yaml";
        let helm = "kubernetes/helm/openmetadata-values-sidecar.yaml";

        break_file(&root, ext_auth, "path: /readyz", "path: /status");
        break_file(
            &root,
            ext_auth,
            "name: OM_GATEWAY_LISTEN\n",
            "name: OM_GATEWAY_LISTN\n",
        );
        break_file(&root, compose, "OM_GATEWAY_LISTEN: ", "OM_GATEWAY_LISTN: ");
        break_file(
            &root,
            ingress,
            ":8080/_gateway/auth",
            ":8080/_gateway/authz",
        );
        break_file(
            &root,
            alerts,
            "absent(om_gateway_build_info)",
            "absent(om_gateway_buildinfo)",
        );
        break_file(&root, dockerfile, "\"healthcheck\"]", "\"doctor\"]");
        break_file(
            &root,
            sidecar_service,
            "targetPort: gateway",
            "targetPort: 8585",
        );

        // A Secret the gateway reads through envFrom names its variables too.
        break_file(
            &root,
            ext_auth,
            "          env:\n",
            "          envFrom:\n            - secretRef: { name: om-gateway-keys }\n          env:\n",
        );
        fs::write(
            root.join("kubernetes/overlays/ext-auth/keys-secret.yaml"),
            "apiVersion: v1\nkind: Secret\nmetadata: { name: om-gateway-keys }\n\
             stringData:\n  AUTHENTICATION_PUBLIC_KEY_URLS: \"[http://x/jwks]\"\n",
        )
        .expect("write the Secret");
        break_file(
            &root,
            sidecar,
            "- name: OM_GATEWAY_FEED_KEY\n",
            "- name: OM_GATEWAY_FEED_KEY_UNUSED\n",
        );
        break_file(
            &root,
            helm,
            "valueFrom:\n          secretKeyRef:\n            name: om-gateway-feed-key\n            key: key\n            optional: true\n",
            "value: c2VjcmV0IGluIGEgbWFuaWZlc3Q=\n",
        );

        let problems = check_deploy_tree(&root, &contract());
        assert_named(&problems, sidecar, "no OM_GATEWAY_FEED_KEY");
        assert_named(&problems, helm, "must come from a Secret");
        assert_named(&problems, ext_auth, "AUTHENTICATION_PUBLIC_KEY_URLS");
        assert_named(&problems, ext_auth, "/status");
        assert_named(&problems, ext_auth, "OM_GATEWAY_LISTN");
        assert_named(&problems, compose, "OM_GATEWAY_LISTN");
        assert_named(&problems, ingress, "/_gateway/authz");
        assert_named(&problems, alerts, "om_gateway_buildinfo");
        assert_named(&problems, dockerfile, "HEALTHCHECK");
        assert_named(&problems, sidecar_service, "8585");
    }

    /// The metrics come from the gateway, not from a list kept here: every metric it exports
    /// (the reload counters too) may be queried with its own labels, and nothing else.
    #[test]
    fn every_exported_metric_and_only_those_may_be_queried() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("deploy");
        copy_tree(&deploy_dir(), &root);
        let rules = "prometheus/extra-rules.yaml";
        fs::write(
            root.join(rules),
            "groups:\n  - name: extra\n    rules:\n\
             \x20     - record: x:reload_errors\n        expr: sum(rate(om_gateway_config_reloads_total{result=\"error\"}[5m]))\n\
             \x20     - record: x:bad_label\n        expr: sum(om_gateway_config_last_reload_success{route=\"a\"})\n\
             \x20     - record: x:unknown\n        expr: om_gateway_reloads_total\n",
        )
        .expect("write rules");
        let problems = check_deploy_tree(&root, &contract());
        let in_rules: Vec<&String> = problems.iter().filter(|p| p.starts_with(rules)).collect();
        assert_eq!(in_rules.len(), 2, "{problems:#?}");
        assert_named(
            &problems,
            rules,
            "om_gateway_config_last_reload_success has no label route",
        );
        assert_named(
            &problems,
            rules,
            "om_gateway_reloads_total is not one the gateway exports",
        );
    }

    #[test]
    fn promql_selectors_skip_functions_groupings_and_variables() {
        let got = promql_selectors(
            r#"histogram_quantile(0.99, sum by (le, route) (rate(om_gateway_request_duration_seconds_bucket{instance=~"$instance", route!="x,y"}[$__rate_interval])))
           / on (instance) group_left sum(om_gateway_inflight_requests) > 5 and time() - om_gateway_jwks_keys offset 5m"#,
        );
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "om_gateway_request_duration_seconds_bucket",
                "om_gateway_inflight_requests",
                "om_gateway_jwks_keys"
            ]
        );
        assert_eq!(got[0].1, ["instance", "route"]);
    }
}
