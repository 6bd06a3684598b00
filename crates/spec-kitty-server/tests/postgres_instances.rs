//! Two server instances on one PostgreSQL database behave as one server.
//!
//! These tests need `SPEC_KITTY_TEST_DATABASE_URL` (CI always sets it, see
//! `scripts/test`); without it they say so and return.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{PASSWORD, PgPair};
use serde_json::{Value, json};
use spec_kitty_server::{BackgroundServer, admin};

/// Two instances on one database, with alice in team `acme`. No refresh
/// grace window: a retired token is a replay at once, so reuse detection
/// across instances is what the tests see.
fn pair() -> Option<PgPair> {
    common::pg_pair(|config| config.limits.refresh_grace = 0)
}

fn agent() -> ureq::Agent {
    common::agent_with_timeout(Duration::from_secs(30))
}

fn post(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = agent().post(url).header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.send(body.to_string()).expect("request answered");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn login(server: &BackgroundServer, user: &str) -> Value {
    let (status, body) = post(
        &format!("{}/api/v1/token/", server.url),
        None,
        &json!({"username": user, "password": PASSWORD}),
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn refresh(server: &BackgroundServer, token: &Value) -> (u16, Value) {
    post(
        &format!("{}/api/v1/token/refresh/", server.url),
        None,
        &json!({"refresh": token}),
    )
}

#[test]
fn log_in_on_one_refresh_on_the_other_and_reuse_revokes_the_family_everywhere() {
    let Some(p) = pair() else { return };
    let tokens = login(&p.a, "alice");
    let (status, rotated) = refresh(&p.b, &tokens["refresh"]);
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["refresh"], tokens["refresh"]);

    // The access token of one instance works on the other: one signing key.
    let mut health = agent()
        .get(&format!("{}/api/v1/sync/health/", p.a.url))
        .header(
            "Authorization",
            format!("Bearer {}", rotated["access"].as_str().expect("access")),
        )
        .call()
        .expect("answered");
    assert_eq!(health.status().as_u16(), 200);
    let body: Value =
        serde_json::from_str(&health.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(body["user"], "alice");

    // Presenting the retired token on A revokes the family, B's new one too.
    assert_eq!(refresh(&p.a, &tokens["refresh"]).0, 401);
    assert_eq!(refresh(&p.b, &rotated["refresh"]).0, 401);
}

#[test]
fn users_added_through_one_are_seen_by_the_other() {
    let Some(p) = pair() else { return };
    p.a.block_on(admin::add_user(&p.a.store, "carol", PASSWORD, "acme"))
        .expect("user");
    let tokens = login(&p.b, "carol");
    assert_eq!(tokens["team_slug"], "acme");
    p.b.block_on(p.b.store.disable_user("carol"))
        .expect("disable");
    let (status, _) = post(
        &format!("{}/api/v1/token/", p.a.url),
        None,
        &json!({"username": "carol", "password": PASSWORD}),
    );
    assert_eq!(status, 401);
}

fn events(count: usize) -> Vec<Value> {
    let project = uuid::Uuid::new_v4().to_string();
    (0..count)
        .map(|i| {
            json!({
                "event_id": ulid::Ulid::new().to_string(),
                "event_type": "WPStatusChanged",
                "aggregate_id": format!("001-f/WP{:02}", i % 90 + 10),
                "payload": {"feature_slug": "001-f", "wp_id": format!("WP{:02}", i % 90 + 10),
                            "from_lane": "planned", "to_lane": "doing", "actor": "alice"},
                "timestamp": "2026-11-28T10:00:00+00:00",
                "node_id": "abcdef123456",
                "lamport_clock": i,
                "project_uuid": project,
                "project_slug": "proj",
            })
        })
        .collect()
}

#[test]
fn the_same_events_sent_to_both_at_once_are_stored_once() {
    let Some(p) = pair() else { return };
    let token = login(&p.a, "alice")["access"]
        .as_str()
        .expect("access")
        .to_string();
    let batch = json!({"events": events(1000)});
    let urls: Vec<String> = [&p.a, &p.b, &p.a, &p.b]
        .iter()
        .map(|s| format!("{}/api/v1/events/batch/", s.url))
        .collect();
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = urls
            .iter()
            .map(|url| scope.spawn(|| post(url, Some(&token), &batch)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sender"))
            .collect()
    });
    let mut successes: HashMap<String, usize> = HashMap::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), 1000);
        for result in results {
            let id = result["event_id"].as_str().expect("id").to_string();
            match result["status"].as_str() {
                Some("success") => *successes.entry(id).or_default() += 1,
                Some("duplicate") => {
                    successes.entry(id).or_default();
                }
                other => panic!("unexpected status {other:?}"),
            }
        }
    }
    assert_eq!(successes.len(), 1000);
    assert!(
        successes.values().all(|&n| n == 1),
        "every event reported success exactly once"
    );
    assert_eq!(p.a.block_on(p.a.store.event_count()).expect("count"), 1000);
}
