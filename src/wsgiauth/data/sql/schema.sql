-- wsgiauth's minimal schema (SQLite and PostgreSQL). MariaDB/MySQL: schema.mysql.sql (binary, no-pad names).
--
-- One row per user; the login name is matched exactly (case-sensitive, byte for byte as UTF-8).
-- password_hash holds any hash wsgiauth.hashes verifies ($apr1$, $2y$, {SHA}, $5$/$6$, pbkdf2_sha256$...), the
-- same formats Apache's own mod_authn_dbd accepts, so a native `AuthDBDUserPWQuery` can share the table.
-- canonical (optional, unique) is the name Apache records as REMOTE_USER when it differs from the login typed;
-- the groups query accepts it too, since Apache asks for the groups of the name it recorded.
-- active = FALSE disables the account: it is answered like an unknown user (after the same hashing work).

CREATE TABLE wsgiauth_user (
    name          VARCHAR(255) NOT NULL PRIMARY KEY,
    password_hash VARCHAR(255) NOT NULL,
    canonical     VARCHAR(255) UNIQUE,
    active        BOOLEAN NOT NULL DEFAULT TRUE
);

-- Group membership, one row per (user, group): the groups query returns one group per row.
CREATE TABLE wsgiauth_group_member (
    username  VARCHAR(255) NOT NULL REFERENCES wsgiauth_user (name) ON DELETE CASCADE,
    groupname VARCHAR(255) NOT NULL,
    PRIMARY KEY (username, groupname)
);

-- Digest authentication: HA1 = lowercase hex MD5 of "user:realm:password", one row per (user, realm).
CREATE TABLE wsgiauth_realm_hash (
    username VARCHAR(255) NOT NULL REFERENCES wsgiauth_user (name) ON DELETE CASCADE,
    realm    VARCHAR(255) NOT NULL,
    ha1      CHAR(32) NOT NULL,
    PRIMARY KEY (username, realm)
);
