-- Every user has a role: `admin` (everything), `member` (everything on triggers, connections and
-- runs) or `auditor` (read-only). The service names the role on every insert; the default is for
-- the rows already here, which were all able to do what a member can.
ALTER TABLE users ADD COLUMN role text NOT NULL DEFAULT 'member'
    CHECK (role IN ('admin', 'member', 'auditor'));

-- The first-run admin becomes `admin`. Nothing names it, but the bootstrap leaves a trace: it
-- claims the one `identity_bootstrap` row and, in the same transaction and only if the store has
-- no user yet, creates the organisation `default` and its admin. So the admin, when there is one,
-- is the store's first user, created no earlier than the claim, in an organisation named
-- `default`. When the claim found users already there (the admin CLI came first), the first user
-- is older than the claim and nobody is promoted: an operator does it with `admin set-role`.
UPDATE users
SET role = 'admin'
WHERE id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1)
  AND created_at >= (SELECT created_at FROM identity_bootstrap)
  AND org_id IN (SELECT id FROM organisations WHERE name = 'default');
