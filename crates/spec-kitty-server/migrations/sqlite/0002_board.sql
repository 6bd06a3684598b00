-- 2: the team board (contract section 8).
--
-- Projects are keyed by team and uuid (contract section 2): the uuid is
-- public in a repository, so another team sending it gets a project of its
-- own. SQLite cannot change a UNIQUE constraint in place: the table is
-- rebuilt (nothing references it yet).
CREATE TABLE projects_by_team (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL,
    slug TEXT,
    team_id INTEGER NOT NULL REFERENCES teams(id),
    created_at INTEGER NOT NULL,
    -- The number of the project's last stored event: events are numbered
    -- per project in commit order (the event feed's cursor).
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_event_at TEXT,
    UNIQUE (team_id, uuid)
);
INSERT INTO projects_by_team (id, uuid, slug, team_id, created_at)
    SELECT id, uuid, slug, team_id, created_at FROM projects;
DROP TABLE projects;
ALTER TABLE projects_by_team RENAME TO projects;

ALTER TABLE events ADD COLUMN pseq INTEGER;
ALTER TABLE events ADD COLUMN wp_id TEXT;
ALTER TABLE events ADD COLUMN feature_key TEXT;
-- Events stored before have a number in storage order (one writer: the
-- same as commit order).
UPDATE events SET pseq = seq;
UPDATE projects SET last_seq = coalesce((SELECT max(pseq) FROM events e WHERE e.project_id = projects.id), 0);
CREATE INDEX events_feed ON events(project_id, pseq);
-- A work package's history is read through events_feed (its project's
-- events) and filtered: an index of its own cost ingest a third of its
-- speed, for a page opened now and then.

-- The projection: one row per feature and per work package, with the key
-- of the winning event of each kind (`(lamport, node, event)`).
CREATE TABLE board_features (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    feature_key TEXT NOT NULL,
    PRIMARY KEY (project_id, feature_key)
);
CREATE TABLE board_cards (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    feature_key TEXT NOT NULL,
    wp_id TEXT NOT NULL,
    lane TEXT,
    raw_lane TEXT,
    actor TEXT,
    updated_at TEXT,
    s_lamport INTEGER,
    s_node TEXT,
    s_event TEXT,
    title TEXT,
    dependencies TEXT NOT NULL DEFAULT '[]',
    c_lamport INTEGER,
    c_node TEXT,
    c_event TEXT,
    changed_seq INTEGER NOT NULL,
    PRIMARY KEY (project_id, feature_key, wp_id)
);
CREATE INDEX board_cards_changed ON board_cards(project_id, changed_seq);

-- Browser sessions: only a hash of each session id.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    team TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
