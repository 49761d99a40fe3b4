/* Poul-Henning Kamp's MD5-crypt, as Apache's $apr1$ (and the classic $1$): hash and verify.
 *
 * The algorithm: an "alternate" digest MD5(password salt password), mixed into MD5(password magic salt ...), then
 * 1000 rounds of MD5 over varying concatenations of the password, the salt and the previous digest, and finally a
 * custom base-64 of the 16 bytes in a shuffled order. Salt: up to 8 characters from ./0-9A-Za-z. */
#include <string.h>

#include "wsgiauth.h"

static const char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int is_b64(unsigned char c)
{
    return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char *to64(char *out, uint32_t v, int n)
{
    while (n-- > 0) {
        *out++ = itoa64[v & 0x3f];
        v >>= 6;
    }
    return out;
}

/* The 1000 rounds, with a one-block fast path: when the longest round message (password + salt + password +
   16-byte digest) fits in one MD5 block with its padding, each round is assembled in place and compressed once. */
static void md5crypt_rounds(const unsigned char *pw, size_t pwlen, const unsigned char *salt, size_t saltlen,
                            unsigned char final[16])
{
    int i;
    if (2 * pwlen + saltlen + 16 <= 55) {
        unsigned char block[64];
        for (i = 0; i < 1000; i++) {
            uint32_t state[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
            size_t n = 0;
            uint64_t bits;
            int k;
            if (i & 1) { memcpy(block + n, pw, pwlen); n += pwlen; }
            else { memcpy(block + n, final, 16); n += 16; }
            if (i % 3) { memcpy(block + n, salt, saltlen); n += saltlen; }
            if (i % 7) { memcpy(block + n, pw, pwlen); n += pwlen; }
            if (i & 1) { memcpy(block + n, final, 16); n += 16; }
            else { memcpy(block + n, pw, pwlen); n += pwlen; }
            bits = (uint64_t)n << 3;
            block[n] = 0x80;
            memset(block + n + 1, 0, 55 - n);
            for (k = 0; k < 8; k++) {
                block[56 + k] = (unsigned char)(bits >> (8 * k));
            }
            wa_md5_block(state, block);
            for (k = 0; k < 4; k++) {
                final[4 * k] = (unsigned char)state[k];
                final[4 * k + 1] = (unsigned char)(state[k] >> 8);
                final[4 * k + 2] = (unsigned char)(state[k] >> 16);
                final[4 * k + 3] = (unsigned char)(state[k] >> 24);
            }
        }
        memset(block, 0, sizeof(block));
        return;
    }
    for (i = 0; i < 1000; i++) {
        wa_md5_ctx ctx;
        wa_md5_init(&ctx);
        if (i & 1) wa_md5_update(&ctx, pw, pwlen);
        else wa_md5_update(&ctx, final, 16);
        if (i % 3) wa_md5_update(&ctx, salt, saltlen);
        if (i % 7) wa_md5_update(&ctx, pw, pwlen);
        if (i & 1) wa_md5_update(&ctx, final, 16);
        else wa_md5_update(&ctx, pw, pwlen);
        wa_md5_final(&ctx, final);
    }
}

int wa_md5crypt(const unsigned char *pw, size_t pwlen, const char *magic, const unsigned char *salt, size_t saltlen,
                char *out, size_t outlen)
{
    static const unsigned char zero = 0;
    size_t magiclen = strlen(magic);
    unsigned char final[16];
    wa_md5_ctx ctx, alt;
    size_t i;
    char *p;

    if (saltlen > 8 || outlen < magiclen + saltlen + 1 + 22 + 1) {
        return -1;
    }
    for (i = 0; i < saltlen; i++) {
        if (!is_b64(salt[i])) {
            return -1;
        }
    }

    wa_md5_init(&ctx);
    wa_md5_update(&ctx, pw, pwlen);
    wa_md5_update(&ctx, (const unsigned char *)magic, magiclen);
    wa_md5_update(&ctx, salt, saltlen);

    wa_md5_init(&alt);
    wa_md5_update(&alt, pw, pwlen);
    wa_md5_update(&alt, salt, saltlen);
    wa_md5_update(&alt, pw, pwlen);
    wa_md5_final(&alt, final);
    for (i = pwlen; i > 0; i -= (i > 16 ? 16 : i)) {
        wa_md5_update(&ctx, final, i > 16 ? 16 : i);
    }
    memset(final, 0, sizeof(final));
    for (i = pwlen; i != 0; i >>= 1) {
        if (i & 1) wa_md5_update(&ctx, &zero, 1);
        else wa_md5_update(&ctx, pw, 1);
    }
    wa_md5_final(&ctx, final);

    md5crypt_rounds(pw, pwlen, salt, saltlen, final);

    memcpy(out, magic, magiclen);
    p = out + magiclen;
    memcpy(p, salt, saltlen);
    p += saltlen;
    *p++ = '$';
    p = to64(p, ((uint32_t)final[0] << 16) | ((uint32_t)final[6] << 8) | final[12], 4);
    p = to64(p, ((uint32_t)final[1] << 16) | ((uint32_t)final[7] << 8) | final[13], 4);
    p = to64(p, ((uint32_t)final[2] << 16) | ((uint32_t)final[8] << 8) | final[14], 4);
    p = to64(p, ((uint32_t)final[3] << 16) | ((uint32_t)final[9] << 8) | final[15], 4);
    p = to64(p, ((uint32_t)final[4] << 16) | ((uint32_t)final[10] << 8) | final[5], 4);
    p = to64(p, final[11], 2);
    *p = '\0';
    memset(final, 0, sizeof(final));
    return (int)(p - out);
}

int wa_apr1(const unsigned char *pw, size_t pwlen, const unsigned char *salt, size_t saltlen, char *out,
            size_t outlen)
{
    return wa_md5crypt(pw, pwlen, "$apr1$", salt, saltlen, out, outlen);
}

/* 1 = the password matches, 0 = it does not, -1 = the stored hash is not a well-formed $apr1$ hash. */
int wa_apr1_verify(const unsigned char *pw, size_t pwlen, const char *stored, size_t storedlen)
{
    char computed[WA_APR1_SIZE];
    const unsigned char *s = (const unsigned char *)stored;
    size_t saltlen = 0, i;
    int n, ok;

    if (storedlen < 6 + 1 + 22 || memcmp(stored, "$apr1$", 6) != 0) {
        return -1;
    }
    while (6 + saltlen < storedlen && s[6 + saltlen] != '$') {
        if (saltlen == 8 || !is_b64(s[6 + saltlen])) {
            return -1;
        }
        saltlen++;
    }
    if (storedlen != 6 + saltlen + 1 + 22) {
        return -1;
    }
    for (i = 6 + saltlen + 1; i < storedlen; i++) {
        if (!is_b64(s[i])) {
            return -1;
        }
    }
    n = wa_md5crypt(pw, pwlen, "$apr1$", s + 6, saltlen, computed, sizeof(computed));
    if (n < 0) {
        return -1;
    }
    ok = wa_ct_equal((const unsigned char *)computed, (size_t)n, s, storedlen);
    memset(computed, 0, sizeof(computed));
    return ok;
}
