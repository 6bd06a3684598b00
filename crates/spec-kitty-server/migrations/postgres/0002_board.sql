-- 2: the team board (contract section 8).
--
-- Projects are keyed by team and uuid (contract section 2): the uuid is
-- public in a repository, so another team sending it gets a project of its
-- own.
ALTER TABLE projects DROP CONSTRAINT projects_uuid_key;
ALTER TABLE projects ADD CONSTRAINT projects_team_uuid UNIQUE (team_id, uuid);
-- The number of the project's last stored event: events are numbered per
-- project in commit order (the ingest transaction locks the project row).
ALTER TABLE projects ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN last_event_at TEXT;

ALTER TABLE events ADD COLUMN pseq BIGINT;
ALTER TABLE events ADD COLUMN wp_id TEXT;
ALTER TABLE events ADD COLUMN feature_key TEXT;
-- Events stored before get numbers in storage order (all are committed).
UPDATE events e SET pseq = n.num
    FROM (SELECT seq, row_number() OVER (PARTITION BY project_id ORDER BY seq) AS num FROM events) n
    WHERE n.seq = e.seq;
UPDATE projects p SET last_seq = coalesce((SELECT max(pseq) FROM events e WHERE e.project_id = p.id), 0);
CREATE INDEX events_feed ON events(project_id, pseq);
-- A work package's history is read through events_feed (its project's
-- events) and filtered: an index of its own cost ingest a third of its
-- speed, for a page opened now and then.

-- The projection: one row per feature and per work package, with the key
-- of the winning event of each kind. The key's strings compare bytewise
-- (COLLATE "C"), as the winner rule and SQLite do.
CREATE TABLE board_features (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    feature_key TEXT NOT NULL,
    PRIMARY KEY (project_id, feature_key)
);
CREATE TABLE board_cards (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    feature_key TEXT NOT NULL,
    wp_id TEXT NOT NULL,
    lane TEXT,
    raw_lane TEXT,
    actor TEXT,
    updated_at TEXT,
    s_lamport BIGINT,
    s_node TEXT COLLATE "C",
    s_event TEXT COLLATE "C",
    title TEXT,
    dependencies TEXT NOT NULL DEFAULT '[]',
    c_lamport BIGINT,
    c_node TEXT COLLATE "C",
    c_event TEXT COLLATE "C",
    changed_seq BIGINT NOT NULL,
    PRIMARY KEY (project_id, feature_key, wp_id)
);
CREATE INDEX board_cards_changed ON board_cards(project_id, changed_seq);

-- Browser sessions: only a hash of each session id.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    team TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
