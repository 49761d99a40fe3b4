/* What the DBM formats (sdbm.c, gdbm.c, bdb.c) share: the identity of an open file, by which a reader notices that
 * its path was replaced or its file changed in place, and the loop that waits, for at most a timeout, for a lock or
 * for anything else another process holds while it writes. Declared in wsgiauth.h; not exposed to Python. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "wsgiauth.h"

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
    if (fd < 0 || fstat(fd, &st) != 0) {
        return -1;
    }
    wa_fileid_set(id, &st);
    return 0;
}

/* Whether the open file fd is still as id describes it: 0, WA_DBM_STALE (changed in place), -1 (cannot stat). */
int wa_fileid_check(const wa_fileid *id, int fd)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        return -1;
    }
    return wa_fileid_same(id, &st, WA_FILEID_CONTENT) ? 0 : WA_DBM_STALE;
}

/* 1 when path is gone or is no longer the file of id (compared as what says), 0 otherwise. */
int wa_fileid_replaced(const wa_fileid *id, const char *path, int what)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return 1;
    }
    return !wa_fileid_same(id, &st, what);
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
    if (r->kind == WA_LOCK_FLOCK_SH) {
        if (flock(r->fd, LOCK_SH | LOCK_NB) == 0) {
            return 0;
        }
        return (errno == EWOULDBLOCK || errno == EINTR) ? WA_BUSY : -1;
    }
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
    if (kind == WA_LOCK_FLOCK_SH) {
        (void)flock(fd, LOCK_UN);
        return;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    (void)fcntl(fd, F_OFD_SETLK, &fl);
}
