//! The team board in a real browser: headless Chromium driven over
//! WebDriver (chromedriver, spoken to with `fantoccini`) against the real
//! server in-process. Log-in, the project list, the board and its live
//! updates from the stream (no reload), the feature filter, a card's
//! history, log-out; plus the board without JavaScript.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/ensure-chromium`
//! installs them). Without them these tests fail, never pass silently,
//! unless `SPEC_KITTY_SKIP_BROWSER=1` is set.
//!
//! Screenshots (light and dark, wide and narrow, empty and 200 cards) are
//! written to `target/screenshots/` for people to look at.

use crate::common;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PASSWORD, TestServer};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const SKIP_ENV: &str = "SPEC_KITTY_SKIP_BROWSER";

/// How long any wait may take before the test calls it a hang. Waits end
/// as soon as their condition holds; this only bounds a broken page.
const HANG_GUARD: Duration = Duration::from_secs(20);
/// Chromium's first start on a cold, busy machine can be slow.
const START_GUARD: Duration = Duration::from_secs(90);

const WIDE: (u32, u32) = (1400, 900);
const NARROW: (u32, u32) = (420, 900);

// ---------------------------------------------------------------------------
// chromedriver and the browser session

/// A chromedriver process of this test, in its own process group so that
/// the Chromium it starts goes with it. Killed on drop.
struct Chromedriver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        use std::os::unix::process::CommandExt;

        let profile = tempfile::tempdir().expect("temp dir for the browser profile");
        let port = free_port();
        let log = std::fs::File::create(profile.path().join("chromedriver.log"))
            .expect("chromedriver log file");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let mut driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        };
        driver.wait_ready();
        driver
    }

    /// Waits until chromedriver answers `/status` with `ready: true`.
    fn wait_ready(&mut self) {
        let agent = common::agent();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromedriver exited ({status}) before answering:\n{}",
                    self.log()
                );
            }
            let reply = agent.get(format!("{}/status", self.url)).call();
            if let Ok(mut response) = reply {
                let body = response.body_mut().read_to_string().unwrap_or_default();
                if serde_json::from_str::<Value>(&body)
                    .is_ok_and(|v| v["value"]["ready"] == Value::Bool(true))
                {
                    return;
                }
            }
            assert!(
                started.elapsed() < START_GUARD,
                "chromedriver did not answer on {} within {START_GUARD:?}:\n{}",
                self.url,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.profile.path().join("chromedriver.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any Chromium it left behind.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("local address").port()
}

/// Whether the browser tests should run: `false` (after saying so) with
/// `SPEC_KITTY_SKIP_BROWSER=1`; a failure when Chromium is missing.
fn browser_wanted(test: &str) -> bool {
    if std::env::var(SKIP_ENV).ok().as_deref() == Some("1") {
        eprintln!("{test}: skipped ({SKIP_ENV}=1)");
        return false;
    }
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "{test} needs headless Chromium: {} missing. Install it with \
         `apt-get install chromium chromium-driver` (or run scripts/ensure-chromium as root), \
         or set {SKIP_ENV}=1 to skip the browser tests.",
        missing.join(" and ")
    );
    true
}

/// Where the screenshots go: `target/screenshots/` of the build's target dir.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("screenshots"))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots"));
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// One headless Chromium session, driven synchronously (each call runs on
/// the session's own small runtime), against one server.
struct Browser {
    client: Option<Client>,
    runtime: tokio::runtime::Runtime,
    base: String,
    shots: PathBuf,
    driver: Chromedriver,
}

impl Browser {
    fn start(base: &str) -> Browser {
        let driver = Chromedriver::start();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime for the WebDriver client");
        let user_data_dir = format!("--user-data-dir={}", driver.profile.path().display());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--hide-scrollbars",
                    format!("--window-size={},{}", WIDE.0, WIDE.1),
                    user_data_dir,
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let connected = runtime.block_on(async {
            tokio::time::timeout(START_GUARD, builder.connect(&driver.url)).await
        });
        let client = match connected {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!("no Chromium session: {e}\n{}", driver.log()),
            Err(_) => panic!(
                "no Chromium session within {START_GUARD:?}\n{}",
                driver.log()
            ),
        };
        let browser = Browser {
            client: Some(client),
            runtime,
            base: base.to_string(),
            shots: screenshot_dir(),
            driver,
        };
        browser.size(WIDE);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    fn run<T>(
        &self,
        what: &str,
        future: impl Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> T {
        self.runtime
            .block_on(future)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.run(&format!("open {url}"), self.client().goto(&url));
    }

    /// The current URL's path and query.
    fn location(&self) -> String {
        let url = self.run("current url", self.client().current_url());
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    fn find(&self, css: &str) -> Element {
        self.run(
            &format!("find {css}"),
            self.client().find(Locator::Css(css)),
        )
    }

    fn count(&self, css: &str) -> usize {
        self.run(
            &format!("find all {css}"),
            self.client().find_all(Locator::Css(css)),
        )
        .len()
    }

    fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.run(&format!("text of {css}"), element.text())
    }

    /// The `value` property of a form field.
    fn value(&self, css: &str) -> Option<String> {
        let element = self.find(css);
        self.run(&format!("value of {css}"), element.prop("value"))
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.run(&format!("click {css}"), element.click());
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.run(&format!("type into {css}"), element.send_keys(text));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.run(
            &format!("script {script}"),
            self.client().execute(script, args),
        )
    }

    /// Polls `script` until it returns something truthy, and returns that.
    /// Errors while a page loads count as "not yet". Panics (with a
    /// screenshot) only when `HANG_GUARD` passes.
    fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let started = Instant::now();
        loop {
            let last = match self
                .runtime
                .block_on(self.client().execute(script, args.clone()))
            {
                Ok(value) if truthy(&value) => return value,
                Ok(value) => format!("last result: {value}"),
                Err(e) => format!("last error: {e}"),
            };
            if started.elapsed() > HANG_GUARD {
                let file = format!(
                    "failed-{}",
                    what.replace(|c: char| !c.is_alphanumeric(), "-")
                );
                self.shot(&file);
                panic!(
                    "waited {HANG_GUARD:?} for {what} ({last}); page at {}: see {file}.png",
                    self.location()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until an element matches `css`.
    fn wait_for(&self, css: &str) {
        self.wait_js(
            &format!("element {css}"),
            "return !!document.querySelector(arguments[0]);",
            vec![json!(css)],
        );
    }

    fn size(&self, (width, height): (u32, u32)) {
        self.run(
            "set window size",
            self.client().set_window_size(width, height),
        );
    }

    /// Saves a PNG of the viewport as `target/screenshots/{name}.png`.
    fn shot(&self, name: &str) -> PathBuf {
        let png = self.run("screenshot", self.client().screenshot());
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Like [`Browser::shot`] but of the whole page: the window grows to
    /// the page's height for the picture.
    fn full_page_shot(&self, name: &str, width: u32) -> PathBuf {
        let height = self
            .js(
                "return Math.ceil(document.documentElement.scrollHeight);",
                vec![],
            )
            .as_u64()
            .expect("page height");
        let height = u32::try_from(height).expect("sane height").clamp(300, 8000);
        self.size((width, height));
        let path = self.shot(name);
        self.size(WIDE);
        path
    }

    /// Full-page shots `NAME-light` and `NAME-dark`, then `NAME-narrow-light`
    /// of a narrow window, which `page` must fit.
    fn page_shots(&self, name: &str, page: &str) {
        self.full_page_shot(&format!("{name}-light"), WIDE.0);
        self.color_scheme("dark");
        self.full_page_shot(&format!("{name}-dark"), WIDE.0);
        self.color_scheme("light");
        self.size(NARROW);
        self.assert_fits_width(&format!("{page}, narrow"));
        self.shot(&format!("{name}-narrow-light"));
        self.size(WIDE);
    }

    /// Dark or light `prefers-color-scheme`, through the DevTools protocol
    /// (chromedriver's `goog/cdp/execute`). It holds for this tab until
    /// changed, across navigations.
    fn color_scheme(&self, scheme: &str) {
        let session = self
            .run("session id", self.client().session_id())
            .expect("a session id");
        let body = json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        });
        let reply = common::agent()
            .post(format!(
                "{}/session/{session}/goog/cdp/execute",
                self.driver.url
            ))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes());
        let mut response = reply.expect("chromedriver answers");
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(response.status().as_u16(), 200, "cdp execute: {text}");
        let dark = self.js(
            "return matchMedia('(prefers-color-scheme: dark)').matches;",
            vec![],
        );
        assert_eq!(
            dark,
            json!(scheme == "dark"),
            "color scheme {scheme} applies"
        );
    }

    /// Logs in through the form and waits for the project list.
    fn log_in(&self, username: &str) {
        self.goto("/");
        self.wait_for("form.login #username");
        self.type_into("#username", username);
        self.type_into("#password", PASSWORD);
        self.click("form.login button[type=submit]");
        self.wait_js(
            "the project list after log-in",
            "return location.pathname === '/' && !!document.querySelector('.topbar .user') \
             && !!document.querySelector('main h1');",
            vec![],
        );
    }

    /// Pairs of cards (and of columns) whose boxes overlap; empty is good.
    fn overlaps(&self) -> Value {
        self.js(
            r#"
            const found = [];
            for (const selector of ['.card', '.column']) {
              const items = Array.from(document.querySelectorAll(selector));
              const boxes = items.map((e) => e.getBoundingClientRect());
              for (let i = 0; i < boxes.length; i++) {
                for (let j = i + 1; j < boxes.length; j++) {
                  const a = boxes[i], b = boxes[j];
                  if (a.width === 0 || b.width === 0) continue;
                  if (a.left < b.right - 1 && b.left < a.right - 1 &&
                      a.top < b.bottom - 1 && b.top < a.bottom - 1) {
                    found.push([items[i].dataset.wp || items[i].dataset.lane,
                                items[j].dataset.wp || items[j].dataset.lane]);
                  }
                }
              }
            }
            return found;
            "#,
            vec![],
        )
    }

    fn assert_no_overlap(&self, view: &str) {
        let overlaps = self.overlaps();
        assert_eq!(overlaps, json!([]), "overlapping boxes on {view}");
    }

    /// How far the page is wider than the window (0 when it fits): a narrow
    /// window may scroll the columns sideways or stack them, never the page.
    fn page_overflow(&self) -> i64 {
        self.js(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .as_i64()
        .expect("a width")
    }

    fn assert_fits_width(&self, view: &str) {
        let overflow = self.page_overflow();
        if overflow > 0 {
            // Name the innermost elements that stick out, to say what to fix.
            let wide = self.js(
                r#"
                const w = document.documentElement.clientWidth;
                return [...document.querySelectorAll('body *')]
                  .filter(e => e.getBoundingClientRect().right > w + 1
                    && ![...e.children].some(c => c.getBoundingClientRect().right > w + 1))
                  .slice(0, 8)
                  .map(e => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className ? '.' + String(e.className).split(' ').join('.') : ''} right=${Math.round(e.getBoundingClientRect().right)}`);
                "#,
                vec![],
            );
            panic!("{view} is {overflow}px wider than the window: {wide}");
        }
    }

    /// `data-wp` of the cards in one column, top to bottom.
    fn cards_in(&self, lane: &str) -> Vec<String> {
        let value = self.js(
            "return Array.from(document.querySelectorAll(\
             '[data-lane=\"' + arguments[0] + '\"] [data-wp]')).map((c) => c.dataset.wp);",
            vec![json!(lane)],
        );
        serde_json::from_value(value).expect("a list of keys")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

// ---------------------------------------------------------------------------
// events, as a client sends them

fn stamp(minutes_ago: i64) -> String {
    let at = OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago);
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
    ))
    .expect("timestamp formats")
}

/// The event of `event_type` on `aggregate` (type, id) with `payload`, in
/// the protocol's own envelope, made `minutes_ago`.
fn envelope(
    project: &str,
    event_type: &str,
    aggregate: (&str, &str),
    payload: Value,
    lamport: u64,
    minutes_ago: i64,
) -> Value {
    let event = spec_kitty_protocol::Event {
        event_id: ulid::Ulid::new().to_string(),
        event_type: event_type.to_string(),
        aggregate_id: aggregate.1.to_string(),
        aggregate_type: Some(aggregate.0.to_string()),
        payload,
        timestamp: stamp(minutes_ago),
        node_id: "3f2a9c1b7d4e".to_string(),
        lamport_clock: lamport,
        causation_id: None,
        correlation_id: Some(ulid::Ulid::new().to_string()),
        project_uuid: project.to_string(),
        project_slug: Some("my-project".to_string()),
        team_slug: None,
        schema_version: spec_kitty_protocol::event::DEFAULT_SCHEMA_VERSION.to_string(),
        data_tier: 0,
        git_branch: Some("main".to_string()),
        head_commit_sha: None,
        repo_slug: None,
        extra: serde_json::Map::new(),
    };
    serde_json::to_value(event).expect("an Event always serializes")
}

fn feature_created(project: &str, slug: &str, wp_count: u64) -> Value {
    envelope(
        project,
        "FeatureCreated",
        ("Feature", slug),
        json!({"feature_slug": slug, "feature_number": &slug[..3],
               "target_branch": "main", "wp_count": wp_count}),
        1,
        120,
    )
}

fn wp_created(project: &str, feature: Option<&str>, wp_id: &str, title: &str) -> Value {
    envelope(
        project,
        "WPCreated",
        ("WorkPackage", wp_id),
        json!({"wp_id": wp_id, "title": title, "feature_slug": feature, "dependencies": []}),
        2,
        120,
    )
}

/// A `WPStatusChanged`; `change` is (from, to, actor).
fn status(
    project: &str,
    feature: Option<&str>,
    wp_id: &str,
    change: (&str, &str, &str),
    lamport: u64,
    minutes_ago: i64,
) -> Value {
    let (from, to, actor) = change;
    envelope(
        project,
        "WPStatusChanged",
        ("WorkPackage", wp_id),
        json!({
            "feature_slug": feature, "wp_id": wp_id, "from_lane": from, "to_lane": to,
            "actor": actor, "force": false, "reason": null, "execution_mode": "worktree",
            "review_ref": null, "evidence": null
        }),
        lamport,
        minutes_ago,
    )
}

fn post(server: &TestServer, token: &str, events: &[Value]) {
    let reply = server.post_batch(token, events);
    assert_eq!(reply.status, 200, "batch accepted: {}", reply.text);
    assert!(
        reply.statuses().iter().all(|s| s == "success"),
        "every event stored: {}",
        reply.text
    );
}

/// The project of the main scenario:
///
/// | lane       | cards                                                 |
/// |------------|-------------------------------------------------------|
/// | planned    | `039-x/WP01`, `/WP03` (no feature)                    |
/// | doing      | `040-y/WP01` (long title)                             |
/// | for_review | `039-x/WP04` (`approved`: a badge)                    |
/// | done       | `039-x/WP02`                                          |
fn seed_project(server: &TestServer, token: &str) -> String {
    let p = common::new_project();
    let p = p.as_str();
    let x = Some("039-x");
    let y = Some("040-y");
    post(
        server,
        token,
        &[
            feature_created(p, "039-x", 3),
            feature_created(p, "040-y", 1),
            wp_created(p, x, "WP01", "Sync the offline queue on start-up"),
            wp_created(p, x, "WP02", "Document the board"),
            wp_created(p, x, "WP04", "Retry uploads with back-off"),
            wp_created(
                p,
                y,
                "WP01",
                "A deliberately long title for a work package, so that the card has to \
                 clamp it to two lines and show the whole of it only on hover and in history",
            ),
            wp_created(p, None, "WP03", "Loose work package without a feature"),
            status(p, x, "WP02", ("planned", "done", "carol"), 3, 300),
            status(p, x, "WP04", ("planned", "approved", "dave"), 3, 90),
            status(p, y, "WP01", ("planned", "doing", "bob"), 3, 45),
        ],
    );
    p.to_string()
}

/// For the browser test `test`: a server (with the configuration `tweak`
/// makes) and team `team`; `None` when the browser tests are skipped.
fn browser_server(
    test: &str,
    team: &str,
    tweak: impl FnOnce(&mut spec_kitty_server::ServerConfig),
) -> Option<TestServer> {
    if !browser_wanted(test) {
        return None;
    }
    let server = TestServer::start_with(tweak);
    server.add_team(team);
    Some(server)
}

/// User `alice` in the existing team `acme`: her access token, and the
/// project of [`seed_project`].
fn seed_alice(server: &TestServer) -> (String, String) {
    let (token, _) = server.user_with_tokens("alice", "acme");
    let project = seed_project(server, &token);
    (token, project)
}

/// A browser on `server`, logged in as `username`.
fn logged_in(server: &TestServer, username: &str) -> Browser {
    let browser = Browser::start(&server.server.url);
    browser.log_in(username);
    browser
}

// ---------------------------------------------------------------------------
// the tests

/// The whole walk: log-in, projects, board, live moves without reload,
/// filter, history, dark mode, log-out.
#[test]
fn board_in_a_browser() {
    let Some(server) = browser_server("board_in_a_browser", "acme", |_| {}) else {
        return;
    };
    let (token, project) = seed_alice(&server);
    let board_path = format!("/projects/{project}");

    let browser = Browser::start(&server.server.url);

    // The log-in form.
    browser.goto("/");
    browser.wait_for("form.login");
    assert_eq!(browser.count("#username"), 1);
    assert_eq!(browser.count("#password"), 1);
    browser.shot("login-light");

    // A wrong password shows the form again, with a message.
    browser.type_into("#username", "alice");
    browser.type_into("#password", "not-the-password");
    browser.click("form.login button[type=submit]");
    browser.wait_for("form.login .error");
    assert_eq!(
        browser.value("#username").as_deref(),
        Some("alice"),
        "the username is kept"
    );
    browser.shot("login-error-light");

    // Log in: the project list with its lane counts.
    browser.log_in("alice");
    assert_eq!(browser.location(), "/");
    assert_eq!(browser.text(".topbar .user"), "alice");
    assert_eq!(browser.count("a.project"), 1, "one project");
    let legend = browser.js(
        "return Array.from(document.querySelectorAll('a.project .legend > span'))\
         .map((s) => s.textContent.trim());",
        vec![],
    );
    assert_eq!(
        legend,
        json!(["2 Planned", "1 Doing", "1 For review", "1 Done"]),
        "lane counts of the project"
    );
    browser.shot("projects-light");

    // The board.
    browser.click("a.project");
    browser.wait_for("#board");
    assert_eq!(browser.location(), board_path);
    for lane in ["planned", "doing", "for_review", "done"] {
        assert_eq!(
            browser.count(&format!("[data-lane=\"{lane}\"]")),
            1,
            "{lane}"
        );
    }
    assert_eq!(browser.cards_in("planned"), ["/WP03", "039-x/WP01"]);
    assert_eq!(browser.cards_in("doing"), ["040-y/WP01"]);
    assert_eq!(browser.cards_in("for_review"), ["039-x/WP04"]);
    assert_eq!(browser.cards_in("done"), ["039-x/WP02"]);
    assert_eq!(
        browser.text("[data-lane=\"for_review\"] [data-wp=\"039-x/WP04\"] .badge"),
        "approved"
    );
    assert_eq!(
        browser.text("[data-lane=\"planned\"] [data-wp=\"/WP03\"] .feature"),
        "(no feature)"
    );
    browser.wait_js(
        "the live indicator to say live",
        "return document.querySelector('.live').dataset.state === 'live';",
        vec![],
    );
    assert_eq!(browser.text(".live"), "Live");
    browser.assert_no_overlap("the board, wide");
    browser.shot("board-wide-light");

    // A move arrives from the stream and moves the card, without a reload.
    browser.js("window.__marker = 1; return true;", vec![]);
    let x = Some("039-x");
    // A lane change of 039-x/WP01, made now.
    let move_wp01 = |change: (&str, &str, &str), lamport: u64| {
        post(
            &server,
            &token,
            &[status(&project, x, "WP01", change, lamport, 0)],
        );
    };
    move_wp01(("planned", "doing", "alice"), 10);
    browser.wait_js(
        "039-x/WP01 in doing",
        "return !!document.querySelector('[data-lane=\"doing\"] [data-wp=\"039-x/WP01\"]');",
        vec![],
    );
    assert_eq!(browser.cards_in("planned"), ["/WP03"]);
    assert_eq!(browser.cards_in("doing"), ["039-x/WP01", "040-y/WP01"]);
    assert_eq!(
        browser.js("return window.__marker;", vec![]),
        json!(1),
        "the page was not reloaded"
    );
    let counts = browser.js(
        "return Array.from(document.querySelectorAll('[data-count]')).map((c) => c.textContent);",
        vec![],
    );
    assert_eq!(counts, json!(["1", "2", "1", "1"]), "column counts follow");
    assert_eq!(
        browser.text("[data-wp=\"039-x/WP01\"] .actor"),
        "alice",
        "the card shows who moved it"
    );

    // Blocked: still in doing, with a badge that says so.
    move_wp01(("doing", "blocked", "bob"), 11);
    browser.wait_js(
        "a blocked badge on 039-x/WP01",
        "const b = document.querySelector(\
         '[data-lane=\"doing\"] [data-wp=\"039-x/WP01\"] .badge');\
         return !!b && b.textContent.trim() === 'blocked';",
        vec![],
    );
    assert_eq!(browser.text("[data-wp=\"039-x/WP01\"] .actor"), "bob");
    assert_eq!(browser.js("return window.__marker;", vec![]), json!(1));
    // An event that loses to the winner (older Lamport clock) changes nothing.
    move_wp01(("doing", "done", "eve"), 5);
    browser.assert_no_overlap("the board after live moves");
    browser.shot("board-wide-live-light");
    browser.size(NARROW);
    browser.assert_no_overlap("the board, narrow");
    browser.assert_fits_width("the board, narrow");
    browser.shot("board-narrow-light");
    browser.size(WIDE);
    assert_eq!(browser.cards_in("doing"), ["039-x/WP01", "040-y/WP01"]);

    // The feature filter narrows the cards to one feature, in the URL.
    browser.js("window.__marker = 2; return true;", vec![]);
    let select = browser.find("select#feature");
    browser.run("select 040-y", select.select_by_value("040-y"));
    browser.wait_js(
        "the board filtered to 040-y",
        "return location.search.includes('feature=040-y') && \
         document.querySelectorAll('[data-wp]').length === 1;",
        vec![],
    );
    assert_eq!(browser.cards_in("doing"), ["040-y/WP01"]);
    assert_eq!(
        browser.count("[data-wp] .feature"),
        0,
        "no feature label while filtered"
    );
    assert_eq!(browser.text("[data-total]"), "1");
    browser.wait_js(
        "the filtered board to be live",
        "return document.querySelector('.live').dataset.state === 'live';",
        vec![],
    );
    // Live changes of other features stay out; this feature's come in.
    post(
        &server,
        &token,
        &[
            status(&project, x, "WP04", ("approved", "done", "dave"), 12, 0),
            status(
                &project,
                Some("040-y"),
                "WP01",
                ("doing", "for_review", "bob"),
                12,
                0,
            ),
        ],
    );
    browser.wait_js(
        "040-y/WP01 in for_review",
        "return !!document.querySelector('[data-lane=\"for_review\"] [data-wp=\"040-y/WP01\"]');",
        vec![],
    );
    assert_eq!(
        browser.count("[data-wp]"),
        1,
        "039-x's change stays off a board filtered to 040-y"
    );
    browser.shot("board-filtered-light");

    // History: the card links to its lane changes, newest first.
    browser.goto(&board_path);
    browser.wait_for("[data-wp=\"039-x/WP01\"]");
    browser.click("[data-wp=\"039-x/WP01\"]");
    browser.wait_for(".history table");
    assert!(
        browser
            .location()
            .starts_with(&format!("{board_path}/history?")),
        "history URL: {}",
        browser.location()
    );
    let rows = browser.js(
        "return Array.from(document.querySelectorAll('.history tbody tr')).map((r) => \
         Array.from(r.cells).slice(1, 3).map((c) => c.textContent.trim()));",
        vec![],
    );
    assert_eq!(
        rows,
        json!([
            ["doing → blocked", "bob"],
            ["planned → doing", "alice"],
            ["doing → done", "eve"],
            ["published", ""],
        ]),
        "the lane changes of 039-x/WP01, newest first by the winner rule"
    );
    browser.shot("history-light");

    // The same pages in dark mode.
    browser.color_scheme("dark");
    browser.shot("history-dark");
    browser.goto("/");
    browser.wait_for("a.project");
    browser.shot("projects-dark");
    browser.goto(&board_path);
    browser.wait_js(
        "the board to be live (dark)",
        "return document.querySelector('.live').dataset.state === 'live';",
        vec![],
    );
    browser.shot("board-wide-dark");
    browser.size(NARROW);
    browser.shot("board-narrow-dark");
    browser.size(WIDE);

    // Log out: back to the log-in form; the board now asks to log in.
    browser.click(".topbar form[action=\"/logout\"] button");
    browser.wait_js(
        "the log-in form after log-out",
        "return location.pathname === '/' && !!document.querySelector('form.login #username');",
        vec![],
    );
    browser.shot("login-dark");
    browser.goto(&board_path);
    browser.wait_for("form.login #username");
    assert_eq!(
        browser.location(),
        "/",
        "the board redirects to the log-in form"
    );
    browser.color_scheme("light");
}

/// The board without JavaScript: the server's HTML has every column and
/// card in place, for a plain HTTP client with the session cookie.
#[test]
fn board_renders_without_javascript() {
    let server = TestServer::start();
    server.add_team("acme");
    let (_, project) = seed_alice(&server);
    let agent = common::no_redirects();

    // Without a session the board sends the browser to the log-in form.
    let response = agent
        .get(server.url(&format!("/projects/{project}")))
        .call()
        .expect("the server answers");
    assert_eq!(response.status().as_u16() / 100, 3, "a redirect");
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/")
    );

    let response = agent
        .post(server.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("username=alice&password={PASSWORD}").as_bytes())
        .expect("the server answers");
    assert_eq!(response.status().as_u16(), 303, "log-in redirects");
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();

    let mut response = agent
        .get(server.url(&format!("/projects/{project}")))
        .header("Cookie", &cookie)
        .call()
        .expect("the server answers");
    assert_eq!(response.status().as_u16(), 200);
    let html = response.body_mut().read_to_string().expect("a page");

    let column = |lane: &str| {
        let start = html
            .find(&format!("data-lane=\"{lane}\""))
            .unwrap_or_else(|| panic!("column {lane} in the HTML"));
        let end = html[start..]
            .find("</section>")
            .map(|n| start + n)
            .expect("the column ends");
        &html[start..end]
    };
    let cards = |lane: &str| -> Vec<String> {
        column(lane)
            .split("data-wp=\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(cards("planned"), ["/WP03", "039-x/WP01"]);
    assert_eq!(cards("doing"), ["040-y/WP01"]);
    assert_eq!(cards("for_review"), ["039-x/WP04"]);
    assert_eq!(cards("done"), ["039-x/WP02"]);
    assert!(
        column("for_review").contains(">approved</span>"),
        "the badge"
    );
    assert!(
        html.contains("Sync the offline queue on start-up"),
        "titles are in the HTML"
    );
    assert!(
        html.contains("<option value=\"040-y\""),
        "the filter's options"
    );

    // The filter works as a plain GET form too.
    let mut response = agent
        .get(server.url(&format!("/projects/{project}?feature=039-x")))
        .header("Cookie", &cookie)
        .call()
        .expect("the server answers");
    let html = response.body_mut().read_to_string().expect("a page");
    assert!(html.contains("data-wp=\"039-x/WP01\""));
    assert!(!html.contains("data-wp=\"040-y/WP01\""), "filtered out");
    assert!(!html.contains("data-wp=\"/WP03\""), "filtered out");
}

/// Empty states and a big board: a team with no projects, a project with
/// no work packages, and 200 cards across 4 features (light and dark).
#[test]
fn empty_and_full_boards_in_a_browser() {
    let Some(server) = browser_server("empty_and_full_boards_in_a_browser", "big", |_| {}) else {
        return;
    };
    let (token, _) = server.user_with_tokens("erin", "big");
    let browser = Browser::start(&server.server.url);

    browser.log_in("erin");
    assert_eq!(browser.count("a.project"), 0);
    browser.wait_for(".empty");
    browser.shot("projects-empty-light");

    // A project with features but no work packages yet.
    let empty = common::new_project();
    let mut start = feature_created(&empty, "001-start", 0);
    start["project_slug"] = json!("fresh-project");
    post(&server, &token, &[start]);
    browser.goto(&format!("/projects/{empty}"));
    browser.wait_for("#empty-board");
    assert_eq!(browser.count("[data-wp]"), 0);
    browser.shot("board-empty-light");

    // 200 cards: 4 features of 50 work packages in every lane.
    let big = common::new_project();
    let features = [
        "041-offline-queue",
        "042-team-board-and-a-rather-long-feature-slug",
        "043-auth",
        "044-docs",
    ];
    let lanes = [
        "planned",
        "planned",
        "doing",
        "for_review",
        "done",
        "done",
        "blocked",
        "approved",
    ];
    let actors = ["alice", "bob", "claude-agent-7", "dave"];
    let mut events: Vec<Value> = features
        .iter()
        .map(|f| feature_created(&big, f, 50))
        .collect();
    for (fi, feature) in features.iter().enumerate() {
        for n in 1..=50usize {
            let wp = format!("WP{n:02}");
            let title = if n % 7 == 0 {
                format!(
                    "Work package {n} of {feature}, with a title long enough to need clamping \
                     to two lines on a card"
                )
            } else {
                format!("Work package {n}")
            };
            events.push(wp_created(&big, Some(feature), &wp, &title));
            let lane = lanes[(n + fi) % lanes.len()];
            if lane != "planned" {
                let minutes = i64::try_from(n * 37 + fi * 11).expect("small");
                events.push(status(
                    &big,
                    Some(feature),
                    &wp,
                    ("planned", lane, actors[n % actors.len()]),
                    3,
                    minutes,
                ));
            }
        }
    }
    for event in &mut events {
        event["project_slug"] = json!("big-board");
    }
    post(&server, &token, &events);

    browser.goto(&format!("/projects/{big}"));
    browser.wait_js(
        "the big board to be live",
        "return document.querySelector('.live').dataset.state === 'live';",
        vec![],
    );
    assert_eq!(browser.count("[data-wp]"), 200);
    assert_eq!(browser.text("[data-total]"), "200");
    let counted: usize = ["planned", "doing", "for_review", "done"]
        .iter()
        .map(|lane| browser.cards_in(lane).len())
        .sum();
    assert_eq!(counted, 200);
    browser.assert_no_overlap("the 200-card board");
    browser.shot("board-200-wide-light");
    browser.full_page_shot("board-200-full-light", WIDE.0);
    browser.size(NARROW);
    browser.assert_no_overlap("the 200-card board, narrow");
    let overflow = browser.page_overflow();
    browser.shot("board-200-narrow-light");
    // Scrolled down: the column headers must not sit on the cards.
    browser.js("window.scrollTo(0, 1500); return true;", vec![]);
    browser.shot("board-200-narrow-scrolled-light");
    browser.js("window.scrollTo(0, 0); return true;", vec![]);
    assert!(
        overflow <= 0,
        "the 200-card board, narrow, is {overflow}px wider than the window"
    );
    browser.size(WIDE);

    browser.goto("/");
    browser.wait_for("a.project");
    browser.shot("projects-two-light");

    browser.color_scheme("dark");
    browser.goto(&format!("/projects/{big}"));
    browser.wait_for("[data-wp]");
    browser.shot("board-200-wide-dark");
    browser.goto(&format!("/projects/{empty}"));
    browser.wait_for("#empty-board");
    browser.shot("board-empty-dark");
}

/// The Tokens page: a token is made (and shown once), works as a Bearer,
/// and is revoked from the page; a form posted without a session is
/// refused and changes nothing.
#[test]
fn tokens_page_in_a_browser() {
    let Some(server) = browser_server("tokens_page_in_a_browser", "acme", |_| {}) else {
        return;
    };
    server.add_user("alice", "acme");
    let browser = logged_in(&server, "alice");
    browser.click(".topbar a[href='/tokens']");
    browser.wait_for("form.tokenform");
    assert_eq!(browser.location(), "/tokens");
    assert_eq!(browser.count("#tokens tbody tr"), 0, "no tokens yet");
    browser.shot("tokens-empty-light");

    browser.type_into("#name", "ci on build-3");
    browser.click("form.tokenform button[type=submit]");
    browser.wait_for("#new-token");
    let token = browser.text("#new-token");
    assert!(token.starts_with("skp_"), "{token}");
    assert_eq!(browser.count("#tokens tbody tr"), 1);
    assert_eq!(
        browser.text("#tokens tbody tr td:first-child"),
        "ci on build-3"
    );
    browser.page_shots("tokens-created", "the Tokens page");

    let health = server.get("/api/v1/sync/health/", Some(&token));
    assert_eq!(health.status, 200, "{}", health.text);

    // Shown once: the list again has no token in it.
    browser.goto("/tokens");
    browser.wait_for("form.tokenform");
    assert_eq!(browser.count("#new-token"), 0);
    let page = browser.js("return document.documentElement.outerHTML;", vec![]);
    assert!(
        !page.to_string().contains(&token[4..]),
        "the token is not on the page again"
    );
    assert_eq!(browser.text("#tokens tbody .badge"), "active");

    // A form posted without a session: refused, nothing made or revoked.
    let id = browser
        .js(
            "return document.querySelector('#tokens tbody tr').dataset.id;",
            vec![],
        )
        .as_str()
        .expect("an id")
        .to_string();
    for (path, body) in [
        ("/tokens".to_string(), "name=sneaky&expires=30"),
        (format!("/tokens/{id}/revoke"), ""),
    ] {
        let mut reply = common::agent()
            .post(server.url(&path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body)
            .expect("answered");
        assert_eq!(reply.status().as_u16(), 401, "{path}");
        let text = reply.body_mut().read_to_string().unwrap_or_default();
        assert!(text.contains("Log in first"), "{text}");
    }
    assert_eq!(
        server.get("/api/v1/sync/health/", Some(&token)).status,
        200,
        "still live"
    );
    browser.goto("/tokens");
    browser.wait_for("form.tokenform");
    assert_eq!(browser.count("#tokens tbody tr"), 1, "nothing made");

    browser.click("#tokens tbody form button");
    browser.wait_js(
        "the token shown revoked",
        "const b = document.querySelector('#tokens tbody .badge'); return b && b.textContent === 'revoked';",
        vec![],
    );
    assert_eq!(
        browser.count("#tokens tbody form"),
        0,
        "no Revoke on a revoked token"
    );
    browser.shot("tokens-revoked-light");
    let health = server.get("/api/v1/sync/health/", Some(&token));
    assert_eq!(health.status, 401, "{}", health.text);
}

/// The device flow's page: a code's complete URL opened logged out asks to
/// log in, comes back with the code, shows what asks for access, and
/// Approve hands the polling client its session.
#[test]
fn device_page_in_a_browser() {
    let Some(server) = browser_server("device_page_in_a_browser", "acme", |c| {
        c.limits.device_poll_interval = 1
    }) else {
        return;
    };
    server.add_user("alice", "acme");
    let post = |path: &str, body: Value| server.post_json(path, &body);
    let (status, code) = post(
        "/api/v1/device/code/",
        json!({"client_name": "spec-kitty 0.1.0 on build-3"}),
    );
    assert_eq!(status, 200, "{code}");
    let complete = code["verification_uri_complete"]
        .as_str()
        .expect("complete URL")
        .to_string();
    let user_code = code["user_code"].as_str().expect("user code").to_string();

    let browser = Browser::start(&server.server.url);
    let path = complete
        .strip_prefix(&server.server.url)
        .expect("a URL of this server")
        .to_string();
    browser.goto(&path);
    browser.wait_for("form.login #username");
    browser.type_into("#username", "alice");
    browser.type_into("#password", PASSWORD);
    browser.click("form.login button[type=submit]");
    browser.wait_for("#approve");
    assert_eq!(
        browser.location(),
        path,
        "back at the code after logging in"
    );
    assert_eq!(browser.text("#device-code"), user_code);
    assert_eq!(
        browser.text("#device-client"),
        "spec-kitty 0.1.0 on build-3"
    );
    assert_eq!(browser.text("#device-address"), "127.0.0.1");
    browser.shot("device-confirm-light");
    browser.color_scheme("dark");
    browser.shot("device-confirm-dark");
    browser.color_scheme("light");

    let poll = || {
        post(
            "/api/v1/device/token/",
            json!({"device_code": code["device_code"]}),
        )
    };
    assert_eq!(poll().1, json!({"error": "authorization_pending"}));
    browser.click("#approve");
    browser.wait_js(
        "the approval page",
        "return document.body.textContent.includes('Device connected');",
        vec![],
    );
    browser.shot("device-approved-light");
    let (status, tokens) = poll();
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["team_slug"], "acme");

    // The code form, with a wrong code.
    browser.goto("/device");
    browser.wait_for("form.device #code");
    browser.type_into("#code", "bbbb-bbbb");
    browser.click("form.device button[type=submit]");
    browser.wait_for("form.device .error");
    browser.shot("device-wrong-code-light");
    browser.size(NARROW);
    browser.assert_fits_width("the Device page, narrow");
    browser.shot("device-wrong-code-narrow-light");
    browser.size(WIDE);
}

/// The Sessions page: a device signed in through the API is listed;
/// Revoke ends its family (its refresh is refused) and "Sign out
/// everywhere" ends the rest and the page's own session.
#[test]
fn sessions_page_in_a_browser() {
    let Some(server) = browser_server("sessions_page_in_a_browser", "acme", |_| {}) else {
        return;
    };
    let (_, laptop) = server.user_with_tokens("alice", "acme");
    let (_, desktop) = common::login_ok(&server.agent, &server.server.url, "alice", PASSWORD);
    let browser = logged_in(&server, "alice");
    browser.click(".topbar a[href='/sessions']");
    browser.wait_for("#sessions");
    assert_eq!(
        browser.count("#sessions tbody tr"),
        2,
        "two signed-in devices"
    );
    assert!(
        browser
            .text("#sessions tbody tr td:nth-child(2)")
            .contains("127.0.0.1")
    );
    browser.page_shots("sessions", "the Sessions page");

    // Revoke the newest (the desktop's log-in): its refresh is refused.
    browser.click("#sessions tbody tr form button");
    browser.wait_js(
        "one session left",
        "return document.querySelectorAll('#sessions tbody tr').length === 1;",
        vec![],
    );
    let refused = common::refresh(&server.agent, &server.server.url, &desktop);
    assert_eq!(refused.status, 401, "{}", refused.text);
    let still = common::refresh(&server.agent, &server.server.url, &laptop);
    assert_eq!(
        still.status, 200,
        "the other device is untouched: {}",
        still.text
    );
    let laptop = still.json()["refresh"]
        .as_str()
        .expect("rotated")
        .to_string();

    browser.click("#sign-out-everywhere");
    browser.wait_for("form.login #username");
    browser.shot("sessions-signed-out-light");
    let refused = common::refresh(&server.agent, &server.server.url, &laptop);
    assert_eq!(refused.status, 401, "{}", refused.text);
}
