-- Group access tokens (GitLab's /groups/:id/access_tokens): a token of a bot user, bound to
-- the group it was issued for (namespace_key; NULL for personal and impersonation tokens),
-- with the access level it was issued with, which the bot's membership of the group holds
-- too. The level is kept on the token so that a revoked token, whose bot has left the group,
-- still shows it. users.bot marks the bot users of such tokens.

ALTER TABLE tokens ADD COLUMN namespace_key INTEGER REFERENCES namespaces (key) ON DELETE CASCADE;
ALTER TABLE tokens ADD COLUMN access_level INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tokens_namespace_key_idx ON tokens (namespace_key) WHERE namespace_key IS NOT NULL;
ALTER TABLE users ADD COLUMN bot INTEGER NOT NULL DEFAULT 0;
