/* wsgiauth C core: the one header of prototypes. The part exposed to Python lives in csrc/cdef_<name>.h (plain C
 * declarations that cffi reads as they are); this header includes those files rather than repeating them, and adds
 * what only the C files share. */
#ifndef WSGIAUTH_H
#define WSGIAUTH_H

#include <stddef.h>
#include <stdint.h>

/* ct.c: constant-time comparison. Returns 1 when equal, 0 otherwise; time depends only on blen. */
#include "cdef_ct.h"

/* md5.c: MD5 (RFC 1321) and the HTTP Digest HA1 (wa_md5 and wa_ha1 in cdef_md5.h). */
typedef struct {
    uint32_t state[4];
    uint64_t count;
    unsigned char buffer[64];
} wa_md5_ctx;
void wa_md5_compress(uint32_t state[4], const uint32_t x[16]);
void wa_md5_block(uint32_t state[4], const unsigned char block[64]);
void wa_md5_init(wa_md5_ctx *ctx);
void wa_md5_update(wa_md5_ctx *ctx, const unsigned char *data, size_t len);
void wa_md5_final(wa_md5_ctx *ctx, unsigned char digest[16]);
void wa_hex(const unsigned char *data, size_t len, char *out);
#include "cdef_md5.h"

/* apr1.c: MD5-crypt ($apr1$ and $1$). Buffers for a hash are WA_APR1_SIZE bytes. */
#include "cdef_apr1.h"

/* sdbm.c, bdb.c: the DBM types htdbm writes that are read in C (GDBM is read in Python over libgdbm: _gdbm.py). Each
 * offers the same operations with the same signatures (those of apr-util's apr_dbm_type_t), named wa_sdbm_<op>,
 * wa_bdb_<op>:
 *   open(path, writable, lock_timeout_ms, err, errcap)  the database as AuthDBMUserFile names it; NULL on failure
 *                                                       (message in err, errno set)
 *   close(h)              0, or -1 when flushing a writer's changes failed
 *   error(h)              the message of the last -1                                   (all: wa_dbm_error)
 *   replaced(h)           1 when the path now names another file (or the open file changed where that matters)
 *                                                                                      (DB: wa_dbm_replaced)
 *   fetch(h, key, klen, out, cap, &vlen)
 *   next(h, first, out, cap, &klen)   the keys in storage order: first != 0 starts over
 *   store(h, key, klen, val, vlen)    0 or -1
 *   delete(h, key, klen)              1 deleted, 0 not there, -1 error
 * Fetch/next return 1 found, 0 not found (end), -1 error (message from error()), WA_DBM_STALE (the file changed in
 * place: reopen), WA_DBM_SMALL (buffer too small; the length needed is in vlen/klen). A format without its own
 * error or replaced uses dbmfile.c's (cdef_dbmfile.h), which read the head every handle starts with. */
#define WA_DBM_STALE (-2)
#define WA_DBM_SMALL (-3)
#include "cdef_dbmfile.h"
#include "cdef_sdbm.h"
#include "cdef_bdb.h"

/* dbmfile.c: what else the DBM formats share (compiled into each module that holds one). */
#include <sys/stat.h>
#include <time.h>

/* fstat() and stat(), through statx() where glibc has it (see dbmfile.c). */
int wa_fstat(int fd, struct stat *st);
int wa_stat(const char *path, struct stat *st);

/* The identity of an open file, taken at open, by which a reader notices that its path now names another file
 * (WA_FILEID_FILE: device and inode) or that the file changed in place (WA_FILEID_CONTENT: also size and mtime). */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} wa_fileid;
#define WA_FILEID_FILE 0
#define WA_FILEID_CONTENT 1
void wa_fileid_set(wa_fileid *id, const struct stat *st);
int wa_fileid_same(const wa_fileid *id, const struct stat *st, int what);
int wa_fileid_take(wa_fileid *id, int fd);
int wa_fileid_check(const wa_fileid *id, int fd);
int wa_fileid_replaced(const wa_fileid *id, const char *path, int what);

/* The head of every DBM handle (its first member, so a handle is a wa_dbm too). */
typedef struct {
    char *path;          /* the database's file: NAME, or for SDBM NAME.pag */
    wa_fileid id;        /* of that file, taken at open */
    int id_what;         /* how wa_dbm_replaced compares it: WA_FILEID_FILE or WA_FILEID_CONTENT */
    int writable;
    int lock_timeout_ms;
    char err[200];       /* wa_dbm_error's message */
} wa_dbm;
void *wa_dbm_new(size_t size, const char *name, const char *suffix, int id_what, int writable, int lock_timeout_ms,
                 char *err, size_t errcap);
void wa_dbm_free(void *h);
int wa_dbm_writer(wa_dbm *h);

/* Waiting for another process: attempt() returns 0 done, WA_BUSY (try again), or -1 failed (errno set); it is called
 * every step_ms until it is not busy or timeout_ms have passed (then -1 with errno EWOULDBLOCK). */
#define WA_BUSY 1
int wa_retry(int (*attempt)(void *arg), void *arg, int timeout_ms, int step_ms);

/* The locks the DBM formats take on a whole file, waited for with wa_retry() in 1 ms steps: open-file-description
 * fcntl locks, which conflict with APR's
 * classic fcntl locks on SDBM files and, unlike them, are not dropped when another descriptor of the file closes. */
#define WA_LOCK_OFD_RD 1
#define WA_LOCK_OFD_WR 2
int wa_lock(int fd, int kind, int timeout_ms);
void wa_unlock(int fd, int kind);

#endif
