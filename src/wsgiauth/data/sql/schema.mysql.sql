-- wsgiauth's minimal schema for MariaDB / MySQL: the same tables as schema.sql.
--
-- Names use a binary, NO PAD collation so that 'alice', 'Alice' and 'alice ' are three different users, exactly as
-- in SQLite, PostgreSQL and Apache's own files (MariaDB's default collations ignore case and trailing spaces).

CREATE TABLE wsgiauth_user (
    name          VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL PRIMARY KEY,
    password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    canonical     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin UNIQUE,
    active        BOOLEAN NOT NULL DEFAULT TRUE
) ENGINE=InnoDB;

CREATE TABLE wsgiauth_group_member (
    username  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    groupname VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    PRIMARY KEY (username, groupname),
    FOREIGN KEY (username) REFERENCES wsgiauth_user (name) ON DELETE CASCADE
) ENGINE=InnoDB;

CREATE TABLE wsgiauth_realm_hash (
    username VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    realm    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    ha1      CHAR(32) CHARACTER SET ascii NOT NULL,
    PRIMARY KEY (username, realm),
    FOREIGN KEY (username) REFERENCES wsgiauth_user (name) ON DELETE CASCADE
) ENGINE=InnoDB;
