/* A binding to the system's libxcrypt: DES, $1$, $5$, $6$, $2b$, $y$ ... through the reentrant crypt_rn.
 *
 * struct crypt_data is about 32 KiB: it is allocated on the heap per call rather than on the stack, since Apache
 * threads may run with small stacks. crypt_rn needs no lock and is called with the GIL released. */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include "wsgiauth.h"

/* Hash phrase with setting into out. Returns the length of the hash, or -1 (invalid or unsupported setting). */
int wa_crypt(const char *phrase, const char *setting, char *out, size_t outlen)
{
    struct crypt_data *data = calloc(1, sizeof(struct crypt_data));
    const char *res;
    size_t n;
    int rc = -1;
    if (data == NULL) {
        return -2;
    }
    res = crypt_rn(phrase, setting, data, (int)sizeof(struct crypt_data));
    if (res != NULL && res[0] != '*') {
        n = strlen(res);
        if (n < outlen) {
            memcpy(out, res, n + 1);
            rc = (int)n;
        }
    }
    explicit_bzero(data, sizeof(struct crypt_data));
    free(data);
    return rc;
}

/* 1 = match, 0 = no match, -1 = the stored hash is not one libxcrypt can use, -2 = out of memory.
 *
 * libxcrypt refuses passphrases of CRYPT_MAX_PASSPHRASE_SIZE bytes or more (Apache's crypt() call then reports a
 * mismatch): such a phrase is a mismatch here too, after hashing an empty phrase in its place, so that the stored
 * hash is still validated and the call costs what any other does. */
int wa_crypt_verify(const char *phrase, const char *stored, size_t storedlen)
{
    struct crypt_data *data;
    const char *res;
    int rc = -1;
    int too_long = strlen(phrase) >= CRYPT_MAX_PASSPHRASE_SIZE;
    if (storedlen == 0 || strlen(stored) != storedlen) {
        return -1;
    }
    data = calloc(1, sizeof(struct crypt_data));
    if (data == NULL) {
        return -2;
    }
    res = crypt_rn(too_long ? "" : phrase, stored, data, (int)sizeof(struct crypt_data));
    /* A complete hash gives back a result of its own length (setting + digest); anything else (a bare setting,
       trailing garbage) is malformed, not merely a mismatch. */
    if (res != NULL && res[0] != '*' && strlen(res) == storedlen) {
        rc = wa_ct_equal((const unsigned char *)res, storedlen, (const unsigned char *)stored, storedlen);
        if (too_long) {
            rc = 0;
        }
    }
    explicit_bzero(data, sizeof(struct crypt_data));
    free(data);
    return rc;
}

int wa_crypt_checksalt(const char *setting)
{
    return crypt_checksalt(setting);
}

/* A new setting for prefix ("$6$", "$y$" ...) with cost count (0 = the method's default), random salt from the
   system. Returns the length written, or -1. */
int wa_crypt_gensalt(const char *prefix, unsigned long count, char *out, size_t outlen)
{
    char buf[CRYPT_GENSALT_OUTPUT_SIZE];
    size_t n;
    if (crypt_gensalt_rn(prefix, count, NULL, 0, buf, (int)sizeof(buf)) == NULL || buf[0] == '*') {
        return -1;
    }
    n = strlen(buf);
    if (n >= outlen) {
        return -1;
    }
    memcpy(out, buf, n + 1);
    return (int)n;
}
