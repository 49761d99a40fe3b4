/* gdbm.c: GDBM through libgdbm. The operations of every DBM format (see wsgiauth.h); return codes in csrc/gdbm.c. */
typedef struct wa_gdbm wa_gdbm;
wa_gdbm *wa_gdbm_open(const char *path, int writable, int lock_timeout_ms, char *err, size_t errcap);
int wa_gdbm_close(wa_gdbm *h);
int wa_gdbm_fetch(wa_gdbm *h, const unsigned char *key, size_t klen, unsigned char *out, size_t cap, size_t *vlen);
int wa_gdbm_next(wa_gdbm *h, int first, unsigned char *out, size_t cap, size_t *klen);
int wa_gdbm_store(wa_gdbm *h, const unsigned char *key, size_t klen, const unsigned char *val, size_t vlen);
int wa_gdbm_delete(wa_gdbm *h, const unsigned char *key, size_t klen);
