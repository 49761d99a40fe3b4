-- Seed users for tests, benchmarks and the demo (portable: SQLite, PostgreSQL, MariaDB). UTF-8.
-- Each hash was made by the command in the comment before it.

-- htpasswd -nbm alice secret
INSERT INTO wsgiauth_user (name, password_hash, canonical, active)
    VALUES ('alice', '$apr1$RhVvWWsY$BidonHX.HDDMOOPqSLdj50', 'alice@example.org', TRUE);
-- htpasswd -nbB -C 5 bob hunter2
INSERT INTO wsgiauth_user (name, password_hash, canonical, active)
    VALUES ('bob', '$2y$05$bxrAHm8yfSK5F9fmMuI3uuTqx6PF/xozpcO.uEp2JPfZ1xLLhlPga', NULL, TRUE);
-- htpasswd -nbm carol secret   (disabled account)
INSERT INTO wsgiauth_user (name, password_hash, canonical, active)
    VALUES ('carol', '$apr1$2/bOqWjM$6IMQ22s6u44gzc9qmOXBT.', NULL, FALSE);
-- htpasswd -nbs dave letmein
INSERT INTO wsgiauth_user (name, password_hash, canonical, active)
    VALUES ('dave', '{SHA}t6h1/B6iKLkGEEG3zsS9PFKrPOM=', NULL, TRUE);
-- htpasswd -nbm 'josé' 'pässword'   (UTF-8 name and password)
INSERT INTO wsgiauth_user (name, password_hash, canonical, active)
    VALUES ('josé', '$apr1$10wyjBd5$V7LWuLvbiFOZt.HDDV8gB/', NULL, TRUE);
-- htpasswd -nbm "o'brien" shamrock   (a quote in the name, properly escaped here)
INSERT INTO wsgiauth_user (name, password_hash, canonical, active)
    VALUES ('o''brien', '$apr1$EvqhRbC6$xVHcNBmIrdpt2XPAiHXFm/', NULL, TRUE);

INSERT INTO wsgiauth_group_member (username, groupname) VALUES ('alice', 'staff');
INSERT INTO wsgiauth_group_member (username, groupname) VALUES ('alice', 'admins');
INSERT INTO wsgiauth_group_member (username, groupname) VALUES ('bob', 'staff');
INSERT INTO wsgiauth_group_member (username, groupname) VALUES ('carol', 'staff');
INSERT INTO wsgiauth_group_member (username, groupname) VALUES ('josé', 'équipe');

-- printf 'alice:wsgiauth:secret' | md5sum
INSERT INTO wsgiauth_realm_hash (username, realm, ha1) VALUES ('alice', 'wsgiauth', '68435794d003aeae396704617a8d2810');
-- printf 'bob:wsgiauth:hunter2' | md5sum
INSERT INTO wsgiauth_realm_hash (username, realm, ha1) VALUES ('bob', 'wsgiauth', '0052388d7b9f20dcd86a3d88a5c6ee2a');
-- printf 'josé:wsgiauth:pässword' | md5sum
INSERT INTO wsgiauth_realm_hash (username, realm, ha1) VALUES ('josé', 'wsgiauth', '05f6013f92b6d9c42f05ef4d6e0460ee');
-- printf 'carol:wsgiauth:secret' | md5sum   (disabled: never answered)
INSERT INTO wsgiauth_realm_hash (username, realm, ha1) VALUES ('carol', 'wsgiauth', '4699571842523847a56005b1eeac6142');
