-- 6: what the Sessions page shows of each refresh-token family (one per
-- signed-in device): the client that logged in, from where, when, and
-- when it last refreshed. Families started before this version have no
-- row and are not listed (they still work, and end as they did).
CREATE TABLE refresh_families (
    family TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    client TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL
);
CREATE INDEX refresh_families_user ON refresh_families(user_id);
