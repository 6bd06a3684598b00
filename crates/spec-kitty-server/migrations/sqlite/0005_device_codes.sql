-- 5: device authorization (RFC 8628) for `spec-kitty auth login --web`.
-- Both codes are stored as SHA-256 only. A code is pending until the user
-- approves or denies it on the page /device, and used once its tokens
-- are handed out; it expires after 10 minutes either way.
CREATE TABLE device_codes (
    device_hash TEXT PRIMARY KEY,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_name TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    poll_interval INTEGER NOT NULL,
    last_poll_at INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    user_id INTEGER REFERENCES users(id)
);
CREATE INDEX device_codes_expires ON device_codes(expires_at);
