//! HTTPS with test certificates made here: the MCP flow over HTTP/2 and HTTP/1.1, the
//! certificate chosen by SNI, a renewed certificate served to new connections while open ones
//! go on, reloads on file change and on SIGHUP, plain HTTP redirected to the access URL, HSTS,
//! secure cookies and the minimum TLS version.

use std::path::{Path, PathBuf};
use std::time::Duration;

use coderd::config::{TlsConfig, TlsVersion};
use coderd::domain::{Experiment, Experiments};
use reqwest::{StatusCode, Version};
use rustls::pki_types::pem::PemObject;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, TestApp, set_cookie_named};
use crate::mcp_support::rpc;

both_backends!(
    the_mcp_flow_runs_over_https_with_http2_and_http1,
    a_renewed_certificate_is_served_without_dropping_connections,
    plain_http_is_redirected_to_the_access_url,
    tls13_only_refuses_tls12_clients,
    behind_a_tls_proxy_only_other_hosts_are_redirected,
    https_alone_when_plain_http_is_off,
);

/// A self-signed certificate for `names` (DNS names or IP addresses) and its key, in PEM.
struct Pem {
    cert: String,
    key: String,
}

impl Pem {
    fn new(names: &[&str]) -> Pem {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        Pem {
            cert: made.cert.pem(),
            key: made.signing_key.serialize_pem(),
        }
    }

    fn root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.cert.as_bytes()).unwrap()
    }

    fn der(&self) -> Vec<u8> {
        rustls::pki_types::CertificateDer::pem_slice_iter(self.cert.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    /// Writes the pair as `<name>.crt` and `<name>.key` in `dir`.
    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, &self.cert).unwrap();
        std::fs::write(&key, &self.key).unwrap();
        (cert, key)
    }
}

/// A client that trusts `roots`, reports the peer's certificate, and follows no redirects.
fn https_client(roots: &[&Pem], http1_only: bool) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .tls_info(true)
        .redirect(reqwest::redirect::Policy::none());
    for root in roots {
        builder = builder.add_root_certificate(root.root());
    }
    if http1_only {
        builder = builder.http1_only();
    }
    builder
}

fn peer_certificate(res: &reqwest::Response) -> Vec<u8> {
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(<[u8]>::to_vec)
        .expect("a TLS peer certificate")
}

/// The app serving HTTPS on a free port with `pairs`, HSTS at 60 s, every experiment on.
async fn spawn_https(
    backend: Backend,
    pairs: Vec<(PathBuf, PathBuf)>,
    configure: impl FnOnce(&mut coderd::config::ServerConfig),
) -> TestApp {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = Experiments::of(&Experiment::ALL);
        c.tls = Some(TlsConfig {
            address: "127.0.0.1:0".into(),
            pairs,
            min_version: TlsVersion::Tls12,
        });
        c.strict_transport_security = Some("max-age=60".into());
        configure(c);
    })
    .await;
    let tls = app.tls_addr.expect("HTTPS is served");
    // Without --access-url the access URL is where HTTPS is served.
    assert_eq!(app.url, format!("https://127.0.0.1:{}", tls.port()));
    app
}

async fn the_mcp_flow_runs_over_https_with_http2_and_http1(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let main = Pem::new(&["127.0.0.1", "coder.test"]);
    let other = Pem::new(&["other.test"]);
    let pairs = vec![
        main.write(dir.path(), "main"),
        other.write(dir.path(), "other"),
    ];
    let mut app = spawn_https(backend, pairs, |_| {}).await;
    let tls = app.tls_addr.unwrap();

    for (http1_only, version) in [(false, Version::HTTP_2), (true, Version::HTTP_11)] {
        app.client = https_client(&[&main], http1_only).build().unwrap();
        let res = app.get("/healthz", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.version(), version, "ALPN");
        assert_eq!(peer_certificate(&res), main.der());
        assert_eq!(res.headers()["strict-transport-security"], "max-age=60");

        // The whole flow: first user, sign-in (a Secure cookie), OAuth, MCP.
        if !http1_only {
            app.create_owner().await;
        }
        let login = app
            .post_json(
                "/api/v2/users/login",
                None,
                &json!({"email": "owner@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(login.status(), StatusCode::CREATED);
        let cookie = set_cookie_named(&login, "coder_session_token").unwrap();
        assert!(cookie.contains("; Secure"), "{cookie}");
        let session = app.login("owner@example.com", PASSWORD).await;
        let client = app.register_claude().await;
        let tokens = app.obtain_tokens(&session, &client).await;
        let (status, body) = rpc(
            &app,
            tokens["access_token"].as_str().unwrap(),
            "tools/call",
            json!({"name": "coder_get_authenticated_user", "arguments": {}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["result"]["structuredContent"]["username"], "owner");
    }

    // SNI picks the certificate that names the host; the first is the default.
    let sni = https_client(&[&other], false)
        .resolve("other.test", tls)
        .build()
        .unwrap();
    let res = sni
        .get(format!("https://other.test:{}/healthz", tls.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(peer_certificate(&res), other.der());

    // Plain HTTP is still served (no redirect asked for), without HSTS.
    let res = reqwest::get(format!("http://{}/healthz", app.addr))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("strict-transport-security").is_none());
}

async fn a_renewed_certificate_is_served_without_dropping_connections(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let old = Pem::new(&["127.0.0.1"]);
    let pair = old.write(dir.path(), "server");
    let app = spawn_https(backend, vec![pair], |_| {}).await;
    let url = app.url("/healthz");
    let renewed = Pem::new(&["127.0.0.1"]);
    let newest = Pem::new(&["127.0.0.1"]);
    let roots = [&old, &renewed, &newest];

    // One HTTP/2 connection, open across the renewal.
    let open = https_client(&roots, false).build().unwrap();
    let res = open.get(&url).send().await.unwrap();
    assert_eq!(peer_certificate(&res), old.der());

    // A renewal tool writes new files: new connections get the new certificate.
    renewed.write(dir.path(), "server");
    served_soon(&roots, &url, &renewed).await;
    let res = open.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the open connection goes on");
    assert_eq!(
        peer_certificate(&res),
        old.der(),
        "over the same connection, set up with the old certificate"
    );

    // A broken pair is refused and the current certificate stays.
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fresh = https_client(&roots, false).build().unwrap();
    let res = fresh.get(&url).send().await.unwrap();
    assert_eq!(peer_certificate(&res), renewed.der());

    // SIGHUP reloads files whose change the watcher cannot see: the same size, inode and
    // modification time. The signal reaches every server in this process, so the tests that
    // send it take turns.
    let _one_at_a_time = SIGHUP_TURN.lock().await;
    let cert_len = renewed.cert.len().max(newest.cert.len()) + 16;
    let key_len = renewed.key.len().max(newest.key.len()) + 16;
    overwrite(dir.path(), &renewed, cert_len, key_len, None);
    served_soon(&roots, &url, &renewed).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let times = (
        std::fs::metadata(dir.path().join("server.crt"))
            .unwrap()
            .modified()
            .unwrap(),
        std::fs::metadata(dir.path().join("server.key"))
            .unwrap()
            .modified()
            .unwrap(),
    );
    overwrite(dir.path(), &newest, cert_len, key_len, Some(times));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fresh = https_client(&roots, false).build().unwrap();
    let res = fresh.get(&url).send().await.unwrap();
    assert_eq!(
        peer_certificate(&res),
        renewed.der(),
        "no reload without a signal"
    );
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP).unwrap();
    served_soon(&roots, &url, &newest).await;
}

/// Writes `pem` over the pair in place (same inode), padded with blank lines (PEM readers skip
/// them) to the given sizes, and sets the files' modification times to `times` if given.
fn overwrite(
    dir: &Path,
    pem: &Pem,
    cert_len: usize,
    key_len: usize,
    times: Option<(std::time::SystemTime, std::time::SystemTime)>,
) {
    for (name, text, len, time) in [
        ("server.crt", &pem.cert, cert_len, times.map(|t| t.0)),
        ("server.key", &pem.key, key_len, times.map(|t| t.1)),
    ] {
        let path = dir.join(name);
        let padded = format!("{text}{}", "\n".repeat(len - text.len()));
        std::fs::write(&path, padded).unwrap();
        if let Some(time) = time {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(time)
                .unwrap();
        }
    }
}

static SIGHUP_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits (at most 10 s) until a new connection is served `expected`.
async fn served_soon(roots: &[&Pem], url: &str, expected: &Pem) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let client = https_client(roots, false).build().unwrap();
        let res = client.get(url).send().await.unwrap();
        if peer_certificate(&res) == expected.der() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn plain_http_is_redirected_to_the_access_url(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let main = Pem::new(&["127.0.0.1"]);
    let pairs = vec![main.write(dir.path(), "main")];
    let app = spawn_https(backend, pairs, |c| c.redirect_to_access_url = true).await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let res = plain
        .get(format!("http://{}/api/v2/buildinfo?x=1", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        res.headers()["location"],
        format!("{}/api/v2/buildinfo?x=1", app.url).as_str()
    );
    // Health checks are answered where they arrive.
    let res = plain
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // At the access URL itself nothing is redirected.
    let https = https_client(&[&main], false).build().unwrap();
    let res = https
        .get(app.url("/api/v2/buildinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A client that follows redirects gets there, POST body and all (307).
    let following = reqwest::Client::builder()
        .add_root_certificate(main.root())
        .build()
        .unwrap();
    let created = following
        .post(format!("http://{}/api/v2/users/first", app.addr))
        .json(&json!({"email": "owner@example.com", "username": "owner", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.url().scheme(), "https");
}

async fn tls13_only_refuses_tls12_clients(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let main = Pem::new(&["127.0.0.1"]);
    let pairs = vec![main.write(dir.path(), "main")];
    let app = spawn_https(backend, pairs, |c| {
        if let Some(tls) = &mut c.tls {
            tls.min_version = TlsVersion::Tls13;
        }
    })
    .await;
    let tls12 = https_client(&[&main], false)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(tls12.get(app.url("/healthz")).send().await.is_err());
    let tls13 = https_client(&[&main], false).build().unwrap();
    let res = tls13.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// No TLS of its own, an https access URL: a proxy terminates TLS and forwards plain HTTP.
/// Requests for the access URL's host are served (never redirected in a loop) with HSTS; those
/// for another host are sent to the access URL.
async fn behind_a_tls_proxy_only_other_hosts_are_redirected(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.access_url = Some(coderd::config::parse_access_url("https://coder.example.com").unwrap());
        c.redirect_to_access_url = true;
        c.strict_transport_security = Some("max-age=60".into());
    })
    .await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let buildinfo = format!("http://{}/api/v2/buildinfo", app.addr);
    let res = plain
        .get(&buildinfo)
        .header("Host", "coder.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["strict-transport-security"], "max-age=60");
    let res = plain.get(&buildinfo).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        res.headers()["location"],
        "https://coder.example.com/api/v2/buildinfo"
    );
}

/// An empty --http-address turns plain HTTP off: only HTTPS is served.
async fn https_alone_when_plain_http_is_off(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let main = Pem::new(&["127.0.0.1"]);
    let pairs = vec![main.write(dir.path(), "main")];
    let mut app = spawn_https(backend, pairs, |c| c.http_address = String::new()).await;
    assert_eq!(Some(app.addr), app.tls_addr, "the only listener is HTTPS");
    app.client = https_client(&[&main], false).build().unwrap();
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
}

/// A certificate or key that cannot be used stops the start with an error naming the file.
#[test]
fn unusable_certificates_stop_the_start_naming_the_file() {
    crate::helpers::run_test(unusable_certificates_stop_the_start_naming_the_file_body());
}

async fn unusable_certificates_stop_the_start_naming_the_file_body() {
    let dir = tempfile::tempdir().unwrap();
    let main = Pem::new(&["127.0.0.1"]);
    let other = Pem::new(&["127.0.0.1"]);
    let (cert, key) = main.write(dir.path(), "main");
    let (_, other_key) = other.write(dir.path(), "other");
    let missing = dir.path().join("missing.crt");
    for (pair, named) in [
        ((missing.clone(), key.clone()), missing.clone()),
        ((cert.clone(), other_key.clone()), other_key.clone()),
        ((key.clone(), key.clone()), key.clone()),
    ] {
        let mut config = coderd::config::ServerConfig::for_data_dir(dir.path().join("data"));
        config.workspaces.agent_binary = Some(env!("CARGO_BIN_EXE_coder").into());
        config.tls = Some(TlsConfig {
            address: "127.0.0.1:0".into(),
            pairs: vec![pair],
            min_version: TlsVersion::Tls12,
        });
        let err = match coderd::app::App::build(config).await {
            Ok(_) => panic!("{named:?}: the server started"),
            Err(err) => format!("{err:#}"),
        };
        assert!(
            err.contains(&named.display().to_string()),
            "{named:?}: {err}"
        );
    }
}
