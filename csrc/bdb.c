/* Berkeley DB (Debian's libdb 5.3) the way APR's apr_dbm_berkeleydb uses it: a DB_HASH database opened without an
 * environment, the file name used as given, key and value without a trailing NUL; DB_RDONLY for readers.
 *
 * The module is not linked with libdb: src/wsgiauth/_dbmfile.py opens libdb-MAJOR.MINOR.so at run time (the version
 * of the db.h this file was compiled with: wa_bdb_header_version) and hands its two plain functions, db_create and
 * db_strerror, to wa_bdb_bind; every other call goes through the handle's methods, whose layout db.h gives.
 *
 * There is no locking protocol (APR takes none for this type). A reader keeps one handle open and compares the file
 * with the identity taken at open before every fetch: a change made in place (htdbm rewrites the file) returns
 * WA_DBM_STALE, so the caller reopens instead of reading through a stale page cache. Buffers Berkeley DB allocates
 * (DB_DBT_MALLOC) are freed here. The identity is dbmfile.c's. A handle is not thread-safe: callers serialise access.
 */

#define _GNU_SOURCE
#include <db.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wsgiauth.h"

static int (*db_create_fn)(DB **, DB_ENV *, u_int32_t);
static char *(*db_strerror_fn)(int);

/* The version of the db.h compiled in: the library opened at run time must be this one. */
void wa_bdb_header_version(int *major, int *minor)
{
    *major = DB_VERSION_MAJOR;
    *minor = DB_VERSION_MINOR;
}

/* The library's db_create and db_strerror (addresses from cffi's ABI mode); 0, or -1 when either is missing. */
int wa_bdb_bind(uintptr_t create, uintptr_t strerror_fn)
{
    if (create == 0 || strerror_fn == 0) {
        return -1;
    }
    db_create_fn = (int (*)(DB **, DB_ENV *, u_int32_t))create;
    db_strerror_fn = (char *(*)(int))strerror_fn;
    return 0;
}

static const char *bdb_strerror(int rc)
{
    return db_strerror_fn != NULL ? db_strerror_fn(rc) : strerror(rc > 0 ? rc : EIO);
}

struct wa_bdb {
    wa_dbm head; /* the file, its identity (compared by content), flags, error message */
    DB *db;
    DBC *cursor;
};

static int fd_of(wa_bdb *h)
{
    int fd = -1;
    if (h->db->fd(h->db, &fd) != 0) {
        return -1;
    }
    return fd;
}

static int open_once(wa_bdb *h, char *err, size_t errcap)
{
    int rc;
    if (db_create_fn == NULL) {
        snprintf(err, errcap, "%s: Berkeley DB is not loaded", h->head.path);
        errno = ENOSYS;
        return -1;
    }
    if ((rc = db_create_fn(&h->db, NULL, 0)) != 0) {
        snprintf(err, errcap, "%s: %s", h->head.path, bdb_strerror(rc));
        errno = ENOMEM;
        return -1;
    }
    rc = h->db->open(h->db, NULL, h->head.path, NULL, DB_HASH, h->head.writable ? DB_CREATE : DB_RDONLY, 0644);
    if (rc != 0) {
        snprintf(err, errcap, "%s: %s", h->head.path, bdb_strerror(rc));
        h->db->close(h->db, 0);
        h->db = NULL;
        errno = rc > 0 ? rc : EIO;
        return -1;
    }
    return 0;
}

/* There is no lock to take (the lock timeout is not used), so a reader compares the file before and after opening
 * and opens again when a writer changed it meanwhile: the identity then describes what the handle read. */
wa_bdb *wa_bdb_open(const char *path, int writable, int lock_timeout_ms, char *err, size_t errcap)
{
    wa_bdb *h = wa_dbm_new(sizeof *h, path, "", WA_FILEID_CONTENT, writable, lock_timeout_ms, err, errcap);
    if (h == NULL) {
        return NULL;
    }
    for (int attempt = 0;; attempt++) {
        struct stat before;
        int have_before = wa_stat(path, &before) == 0;
        if (open_once(h, err, errcap) != 0) {
            int e = errno;
            wa_dbm_free(h);
            errno = e;
            return NULL;
        }
        if (wa_fileid_take(&h->head.id, fd_of(h)) != 0) {
            snprintf(err, errcap, "%s: cannot stat", path);
            h->db->close(h->db, 0);
            wa_dbm_free(h);
            errno = EIO;
            return NULL;
        }
        if (writable || !have_before || wa_fileid_same(&h->head.id, &before, WA_FILEID_CONTENT) || attempt >= 5) {
            return h;
        }
        h->db->close(h->db, 0);
        h->db = NULL;
    }
}

int wa_bdb_close(wa_bdb *h)
{
    int rc = 0;
    if (h == NULL) {
        return 0;
    }
    if (h->cursor != NULL) {
        h->cursor->close(h->cursor);
    }
    if (h->db->close(h->db, 0) != 0) { /* syncs a writer's changes */
        rc = -1;
    }
    wa_dbm_free(h);
    return rc;
}

static int check_fresh(wa_bdb *h)
{
    if (h->head.writable) {
        return 0;
    }
    int rc = wa_fileid_check(&h->head.id, fd_of(h));
    if (rc == -1) {
        snprintf(h->head.err, sizeof h->head.err, "cannot stat the database");
    }
    return rc;
}

int wa_bdb_fetch(wa_bdb *h, const unsigned char *key, size_t klen, unsigned char *out, size_t cap, size_t *vlen)
{
    DBT k, v;
    int rc = check_fresh(h);
    if (rc != 0) {
        return rc;
    }
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    k.data = (void *)key;
    k.size = (u_int32_t)klen;
    v.flags = DB_DBT_MALLOC;
    rc = h->db->get(h->db, NULL, &k, &v, 0);
    if (rc == DB_NOTFOUND || rc == DB_KEYEMPTY) {
        return 0;
    }
    if (rc != 0) {
        snprintf(h->head.err, sizeof h->head.err, "fetch failed: %s", bdb_strerror(rc));
        return -1;
    }
    *vlen = v.size;
    if (*vlen > cap) {
        free(v.data);
        return -3;
    }
    memcpy(out, v.data, *vlen);
    free(v.data);
    return 1;
}

/* Iterate over the keys with a cursor kept in the handle: first != 0 restarts. 1 with a key, 0 at the end. A key
 * too large for out ends the iteration with -3. */
int wa_bdb_next(wa_bdb *h, int first, unsigned char *out, size_t cap, size_t *klen)
{
    DBT k, v;
    int rc;
    if (first) {
        if ((rc = check_fresh(h)) != 0) {
            return rc;
        }
        if (h->cursor != NULL) {
            h->cursor->close(h->cursor);
            h->cursor = NULL;
        }
        if ((rc = h->db->cursor(h->db, NULL, &h->cursor, 0)) != 0) {
            snprintf(h->head.err, sizeof h->head.err, "cannot iterate: %s", bdb_strerror(rc));
            return -1;
        }
    }
    if (h->cursor == NULL) {
        return 0;
    }
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    k.flags = DB_DBT_USERMEM;
    k.data = out;
    k.ulen = (u_int32_t)(cap > 0xffffffffu ? 0xffffffffu : cap);
    v.flags = DB_DBT_PARTIAL | DB_DBT_USERMEM; /* the key is enough: read no value bytes */
    v.dlen = 0;
    v.ulen = 0;
    rc = h->cursor->get(h->cursor, &k, &v, DB_NEXT);
    if (rc == DB_NOTFOUND) {
        h->cursor->close(h->cursor);
        h->cursor = NULL;
        return 0;
    }
    if (rc == DB_BUFFER_SMALL) {
        *klen = k.size;
        snprintf(h->head.err, sizeof h->head.err, "a key of %u bytes is larger than the iteration buffer", k.size);
        return -3;
    }
    if (rc != 0) {
        snprintf(h->head.err, sizeof h->head.err, "iteration failed: %s", bdb_strerror(rc));
        return -1;
    }
    *klen = k.size;
    return 1;
}

int wa_bdb_store(wa_bdb *h, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen)
{
    DBT k, v;
    int rc;
    if (wa_dbm_writer(&h->head) != 0) {
        return -1;
    }
    if (klen == 0 || klen > 0xffffffffu || vlen > 0xffffffffu) {
        snprintf(h->head.err, sizeof h->head.err, "empty or oversized key");
        return -1;
    }
    memset(&k, 0, sizeof k);
    memset(&v, 0, sizeof v);
    k.data = (void *)key;
    k.size = (u_int32_t)klen;
    v.data = (void *)val;
    v.size = (u_int32_t)vlen;
    if ((rc = h->db->put(h->db, NULL, &k, &v, 0)) != 0) {
        snprintf(h->head.err, sizeof h->head.err, "store failed: %s", bdb_strerror(rc));
        return -1;
    }
    return 0;
}

int wa_bdb_delete(wa_bdb *h, const unsigned char *key, size_t klen)
{
    DBT k;
    int rc;
    if (wa_dbm_writer(&h->head) != 0) {
        return -1;
    }
    memset(&k, 0, sizeof k);
    k.data = (void *)key;
    k.size = (u_int32_t)klen;
    rc = h->db->del(h->db, NULL, &k, 0);
    if (rc == DB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        snprintf(h->head.err, sizeof h->head.err, "delete failed: %s", bdb_strerror(rc));
        return -1;
    }
    return 1;
}
