/* wsgiauth C core: the one header of prototypes. Each csrc/cdef_*.h repeats the part exposed to Python. */
#ifndef WSGIAUTH_H
#define WSGIAUTH_H

#include <stddef.h>
#include <stdint.h>

/* ct.c: constant-time comparison. Returns 1 when equal, 0 otherwise; time depends only on blen. */
int wa_ct_equal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen);

/* md5.c: MD5 (RFC 1321) and the HTTP Digest HA1. */
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
void wa_md5(const unsigned char *data, size_t len, unsigned char digest[16]);
void wa_hex(const unsigned char *data, size_t len, char *out);
void wa_ha1(const unsigned char *user, size_t ulen, const unsigned char *realm, size_t rlen,
            const unsigned char *password, size_t plen, char out[33]);

/* apr1.c: MD5-crypt ($apr1$ and $1$). Buffers for a hash are WA_APR1_SIZE bytes. */
#define WA_APR1_SIZE 40
int wa_md5crypt(const unsigned char *pw, size_t pwlen, const char *magic, const unsigned char *salt, size_t saltlen,
                char *out, size_t outlen);
int wa_apr1(const unsigned char *pw, size_t pwlen, const unsigned char *salt, size_t saltlen, char *out,
            size_t outlen);
int wa_apr1_verify(const unsigned char *pw, size_t pwlen, const char *stored, size_t storedlen);

/* xcrypt.c: the system libxcrypt (crypt_rn, crypt_checksalt, crypt_gensalt_rn). */
#define WA_CRYPT_OUTPUT_SIZE 384
#define WA_CRYPT_MAX_PASSPHRASE_SIZE 512 /* CRYPT_MAX_PASSPHRASE_SIZE: longer phrases are refused */
#define WA_CRYPT_SALT_OK 0
#define WA_CRYPT_SALT_INVALID 1
#define WA_CRYPT_SALT_METHOD_DISABLED 2
#define WA_CRYPT_SALT_METHOD_LEGACY 3
#define WA_CRYPT_SALT_TOO_CHEAP 4
int wa_crypt(const char *phrase, const char *setting, char *out, size_t outlen);
int wa_crypt_verify(const char *phrase, const char *stored, size_t storedlen);
int wa_crypt_checksalt(const char *setting);
int wa_crypt_gensalt(const char *prefix, unsigned long count, char *out, size_t outlen);

/* sdbm.c, gdbm.c, bdb.c: the DBM types htdbm writes. Fetch/next return 1 found, 0 not found (end), -1 error
 * (message from wa_*_error), WA_DBM_STALE (the file changed in place: reopen), WA_DBM_SMALL (buffer too small). */
#define WA_DBM_STALE (-2)
#define WA_DBM_SMALL (-3)
typedef struct wa_sdbm wa_sdbm;
long long wa_sdbm_hash(const unsigned char *key, size_t len);
wa_sdbm *wa_sdbm_open(const char *dirpath, const char *pagpath, int writable, int lock_timeout_ms,
                      char *err, size_t errcap);
int wa_sdbm_close(wa_sdbm *db);
const char *wa_sdbm_error(wa_sdbm *db);
int wa_sdbm_replaced(wa_sdbm *db, const char *dirpath, const char *pagpath);
int wa_sdbm_fetch(wa_sdbm *db, const unsigned char *key, size_t klen, unsigned char *out, size_t cap,
                  size_t *vlen);
int wa_sdbm_next(wa_sdbm *db, unsigned long long *pos, unsigned char *out, size_t cap, size_t *klen);
int wa_sdbm_store(wa_sdbm *db, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen);
int wa_sdbm_delete(wa_sdbm *db, const unsigned char *key, size_t klen);
typedef struct wa_gdbm wa_gdbm;
wa_gdbm *wa_gdbm_open(const char *path, int writable, int lock_timeout_ms, char *err, size_t errcap);
int wa_gdbm_close(wa_gdbm *h);
const char *wa_gdbm_error(wa_gdbm *h);
int wa_gdbm_replaced(wa_gdbm *h, const char *path);
int wa_gdbm_fetch(wa_gdbm *h, const unsigned char *key, size_t klen, unsigned char *out, size_t cap,
                  size_t *vlen);
int wa_gdbm_next(wa_gdbm *h, const unsigned char *prev, size_t prevlen, unsigned char *out, size_t cap,
                 size_t *klen);
int wa_gdbm_store(wa_gdbm *h, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen);
int wa_gdbm_delete(wa_gdbm *h, const unsigned char *key, size_t klen);
typedef struct wa_bdb wa_bdb;
wa_bdb *wa_bdb_open(const char *path, int writable, char *err, size_t errcap);
int wa_bdb_close(wa_bdb *h);
const char *wa_bdb_error(wa_bdb *h);
int wa_bdb_replaced(wa_bdb *h, const char *path);
int wa_bdb_fetch(wa_bdb *h, const unsigned char *key, size_t klen, unsigned char *out, size_t cap, size_t *vlen);
int wa_bdb_next(wa_bdb *h, int first, unsigned char *out, size_t cap, size_t *klen);
int wa_bdb_store(wa_bdb *h, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen);
int wa_bdb_delete(wa_bdb *h, const unsigned char *key, size_t klen);

#endif
