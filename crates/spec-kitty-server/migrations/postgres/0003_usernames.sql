-- 3: usernames are case-insensitive: stored with ASCII letters in lower
-- case (the server folds ASCII only, as SQLite's lower() does; PostgreSQL's
-- lower() would fold more, so translate() is used instead). Two users that
-- differ only in case stop the migration with their names: rename or
-- remove all but one, then start the server again.
DO $$
DECLARE
    clash TEXT;
BEGIN
    SELECT string_agg(username || ' (id ' || id || ')', ', ' ORDER BY id) INTO clash
    FROM users
    WHERE translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') IN (
        SELECT translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
        FROM users GROUP BY 1 HAVING count(*) > 1);
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'usernames are case-insensitive from schema version 3, and these differ only in case: %. Rename all but one (UPDATE users SET username = ''NEW'' WHERE id = ID) and start the server again', clash;
    END IF;
END $$;
UPDATE users
SET username = translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE username <> translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
-- A user's own team is one they are a member of: before this version,
-- removing a member left it pointing at the team they had left.
UPDATE users SET team_id = (SELECT min(m.team_id) FROM team_members m WHERE m.user_id = users.id)
WHERE team_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM team_members m WHERE m.user_id = users.id AND m.team_id = users.team_id);
