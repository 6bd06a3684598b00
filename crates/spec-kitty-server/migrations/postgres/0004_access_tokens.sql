-- 4: personal access tokens: long-lived bearer tokens for CI jobs and
-- agents. Only the SHA-256 of a token is stored; a revoked token keeps its
-- row (with the time it was revoked) so `token list` can still show it.
CREATE TABLE access_tokens (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX access_tokens_user ON access_tokens(user_id);
