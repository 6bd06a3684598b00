//! Every `Store` operation, run against each backend: SQLite always, and
//! PostgreSQL when `SPEC_KITTY_TEST_DATABASE_URL` is set (CI sets it), so
//! the SQL of the two backends cannot drift apart.

use crate::pg_support;

use std::sync::Arc;

use spec_kitty_server::store::{
    self, IncomingEvent, IngestOutcome, NewRefresh, Reservation, RotateOutcome, Sender, Store,
    StoreError, ThrottleKey,
};

/// Keeps a backend's files or database alive for the test.
#[allow(dead_code)]
enum Guard {
    Dir(tempfile::TempDir),
    Db(pg_support::TempDb),
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `check` once per available backend.
fn for_each_backend<F, Fut>(check: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let mut backends = vec![(url, Guard::Dir(dir))];
    if let Some(db) = pg_support::TempDb::create() {
        backends.push((db.url.clone(), Guard::Db(db)));
    }
    for (url, guard) in backends {
        let store = rt.block_on(store::open(&url)).expect("store opens");
        rt.block_on(check(Arc::clone(&store)));
        drop(store);
        drop(guard);
    }
}

async fn team_and_user(store: &Arc<dyn Store>, team: &str, user: &str) -> i64 {
    if !store
        .list_teams()
        .await
        .expect("teams")
        .iter()
        .any(|t| t.slug == team)
    {
        store.create_team(team).await.expect("team");
    }
    store.create_user(user, "hash", team).await.expect("user");
    store
        .find_user(user)
        .await
        .expect("find")
        .expect("exists")
        .id
}

/// The stored/duplicate flags of an ingest answer (`None` when refused).
fn flags(outcome: &IngestOutcome) -> Option<Vec<bool>> {
    match outcome {
        IngestOutcome::Stored { flags, .. } => Some(flags.clone()),
        IngestOutcome::Forbidden(_) => None,
    }
}

fn event(id: &str, project: &str, team: Option<&str>) -> IncomingEvent {
    IncomingEvent {
        event_id: id.to_string(),
        event_type: "WPStatusChanged".into(),
        aggregate_id: "001-f/WP01".into(),
        project_uuid: project.to_string(),
        project_slug: Some("proj".into()),
        team: team.map(str::to_string),
        node_id: "abcdef123456".into(),
        lamport: 1,
        timestamp: "2026-01-01T00:00:00+00:00".into(),
        lane: Some("doing"),
        body: format!("{{\"event_id\":\"{id}\"}}"),
        fact: None,
    }
}

fn sender(user_id: i64, name: &str, team: &str) -> Sender {
    Sender {
        user_id,
        username: name.into(),
        team: Some(team.into()),
    }
}

#[test]
fn teams_and_users() {
    for_each_backend(|store| async move {
        store.create_team("acme").await.expect("team");
        assert!(matches!(
            store.create_team("acme").await,
            Err(StoreError::Conflict(_))
        ));
        store
            .create_user("alice", "h1", "acme")
            .await
            .expect("user");
        assert!(matches!(
            store.create_user("alice", "h2", "acme").await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.create_user("bob", "h", "nope").await,
            Err(StoreError::NotFound(_))
        ));
        let alice = store
            .find_user("alice")
            .await
            .expect("find")
            .expect("exists");
        assert_eq!(
            (
                alice.password_hash.as_str(),
                alice.team.as_deref(),
                alice.disabled
            ),
            ("h1", Some("acme"), false)
        );
        assert_eq!(
            store
                .user_by_id(alice.id)
                .await
                .expect("by id")
                .map(|u| u.username),
            Some("alice".into())
        );
        assert!(store.find_user("nobody").await.expect("find").is_none());
        assert!(store.is_member(alice.id, "acme").await.expect("member"));

        store.create_team("other").await.expect("team");
        store.add_member("other", "alice").await.expect("add");
        assert!(matches!(
            store.add_member("other", "alice").await,
            Err(StoreError::Conflict(_))
        ));
        let users = store.list_users().await.expect("users");
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].member_of, ["acme", "other"]);
        let teams = store.list_teams().await.expect("teams");
        assert_eq!(
            teams.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
            ["acme", "other"]
        );
        assert_eq!(teams[0].members, ["alice"]);

        store.remove_member("acme", "alice").await.expect("remove");
        assert!(!store.is_member(alice.id, "acme").await.expect("member"));
        assert!(matches!(
            store.remove_member("acme", "alice").await,
            Err(StoreError::NotFound(_))
        ));

        store.disable_user("alice").await.expect("disable");
        assert!(
            store
                .find_user("alice")
                .await
                .expect("find")
                .expect("exists")
                .disabled
        );
        assert!(matches!(
            store.disable_user("ghost").await,
            Err(StoreError::NotFound(_))
        ));
    });
}

/// A refresh token `jti` of `family` for `user_id`, expiring at `expires_at`.
fn refresh_token(jti: &str, family: &str, user_id: i64, expires_at: i64) -> NewRefresh {
    NewRefresh {
        jti: jti.into(),
        family: family.into(),
        user_id,
        expires_at,
    }
}

#[test]
fn refresh_rotation_and_reuse() {
    for_each_backend(|store| async move {
        let uid = team_and_user(&store, "acme", "alice").await;
        let token =
            |jti: &str, family: &str, expires_at: i64| refresh_token(jti, family, uid, expires_at);
        // Presents `old` to be replaced by `new`, at time 1000 without a
        // grace window; `what` names the step if the store fails.
        let rotate = |old: &'static str, new: NewRefresh, what: &'static str| {
            let store = Arc::clone(&store);
            async move { store.rotate_refresh(old, new, 1_000, 0).await.expect(what) }
        };
        store
            .insert_refresh(token("r1", "fam", 2_000))
            .await
            .expect("insert");
        for (old, new, what, outcome) in [
            ("r1", "r2", "rotate", RotateOutcome::Rotated),
            ("r2", "r3", "rotate", RotateOutcome::Rotated),
            // r1 was retired: presenting it again revokes the family, r3
            // included.
            ("r1", "x", "reuse", RotateOutcome::Reused),
            ("r3", "r4", "revoked", RotateOutcome::Revoked),
            ("nope", "r5", "unknown", RotateOutcome::Unknown),
        ] {
            assert_eq!(
                rotate(old, token(new, "fam", 2_000), what).await,
                outcome,
                "{old} -> {new}"
            );
        }

        // Expired.
        store
            .insert_refresh(token("e1", "fam2", 500))
            .await
            .expect("insert");
        assert_eq!(
            rotate("e1", token("e2", "fam2", 3_000), "expired").await,
            RotateOutcome::Revoked
        );

        // Its user disabled.
        store
            .insert_refresh(token("d1", "fam3", 5_000))
            .await
            .expect("insert");
        store.disable_user("alice").await.expect("disable");
        assert_eq!(
            rotate("d1", token("d2", "fam3", 5_000), "disabled").await,
            RotateOutcome::Revoked
        );
    });
}

#[test]
fn a_just_retired_refresh_token_is_regranted_within_the_grace_window() {
    for_each_backend(|store| async move {
        let uid = team_and_user(&store, "acme", "alice").await;
        // Presents `old` of `family`, to be replaced by `new`, at `now`
        // with a grace window of 30 s.
        let rotate = |family: &'static str, old: &'static str, new: &'static str, now: i64| {
            let store = Arc::clone(&store);
            let new = refresh_token(new, family, uid, 5_000);
            async move {
                store
                    .rotate_refresh(old, new, now, 30)
                    .await
                    .expect("rotate")
            }
        };
        store
            .insert_refresh(refresh_token("g1", "fam", uid, 5_000))
            .await
            .expect("insert");
        let fam = |old, new, now| rotate("fam", old, new, now);
        assert_eq!(fam("g1", "g2", 1_000).await, RotateOutcome::Rotated);
        // The answer was lost: g1 again, 10 s later, gets a new token and
        // revokes nothing.
        assert_eq!(fam("g1", "g2b", 1_010).await, RotateOutcome::Regranted);
        assert_eq!(fam("g2", "g3", 1_011).await, RotateOutcome::Rotated);
        // g2 is used now, so g1 is no longer the latest retired: a replay.
        assert_eq!(fam("g1", "x", 1_012).await, RotateOutcome::Reused);
        assert_eq!(fam("g3", "y", 1_013).await, RotateOutcome::Revoked);

        store
            .insert_refresh(refresh_token("h1", "fam2", uid, 5_000))
            .await
            .expect("insert");
        let fam2 = |old, new, now| rotate("fam2", old, new, now);
        assert_eq!(fam2("h1", "h2", 2_000).await, RotateOutcome::Rotated);
        // Past the window: reuse detection as ever.
        assert_eq!(fam2("h1", "h3", 2_030).await, RotateOutcome::Reused);
        assert_eq!(fam2("h2", "h4", 2_031).await, RotateOutcome::Revoked);
    });
}

#[test]
fn login_attempts_are_reserved_against_every_key_and_released_on_success() {
    for_each_backend(|store| async move {
        let keys = vec![
            ThrottleKey {
                key: "user-addr:alice|127.0.0.1".into(),
                limit: 2,
            },
            ThrottleKey {
                key: "addr:127.0.0.1".into(),
                limit: 3,
            },
        ];
        let names: Vec<String> = keys.iter().map(|k| k.key.clone()).collect();
        let reserve = |now| {
            let (store, keys) = (Arc::clone(&store), keys.clone());
            async move {
                store
                    .reserve_login_attempt(&keys, now, 100)
                    .await
                    .expect("reserve")
            }
        };
        assert_eq!(reserve(1_000).await, Reservation::Granted);
        assert_eq!(reserve(1_010).await, Reservation::Granted);
        // Two failures counted: the first key is at its limit until the
        // oldest leaves the window.
        assert_eq!(
            reserve(1_020).await,
            Reservation::Throttled { retry_after: 80 }
        );
        // A success takes its own attempt back and clears the first key.
        store
            .release_login_attempt(&names, 1_010, Some(&names[0]))
            .await
            .expect("release");
        assert_eq!(reserve(1_030).await, Reservation::Granted);
        assert_eq!(reserve(1_040).await, Reservation::Granted);
        // Both keys are now at their limits; the later wait wins.
        assert_eq!(
            reserve(1_050).await,
            Reservation::Throttled { retry_after: 80 }
        );
        // Past the window, everything is forgotten.
        assert_eq!(reserve(1_200).await, Reservation::Granted);
    });
}

#[test]
fn ingest_success_duplicates_and_permissions() {
    for_each_backend(|store| async move {
        let alice = team_and_user(&store, "acme", "alice").await;
        let bob = team_and_user(&store, "rivals", "bob").await;
        let p1 = "550e8400-e29b-41d4-a716-446655440000";
        let p2 = "550e8400-e29b-41d4-a716-446655440001";

        let first = store
            .ingest(
                &sender(alice, "alice", "acme"),
                vec![
                    event("e1", p1, None),
                    event("e2", p1, Some("acme")),
                    event("e1", p1, None),
                ],
                1,
            )
            .await
            .expect("ingest");
        assert_eq!(flags(&first), Some(vec![true, true, false]));
        let again = store
            .ingest(
                &sender(alice, "alice", "acme"),
                vec![event("e2", p1, None), event("e3", p1, None)],
                2,
            )
            .await
            .expect("ingest");
        assert_eq!(flags(&again), Some(vec![false, true]));
        assert_eq!(store.event_count().await.expect("count"), 3);

        // Bob may not write for acme; nothing of the batch is kept.
        let foreign = store
            .ingest(
                &sender(bob, "bob", "rivals"),
                vec![event("b1", p2, None), event("b2", p1, Some("acme"))],
                3,
            )
            .await
            .expect("ingest");
        assert!(
            matches!(&foreign, IngestOutcome::Forbidden(m) if m.contains("acme") && m.contains("proj")),
            "{foreign:?}"
        );
        assert_eq!(store.event_count().await.expect("count"), 3);
        // Acme's uuid sent for Bob's own team is a project of Bob's team
        // (projects are keyed by team: contract section 2).
        let own_copy = store
            .ingest(
                &sender(bob, "bob", "rivals"),
                vec![event("b3", p1, None)],
                3,
            )
            .await
            .expect("ingest");
        assert_eq!(flags(&own_copy), Some(vec![true]));
        let theirs = store.team_project("rivals", p1).await.expect("lookup");
        let ours = store.team_project("acme", p1).await.expect("lookup");
        assert!(
            matches!((&theirs, &ours), (Some(t), Some(o)) if t.id != o.id),
            "two projects: {theirs:?} {ours:?}"
        );
        assert_eq!(store.event_count().await.expect("count"), 4);
        let fresh = store
            .ingest(
                &sender(bob, "bob", "rivals"),
                vec![event("b1", p2, None)],
                3,
            )
            .await
            .expect("ingest");
        // The refused batch registered nothing: p2 is free for Bob's team.
        assert_eq!(flags(&fresh), Some(vec![true]));

        // Naming a team the sender is not in is refused too.
        let named = store
            .ingest(
                &sender(alice, "alice", "acme"),
                vec![event("a9", p1, Some("rivals"))],
                4,
            )
            .await
            .expect("ingest");
        assert!(matches!(named, IngestOutcome::Forbidden(_)));

        // An empty batch still checks membership (the probe relies on it).
        assert_eq!(
            store
                .ingest(&sender(alice, "alice", "acme"), vec![], 5)
                .await
                .expect("empty"),
            IngestOutcome::Stored {
                flags: vec![],
                advances: vec![]
            }
        );
        store.remove_member("acme", "alice").await.expect("remove");
        assert!(matches!(
            store
                .ingest(&sender(alice, "alice", "acme"), vec![], 6)
                .await
                .expect("empty"),
            IngestOutcome::Forbidden(_)
        ));
        let no_team = Sender {
            user_id: alice,
            username: "alice".into(),
            team: None,
        };
        assert!(matches!(
            store.ingest(&no_team, vec![], 7).await.expect("none"),
            IngestOutcome::Forbidden(_)
        ));
        assert_eq!(store.event_count().await.expect("count"), 5);
    });
}

#[test]
fn signing_key_is_shared_only_by_the_database_backend() {
    for_each_backend(|store| async move {
        let first = store.shared_signing_key(&[7u8; 64]).await.expect("key");
        let second = store.shared_signing_key(&[9u8; 64]).await.expect("key");
        match store.backend() {
            "sqlite" => assert_eq!((first, second), (None, None)),
            _ => {
                assert_eq!(first.as_deref(), Some(&[7u8; 64][..]));
                assert_eq!(second, first, "the first key stays");
            }
        }
    });
}

#[test]
fn usernames_fold_case_and_admin_changes_users_and_teams() {
    for_each_backend(|store| async move {
        let alice = team_and_user(&store, "acme", "Alice").await;
        let found = store
            .find_user("ALICE")
            .await
            .expect("find")
            .expect("found");
        assert_eq!((found.id, found.username.as_str()), (alice, "alice"));
        assert!(matches!(
            store.create_user("alice", "hash", "acme").await,
            Err(StoreError::Conflict(_))
        ));

        // Leaving one's own team moves it to another team of theirs, or none.
        store.create_team("other").await.expect("team");
        store.add_member("other", "alice").await.expect("member");
        store.remove_member("acme", "aLiCe").await.expect("removed");
        let user = store.user_by_id(alice).await.expect("read").expect("user");
        assert_eq!(user.team.as_deref(), Some("other"));
        store
            .remove_member("other", "alice")
            .await
            .expect("removed");
        let user = store.user_by_id(alice).await.expect("read").expect("user");
        assert_eq!(user.team, None);

        store.disable_user("alice").await.expect("disable");
        store.enable_user("ALICE").await.expect("enable");
        assert!(
            !store
                .user_by_id(alice)
                .await
                .expect("read")
                .expect("user")
                .disabled
        );
        store
            .set_password("alice", "new-hash")
            .await
            .expect("passwd");
        let user = store.find_user("alice").await.expect("read").expect("user");
        assert_eq!(user.password_hash, "new-hash");

        // A team with a project cannot be removed; an empty one can.
        let bob = team_and_user(&store, "acme", "bob").await;
        let outcome = store
            .ingest(
                &sender(bob, "bob", "acme"),
                vec![event(
                    "01HV5Z3K8Y6Q2W9E4R7T1N0M3P",
                    "550e8400-e29b-41d4-a716-446655440000",
                    None,
                )],
                1,
            )
            .await
            .expect("ingest");
        assert!(flags(&outcome).is_some(), "{outcome:?}");
        assert!(matches!(
            store.remove_team("acme").await,
            Err(StoreError::Conflict(_))
        ));
        store.add_member("other", "bob").await.expect("member");
        store.remove_team("other").await.expect("removed");
        let teams: Vec<String> = store
            .list_teams()
            .await
            .expect("teams")
            .into_iter()
            .map(|t| t.slug)
            .collect();
        assert_eq!(teams, ["acme"]);
        let bob_now = store.user_by_id(bob).await.expect("read").expect("user");
        assert_eq!(
            bob_now.team.as_deref(),
            Some("acme"),
            "bob's own team stays"
        );

        store.remove_user("Bob").await.expect("removed");
        assert!(store.find_user("bob").await.expect("read").is_none());
        assert_eq!(store.event_count().await.expect("count"), 1, "events stay");
        assert!(matches!(
            store.remove_user("bob").await,
            Err(StoreError::NotFound(_))
        ));
    });
}
