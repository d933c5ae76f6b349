-- Impersonation tokens (GitLab's /users/:id/impersonation_tokens) are tokens of the user they
-- act as, marked here. Existing tokens are personal access tokens.

ALTER TABLE tokens ADD COLUMN impersonation boolean NOT NULL DEFAULT false;
