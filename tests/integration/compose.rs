//! docker-compose.yml against the binaries it runs (no Docker engine needed): every command
//! is a real subcommand with flags its `--help` lists, every variable is one the binary reads
//! (a clap `[env: X=]` or a `&{env.X}` in conf/), every dependency exists and is healthy-able,
//! and the Dockerfile builds and copies every binary the services start.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const COMPOSE: &str = include_str!("../../docker-compose.yml");
const DOCKERFILE: &str = include_str!("../../Dockerfile");

fn compose() -> Value {
    serde_norway::from_str(COMPOSE).expect("docker-compose.yml is valid YAML")
}

fn services(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["services"].as_object().expect("a services map")
}

/// The path of a binary the tests can run, by its name in the image.
fn binary(name: &str) -> &'static str {
    match name {
        "idm-sync" => env!("CARGO_BIN_EXE_idm-sync"),
        "sf-emulator" => env!("CARGO_BIN_EXE_sf-emulator"),
        other => panic!("the compose file runs {other:?}, which this package does not build"),
    }
}

fn help(bin: &str, args: &[&str]) -> String {
    let out = Command::new(binary(bin))
        .args(args)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(
        out.status.success(),
        "`{bin} {} --help` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--flag` names in a help text.
fn flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .collect()
}

/// Variables listed as `[env: X=…]` in a help text.
fn env_vars(help: &str) -> BTreeSet<String> {
    help.match_indices("[env: ")
        .filter_map(|(i, _)| {
            // `[env: NAME=value]`, or `[env: NAME]` where clap hides the value.
            let rest = &help[i + 6..];
            rest.find(['=', ']']).map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// Variables the shipped configuration substitutes (`&{env.X}` or `&{env.X|default}`).
fn conf_vars() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut vars = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (i, _) in text.match_indices("&{env.") {
            let rest = &text[i + 6..];
            let end = rest.find(['|', '}']).unwrap();
            vars.insert(rest[..end].to_owned());
        }
    }
    vars
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().expect("a string").to_owned())
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Null => Vec::new(),
        other => panic!("expected a list or a string, got {other}"),
    }
}

/// The Dockerfile's `ENTRYPOINT ["x"]`.
fn image_entrypoint() -> String {
    let line = DOCKERFILE
        .lines()
        .rfind(|l| l.starts_with("ENTRYPOINT"))
        .expect("an ENTRYPOINT");
    let list: Vec<String> = serde_json::from_str(line.trim_start_matches("ENTRYPOINT").trim())
        .expect("ENTRYPOINT in exec form");
    list[0].clone()
}

/// The image the repository's Dockerfile builds, which the services run.
const LOCAL_IMAGE: &str = "idm-sync:local";

/// The services that run the image of this repository's Dockerfile, with the binary each
/// starts.
fn built_services(doc: &Value) -> Vec<(String, &Value, String)> {
    services(doc)
        .iter()
        .filter(|(_, s)| s.get("build").is_some() || s["image"] == LOCAL_IMAGE)
        .map(|(name, s)| {
            assert_eq!(s["image"], LOCAL_IMAGE, "{name} runs the one local image");
            if let Some(build) = s.get("build") {
                assert_eq!(build, ".", "{name} builds the repository's Dockerfile");
            }
            let bin = match s.get("entrypoint") {
                Some(e) => strings(e)[0].clone(),
                None => image_entrypoint(),
            };
            (name.clone(), s, bin)
        })
        .collect()
}

#[test]
fn every_command_is_a_real_subcommand_with_listed_flags() {
    let doc = compose();
    let top = help("idm-sync", &[]);
    for (name, service, bin) in built_services(&doc) {
        let args = strings(service.get("command").unwrap_or(&Value::Null));
        let (subcommand, rest): (Vec<&str>, &[String]) = if bin == "idm-sync" {
            let (cmd, rest) = args.split_first().expect("a role");
            assert!(
                top.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
                "{name}: `{cmd}` is not an idm-sync subcommand:\n{top}"
            );
            (vec![cmd.as_str()], rest)
        } else {
            (vec![], &args[..])
        };
        let known = flags(&help(&bin, &subcommand));
        for arg in rest.iter().filter(|a| a.starts_with("--")) {
            let flag = arg.split('=').next().unwrap_or(arg);
            assert!(
                known.contains(flag),
                "{name}: `{bin} {}` has no flag {flag} (it has {known:?})",
                subcommand.join(" ")
            );
        }
    }
}

#[test]
fn every_variable_is_one_the_binary_reads() {
    let doc = compose();
    let conf = conf_vars();
    for (name, service, bin) in built_services(&doc) {
        let args = strings(service.get("command").unwrap_or(&Value::Null));
        let subcommand: Vec<&str> = match bin.as_str() {
            "idm-sync" => vec![args[0].as_str()],
            _ => vec![],
        };
        let read = env_vars(&help(&bin, &subcommand));
        let Some(environment) = service.get("environment").and_then(Value::as_object) else {
            continue;
        };
        for var in environment.keys() {
            let checked = var.starts_with("IDM_")
                || var.starts_with("SF_")
                || var == "DATABASE_URL"
                || var == "AMQP_URL";
            if checked {
                assert!(
                    read.contains(var) || (bin == "idm-sync" && conf.contains(var)),
                    "{name}: `{bin} {}` does not read {var} (its --help lists {read:?}; conf/ reads {conf:?})",
                    subcommand.join(" ")
                );
            }
        }
    }
}

#[test]
fn the_dockerfile_environment_is_read_by_some_role() {
    let top = help("idm-sync", &[]);
    let mut read = conf_vars();
    for role in [
        "serve",
        "worker",
        "scheduler",
        "relay",
        "all",
        "migrate",
        "recon",
    ] {
        assert!(top.contains(role));
        read.extend(env_vars(&help("idm-sync", &[role])));
    }
    for line in DOCKERFILE.lines().filter(|l| l.starts_with("ENV ")) {
        for pair in line[4..].split_whitespace() {
            let var = pair.split('=').next().unwrap();
            assert!(
                read.contains(var),
                "the Dockerfile sets {var}, which no role reads"
            );
        }
    }
}

#[test]
fn every_dependency_exists_and_can_become_healthy() {
    let doc = compose();
    let all = services(&doc);
    for (name, service) in all {
        let targets: Vec<(String, Option<String>)> = match service.get("depends_on") {
            None => continue,
            Some(Value::Array(list)) => list
                .iter()
                .map(|t| (t.as_str().unwrap().to_owned(), None))
                .collect(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(t, c)| (t.clone(), c["condition"].as_str().map(str::to_owned)))
                .collect(),
            Some(other) => panic!("{name}: depends_on is {other}"),
        };
        for (target, condition) in targets {
            let Some(dependency) = all.get(&target) else {
                panic!("{name} depends on {target}, which is not a service");
            };
            if condition.as_deref() == Some("service_healthy") {
                assert!(
                    dependency.get("healthcheck").is_some(),
                    "{name} waits for {target} to be healthy, but {target} has no healthcheck"
                );
            }
        }
    }
    // The roles the README promises, and two workers by default.
    for role in [
        "postgres",
        "rabbitmq",
        "sf-emulator",
        "serve",
        "worker",
        "scheduler",
    ] {
        assert!(all.contains_key(role), "no {role} service");
    }
    assert_eq!(all["worker"]["deploy"]["replicas"], 2);
    assert!(all["serve"].get("healthcheck").is_some());
}

#[test]
fn the_dockerfile_builds_and_copies_every_binary_the_services_run() {
    let doc = compose();
    // Instructions, their continuation lines joined.
    let instructions = DOCKERFILE.replace("\\\n", " ");
    let build = instructions
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("a cargo build step");
    for (name, _, bin) in built_services(&doc) {
        assert!(
            build.contains(&format!("--bin {bin}")),
            "{name} runs {bin}, which the Dockerfile does not build: {build}"
        );
        assert!(
            build.contains(&format!("target/release/{bin}"))
                && DOCKERFILE.contains(&format!("/out/{bin} /usr/local/bin/{bin}")),
            "{name} runs {bin}, which the Dockerfile does not copy into the image"
        );
    }
}

#[test]
fn published_ports_are_the_ones_serve_listens_on() {
    let doc = compose();
    let serve = &services(&doc)["serve"];
    let env = &serve["environment"];
    let listens: Vec<&str> = ["IDM_LISTEN", "IDM_TLS_LISTEN"]
        .iter()
        .filter_map(|v| env[*v].as_str())
        .collect();
    for port in strings(&serve["ports"]) {
        let container = port.rsplit(':').next().unwrap();
        assert!(
            listens
                .iter()
                .any(|l| l.ends_with(&format!(":{container}"))),
            "serve publishes {port} but listens on {listens:?}"
        );
    }
}

#[test]
fn the_admin_password_is_required_and_the_broker_ui_is_not_published() {
    let doc = compose();
    let all = services(&doc);
    let serve = &all["serve"]["environment"];
    let password = serve["IDM_ADMIN_PASSWORD"]
        .as_str()
        .expect("serve sets IDM_ADMIN_PASSWORD");
    assert!(
        password.starts_with("${IDM_ADMIN_PASSWORD:?"),
        "IDM_ADMIN_PASSWORD must be required (${{IDM_ADMIN_PASSWORD:?…}}), not {password}"
    );
    // No service falls back to the shipped default, however spelled.
    for (name, service) in all {
        if let Some(env) = service.get("environment").and_then(Value::as_object) {
            if let Some(v) = env.get("IDM_ADMIN_PASSWORD").and_then(Value::as_str) {
                assert!(!v.contains(":-"), "{name}: {v}");
                assert!(!v.contains("openidm-admin"), "{name}: {v}");
            }
        }
    }
    // RabbitMQ publishes nothing (its management UI has guest/guest); only serve's API is published.
    assert!(
        strings(all["rabbitmq"].get("ports").unwrap_or(&Value::Null)).is_empty(),
        "rabbitmq publishes {:?}",
        all["rabbitmq"]["ports"]
    );
    for (name, service) in all {
        for port in strings(service.get("ports").unwrap_or(&Value::Null)) {
            assert!(
                !port.contains("15672"),
                "{name} publishes the management UI: {port}"
            );
        }
    }
}

#[test]
fn the_build_context_leaves_out_local_state_and_build_output() {
    let ignore = include_str!("../../.dockerignore");
    let entries: BTreeSet<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    // data/ holds the secrets key and the TLS key; target/ is gigabytes the build redoes anyway.
    for needed in ["data/", "target/", ".git/"] {
        assert!(entries.contains(needed), ".dockerignore lacks {needed}");
    }
    // Nothing the Dockerfile copies is ignored.
    for line in DOCKERFILE
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        for source in line
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
        {
            let dir = format!("{}/", source.trim_end_matches('/'));
            assert!(
                !entries.contains(dir.as_str()),
                "{source} is copied but ignored"
            );
        }
    }
}

#[test]
fn the_image_is_built_once_and_every_service_is_watched() {
    let doc = compose();
    let built = built_services(&doc);
    let builders: Vec<&str> = built
        .iter()
        .filter(|(_, s, _)| s.get("build").is_some())
        .map(|(name, _, _)| name.as_str())
        .collect();
    assert_eq!(builders, ["serve"], "one service builds the image");
    for (name, service, _) in &built {
        if service.get("build").is_none() {
            assert_eq!(
                service["pull_policy"], "never",
                "{name} must not look for the local image in a registry"
            );
        }
    }
    for (name, service) in services(&doc) {
        assert!(
            service.get("healthcheck").is_some(),
            "{name} has no healthcheck"
        );
    }
    // RabbitMQ 3.13 is out of community support.
    let broker = services(&doc)["rabbitmq"]["image"].as_str().unwrap();
    assert!(broker.starts_with("rabbitmq:4."), "{broker}");
}

#[test]
fn the_env_example_names_every_required_variable() {
    let example = include_str!("../../.env.example");
    let named: BTreeSet<&str> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    // `${VAR:?message}`: compose refuses to start without VAR.
    let required: BTreeSet<&str> = COMPOSE
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once(":?").map(|(var, _)| var))
        .filter(|var| !var.contains('}'))
        .collect();
    assert!(!required.is_empty());
    for var in required {
        assert!(named.contains(var), ".env.example lacks {var}");
    }
    let ignore = include_str!("../../.dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == ".env"),
        ".env holds secrets: keep it out of the build context"
    );
}

/// The address a service serves its operations endpoints on: `--metrics-listen` (or, for
/// `serve`, `--listen`) in its command, else the flag's variable in its environment.
fn served_addr(service: &Value) -> Option<String> {
    let command = strings(&service["command"]);
    let (flag, var) = match command.first().map(String::as_str) {
        Some("serve" | "all") => ("--listen", "IDM_LISTEN"),
        _ => ("--metrics-listen", "IDM_METRICS_LISTEN"),
    };
    match command.iter().position(|a| a == flag) {
        Some(i) => command.get(i + 1).cloned(),
        None => service["environment"][var].as_str().map(str::to_owned),
    }
}

#[test]
fn the_prometheus_config_scrapes_each_role_where_it_serves() {
    let doc = compose();
    let prometheus: Value =
        serde_norway::from_str(include_str!("../../docs/prometheus.yml")).unwrap();
    let jobs = prometheus["scrape_configs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4);
    for job in jobs {
        let (host, port) = match (job.get("static_configs"), job.get("dns_sd_configs")) {
            (Some(s), None) => {
                let target = s[0]["targets"][0].as_str().unwrap();
                let (h, p) = target.rsplit_once(':').unwrap();
                (h.to_owned(), p.to_owned())
            }
            (None, Some(d)) => (
                d[0]["names"][0].as_str().unwrap().to_owned(),
                d[0]["port"].as_u64().unwrap().to_string(),
            ),
            other => panic!("unexpected job {other:?}"),
        };
        let service = services(&doc)
            .get(&host)
            .unwrap_or_else(|| panic!("{host} is not a compose service"));
        let addr = served_addr(service).unwrap_or_else(|| panic!("{host} serves no metrics"));
        let (ip, served) = addr.rsplit_once(':').unwrap();
        assert_eq!(served, port, "{host}");
        // Open to the network, not loopback only.
        assert!(!ip.starts_with("127."), "{host} listens on {addr}");
    }
}
