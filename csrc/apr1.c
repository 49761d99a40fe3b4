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

/* The 1000 rounds. Round i hashes [pw | digest] [salt if i%3] [pw if i%7] [digest | pw] (pw first when i is odd),
 * so there are only 8 message layouts. For passwords up to 111 bytes every layout fits in four MD5 blocks: each
 * layout is padded and converted to words once (zero where the previous digest goes); a round copies its layout,
 * drops the previous digest's words in place (shifted when it sits at an unaligned offset) and compresses. Blocks
 * before the one where the digest starts are the same in every round of that layout: their state is precomputed.
 * The MD5 dependency chain then is the whole cost. Longer passwords take the plain streaming path. */
#define MAX_BLOCKS 4
#define FAST_MAX_PW ((64 * MAX_BLOCKS - 9 - 16 - 8) / 2)

typedef struct {
    uint32_t w[16 * MAX_BLOCKS]; /* the padded message as little-endian words, zero where the digest goes */
    uint32_t mid[4];             /* the state after the blocks before block `first` */
    int nblocks;                 /* 1 to MAX_BLOCKS */
    int first;                   /* the block where the digest starts */
    int off;                     /* byte offset of the digest in the message */
} round_layout;

static const uint32_t md5_iv[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void build_layout(round_layout *t, int k, const unsigned char *pw, size_t pwlen, const unsigned char *salt,
                         size_t saltlen)
{
    unsigned char m[64 * MAX_BLOCKS];
    size_t n = 0, total;
    uint64_t bits;
    int odd = k & 1, with_salt = (k >> 1) & 1, with_pw = (k >> 2) & 1, i;

    memset(m, 0, sizeof(m));
    if (odd) { memcpy(m, pw, pwlen); n = pwlen; }
    else { t->off = 0; n = 16; }
    if (with_salt) { memcpy(m + n, salt, saltlen); n += saltlen; }
    if (with_pw) { memcpy(m + n, pw, pwlen); n += pwlen; }
    if (odd) { t->off = (int)n; n += 16; }
    else { memcpy(m + n, pw, pwlen); n += pwlen; }
    m[n] = 0x80;
    t->nblocks = (int)((n + 8) / 64 + 1);
    total = 64 * (size_t)t->nblocks;
    bits = (uint64_t)n << 3;
    for (i = 0; i < 8; i++) {
        m[total - 8 + (size_t)i] = (unsigned char)(bits >> (8 * i));
    }
    for (i = 0; i < 16 * MAX_BLOCKS; i++) {
        t->w[i] = le32(m + 4 * i);
    }
    t->first = t->off / 64;
    memcpy(t->mid, md5_iv, sizeof(md5_iv));
    for (i = 0; i < t->first; i++) {
        wa_md5_compress(t->mid, t->w + 16 * i);
    }
    explicit_bzero(m, sizeof(m));
}

static void md5crypt_rounds(const unsigned char *pw, size_t pwlen, const unsigned char *salt, size_t saltlen,
                            unsigned char final[16])
{
    round_layout layouts[8];
    uint32_t cur[4], x[16 * MAX_BLOCKS];
    int i, k, b;

    if (pwlen > FAST_MAX_PW) {
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
        return;
    }

    for (k = 0; k < 8; k++) {
        build_layout(&layouts[k], k, pw, pwlen, salt, saltlen);
    }
    for (k = 0; k < 4; k++) {
        cur[k] = le32(final + 4 * k);
    }
    for (i = 0; i < 1000; i++) {
        const round_layout *t = &layouts[(i & 1) | ((i % 3 != 0) << 1) | ((i % 7 != 0) << 2)];
        int q = t->off >> 2, r = t->off & 3;
        memcpy(x, t->w, sizeof(uint32_t) * 16 * (size_t)t->nblocks);
        if (r == 0) {
            x[q] = cur[0];
            x[q + 1] = cur[1];
            x[q + 2] = cur[2];
            x[q + 3] = cur[3];
        } else {
            int sh = 8 * r;
            x[q] |= cur[0] << sh;
            x[q + 1] = (cur[0] >> (32 - sh)) | (cur[1] << sh);
            x[q + 2] = (cur[1] >> (32 - sh)) | (cur[2] << sh);
            x[q + 3] = (cur[2] >> (32 - sh)) | (cur[3] << sh);
            x[q + 4] |= cur[3] >> (32 - sh);
        }
        memcpy(cur, t->mid, sizeof(cur));
        for (b = t->first; b < t->nblocks; b++) {
            wa_md5_compress(cur, x + 16 * b);
        }
    }
    for (k = 0; k < 4; k++) {
        final[4 * k] = (unsigned char)cur[k];
        final[4 * k + 1] = (unsigned char)(cur[k] >> 8);
        final[4 * k + 2] = (unsigned char)(cur[k] >> 16);
        final[4 * k + 3] = (unsigned char)(cur[k] >> 24);
    }
    explicit_bzero(layouts, sizeof(layouts));
    explicit_bzero(x, sizeof(x));
    explicit_bzero(cur, sizeof(cur));
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
