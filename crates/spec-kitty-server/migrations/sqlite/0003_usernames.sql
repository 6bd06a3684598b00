-- 3: usernames are case-insensitive: stored with ASCII letters in lower
-- case (SQLite's lower() folds ASCII only, as the server does). Two users
-- that differ only in case are refused before this runs (schema.rs names
-- them), so the UNIQUE constraint cannot fail here.
UPDATE users SET username = lower(username) WHERE username <> lower(username);
-- A user's own team is one they are a member of: before this version,
-- removing a member left it pointing at the team they had left.
UPDATE users SET team_id = (SELECT min(m.team_id) FROM team_members m WHERE m.user_id = users.id)
WHERE team_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM team_members m WHERE m.user_id = users.id AND m.team_id = users.team_id);
