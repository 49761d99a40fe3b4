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

/* xcrypt.c: the system libxcrypt (crypt_rn, crypt_checksalt, crypt_gensalt_rn). WA_CRYPT_MAX_PASSPHRASE_SIZE is
 * libxcrypt's CRYPT_MAX_PASSPHRASE_SIZE: longer phrases are refused. */
#include "cdef_xcrypt.h"

/* sdbm.c, gdbm.c, bdb.c: the DBM types htdbm writes. Fetch/next return 1 found, 0 not found (end), -1 error
 * (message from wa_*_error), WA_DBM_STALE (the file changed in place: reopen), WA_DBM_SMALL (buffer too small). */
#define WA_DBM_STALE (-2)
#define WA_DBM_SMALL (-3)
#include "cdef_sdbm.h"
#include "cdef_gdbm.h"
#include "cdef_bdb.h"

#endif
