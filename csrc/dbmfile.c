/* What the DBM formats read in C (sdbm.c, bdb.c) share: the identity of an open file, by which a reader notices that
 * its path was replaced or its file changed in place; the head every handle starts with (its file, flags and error
 * message); and the loop that waits, for at most a timeout, for a lock or for anything else another process holds
 * while it writes. Declared in wsgiauth.h; wa_dbm_error and wa_dbm_replaced are exposed to Python. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "wsgiauth.h"

/* ------------------------------------------------------------------ stat */

/* fstat() and stat() through statx() where glibc has it (2.28 and later): glibc 2.33 gave stat and fstat new symbol
 * versions, which would raise the manylinux tag of a wheel built on a newer glibc to 2_34. Only the fields the DBM
 * code reads are filled in (device, inode, mode, size, mtime). */
#if defined(__GLIBC__) && defined(STATX_BASIC_STATS)
#include <sys/sysmacros.h>

static int from_statx(int dirfd, const char *path, int flags, struct stat *st)
{
    struct statx sx;
    if (statx(dirfd, path, flags, STATX_TYPE | STATX_MODE | STATX_INO | STATX_SIZE | STATX_MTIME, &sx) != 0) {
        return -1;
    }
    memset(st, 0, sizeof *st);
    st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st->st_ino = (ino_t)sx.stx_ino;
    st->st_mode = sx.stx_mode;
    st->st_size = (off_t)sx.stx_size;
    st->st_mtim.tv_sec = (time_t)sx.stx_mtime.tv_sec;
    st->st_mtim.tv_nsec = (long)sx.stx_mtime.tv_nsec;
    return 0;
}

int wa_fstat(int fd, struct stat *st)
{
    return from_statx(fd, "", AT_EMPTY_PATH, st);
}

int wa_stat(const char *path, struct stat *st)
{
    return from_statx(AT_FDCWD, path, 0, st);
}
#else
int wa_fstat(int fd, struct stat *st)
{
    return fstat(fd, st);
}

int wa_stat(const char *path, struct stat *st)
{
    return stat(path, st);
}
#endif

/* ------------------------------------------------------------------ file identity */

void wa_fileid_set(wa_fileid *id, const struct stat *st)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
}

/* 1 when st describes the file of id (WA_FILEID_FILE), in the same state (WA_FILEID_CONTENT); 0 otherwise. */
int wa_fileid_same(const wa_fileid *id, const struct stat *st, int what)
{
    if (id->dev != st->st_dev || id->ino != st->st_ino) {
        return 0;
    }
    return what == WA_FILEID_FILE || (id->size == st->st_size && id->mtime.tv_sec == st->st_mtim.tv_sec &&
                                      id->mtime.tv_nsec == st->st_mtim.tv_nsec);
}

/* The identity of the open file fd: 0, or -1 (errno) when fd is -1 or cannot be stat'ed. */
int wa_fileid_take(wa_fileid *id, int fd)
{
    struct stat st;
    if (fd < 0 || wa_fstat(fd, &st) != 0) {
        return -1;
    }
    wa_fileid_set(id, &st);
    return 0;
}

/* Whether the open file fd is still as id describes it: 0, WA_DBM_STALE (changed in place), -1 (cannot stat). */
int wa_fileid_check(const wa_fileid *id, int fd)
{
    struct stat st;
    if (fd < 0 || wa_fstat(fd, &st) != 0) {
        return -1;
    }
    return wa_fileid_same(id, &st, WA_FILEID_CONTENT) ? 0 : WA_DBM_STALE;
}

/* 1 when path is gone or is no longer the file of id (compared as what says), 0 otherwise. */
int wa_fileid_replaced(const wa_fileid *id, const char *path, int what)
{
    struct stat st;
    if (wa_stat(path, &st) != 0) {
        return 1;
    }
    return !wa_fileid_same(id, &st, what);
}

/* ------------------------------------------------------------------ the head of a handle */

/* A zeroed handle of size bytes whose head names the file name + suffix; NULL ("out of memory" in err) on failure. */
void *wa_dbm_new(size_t size, const char *name, const char *suffix, int id_what, int writable, int lock_timeout_ms,
                 char *err, size_t errcap)
{
    size_t n = strlen(name), s = strlen(suffix);
    wa_dbm *h = calloc(1, size);
    if (h == NULL || (h->path = malloc(n + s + 1)) == NULL) {
        free(h);
        snprintf(err, errcap, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    memcpy(h->path, name, n);
    memcpy(h->path + n, suffix, s + 1);
    h->id_what = id_what;
    h->writable = writable;
    h->lock_timeout_ms = lock_timeout_ms;
    return h;
}

void wa_dbm_free(void *h)
{
    free(((wa_dbm *)h)->path);
    free(h);
}

const char *wa_dbm_error(void *h)
{
    return ((wa_dbm *)h)->err;
}

/* 1 when the path now names another file than the one open (or, compared by content, the open file changed). */
int wa_dbm_replaced(void *h)
{
    const wa_dbm *d = h;
    return wa_fileid_replaced(&d->id, d->path, d->id_what);
}

/* For store and delete: 0 on a writable handle, else -1 with the message (errno EBADF). */
int wa_dbm_writer(wa_dbm *h)
{
    if (h->writable) {
        return 0;
    }
    snprintf(h->err, sizeof h->err, "database opened read-only");
    errno = EBADF;
    return -1;
}

/* ------------------------------------------------------------------ waiting */

int wa_retry(int (*attempt)(void *arg), void *arg, int timeout_ms, int step_ms)
{
    struct timespec pause = {step_ms / 1000, (long)(step_ms % 1000) * 1000000L};
    for (int waited = 0;; waited += step_ms) {
        int rc = attempt(arg);
        if (rc != WA_BUSY) {
            return rc;
        }
        if (waited >= timeout_ms) {
            errno = EWOULDBLOCK;
            return -1;
        }
        nanosleep(&pause, NULL);
    }
}

struct lock_request {
    int fd;
    int kind;
};

static int try_lock(void *arg)
{
    const struct lock_request *r = arg;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = r->kind == WA_LOCK_OFD_WR ? F_WRLCK : F_RDLCK;
    fl.l_whence = SEEK_SET; /* l_start = l_len = 0: the whole file */
    if (fcntl(r->fd, F_OFD_SETLK, &fl) == 0) {
        return 0;
    }
    return (errno == EAGAIN || errno == EACCES || errno == EINTR) ? WA_BUSY : -1;
}

/* Take a lock of this kind on the whole file: 0, or -1 with errno (EWOULDBLOCK: still held after timeout_ms). */
int wa_lock(int fd, int kind, int timeout_ms)
{
    struct lock_request r = {fd, kind};
    return wa_retry(try_lock, &r, timeout_ms, 1);
}

void wa_unlock(int fd, int kind)
{
    (void)kind;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    (void)fcntl(fd, F_OFD_SETLK, &fl);
}
