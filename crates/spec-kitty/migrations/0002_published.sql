-- What this machine has told the board about each project (schema version 2).
-- Shipped: never edit; add 0003_*.sql and list it in src/queue/schema.rs.
--
-- A feature is published once FeatureCreated/WPCreated events for it were
-- queued; move-task checks this (one primary-key lookup) before each move.
CREATE TABLE published_features (
    project_uuid TEXT NOT NULL,
    feature_slug TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (project_uuid, feature_slug)
) WITHOUT ROWID;
-- A work package whose lane this machine has already queued a
-- WPStatusChanged for: publish never queues a first lane change for it again.
CREATE TABLE status_sent (
    project_uuid TEXT NOT NULL,
    feature_slug TEXT NOT NULL,
    wp_id TEXT NOT NULL,
    first_event_id TEXT NOT NULL,
    PRIMARY KEY (project_uuid, feature_slug, wp_id)
) WITHOUT ROWID;
