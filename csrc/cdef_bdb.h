/* bdb.c: Berkeley DB (DB_HASH, as APR uses it), through the library's functions handed over at run time. The
 * operations of every DBM format (see wsgiauth.h); return codes in csrc/bdb.c. */
typedef struct wa_bdb wa_bdb;
void wa_bdb_header_version(int *major, int *minor);
int wa_bdb_bind(uintptr_t create, uintptr_t strerror_fn);
wa_bdb *wa_bdb_open(const char *path, int writable, int lock_timeout_ms, char *err, size_t errcap);
int wa_bdb_close(wa_bdb *h);
int wa_bdb_fetch(wa_bdb *h, const unsigned char *key, size_t klen, unsigned char *out, size_t cap, size_t *vlen);
int wa_bdb_next(wa_bdb *h, int first, unsigned char *out, size_t cap, size_t *klen);
int wa_bdb_store(wa_bdb *h, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen);
int wa_bdb_delete(wa_bdb *h, const unsigned char *key, size_t klen);
