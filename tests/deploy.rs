//! Checks on the deployment artifacts in `deploy/`: the Dockerfile, the compose
//! stack, the Prometheus and Grafana files and the Kubernetes manifests.
//!
//! There is no Docker engine or Kubernetes cluster where this suite runs, so
//! none of them can be exercised for real. These tests validate what can be
//! validated without one: every YAML and JSON file parses; the Grafana
//! dashboard and the Prometheus alerting rules name only metrics that
//! `src/pipeline/metrics.rs` registers; the Kubernetes manifests agree with each other
//! and with `deploy/tocsin.kafka.toml`; and compose, the Dockerfile and the
//! Prometheus configuration are wired together as documented.

use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// Partitions of each input topic (created by `kafka-init` in
/// deploy/docker-compose.yml). A consumer group gives each partition to one
/// member, so more tocsin replicas than this would sit idle.
const INPUT_PARTITIONS: i64 = 3;

/// The port of `/metrics` and `/healthz`.
const METRICS_PORT: i64 = 9464;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every document of a YAML file (one file may hold several, separated by `---`).
fn yaml_documents(path: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The single document of a YAML file under deploy/.
fn yaml_file(relative: &str) -> Yaml {
    let mut documents = yaml_documents(&deploy_dir().join(relative));
    assert_eq!(
        documents.len(),
        1,
        "deploy/{relative}: expected one YAML document"
    );
    documents.remove(0)
}

/// Files under `dir`, recursively, whose extension is one of `extensions`; sorted.
fn files_with_extension(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every non-empty document of every manifest in deploy/k8s/, with its file.
fn kubernetes_manifests() -> Vec<(PathBuf, Yaml)> {
    let mut manifests = Vec::new();
    for path in files_with_extension(&deploy_dir().join("k8s"), &["yaml", "yml"]) {
        for document in yaml_documents(&path) {
            if !document.is_null() {
                manifests.push((path.clone(), document));
            }
        }
    }
    manifests
}

/// The Kubernetes manifest of the given kind and name.
fn manifest(kind: &str, name: &str) -> Yaml {
    kubernetes_manifests()
        .into_iter()
        .map(|(_, document)| document)
        .find(|m| m["kind"].as_str() == Some(kind) && m["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("deploy/k8s/ has no {kind} named {name}"))
}

/// The volume of a pod spec with the given name.
fn volume_named<'a>(pod: &'a Yaml, name: &str) -> &'a Yaml {
    pod["volumes"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|v| v["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("the pod has no volume named {name}"))
}

/// The bind mounts of a compose service (short syntax `host:container[:mode]`),
/// as (host path relative to deploy/, container path).
fn bind_mounts(service: &Yaml) -> Vec<(String, String)> {
    service["volumes"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .filter_map(|v| {
            let mut parts = v.split(':');
            let host = parts.next()?;
            let container = parts.next()?;
            Some((host.to_string(), container.to_string()))
        })
        .collect()
}

/// Whether a tocsin configuration has `"bootstrap.servers"` in its `[kafka]` table.
fn kafka_section_has_bootstrap_servers(toml: &str) -> bool {
    let mut in_kafka = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_kafka = line == "[kafka]";
        } else if in_kafka && line.starts_with("\"bootstrap.servers\"") {
            return true;
        }
    }
    false
}

/// The topics of a tocsin configuration, each with whether it is an input
/// (a `[[sources]]` entry) rather than a sink or the dead-letter destination.
fn configured_topics(toml: &str) -> Vec<(String, bool)> {
    let topic = Regex::new(r#"^topic\s*=\s*"([^"]+)""#).expect("the topic regex");
    let mut section = "";
    let mut topics = Vec::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if let Some(c) = topic.captures(line) {
            topics.push((c[1].to_string(), section == "[[sources]]"));
        }
    }
    topics
}

/// The metric names `src/pipeline/metrics.rs` registers, with the `tocsin_` prefix the
/// registry adds: every snake_case string literal of the code before its unit
/// tests, except those in arrays of string literals (label names such as
/// `&["source"]`). At worst a superset; a registered name is never missed.
fn registered_metric_names() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pipeline/metrics.rs");
    let text = read(&path);
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let label_lists =
        Regex::new(r#"\[\s*"[^"]*"(\s*,\s*"[^"]*")*\s*,?\s*\]"#).expect("the label list regex");
    let code = label_lists.replace_all(code, "[]");
    let literal = Regex::new(r#""([a-z][a-z0-9_]*)""#).expect("the string literal regex");
    let names: BTreeSet<String> = literal
        .captures_iter(&code)
        .map(|c| format!("tocsin_{}", &c[1]))
        .collect();
    assert!(
        names.contains("tocsin_events_read_total"),
        "src/pipeline/metrics.rs: no metric names found (the reader needs updating?): {names:?}"
    );
    names
}

/// Whether `name` is a registered metric, or a series of a registered histogram.
fn is_registered(name: &str, registered: &BTreeSet<String>) -> bool {
    registered.contains(name)
        || ["_bucket", "_sum", "_count"].into_iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| registered.contains(base))
        })
}

/// Asserts that every `tocsin_*` name in the queries, given as (where, expression),
/// is a metric that src/pipeline/metrics.rs registers.
fn assert_only_registered_metrics(file: &str, queries: &[(String, String)]) {
    let registered = registered_metric_names();
    let metric = Regex::new(r"tocsin_[a-z0-9_]+").expect("the metric name regex");
    let mut named = 0;
    let mut unknown = Vec::new();
    for (place, expr) in queries {
        for name in metric.find_iter(expr) {
            named += 1;
            if !is_registered(name.as_str(), &registered) {
                unknown.push(format!("{place}: {}", name.as_str()));
            }
        }
    }
    assert!(named > 0, "{file}: no tocsin_* metric in any query");
    assert!(
        unknown.is_empty(),
        "{file} names metrics that src/pipeline/metrics.rs does not register:\n{}",
        unknown.join("\n")
    );
}

/// The Prometheus queries of dashboard panels (rows nest panels), as (panel, expression).
fn panel_queries(panels: &[serde_json::Value], queries: &mut Vec<(String, String)>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push((format!("panel {title:?}"), expr.to_string()));
            }
        }
        if let Some(nested) = panel["panels"].as_array() {
            panel_queries(nested, queries);
        }
    }
}

#[test]
fn every_deploy_yaml_file_is_well_formed() {
    let files = files_with_extension(&deploy_dir(), &["yml", "yaml"]);
    assert!(
        files.len() >= 10,
        "too few YAML files in deploy/: {files:?}"
    );
    for path in &files {
        let documents = yaml_documents(path);
        assert!(
            documents.iter().any(|d| !d.is_null()),
            "{}: no YAML document",
            path.display()
        );
    }
}

#[test]
fn every_deploy_json_file_is_well_formed() {
    let files = files_with_extension(&deploy_dir(), &["json"]);
    assert!(!files.is_empty(), "no JSON file in deploy/");
    for path in &files {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&read(path)) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn every_kubernetes_manifest_has_api_version_kind_and_name() {
    let manifests = kubernetes_manifests();
    let mut kinds = BTreeSet::new();
    for (path, m) in &manifests {
        let file = path.display();
        assert!(
            m["apiVersion"].as_str().is_some_and(|v| !v.is_empty()),
            "{file}: no apiVersion"
        );
        let kind = m["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no kind"));
        assert!(
            m["metadata"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty()),
            "{file}: the {kind} has no metadata.name"
        );
        if kind != "Namespace" {
            assert_eq!(
                m["metadata"]["namespace"].as_str(),
                Some("tocsin"),
                "{file}: the {kind} is not in the tocsin namespace"
            );
        }
        kinds.insert(kind.to_string());
    }
    for kind in [
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(kind), "deploy/k8s/ has no {kind}");
    }
}

#[test]
fn the_dashboard_names_only_metrics_the_engine_registers() {
    let path = deploy_dir().join("grafana/dashboards/tocsin.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(dashboard["uid"].as_str(), Some("tocsin"));
    let panels = dashboard["panels"]
        .as_array()
        .expect("the dashboard has no panels");
    let mut queries = Vec::new();
    panel_queries(panels, &mut queries);
    assert!(
        queries.len() >= 10,
        "the dashboard has only {} queries",
        queries.len()
    );
    assert_only_registered_metrics("deploy/grafana/dashboards/tocsin.json", &queries);
}

#[test]
fn the_alerting_rules_name_only_metrics_the_engine_registers() {
    let alerts = yaml_file("prometheus/alerts.yml");
    let mut queries = Vec::new();
    let groups = alerts["groups"].as_vec().expect("alerts.yml: no groups");
    for group in groups {
        let rules = group["rules"]
            .as_vec()
            .expect("alerts.yml: a group without rules");
        for rule in rules {
            let name = rule["alert"]
                .as_str()
                .expect("alerts.yml: a rule without `alert`");
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("alerts.yml: {name} has no expr"));
            queries.push((format!("alert {name}"), expr.to_string()));
        }
    }
    assert!(
        queries.len() >= 4,
        "alerts.yml has only {} rules",
        queries.len()
    );
    assert_only_registered_metrics("deploy/prometheus/alerts.yml", &queries);
}

#[test]
fn prometheus_scrapes_tocsin_and_loads_the_alerting_rules() {
    let config = yaml_file("prometheus/prometheus.yml");
    let job = config["scrape_configs"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|j| j["job_name"].as_str() == Some("tocsin"))
        .expect("prometheus.yml: no scrape job `tocsin`");
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    assert_eq!(job["scrape_interval"].as_str(), Some("15s"));
    let targets: Vec<&str> = job["static_configs"]
        .as_vec()
        .into_iter()
        .flatten()
        .flat_map(|c| c["targets"].as_vec().into_iter().flatten())
        .filter_map(|t| t.as_str())
        .collect();
    let expected = format!("tocsin:{METRICS_PORT}");
    assert!(
        targets.contains(&expected.as_str()),
        "prometheus.yml: job tocsin scrapes {targets:?}, not {expected}"
    );

    // Rule files are read relative to prometheus.yml: compose must mount each
    // next to it.
    let rule_files: Vec<&str> = config["rule_files"]
        .as_vec()
        .expect("prometheus.yml: no rule_files")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(
        rule_files.contains(&"alerts.yml"),
        "prometheus.yml: rule_files {rule_files:?} lacks alerts.yml"
    );
    let compose = yaml_file("docker-compose.yml");
    let mounts = bind_mounts(&compose["services"]["prometheus"]);
    let config_in_container = mounts
        .iter()
        .find(|(host, _)| host.ends_with("/prometheus.yml"))
        .map(|(_, container)| container.as_str())
        .expect("docker-compose.yml: prometheus.yml is not mounted into prometheus");
    let config_dir = config_in_container
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir);
    for rule_file in rule_files {
        let expected = format!("{config_dir}/{rule_file}");
        let (host, _) = mounts
            .iter()
            .find(|(_, container)| *container == expected)
            .unwrap_or_else(|| {
                panic!("docker-compose.yml does not mount {rule_file} at {expected}")
            });
        assert!(
            deploy_dir().join(host).is_file(),
            "docker-compose.yml mounts {host}, which is not a file of deploy/"
        );
    }
}

#[test]
fn grafana_provisions_the_prometheus_datasource_and_the_dashboards() {
    let datasources = yaml_file("grafana/provisioning/datasources/prometheus.yml");
    let prometheus = datasources["datasources"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|d| d["type"].as_str() == Some("prometheus"))
        .expect("no prometheus datasource");
    assert_eq!(prometheus["url"].as_str(), Some("http://prometheus:9090"));

    let providers = yaml_file("grafana/provisioning/dashboards/tocsin.yml");
    let dashboards_path = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("dashboard provider: no options.path");
    let compose = yaml_file("docker-compose.yml");
    let mounts = bind_mounts(&compose["services"]["grafana"]);
    let (dashboards_host, _) = mounts
        .iter()
        .find(|(_, container)| container == dashboards_path)
        .unwrap_or_else(|| panic!("docker-compose.yml mounts nothing at {dashboards_path}"));
    assert!(
        deploy_dir()
            .join(dashboards_host)
            .join("tocsin.json")
            .is_file(),
        "{dashboards_host} (mounted at {dashboards_path}) has no tocsin.json"
    );
    for kind in ["datasources", "dashboards"] {
        let target = format!("/etc/grafana/provisioning/{kind}");
        assert!(
            mounts
                .iter()
                .any(|(host, container)| *container == target && deploy_dir().join(host).is_dir()),
            "docker-compose.yml: no folder of deploy/ is mounted at {target}"
        );
    }
}

#[test]
fn docker_compose_runs_tocsin_with_kafka_prometheus_and_grafana() {
    let compose = yaml_file("docker-compose.yml");
    let services = &compose["services"];
    for name in ["kafka", "kafka-init", "tocsin", "prometheus", "grafana"] {
        assert!(
            services[name].is_hash(),
            "docker-compose.yml: no service `{name}`"
        );
    }
    let tocsin = &services["tocsin"];
    let context = tocsin["build"]["context"]
        .as_str()
        .expect("tocsin: no build.context");
    let dockerfile = tocsin["build"]["dockerfile"]
        .as_str()
        .expect("tocsin: no build.dockerfile");
    assert!(
        deploy_dir().join(context).join(dockerfile).is_file(),
        "tocsin: build context {context} has no {dockerfile}"
    );
    assert_eq!(
        tocsin["depends_on"]["kafka-init"]["condition"].as_str(),
        Some("service_completed_successfully"),
        "tocsin must start after the topics exist"
    );

    // The configuration is a file of deploy/, mounted where the image's CMD reads it.
    let (config_host, _) = bind_mounts(tocsin)
        .into_iter()
        .find(|(_, container)| container == "/etc/tocsin/tocsin.toml")
        .expect("tocsin: nothing is mounted at /etc/tocsin/tocsin.toml");
    assert!(
        deploy_dir().join(&config_host).is_file(),
        "tocsin: the configuration {config_host} is not a file of deploy/"
    );

    // Every relative bind mount of every service exists in deploy/.
    let all = services.as_hash().expect("docker-compose.yml: services");
    for (name, service) in all.iter() {
        let name = name.as_str().unwrap_or("?");
        for (host, container) in bind_mounts(service) {
            if host.starts_with('.') {
                assert!(
                    deploy_dir().join(&host).exists(),
                    "service {name}: {host} (mounted at {container}) is not in deploy/"
                );
            }
        }
    }
}

#[test]
fn kafka_init_creates_every_topic_the_configuration_uses() {
    let compose = yaml_file("docker-compose.yml");
    let script = compose["services"]["kafka-init"]["command"]
        .as_vec()
        .expect("kafka-init: command is not a list")
        .iter()
        .filter_map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let create =
        Regex::new(r"--topic\s+(\S+)\s+--partitions\s+(\d+)").expect("the topic creation regex");
    let created: Vec<(String, i64)> = create
        .captures_iter(&script)
        .map(|c| {
            let partitions = c[2].parse::<i64>().expect("a partition count");
            (c[1].to_string(), partitions)
        })
        .collect();
    let topics = configured_topics(&read(&deploy_dir().join("tocsin.kafka.toml")));
    assert!(
        topics.iter().any(|(_, input)| *input),
        "tocsin.kafka.toml has no Kafka source"
    );
    for (topic, input) in topics {
        let partitions = created
            .iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("kafka-init does not create topic {topic}"));
        if input {
            assert_eq!(
                partitions, INPUT_PARTITIONS,
                "input topic {topic}: the documented partition count"
            );
        }
    }
}

#[test]
fn the_dockerfile_is_multi_stage_and_builds_with_the_lockfile() {
    let text = read(&deploy_dir().join("Dockerfile"));
    // Continuation lines joined, so that each instruction is one line.
    let joined = text.replace("\\\n", " ");
    let instructions: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages = instructions
        .iter()
        .filter(|l| l.to_ascii_uppercase().starts_with("FROM "))
        .count();
    assert!(
        stages >= 2,
        "the Dockerfile has {stages} stage(s), not a builder and a runtime"
    );
    let build = instructions
        .iter()
        .find(|l| l.starts_with("RUN") && l.contains("cargo build"))
        .expect("the Dockerfile never runs cargo build");
    assert!(
        build.contains("--locked"),
        "cargo build without --locked: {build}"
    );
    assert!(
        build.contains("--release"),
        "cargo build without --release: {build}"
    );
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("COPY --from=") && l.contains("target/release/tocsin")),
        "the runtime stage does not copy target/release/tocsin from the builder"
    );
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("USER ") && !l.contains("root") && !l.starts_with("USER 0")),
        "the image runs as root"
    );
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("CMD") && l.contains("/etc/tocsin/tocsin.toml")),
        "CMD does not read /etc/tocsin/tocsin.toml, where compose and Kubernetes mount it"
    );
    let ignore = read(&deploy_dir().join("Dockerfile.dockerignore"));
    for pattern in ["target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == pattern),
            "Dockerfile.dockerignore does not exclude {pattern}"
        );
    }
}

#[test]
fn the_metrics_port_is_the_same_everywhere() {
    let config = read(&deploy_dir().join("tocsin.kafka.toml"));
    let listen = format!(":{METRICS_PORT}\"");
    assert!(
        config
            .lines()
            .any(|l| l.trim_start().starts_with("listen") && l.contains(&listen)),
        "tocsin.kafka.toml: metrics.listen is not on port {METRICS_PORT}"
    );
    let expose = format!("EXPOSE {METRICS_PORT}");
    assert!(
        read(&deploy_dir().join("Dockerfile"))
            .lines()
            .any(|l| l.trim() == expose),
        "the Dockerfile does not `{expose}`"
    );
    let compose = yaml_file("docker-compose.yml");
    let published = format!("127.0.0.1:{METRICS_PORT}:{METRICS_PORT}");
    assert!(
        compose["services"]["tocsin"]["ports"]
            .as_vec()
            .into_iter()
            .flatten()
            .any(|p| p.as_str() == Some(published.as_str())),
        "docker-compose.yml: tocsin does not publish {published}"
    );
    let deployment = manifest("Deployment", "tocsin");
    let ports = &deployment["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert!(
        ports
            .as_vec()
            .into_iter()
            .flatten()
            .any(|p| p["name"].as_str() == Some("metrics")
                && p["containerPort"].as_i64() == Some(METRICS_PORT)),
        "the Deployment has no container port `metrics` = {METRICS_PORT}"
    );
}

#[test]
fn the_deployment_probes_liveness_and_readiness_on_the_metrics_port_and_fits_the_partitions() {
    let deployment = manifest("Deployment", "tocsin");
    let replicas = deployment["spec"]["replicas"]
        .as_i64()
        .expect("the Deployment sets no replicas");
    assert!(
        (1..=INPUT_PARTITIONS).contains(&replicas),
        "replicas = {replicas}: more than the {INPUT_PARTITIONS} partitions of the input topics would sit idle"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let container = pod["containers"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|c| c["name"].as_str() == Some("tocsin"))
        .expect("the Deployment has no container named tocsin");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert!(
            !container[probe].is_badvalue(),
            "the tocsin container has no {probe}"
        );
    }
    // Liveness restarts a stuck process; readiness says whether it does its
    // job (rules loaded, sources open, Kafka reachable), without a restart.
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ] {
        let http = &container[probe]["httpGet"];
        if container[probe].is_badvalue() {
            continue;
        }
        assert_eq!(http["path"].as_str(), Some(path), "{probe}: path");
        assert_eq!(
            http["port"].as_str(),
            Some("metrics"),
            "{probe}: port (the container port named metrics)"
        );
    }
    // A Service named tocsin would otherwise put TOCSIN_SERVICE_HOST and
    // the like in the environment (tocsin ignores them; they are noise).
    assert_eq!(pod["enableServiceLinks"].as_bool(), Some(false));
    // tocsin drains and commits on SIGTERM.
    assert_eq!(pod["terminationGracePeriodSeconds"].as_i64(), Some(30));
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    let non_root = [&pod["securityContext"], &container["securityContext"]]
        .into_iter()
        .any(|context| context["runAsNonRoot"].as_bool() == Some(true));
    assert!(non_root, "the pod does not set runAsNonRoot");
}

#[test]
fn the_service_and_the_disruption_budget_select_the_deployment_pods() {
    let deployment = manifest("Deployment", "tocsin");
    let service = manifest("Service", "tocsin");
    let budget = manifest("PodDisruptionBudget", "tocsin");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (kind, selector) in [
        ("Deployment", &deployment["spec"]["selector"]["matchLabels"]),
        ("Service", &service["spec"]["selector"]),
        (
            "PodDisruptionBudget",
            &budget["spec"]["selector"]["matchLabels"],
        ),
    ] {
        let selector = selector
            .as_hash()
            .unwrap_or_else(|| panic!("the {kind} has no label selector"));
        assert!(!selector.is_empty(), "the {kind} selects every pod");
        for (key, value) in selector.iter() {
            let key = key.as_str().expect("a label name");
            assert_eq!(
                &pod_labels[key], value,
                "the {kind} selects {key}, which the pods do not carry"
            );
        }
    }

    // The Service exposes the metrics port by name, for annotation-based scraping.
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["port"].as_i64(), Some(METRICS_PORT));
    assert_eq!(port["targetPort"].as_str(), Some("metrics"));
    let annotations = &service["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));
}

#[test]
fn the_deployment_mounts_the_configuration_and_the_rules() {
    let deployment = manifest("Deployment", "tocsin");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mounts = container["volumeMounts"]
        .as_vec()
        .expect("the tocsin container has no volumeMounts");
    let mounted_at = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(path))
            .unwrap_or_else(|| panic!("the tocsin container mounts nothing at {path}"))
    };

    // `run --config PATH`, and PATH is a key of the tocsin-config ConfigMap.
    let args: Vec<&str> = container["args"]
        .as_vec()
        .expect("the tocsin container has no args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("args: no --config");
    let config_path = *args.get(at + 1).expect("args: --config without a path");
    let config_mount = mounted_at(config_path);
    let config_volume = volume_named(pod, config_mount["name"].as_str().expect("a mount name"));
    let configmap_name = config_volume["configMap"]["name"]
        .as_str()
        .expect("the configuration volume is not a ConfigMap");
    assert_eq!(configmap_name, "tocsin-config");
    let key = config_mount["subPath"]
        .as_str()
        .expect("the configuration mount has no subPath");
    let configmap = manifest("ConfigMap", configmap_name);
    let config = configmap["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {configmap_name} has no key {key}"));

    // The rules: the tocsin-rules ConfigMap (see deploy/k8s/README.md), at the
    // folder the configuration's engine.rules names.
    let rules_mount = mounted_at("/etc/tocsin/rules");
    let rules_volume = volume_named(pod, rules_mount["name"].as_str().expect("a mount name"));
    assert_eq!(
        rules_volume["configMap"]["name"].as_str(),
        Some("tocsin-rules")
    );
    assert!(
        config.contains("\"/etc/tocsin/rules\""),
        "the ConfigMap's engine.rules does not name /etc/tocsin/rules"
    );
}

#[test]
fn the_configmap_is_the_kafka_configuration_with_only_the_bootstrap_address_changed() {
    let file = read(&deploy_dir().join("tocsin.kafka.toml"));
    let configmap = manifest("ConfigMap", "tocsin-config");
    let embedded = configmap["data"]["tocsin.toml"]
        .as_str()
        .expect("ConfigMap tocsin-config has no key tocsin.toml");
    for (what, text) in [
        ("deploy/tocsin.kafka.toml", file.as_str()),
        ("ConfigMap tocsin-config", embedded),
    ] {
        assert!(
            kafka_section_has_bootstrap_servers(text),
            "{what}: no \"bootstrap.servers\" in [kafka]"
        );
    }
    let file_lines: Vec<&str> = file.lines().collect();
    let embedded_lines: Vec<&str> = embedded.lines().collect();
    assert_eq!(
        file_lines.len(),
        embedded_lines.len(),
        "the ConfigMap's tocsin.toml and deploy/tocsin.kafka.toml have different lengths"
    );
    let differing: Vec<(&str, &str)> = file_lines
        .iter()
        .zip(&embedded_lines)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect();
    assert!(
        differing.len() <= 1,
        "the ConfigMap's tocsin.toml differs from deploy/tocsin.kafka.toml in more than the bootstrap address: {differing:#?}"
    );
    for (in_file, in_configmap) in differing {
        assert!(
            in_file.trim_start().starts_with("\"bootstrap.servers\"")
                && in_configmap.trim_start().starts_with("\"bootstrap.servers\""),
            "the ConfigMap's tocsin.toml differs from deploy/tocsin.kafka.toml: {in_file:?} / {in_configmap:?}"
        );
    }
}

#[test]
fn compose_publishes_on_loopback_only_and_grafana_needs_a_login() {
    let compose = yaml_file("docker-compose.yml");
    let services = compose["services"].as_hash().unwrap();
    for (name, service) in services {
        for port in service["ports"].as_vec().into_iter().flatten() {
            let port = port.as_str().unwrap_or_default();
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name:?} publishes {port} on every interface"
            );
        }
    }
    let grafana = &compose["services"]["grafana"]["environment"];
    assert_eq!(grafana["GF_AUTH_ANONYMOUS_ENABLED"].as_str(), Some("false"));
    let password = grafana["GF_SECURITY_ADMIN_PASSWORD"].as_str().unwrap();
    assert!(
        password.starts_with("${") && password.contains(":?"),
        "the admin password must be set by the user, with no default: {password}"
    );
}

#[test]
fn the_image_runs_a_stripped_binary_as_a_non_root_user_checked_on_readiness() {
    let dockerfile = read(&deploy_dir().join("Dockerfile"));
    assert!(
        dockerfile.contains("objcopy --strip-all"),
        "stripped binary"
    );
    assert!(dockerfile.contains("\nUSER 10001:10001\n"), "non-root user");
    let healthcheck = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .take(2)
        .collect::<String>();
    assert!(
        healthcheck.contains("GET /readyz") && healthcheck.contains(r#"\"status\":\"ready\""#),
        "{healthcheck}"
    );
}

#[test]
fn every_dashboard_query_follows_the_job_and_instance_variables_and_covers_each_process() {
    let path = deploy_dir().join("grafana/dashboards/tocsin.json");
    let dashboard: serde_json::Value = serde_json::from_str(&read(&path)).unwrap();
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, vec!["datasource", "job", "instance"]);
    let mut queries = Vec::new();
    panel_queries(dashboard["panels"].as_array().unwrap(), &mut queries);
    let metric = regex::Regex::new(r"tocsin_[a-z_]+(\{[^}]*\})?").unwrap();
    for (title, expr) in &queries {
        for m in metric.find_iter(expr) {
            assert!(
                m.as_str().contains(r#"job=~"$job", instance=~"$instance""#),
                "{title}: {} ignores the job and instance variables",
                m.as_str()
            );
        }
    }
    // Values every replica reports alike are not summed over replicas.
    for (title, expr) in &queries {
        assert!(
            !expr.contains("sum(tocsin_rules_loaded"),
            "{title}: rules loaded summed over replicas"
        );
    }
    let rows: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for row in ["Incident process", "Anomaly jobs", "Correlation"] {
        assert!(rows.contains(&row), "no {row:?} row in {rows:?}");
    }
    for needed in [
        "tocsin_incident_open_alerts",
        "tocsin_incident_time_to_triage_seconds_bucket",
        "tocsin_incident_sla_breaches_total",
        "tocsin_incident_escalations_total",
        "tocsin_anomaly_score_bucket",
        "tocsin_anomaly_entities",
        "tocsin_anomaly_training_seconds_bucket",
        "tocsin_correlation_groups",
        "tocsin_correlation_evictions_total",
        "tocsin_correlation_late_events_total",
    ] {
        assert!(
            queries.iter().any(|(_, q)| q.contains(needed)),
            "the dashboard does not show {needed}"
        );
    }
}

#[test]
fn promtool_accepts_the_alerting_rules_and_their_unit_tests_pass() {
    // Each incident and anomaly alert carries a runbook line.
    let alerts = yaml_file("prometheus/alerts.yml");
    for group in alerts["groups"].as_vec().unwrap() {
        if group["name"].as_str() != Some("tocsin-incident") {
            continue;
        }
        for rule in group["rules"].as_vec().unwrap() {
            assert!(
                rule["annotations"]["runbook"].as_str().is_some(),
                "{:?} has no runbook",
                rule["alert"]
            );
        }
    }
    let Ok(promtool) = which_promtool() else {
        eprintln!("SKIPPED: promtool is not installed (Debian: apt-get install prometheus)");
        return;
    };
    let dir = deploy_dir().join("prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["check", "config", "prometheus.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// promtool on the PATH.
fn which_promtool() -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
        .ok_or(())
}
