/* sdbm.c: APR's SDBM format (.pag/.dir), read and written in C. The operations of every DBM format (see wsgiauth.h);
 * return codes in csrc/sdbm.c. */
typedef struct wa_sdbm wa_sdbm;
long long wa_sdbm_hash(const unsigned char *key, size_t len);
wa_sdbm *wa_sdbm_open(const char *path, int writable, int lock_timeout_ms, char *err, size_t errcap);
int wa_sdbm_close(wa_sdbm *db);
int wa_sdbm_replaced(wa_sdbm *db);
int wa_sdbm_fetch(wa_sdbm *db, const unsigned char *key, size_t klen, unsigned char *out, size_t cap, size_t *vlen);
int wa_sdbm_next(wa_sdbm *db, int first, unsigned char *out, size_t cap, size_t *klen);
int wa_sdbm_store(wa_sdbm *db, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen);
int wa_sdbm_delete(wa_sdbm *db, const unsigned char *key, size_t klen);
