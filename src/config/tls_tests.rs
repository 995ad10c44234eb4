//! Tests of the TLS keys and `client-output-buffer-limit`: what is required with what,
//! which files are read and checked, and the key each problem is reported under.
//! Certificates are generated with rcgen into a temp dir.

use super::*;
use crate::tls::ClientAuth;

fn from_toml(toml: &str) -> Result<Config, ConfigError> {
    let cli = Cli {
        seeds: Some(vec!["10.0.0.1:6379".into()]),
        ..Cli::default()
    };
    Config::from_parts(&cli, Some(toml))
}

/// The keys the problems of `toml` are reported under, each with its message.
fn problems(toml: &str) -> Vec<(&'static str, String)> {
    match from_toml(toml) {
        Err(ConfigError::Invalid(problems)) => problems
            .into_iter()
            .map(|p| (p.key.name, p.message))
            .collect(),
        other => panic!("expected problems for {toml}, got {other:?}"),
    }
}

#[track_caller]
fn assert_only_problem(toml: &str, key: &str, text: &str) {
    let found = problems(toml);
    assert_eq!(found.len(), 1, "{toml}: {found:#?}");
    assert_eq!(found[0].0, key, "{toml}: {found:#?}");
    assert!(
        found[0].1.contains(text),
        "{toml}: {:?} lacks {text:?}",
        found[0].1
    );
}

/// A self-signed certificate and its key, and a second unrelated key, as PEM files.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["slotgate.test".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["other.test".into()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        std::fs::write(
            dir.path().join("other.key"),
            other.signing_key.serialize_pem(),
        )
        .unwrap();
        std::fs::write(dir.path().join("garbage.pem"), "not a certificate\n").unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A TOML snippet with the TLS listener on, plus `extra` lines.
    fn listener(&self, extra: &str) -> String {
        format!(
            "tls-port = 6443\ntls-cert-file = {:?}\ntls-key-file = {:?}\n{extra}",
            self.path("cert.pem"),
            self.path("key.pem")
        )
    }
}

#[test]
fn tls_is_off_by_default_and_limits_have_redis_defaults() {
    let config = from_toml("").unwrap();
    assert_eq!(config.tls, None);
    assert_eq!(config.backend_tls, None);
    let limits = config.client_output_buffer_limit;
    assert_eq!(limits.normal, OutputLimit::NONE);
    assert_eq!(
        (limits.pubsub.hard, limits.pubsub.soft),
        (32 << 20, 8 << 20)
    );
}

#[test]
fn a_listener_reads_its_files_and_defaults_client_auth_from_the_ca() {
    let files = Files::new();
    let config = from_toml(&files.listener("")).unwrap();
    let tls = config.tls.unwrap();
    assert_eq!(tls.port, 6443);
    assert_eq!(tls.client_auth, ClientAuth::No);
    assert!(tls.versions.tls12 && tls.versions.tls13);
    assert!(
        tls.cert
            .contents
            .starts_with(b"-----BEGIN CERTIFICATE-----")
    );

    let with_ca = files.listener(&format!(
        "tls-ca-cert-file = {:?}\n",
        files.path("cert.pem")
    ));
    let tls = from_toml(&with_ca).unwrap().tls.unwrap();
    assert_eq!(
        tls.client_auth,
        ClientAuth::Required,
        "like Redis: a CA means yes"
    );
    let optional =
        format!("{with_ca}tls-auth-clients = \"optional\"\ntls-protocols = \"TLSv1.3\"\n");
    let tls = from_toml(&optional).unwrap().tls.unwrap();
    assert_eq!(tls.client_auth, ClientAuth::Optional);
    assert!(!tls.versions.tls12 && tls.versions.tls13);
}

#[test]
fn listener_problems_name_their_key() {
    let files = Files::new();
    let keys: Vec<_> = problems("tls-port = 6443")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(
        keys,
        ["tls-cert-file", "tls-key-file"],
        "both are required, both reported"
    );
    let no_port = format!("tls-cert-file = {:?}", files.path("cert.pem"));
    assert_only_problem(&no_port, "tls-cert-file", "no effect without tls-port");
    assert_only_problem(
        &files.listener("listen = \"127.0.0.1:6443\""),
        "tls-port",
        "port of listen",
    );
    assert_only_problem(
        &files.listener("tls-auth-clients = \"yes\""),
        "tls-auth-clients",
        "needs tls-ca-cert-file",
    );
    assert_only_problem(
        &files.listener("tls-auth-clients = \"maybe\""),
        "tls-auth-clients",
        "yes, no or optional",
    );
    assert_only_problem(
        &files.listener("tls-protocols = \"TLSv1.1\""),
        "tls-protocols",
        "obsolete",
    );
    let garbage = format!(
        "tls-port = 6443\ntls-cert-file = {:?}\ntls-key-file = {:?}",
        files.path("garbage.pem"),
        files.path("key.pem")
    );
    assert_only_problem(&garbage, "tls-cert-file", "holds no certificate");
    let mismatch = format!(
        "tls-port = 6443\ntls-cert-file = {:?}\ntls-key-file = {:?}",
        files.path("cert.pem"),
        files.path("other.key")
    );
    assert_only_problem(
        &mismatch,
        "tls-cert-file",
        "do not make a usable certificate and key",
    );
    let missing = format!(
        "tls-port = 6443\ntls-cert-file = {:?}\ntls-key-file = {:?}",
        files.path("absent.pem"),
        files.path("key.pem")
    );
    assert_only_problem(&missing, "tls-cert-file", "cannot read");
}

#[test]
fn backend_tls_rules() {
    let files = Files::new();
    let on = format!(
        "backend-tls = true\nbackend-tls-ca-cert-file = {:?}\n",
        files.path("cert.pem")
    );
    let config = from_toml(&on).unwrap();
    let backend = config.backend_tls.unwrap();
    assert!(backend.ca.is_some() && backend.client_cert.is_none());
    let pair = format!(
        "{on}backend-tls-cert-file = {:?}\nbackend-tls-key-file = {:?}\nbackend-tls-server-name = \"redis.test\"\n",
        files.path("cert.pem"),
        files.path("key.pem")
    );
    let backend = from_toml(&pair).unwrap().backend_tls.unwrap();
    assert!(backend.client_cert.is_some());
    assert_eq!(backend.server_name.as_deref(), Some("redis.test"));

    let off = format!("backend-tls-ca-cert-file = {:?}", files.path("cert.pem"));
    assert_only_problem(
        &off,
        "backend-tls-ca-cert-file",
        "no effect without backend-tls",
    );
    let half = format!("{on}backend-tls-cert-file = {:?}\n", files.path("cert.pem"));
    assert_only_problem(&half, "backend-tls-cert-file", "needs backend-tls-key-file");
    let bad_name = format!("{on}backend-tls-server-name = \"not a name\"\n");
    assert_only_problem(&bad_name, "backend-tls-server-name", "not a DNS name");
    let bad_ca = format!(
        "backend-tls = true\nbackend-tls-ca-cert-file = {:?}\n",
        files.path("garbage.pem")
    );
    assert_only_problem(&bad_ca, "backend-tls-ca-cert-file", "holds no certificate");
}

#[test]
fn output_limit_problems_name_the_key() {
    let config = from_toml("client-output-buffer-limit = \"normal 1mb 512kb 10\"").unwrap();
    assert_eq!(config.client_output_buffer_limit.normal.hard, 1 << 20);
    assert_only_problem(
        "client-output-buffer-limit = \"replica 256mb 64mb 60\"",
        "client-output-buffer-limit",
        "replicas never connect",
    );
}

#[test]
fn debug_output_shows_paths_not_keys() {
    let files = Files::new();
    let config = from_toml(&files.listener("")).unwrap();
    let shown = format!("{config:?}");
    assert!(shown.contains("key.pem"));
    assert!(
        !shown.contains("PRIVATE KEY"),
        "a key's bytes must never be printed"
    );
}
