/* bdb.c: Berkeley DB 5.3 (DB_HASH, as APR uses it). The operations of every DBM format (see wsgiauth.h); return codes
 * in csrc/bdb.c. */
typedef struct wa_bdb wa_bdb;
wa_bdb *wa_bdb_open(const char *path, int writable, int lock_timeout_ms, char *err, size_t errcap);
int wa_bdb_close(wa_bdb *h);
int wa_bdb_fetch(wa_bdb *h, const unsigned char *key, size_t klen, unsigned char *out, size_t cap, size_t *vlen);
int wa_bdb_next(wa_bdb *h, int first, unsigned char *out, size_t cap, size_t *klen);
int wa_bdb_store(wa_bdb *h, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen);
int wa_bdb_delete(wa_bdb *h, const unsigned char *key, size_t klen);
