/* SDBM: APR's own DBM format (apr-util's apr_sdbm), read and written without APR.
 *
 * A database NAME is two files. NAME.pag holds 1024-byte pages; NAME.dir is a bitmap of the pages that have split
 * (bit n is byte n/8, bit n%8, least significant first; the file grows in 4096-byte blocks and is empty while no page
 * has split). A page starts with a native-endian int16 count n followed by n int16 offsets, two per (key, value)
 * pair; the data is packed from the end of the page: key i spans [off[2i-1], prev) and its value
 * [off[2i], off[2i-1]), starting from prev = 1024. The hash is n = c + 65599 * n over the key bytes with c a signed
 * char. A key's page is found by walking the split bitmap with the hash bits (see page_of()). A pair (key + value)
 * is at most 1008 bytes.
 *
 * Locking follows APR: a reader takes a shared lock on NAME.dir around each operation, a writer holds an exclusive
 * lock from open to close. We use open-file-description locks (F_OFD_SETLK, dbmfile.c's wa_lock), which conflict with
 * APR's classic fcntl locks and, unlike them, are not dropped when another descriptor of the same file is closed in
 * this process.
 * Every read goes to the files (pread), so changes made in place by htdbm are seen by the next lookup. A handle is
 * not thread-safe: callers serialise access to one handle (the Python wrapper holds a lock).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wsgiauth.h"

#define PBLKSIZ 1024
#define DBLKSIZ 4096
#define PAIRMAX 1008
#define SPLTMAX 10

struct wa_sdbm {
    wa_dbm head; /* NAME.pag, its identity (compared by file), flags, error message */
    char *dirpath;
    wa_fileid dir_id;
    int dirf;
    int pagf;
    unsigned long long pos; /* next()'s place: page << 16 | index of the next pair on it */
    long dirbno;            /* which 4096-byte .dir block is in dirbuf, -1 none */
    unsigned char dirbuf[DBLKSIZ];
};

static void set_err(char *err, size_t cap, const char *what, int e)
{
    if (err != NULL && cap > 0) {
        snprintf(err, cap, "%s: %s", what, strerror(e));
    }
}

long long wa_sdbm_hash(const unsigned char *key, size_t len)
{
    unsigned long long n = 0;
    for (size_t i = 0; i < len; i++) {
        n = (unsigned long long)(long long)(signed char)key[i] + 65599ULL * n;
    }
    return (long long)n;
}

/* ------------------------------------------------------------------ raw I/O */

/* Read len bytes at off into in, or write len bytes at off from out (the other is NULL). Bytes past the end of the
 * file read as zeros (as APR's read_from does); a write that makes no progress fails with EIO. */
static int transfer(int fd, unsigned char *in, const unsigned char *out, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        off_t at = off + (off_t)done;
        ssize_t r = in != NULL ? pread(fd, in + done, len - done, at) : pwrite(fd, out + done, len - done, at);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (r == 0) {
            if (in == NULL) {
                errno = EIO;
                return -1;
            }
            memset(in + done, 0, len - done);
            break;
        }
        done += (size_t)r;
    }
    return 0;
}

#define read_at(fd, buf, len, off) transfer((fd), (buf), NULL, (len), (off))
#define write_at(fd, buf, len, off) transfer((fd), NULL, (buf), (len), (off))

/* ------------------------------------------------------------------ page primitives */

static short ino_get(const unsigned char *pag, int i)
{
    short v;
    memcpy(&v, pag + 2 * i, sizeof v);
    return v;
}

static void ino_set(unsigned char *pag, int i, short v)
{
    memcpy(pag + 2 * i, &v, sizeof v);
}

/* A page is sane when its count and offsets describe data packed from the end, clear of the offset table. */
static int chkpage(const unsigned char *pag)
{
    int n = ino_get(pag, 0);
    if (n < 0 || n > PBLKSIZ / 2 || (n & 1)) {
        return 0;
    }
    int off = PBLKSIZ;
    int floor = (n + 1) * 2;
    for (int i = 1; i < n; i += 2) {
        int k = ino_get(pag, i), v = ino_get(pag, i + 1);
        if (k > off || v > k || v < floor) {
            return 0;
        }
        off = v;
    }
    return 1;
}

/* Index (odd, 1-based) of key in the page's offset table, or 0. */
static int seepair(const unsigned char *pag, const unsigned char *key, size_t klen)
{
    int n = ino_get(pag, 0);
    int off = PBLKSIZ;
    for (int i = 1; i < n; i += 2) {
        int k = ino_get(pag, i);
        if ((size_t)(off - k) == klen && memcmp(pag + k, key, klen) == 0) {
            return i;
        }
        off = ino_get(pag, i + 1);
    }
    return 0;
}

static int fitpair(const unsigned char *pag, size_t need)
{
    int n = ino_get(pag, 0);
    int off = (n > 0) ? ino_get(pag, n) : PBLKSIZ;
    long avail = (long)off - (long)(n + 1) * 2;
    return (long)need + 4 <= avail;
}

static void putpair(unsigned char *pag, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen)
{
    int n = ino_get(pag, 0);
    int off = ((n > 0) ? ino_get(pag, n) : PBLKSIZ) - (int)klen;
    memcpy(pag + off, key, klen);
    ino_set(pag, n + 1, (short)off);
    off -= (int)vlen;
    memcpy(pag + off, val, vlen);
    ino_set(pag, n + 2, (short)off);
    ino_set(pag, 0, (short)(n + 2));
}

static int delpair(unsigned char *pag, const unsigned char *key, size_t klen)
{
    int n = ino_get(pag, 0);
    int i = seepair(pag, key, klen);
    if (i == 0) {
        return 0;
    }
    if (i < n - 1) {
        /* move the data of the later pairs up over the deleted pair and shift their offsets down the table */
        int dst = (i == 1) ? PBLKSIZ : ino_get(pag, i - 1);
        int src = ino_get(pag, i + 1);
        int zoo = dst - src;
        int m = src - ino_get(pag, n);
        memmove(pag + dst - m, pag + src - m, (size_t)m);
        for (; i < n - 1; i++) {
            ino_set(pag, i, (short)(ino_get(pag, i + 2) + zoo));
        }
    }
    ino_set(pag, 0, (short)(n - 2));
    return 1;
}

/* Move the pairs whose hash has bit sbit set from pag to new (both rewritten from scratch). */
static void splpage(unsigned char *pag, unsigned char *new, long long sbit)
{
    unsigned char cur[PBLKSIZ];
    memcpy(cur, pag, PBLKSIZ);
    memset(pag, 0, PBLKSIZ);
    memset(new, 0, PBLKSIZ);
    int n = ino_get(cur, 0);
    int off = PBLKSIZ;
    for (int i = 1; i < n; i += 2) {
        int k = ino_get(cur, i), v = ino_get(cur, i + 1);
        size_t klen = (size_t)(off - k), vlen = (size_t)(k - v);
        long long h = wa_sdbm_hash(cur + k, klen);
        putpair((h & sbit) ? new : pag, cur + k, klen, cur + v, vlen);
        off = v;
    }
}

/* ------------------------------------------------------------------ the split bitmap */

/* The .dir block holding bit dbit of the bitmap, read into dirbuf; dirbuf caches one 4096-byte block (dirbno),
 * refreshed by the caller per operation. The byte of the bit goes to *byte. */
static int dir_block(wa_sdbm *db, long dbit, unsigned char **byte)
{
    long c = dbit / 8;
    long dirb = c / DBLKSIZ;
    if (dirb != db->dirbno) {
        if (read_at(db->dirf, db->dirbuf, DBLKSIZ, (off_t)dirb * DBLKSIZ) != 0) {
            return -1;
        }
        db->dirbno = dirb;
    }
    *byte = &db->dirbuf[c % DBLKSIZ];
    return 0;
}

static int getdbit(wa_sdbm *db, long dbit, int *bit)
{
    unsigned char *byte;
    if (dir_block(db, dbit, &byte) != 0) {
        return -1;
    }
    *bit = (*byte >> (dbit % 8)) & 1;
    return 0;
}

static int setdbit(wa_sdbm *db, long dbit)
{
    unsigned char *byte;
    if (dir_block(db, dbit, &byte) != 0) {
        return -1;
    }
    *byte |= (unsigned char)(1u << (dbit % 8));
    return write_at(db->dirf, db->dirbuf, DBLKSIZ, (off_t)db->dirbno * DBLKSIZ);
}

/* Forget the cached .dir block at the start of an operation (htdbm may have split pages since). No fstat is
 * needed: APR stops the bitmap walk at the file's size, and bits past the end read as zeros, which stops it too. */
static int refresh_dir(wa_sdbm *db)
{
    db->dirbno = -1;
    return 0;
}

/* Page number of a hash; also gives the split bit and mask a store needs. */
static int page_of(wa_sdbm *db, long long hash, long *pagb, long *curbit, long long *hmask)
{
    long dbit = 0;
    int hbit = 0;
    for (;;) {
        int bit = 0;
        if (getdbit(db, dbit, &bit) != 0) {
            return -1;
        }
        if (!bit) {
            break;
        }
        if (hbit >= 62) {
            errno = EIO; /* a bitmap deeper than any hash: corrupt */
            return -1;
        }
        dbit = 2 * dbit + ((hash & (1LL << hbit)) ? 2 : 1);
        hbit++;
    }
    *curbit = dbit;
    *hmask = (1LL << hbit) - 1;
    *pagb = (long)(hash & *hmask);
    return 0;
}

static int read_page(wa_sdbm *db, long pagb, unsigned char *pag)
{
    if (read_at(db->pagf, pag, PBLKSIZ, (off_t)pagb * PBLKSIZ) != 0) {
        return -1;
    }
    if (!chkpage(pag)) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ open / close */

static void free_handle(wa_sdbm *db)
{
    free(db->dirpath);
    wa_dbm_free(db);
}

/* The database NAME is the files NAME.dir and NAME.pag. */
wa_sdbm *wa_sdbm_open(const char *path, int writable, int lock_timeout_ms, char *err, size_t errcap)
{
    wa_sdbm *db = wa_dbm_new(sizeof *db, path, ".pag", WA_FILEID_FILE, writable, lock_timeout_ms, err, errcap);
    if (db == NULL) {
        return NULL;
    }
    const char *pagpath = db->head.path;
    size_t len = strlen(path);
    db->dirf = db->pagf = -1;
    db->dirbno = -1;
    if ((db->dirpath = malloc(len + 5)) == NULL) {
        snprintf(err, errcap, "out of memory");
        errno = ENOMEM;
        goto fail;
    }
    memcpy(db->dirpath, path, len);
    memcpy(db->dirpath + len, ".dir", 5);
    int flags = writable ? (O_RDWR | O_CREAT) : O_RDONLY;
    db->pagf = open(pagpath, flags | O_CLOEXEC, 0644);
    if (db->pagf < 0) {
        set_err(err, errcap, pagpath, errno);
        goto fail;
    }
    db->dirf = open(db->dirpath, flags | O_CLOEXEC, 0644);
    if (db->dirf < 0) {
        set_err(err, errcap, db->dirpath, errno);
        goto fail;
    }
    struct stat sd, sp;
    if (wa_fstat(db->dirf, &sd) != 0 || wa_fstat(db->pagf, &sp) != 0) {
        set_err(err, errcap, pagpath, errno);
        goto fail;
    }
    if (!S_ISREG(sd.st_mode) || !S_ISREG(sp.st_mode)) {
        set_err(err, errcap, pagpath, EINVAL);
        goto fail;
    }
    wa_fileid_set(&db->dir_id, &sd);
    wa_fileid_set(&db->head.id, &sp);
    if (writable && wa_lock(db->dirf, WA_LOCK_OFD_WR, lock_timeout_ms) != 0) {
        set_err(err, errcap, "cannot lock for writing (another writer?)", errno);
        goto fail;
    }
    return db;
fail:;
    int saved = errno;
    if (db->pagf >= 0) {
        close(db->pagf);
    }
    if (db->dirf >= 0) {
        close(db->dirf);
    }
    free_handle(db);
    errno = saved;
    return NULL;
}

int wa_sdbm_close(wa_sdbm *db)
{
    int rc = 0;
    if (db == NULL) {
        return 0;
    }
    if (db->head.writable) {
        if (fsync(db->pagf) != 0 || fsync(db->dirf) != 0) {
            rc = -1;
        }
        wa_unlock(db->dirf, WA_LOCK_OFD_WR);
    }
    close(db->pagf); /* closing releases an OFD lock too */
    close(db->dirf);
    free_handle(db);
    return rc;
}

/* 1 when either file's name now names another file than the one open (the database was replaced), 0 otherwise.
 * Every read goes to the files, so a change made in place is not a replacement. */
int wa_sdbm_replaced(wa_sdbm *db)
{
    return wa_fileid_replaced(&db->dir_id, db->dirpath, WA_FILEID_FILE) || wa_dbm_replaced(db);
}

static int begin(wa_sdbm *db)
{
    if (!db->head.writable && wa_lock(db->dirf, WA_LOCK_OFD_RD, db->head.lock_timeout_ms) != 0) {
        snprintf(db->head.err, sizeof db->head.err, "cannot take a shared lock on the .dir file: %s",
                 strerror(errno));
        return -1;
    }
    if (refresh_dir(db) != 0) {
        snprintf(db->head.err, sizeof db->head.err, "cannot read the .dir file: %s", strerror(errno));
        if (!db->head.writable) {
            wa_unlock(db->dirf, WA_LOCK_OFD_RD);
        }
        return -1;
    }
    return 0;
}

static void end(wa_sdbm *db)
{
    if (!db->head.writable) {
        wa_unlock(db->dirf, WA_LOCK_OFD_RD);
    }
}

static int io_error(wa_sdbm *db, const char *what)
{
    int e = errno;
    snprintf(db->head.err, sizeof db->head.err, "%s: %s", what, e == EIO ? "corrupt page" : strerror(e));
    end(db);
    errno = e;
    return -1;
}

/* ------------------------------------------------------------------ operations */

int wa_sdbm_fetch(wa_sdbm *db, const unsigned char *key, size_t klen, unsigned char *out, size_t cap,
                  size_t *vlen)
{
    unsigned char pag[PBLKSIZ];
    long pagb, curbit;
    long long hmask;
    if (klen == 0) {
        return 0;
    }
    if (begin(db) != 0) {
        return -1;
    }
    if (page_of(db, wa_sdbm_hash(key, klen), &pagb, &curbit, &hmask) != 0) {
        return io_error(db, "cannot read the .dir file");
    }
    if (read_page(db, pagb, pag) != 0) {
        return io_error(db, "cannot read the .pag file");
    }
    end(db);
    int i = seepair(pag, key, klen);
    if (i == 0) {
        return 0;
    }
    int k = ino_get(pag, i), v = ino_get(pag, i + 1);
    *vlen = (size_t)(k - v);
    if (*vlen > cap) {
        return -3;
    }
    memcpy(out, pag + v, *vlen);
    return 1;
}

/* Iterate over the keys, page by page, from the place kept in the handle (first != 0 starts over); returns 1 with a
 * key, 0 at the end. A key is reported only on the page the bitmap maps it to, so a stale copy can never appear
 * twice. */
int wa_sdbm_next(wa_sdbm *db, int first, unsigned char *out, size_t cap, size_t *klen)
{
    unsigned char pag[PBLKSIZ];
    struct stat st;
    unsigned long long *pos = &db->pos;
    if (first) {
        *pos = 0;
    }
    if (begin(db) != 0) {
        return -1;
    }
    if (wa_fstat(db->pagf, &st) != 0) {
        return io_error(db, "cannot stat the .pag file");
    }
    long npages = (long)((st.st_size + PBLKSIZ - 1) / PBLKSIZ);
    long pagb = (long)(*pos >> 16);
    int idx = (int)(*pos & 0xffff);
    for (; pagb < npages; pagb++, idx = 0) {
        if (read_page(db, pagb, pag) != 0) {
            return io_error(db, "cannot read the .pag file");
        }
        int n = ino_get(pag, 0);
        for (int i = 1; i < n; i += 2) {
            if ((i - 1) / 2 < idx) {
                continue;
            }
            int off = (i == 1) ? PBLKSIZ : ino_get(pag, i - 1);
            int k = ino_get(pag, i);
            size_t len = (size_t)(off - k);
            long home, curbit;
            long long hmask;
            if (page_of(db, wa_sdbm_hash(pag + k, len), &home, &curbit, &hmask) != 0) {
                return io_error(db, "cannot read the .dir file");
            }
            if (home != pagb) {
                continue;
            }
            *klen = len;
            if (len > cap) {
                end(db);
                return -3;
            }
            memcpy(out, pag + k, len);
            *pos = ((unsigned long long)pagb << 16) | (unsigned long long)((i - 1) / 2 + 1);
            end(db);
            return 1;
        }
    }
    *pos = (unsigned long long)npages << 16;
    end(db);
    return 0;
}

/* Split the page until the pair fits (APR's makroom); pag is the key's page, written out as we go. */
static int makroom(wa_sdbm *db, unsigned char *pag, long *pagb, long curbit, long long hmask, long long hash,
                   size_t need)
{
    unsigned char twin[PBLKSIZ];
    for (int smax = SPLTMAX; smax > 0; smax--) {
        splpage(pag, twin, hmask + 1);
        long newp = (long)((hash & hmask) | (hmask + 1));
        if (hash & (hmask + 1)) {
            if (write_at(db->pagf, pag, PBLKSIZ, (off_t)*pagb * PBLKSIZ) != 0) {
                return -1;
            }
            *pagb = newp;
            memcpy(pag, twin, PBLKSIZ);
        } else if (write_at(db->pagf, twin, PBLKSIZ, (off_t)newp * PBLKSIZ) != 0) {
            return -1;
        }
        if (setdbit(db, curbit) != 0) {
            return -1;
        }
        if (fitpair(pag, need)) {
            return 0;
        }
        curbit = 2 * curbit + ((hash & (hmask + 1)) ? 2 : 1);
        hmask |= hmask + 1;
        if (write_at(db->pagf, pag, PBLKSIZ, (off_t)*pagb * PBLKSIZ) != 0) {
            return -1;
        }
    }
    errno = ENOSPC;
    return -1;
}

/* Insert or replace a pair. 0 on success; -1 with errno EINVAL (empty key, pair over 1008 bytes), EBADF (read-only
 * handle), ENOSPC (too many keys with one hash) or an I/O error. */
int wa_sdbm_store(wa_sdbm *db, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen)
{
    unsigned char pag[PBLKSIZ];
    long pagb, curbit;
    long long hmask;
    if (wa_dbm_writer(&db->head) != 0) {
        return -1;
    }
    if (klen == 0 || klen + vlen > PAIRMAX) {
        snprintf(db->head.err, sizeof db->head.err, "key + value is %zu bytes; SDBM allows 1 to %d", klen + vlen,
                 PAIRMAX);
        errno = EINVAL;
        return -1;
    }
    long long hash = wa_sdbm_hash(key, klen);
    if (begin(db) != 0 || page_of(db, hash, &pagb, &curbit, &hmask) != 0 || read_page(db, pagb, pag) != 0) {
        return io_error(db, "cannot read the database");
    }
    (void)delpair(pag, key, klen);
    if (!fitpair(pag, klen + vlen) && makroom(db, pag, &pagb, curbit, hmask, hash, klen + vlen) != 0) {
        return io_error(db, "cannot split a page");
    }
    putpair(pag, key, klen, val, vlen);
    if (write_at(db->pagf, pag, PBLKSIZ, (off_t)pagb * PBLKSIZ) != 0) {
        return io_error(db, "cannot write the .pag file");
    }
    return 0;
}

/* Delete a key: 1 deleted, 0 not present, -1 error. */
int wa_sdbm_delete(wa_sdbm *db, const unsigned char *key, size_t klen)
{
    unsigned char pag[PBLKSIZ];
    long pagb, curbit;
    long long hmask;
    if (wa_dbm_writer(&db->head) != 0) {
        return -1;
    }
    if (klen == 0) {
        return 0;
    }
    if (begin(db) != 0 || page_of(db, wa_sdbm_hash(key, klen), &pagb, &curbit, &hmask) != 0 ||
        read_page(db, pagb, pag) != 0) {
        return io_error(db, "cannot read the database");
    }
    if (!delpair(pag, key, klen)) {
        return 0;
    }
    if (write_at(db->pagf, pag, PBLKSIZ, (off_t)pagb * PBLKSIZ) != 0) {
        return io_error(db, "cannot write the .pag file");
    }
    return 1;
}
