/* GDBM through libgdbm (Debian's libgdbm 1.23), the way APR's apr_dbm_gdbm uses it: key and value without a
 * trailing NUL, the file name used as given.
 *
 * A reader keeps one handle open (GDBM_NOLOCK | GDBM_NOMMAP) and, around each fetch, takes the shared flock() that
 * gdbm's own readers take, then compares the file with the identity taken at open: a change made in place (htdbm
 * rewrites the file) returns WA_DBM_STALE so the caller reopens. Holding the lock only for a fetch means a writer
 * (htdbm, which takes an exclusive non-blocking lock) is never shut out for longer than one lookup. No mmap: a file
 * truncated by a writer can never fault the reader. The identity and the lock loop are dbmfile.c's. A handle is not
 * thread-safe: callers serialise access.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsgiauth.h"

struct wa_gdbm {
    wa_dbm head; /* the file, its identity (compared by content), flags, error message */
    GDBM_FILE dbf;
    datum cursor; /* the last key next() returned (libgdbm's nextkey starts from it), dptr NULL for none */
};

static void gdbm_msg(char *err, size_t cap, const char *what)
{
    int e = errno;
    gdbm_error ge = gdbm_errno;
    if (ge == GDBM_FILE_OPEN_ERROR || ge == GDBM_FILE_READ_ERROR || ge == GDBM_FILE_WRITE_ERROR ||
        ge == GDBM_FILE_STAT_ERROR) {
        snprintf(err, cap, "%s: %s (%s)", what, gdbm_strerror(ge), strerror(e));
    } else {
        snprintf(err, cap, "%s: %s", what, gdbm_strerror(ge));
    }
}

/* A reader opens under a shared flock() taken on a descriptor of its own (flock locks belong to the open file
 * description, so it conflicts with a writer's lock), so the header it reads and the identity it takes describe the
 * same state of the file. 0, -1 (gdbm_open failed), -2 (locked past the timeout), -3 (cannot stat). */
static int open_reader(wa_gdbm *h)
{
    int lfd = open(h->head.path, O_RDONLY | O_CLOEXEC);
    if (lfd >= 0 && wa_lock(lfd, WA_LOCK_FLOCK_SH, h->head.lock_timeout_ms) != 0) {
        close(lfd);
        errno = EWOULDBLOCK;
        return -2;
    }
    errno = 0;
    h->dbf = gdbm_open(h->head.path, 0, GDBM_READER | GDBM_NOLOCK | GDBM_NOMMAP | GDBM_CLOEXEC, 0644, NULL);
    int rc = 0;
    if (h->dbf == NULL) {
        rc = -1;
    } else if (wa_fileid_take(&h->head.id, gdbm_fdesc(h->dbf)) != 0) {
        rc = -3;
    }
    if (lfd >= 0) {
        int saved = errno;
        wa_unlock(lfd, WA_LOCK_FLOCK_SH);
        close(lfd);
        errno = saved;
    }
    return rc;
}

static int try_open_writer(void *arg)
{
    wa_gdbm *h = arg;
    errno = 0;
    h->dbf = gdbm_open(h->head.path, 0, GDBM_WRCREAT | GDBM_NOMMAP | GDBM_CLOEXEC, 0644, NULL);
    if (h->dbf != NULL) {
        return 0;
    }
    return gdbm_errno == GDBM_CANT_BE_WRITER ? WA_BUSY : -1;
}

/* A writer needs gdbm's exclusive lock: retry (2 ms steps) while a reader's short shared lock is held. Returns as
 * open_reader() does, a lock held past the timeout being -1 (gdbm's "can't be writer"). */
static int open_writer(wa_gdbm *h)
{
    if (wa_retry(try_open_writer, h, h->head.lock_timeout_ms, 2) != 0) {
        return -1;
    }
    return wa_fileid_take(&h->head.id, gdbm_fdesc(h->dbf)) != 0 ? -3 : 0;
}

wa_gdbm *wa_gdbm_open(const char *path, int writable, int lock_timeout_ms, char *err, size_t errcap)
{
    wa_gdbm *h = wa_dbm_new(sizeof *h, path, "", WA_FILEID_CONTENT, writable, lock_timeout_ms, err, errcap);
    if (h == NULL) {
        return NULL;
    }
    int rc = writable ? open_writer(h) : open_reader(h);
    if (rc == 0) {
        return h;
    }
    int e = errno ? errno : EIO;
    if (rc == -1) {
        gdbm_msg(err, errcap, path);
    } else if (rc == -2) {
        snprintf(err, errcap, "%s: locked by a writer for longer than the lock timeout", path);
    } else {
        snprintf(err, errcap, "%s: %s", path, strerror(e));
        gdbm_close(h->dbf);
    }
    wa_dbm_free(h);
    errno = e;
    return NULL;
}

int wa_gdbm_close(wa_gdbm *h)
{
    int rc = 0;
    if (h == NULL) {
        return 0;
    }
    if (h->head.writable && gdbm_sync(h->dbf) != 0) {
        rc = -1;
    }
    if (gdbm_close(h->dbf) != 0) {
        rc = -1;
    }
    free(h->cursor.dptr);
    wa_dbm_free(h);
    return rc;
}

/* For readers: lock, then make sure the open handle still describes the file. */
static int begin_read(wa_gdbm *h)
{
    if (h->head.writable) {
        return 0;
    }
    int fd = gdbm_fdesc(h->dbf);
    if (wa_lock(fd, WA_LOCK_FLOCK_SH, h->head.lock_timeout_ms) != 0) {
        snprintf(h->head.err, sizeof h->head.err, "cannot take a shared lock: %s", strerror(errno));
        return -1;
    }
    int rc = wa_fileid_check(&h->head.id, fd);
    if (rc == -1) {
        snprintf(h->head.err, sizeof h->head.err, "cannot stat: %s", strerror(errno));
    }
    if (rc != 0) {
        wa_unlock(fd, WA_LOCK_FLOCK_SH);
    }
    return rc;
}

static void end_read(wa_gdbm *h)
{
    if (!h->head.writable) {
        wa_unlock(gdbm_fdesc(h->dbf), WA_LOCK_FLOCK_SH);
    }
}

/* Copy a datum libgdbm returned into the caller's buffer; d.dptr NULL is "none" or an error, as ge (gdbm_errno right
 * after the call) tells. The datum stays the caller's to free. */
static int give(wa_gdbm *h, datum d, gdbm_error ge, const char *what, unsigned char *out, size_t cap, size_t *len)
{
    if (d.dptr == NULL) {
        if (ge == GDBM_ITEM_NOT_FOUND || ge == GDBM_NO_ERROR) {
            return 0;
        }
        snprintf(h->head.err, sizeof h->head.err, "%s failed: %s", what, gdbm_strerror(ge));
        return -1;
    }
    *len = (size_t)d.dsize;
    if (*len > cap) {
        return WA_DBM_SMALL;
    }
    memcpy(out, d.dptr, *len);
    return 1;
}

int wa_gdbm_fetch(wa_gdbm *h, const unsigned char *key, size_t klen, unsigned char *out, size_t cap,
                  size_t *vlen)
{
    datum k, v;
    int rc = begin_read(h);
    if (rc != 0) {
        return rc;
    }
    k.dptr = (char *)key;
    k.dsize = (int)klen;
    v = gdbm_fetch(h->dbf, k);
    gdbm_error ge = gdbm_errno;
    end_read(h);
    rc = give(h, v, ge, "fetch", out, cap, vlen);
    free(v.dptr);
    return rc;
}

/* Iterate over the keys (gdbm_firstkey, then gdbm_nextkey from the key kept in the handle). */
int wa_gdbm_next(wa_gdbm *h, int first, unsigned char *out, size_t cap, size_t *klen)
{
    datum k;
    if (!first && h->cursor.dptr == NULL) {
        return 0;
    }
    int rc = begin_read(h);
    if (rc != 0) {
        return rc;
    }
    k = first ? gdbm_firstkey(h->dbf) : gdbm_nextkey(h->dbf, h->cursor);
    gdbm_error ge = gdbm_errno;
    end_read(h);
    free(h->cursor.dptr);
    h->cursor = k;
    return give(h, k, ge, "iteration", out, cap, klen);
}

int wa_gdbm_store(wa_gdbm *h, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen)
{
    datum k, v;
    if (wa_dbm_writer(&h->head) != 0) {
        return -1;
    }
    if (klen == 0 || klen > 0x7fffffff || vlen > 0x7fffffff) {
        snprintf(h->head.err, sizeof h->head.err, "empty or oversized key");
        return -1;
    }
    k.dptr = (char *)key;
    k.dsize = (int)klen;
    v.dptr = (char *)val;
    v.dsize = (int)vlen;
    if (gdbm_store(h->dbf, k, v, GDBM_REPLACE) != 0) {
        snprintf(h->head.err, sizeof h->head.err, "store failed: %s", gdbm_strerror(gdbm_errno));
        return -1;
    }
    return 0;
}

int wa_gdbm_delete(wa_gdbm *h, const unsigned char *key, size_t klen)
{
    datum k;
    if (wa_dbm_writer(&h->head) != 0) {
        return -1;
    }
    k.dptr = (char *)key;
    k.dsize = (int)klen;
    if (gdbm_delete(h->dbf, k) != 0) {
        if (gdbm_errno == GDBM_ITEM_NOT_FOUND) {
            return 0;
        }
        snprintf(h->head.err, sizeof h->head.err, "delete failed: %s", gdbm_strerror(gdbm_errno));
        return -1;
    }
    return 1;
}
