/* GDBM through libgdbm (Debian's libgdbm 1.23), the way APR's apr_dbm_gdbm uses it: key and value without a
 * trailing NUL, the file name used as given.
 *
 * A reader keeps one handle open (GDBM_NOLOCK | GDBM_NOMMAP) and, around each fetch, takes the shared flock() that
 * gdbm's own readers take, then compares the file with the snapshot taken at open: a change made in place (htdbm
 * rewrites the file) returns WA_DBM_STALE so the caller reopens. Holding the lock only for a fetch means a writer
 * (htdbm, which takes an exclusive non-blocking lock) is never shut out for longer than one lookup. No mmap: a file
 * truncated by a writer can never fault the reader. A handle is not thread-safe: callers serialise access.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wsgiauth.h"

struct wa_gdbm {
    GDBM_FILE dbf;
    int writable;
    int lock_timeout_ms;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    char err[200];
};

static void snapshot(wa_gdbm *h, const struct stat *st)
{
    h->dev = st->st_dev;
    h->ino = st->st_ino;
    h->size = st->st_size;
    h->mtime = st->st_mtim;
}

static int same(const wa_gdbm *h, const struct stat *st)
{
    return h->dev == st->st_dev && h->ino == st->st_ino && h->size == st->st_size &&
           h->mtime.tv_sec == st->st_mtim.tv_sec && h->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

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
 * description, so it conflicts with a writer's lock), so the header it reads and the snapshot it takes describe the
 * same state of the file. */
static int open_locked_reader(wa_gdbm *h, const char *path, int flags)
{
    struct timespec pause = {0, 1000000};
    int lfd = open(path, O_RDONLY | O_CLOEXEC);
    if (lfd >= 0) {
        for (int waited = 0; flock(lfd, LOCK_SH | LOCK_NB) != 0; waited++) {
            if ((errno != EWOULDBLOCK && errno != EINTR) || waited >= h->lock_timeout_ms) {
                close(lfd);
                errno = EWOULDBLOCK;
                return -2;
            }
            nanosleep(&pause, NULL);
        }
    }
    errno = 0;
    h->dbf = gdbm_open(path, 0, flags, 0644, NULL);
    int rc = 0;
    if (h->dbf == NULL) {
        rc = -1;
    } else {
        struct stat st;
        if (fstat(gdbm_fdesc(h->dbf), &st) != 0) {
            rc = -3;
        } else {
            snapshot(h, &st);
        }
    }
    if (lfd >= 0) {
        int saved = errno;
        flock(lfd, LOCK_UN);
        close(lfd);
        errno = saved;
    }
    return rc;
}

wa_gdbm *wa_gdbm_open(const char *path, int writable, int lock_timeout_ms, char *err, size_t errcap)
{
    wa_gdbm *h = calloc(1, sizeof *h);
    struct timespec pause = {0, 2000000}; /* 2 ms */
    if (h == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    h->writable = writable;
    h->lock_timeout_ms = lock_timeout_ms;
    if (!writable) {
        int rc = open_locked_reader(h, path, GDBM_READER | GDBM_NOLOCK | GDBM_NOMMAP | GDBM_CLOEXEC);
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
        free(h);
        errno = e;
        return NULL;
    }
    /* a writer needs gdbm's exclusive lock: retry while a reader's short shared lock is held */
    for (int waited = 0;; waited += 2) {
        errno = 0;
        h->dbf = gdbm_open(path, 0, GDBM_WRCREAT | GDBM_NOMMAP | GDBM_CLOEXEC, 0644, NULL);
        if (h->dbf != NULL) {
            break;
        }
        if (gdbm_errno != GDBM_CANT_BE_WRITER || waited >= lock_timeout_ms) {
            gdbm_msg(err, errcap, path);
            int e = errno ? errno : EIO;
            free(h);
            errno = e;
            return NULL;
        }
        nanosleep(&pause, NULL);
    }
    struct stat st;
    if (fstat(gdbm_fdesc(h->dbf), &st) != 0) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        gdbm_close(h->dbf);
        free(h);
        return NULL;
    }
    snapshot(h, &st);
    return h;
}

int wa_gdbm_close(wa_gdbm *h)
{
    int rc = 0;
    if (h == NULL) {
        return 0;
    }
    if (h->writable && gdbm_sync(h->dbf) != 0) {
        rc = -1;
    }
    if (gdbm_close(h->dbf) != 0) {
        rc = -1;
    }
    free(h);
    return rc;
}

const char *wa_gdbm_error(wa_gdbm *h)
{
    return h->err;
}

/* 1 when path now names another file than the one open, or the open file changed; 0 otherwise. */
int wa_gdbm_replaced(wa_gdbm *h, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return 1;
    }
    return !same(h, &st);
}

static int lock_shared(wa_gdbm *h)
{
    struct timespec pause = {0, 1000000};
    int fd = gdbm_fdesc(h->dbf);
    for (int waited = 0;; waited++) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
            return 0;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            break;
        }
        if (waited >= h->lock_timeout_ms) {
            errno = EWOULDBLOCK;
            break;
        }
        nanosleep(&pause, NULL);
    }
    snprintf(h->err, sizeof h->err, "cannot take a shared lock: %s", strerror(errno));
    return -1;
}

/* For readers: lock, then make sure the open handle still describes the file. */
static int begin_read(wa_gdbm *h)
{
    if (h->writable) {
        return 0;
    }
    if (lock_shared(h) != 0) {
        return -1;
    }
    struct stat st;
    if (fstat(gdbm_fdesc(h->dbf), &st) != 0) {
        snprintf(h->err, sizeof h->err, "cannot stat: %s", strerror(errno));
        flock(gdbm_fdesc(h->dbf), LOCK_UN);
        return -1;
    }
    if (!same(h, &st)) {
        flock(gdbm_fdesc(h->dbf), LOCK_UN);
        return WA_DBM_STALE;
    }
    return 0;
}

static void end_read(wa_gdbm *h)
{
    if (!h->writable) {
        flock(gdbm_fdesc(h->dbf), LOCK_UN);
    }
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
    if (v.dptr == NULL) {
        if (ge == GDBM_ITEM_NOT_FOUND || ge == GDBM_NO_ERROR) {
            return 0;
        }
        snprintf(h->err, sizeof h->err, "fetch failed: %s", gdbm_strerror(ge));
        return -1;
    }
    *vlen = (size_t)v.dsize;
    if (*vlen > cap) {
        free(v.dptr);
        return -3;
    }
    memcpy(out, v.dptr, *vlen);
    free(v.dptr);
    return 1;
}

/* Iterate over the keys. prev/prevlen is the previous key (NULL for the first). 1 with a key, 0 at the end. */
int wa_gdbm_next(wa_gdbm *h, const unsigned char *prev, size_t prevlen, unsigned char *out, size_t cap,
                 size_t *klen)
{
    datum k;
    int rc = begin_read(h);
    if (rc != 0) {
        return rc;
    }
    if (prev == NULL) {
        k = gdbm_firstkey(h->dbf);
    } else {
        datum p;
        p.dptr = (char *)prev;
        p.dsize = (int)prevlen;
        k = gdbm_nextkey(h->dbf, p);
    }
    gdbm_error ge = gdbm_errno;
    end_read(h);
    if (k.dptr == NULL) {
        if (ge == GDBM_ITEM_NOT_FOUND || ge == GDBM_NO_ERROR) {
            return 0;
        }
        snprintf(h->err, sizeof h->err, "iteration failed: %s", gdbm_strerror(ge));
        return -1;
    }
    *klen = (size_t)k.dsize;
    if (*klen > cap) {
        free(k.dptr);
        return -3;
    }
    memcpy(out, k.dptr, *klen);
    free(k.dptr);
    return 1;
}

int wa_gdbm_store(wa_gdbm *h, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen)
{
    datum k, v;
    if (!h->writable) {
        snprintf(h->err, sizeof h->err, "database opened read-only");
        return -1;
    }
    if (klen == 0 || klen > 0x7fffffff || vlen > 0x7fffffff) {
        snprintf(h->err, sizeof h->err, "empty or oversized key");
        return -1;
    }
    k.dptr = (char *)key;
    k.dsize = (int)klen;
    v.dptr = (char *)val;
    v.dsize = (int)vlen;
    if (gdbm_store(h->dbf, k, v, GDBM_REPLACE) != 0) {
        snprintf(h->err, sizeof h->err, "store failed: %s", gdbm_strerror(gdbm_errno));
        return -1;
    }
    return 0;
}

int wa_gdbm_delete(wa_gdbm *h, const unsigned char *key, size_t klen)
{
    datum k;
    if (!h->writable) {
        snprintf(h->err, sizeof h->err, "database opened read-only");
        return -1;
    }
    k.dptr = (char *)key;
    k.dsize = (int)klen;
    if (gdbm_delete(h->dbf, k) != 0) {
        if (gdbm_errno == GDBM_ITEM_NOT_FOUND) {
            return 0;
        }
        snprintf(h->err, sizeof h->err, "delete failed: %s", gdbm_strerror(gdbm_errno));
        return -1;
    }
    return 1;
}
