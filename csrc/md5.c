/* MD5 (RFC 1321), written for wsgiauth, and the HTTP Digest HA1 built on it. */
#include <string.h>

#include "wsgiauth.h"

#define ROTL(v, s) (((v) << (s)) | ((v) >> (32 - (s))))
/* Each step adds the message word and the constant first (off the a-b-c-d dependency chain), then the round
   function, whose last operation is the only one waiting for b. G uses the disjoint-bits form
   (b & d) + (c & ~d), so only one AND depends on b. */
#define STEP_F(a, b, c, d, x, t, s) \
    do { (a) += (x) + (uint32_t)(t); (a) += (d) ^ ((b) & ((c) ^ (d))); (a) = ROTL((a), (s)) + (b); } while (0)
#define STEP_G(a, b, c, d, x, t, s) \
    do { (a) += (x) + (uint32_t)(t) + ((c) & ~(d)); (a) += (b) & (d); (a) = ROTL((a), (s)) + (b); } while (0)
#define STEP_H(a, b, c, d, x, t, s) \
    do { (a) += (x) + (uint32_t)(t); (a) += (b) ^ ((c) ^ (d)); (a) = ROTL((a), (s)) + (b); } while (0)
#define STEP_I(a, b, c, d, x, t, s) \
    do { (a) += (x) + (uint32_t)(t); (a) += (c) ^ ((b) | ~(d)); (a) = ROTL((a), (s)) + (b); } while (0)

static uint32_t load32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void store32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* One block given as 16 little-endian words (RFC 1321 section 3.4, the four rounds unrolled). */
void wa_md5_compress(uint32_t state[4], const uint32_t x[16])
{
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];

    STEP_F(a, b, c, d, x[0], 0xd76aa478, 7);
    STEP_F(d, a, b, c, x[1], 0xe8c7b756, 12);
    STEP_F(c, d, a, b, x[2], 0x242070db, 17);
    STEP_F(b, c, d, a, x[3], 0xc1bdceee, 22);
    STEP_F(a, b, c, d, x[4], 0xf57c0faf, 7);
    STEP_F(d, a, b, c, x[5], 0x4787c62a, 12);
    STEP_F(c, d, a, b, x[6], 0xa8304613, 17);
    STEP_F(b, c, d, a, x[7], 0xfd469501, 22);
    STEP_F(a, b, c, d, x[8], 0x698098d8, 7);
    STEP_F(d, a, b, c, x[9], 0x8b44f7af, 12);
    STEP_F(c, d, a, b, x[10], 0xffff5bb1, 17);
    STEP_F(b, c, d, a, x[11], 0x895cd7be, 22);
    STEP_F(a, b, c, d, x[12], 0x6b901122, 7);
    STEP_F(d, a, b, c, x[13], 0xfd987193, 12);
    STEP_F(c, d, a, b, x[14], 0xa679438e, 17);
    STEP_F(b, c, d, a, x[15], 0x49b40821, 22);

    STEP_G(a, b, c, d, x[1], 0xf61e2562, 5);
    STEP_G(d, a, b, c, x[6], 0xc040b340, 9);
    STEP_G(c, d, a, b, x[11], 0x265e5a51, 14);
    STEP_G(b, c, d, a, x[0], 0xe9b6c7aa, 20);
    STEP_G(a, b, c, d, x[5], 0xd62f105d, 5);
    STEP_G(d, a, b, c, x[10], 0x02441453, 9);
    STEP_G(c, d, a, b, x[15], 0xd8a1e681, 14);
    STEP_G(b, c, d, a, x[4], 0xe7d3fbc8, 20);
    STEP_G(a, b, c, d, x[9], 0x21e1cde6, 5);
    STEP_G(d, a, b, c, x[14], 0xc33707d6, 9);
    STEP_G(c, d, a, b, x[3], 0xf4d50d87, 14);
    STEP_G(b, c, d, a, x[8], 0x455a14ed, 20);
    STEP_G(a, b, c, d, x[13], 0xa9e3e905, 5);
    STEP_G(d, a, b, c, x[2], 0xfcefa3f8, 9);
    STEP_G(c, d, a, b, x[7], 0x676f02d9, 14);
    STEP_G(b, c, d, a, x[12], 0x8d2a4c8a, 20);

    STEP_H(a, b, c, d, x[5], 0xfffa3942, 4);
    STEP_H(d, a, b, c, x[8], 0x8771f681, 11);
    STEP_H(c, d, a, b, x[11], 0x6d9d6122, 16);
    STEP_H(b, c, d, a, x[14], 0xfde5380c, 23);
    STEP_H(a, b, c, d, x[1], 0xa4beea44, 4);
    STEP_H(d, a, b, c, x[4], 0x4bdecfa9, 11);
    STEP_H(c, d, a, b, x[7], 0xf6bb4b60, 16);
    STEP_H(b, c, d, a, x[10], 0xbebfbc70, 23);
    STEP_H(a, b, c, d, x[13], 0x289b7ec6, 4);
    STEP_H(d, a, b, c, x[0], 0xeaa127fa, 11);
    STEP_H(c, d, a, b, x[3], 0xd4ef3085, 16);
    STEP_H(b, c, d, a, x[6], 0x04881d05, 23);
    STEP_H(a, b, c, d, x[9], 0xd9d4d039, 4);
    STEP_H(d, a, b, c, x[12], 0xe6db99e5, 11);
    STEP_H(c, d, a, b, x[15], 0x1fa27cf8, 16);
    STEP_H(b, c, d, a, x[2], 0xc4ac5665, 23);

    STEP_I(a, b, c, d, x[0], 0xf4292244, 6);
    STEP_I(d, a, b, c, x[7], 0x432aff97, 10);
    STEP_I(c, d, a, b, x[14], 0xab9423a7, 15);
    STEP_I(b, c, d, a, x[5], 0xfc93a039, 21);
    STEP_I(a, b, c, d, x[12], 0x655b59c3, 6);
    STEP_I(d, a, b, c, x[3], 0x8f0ccc92, 10);
    STEP_I(c, d, a, b, x[10], 0xffeff47d, 15);
    STEP_I(b, c, d, a, x[1], 0x85845dd1, 21);
    STEP_I(a, b, c, d, x[8], 0x6fa87e4f, 6);
    STEP_I(d, a, b, c, x[15], 0xfe2ce6e0, 10);
    STEP_I(c, d, a, b, x[6], 0xa3014314, 15);
    STEP_I(b, c, d, a, x[13], 0x4e0811a1, 21);
    STEP_I(a, b, c, d, x[4], 0xf7537e82, 6);
    STEP_I(d, a, b, c, x[11], 0xbd3af235, 10);
    STEP_I(c, d, a, b, x[2], 0x2ad7d2bb, 15);
    STEP_I(b, c, d, a, x[9], 0xeb86d391, 21);

    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
}

/* One 64-byte block. */
void wa_md5_block(uint32_t state[4], const unsigned char block[64])
{
    uint32_t x[16];
    int i;
    for (i = 0; i < 16; i++) {
        x[i] = load32(block + 4 * i);
    }
    wa_md5_compress(state, x);
}

void wa_md5_init(wa_md5_ctx *ctx)
{
    ctx->state[0] = 0x67452301u;
    ctx->state[1] = 0xefcdab89u;
    ctx->state[2] = 0x98badcfeu;
    ctx->state[3] = 0x10325476u;
    ctx->count = 0;
}

void wa_md5_update(wa_md5_ctx *ctx, const unsigned char *data, size_t len)
{
    size_t used = (size_t)(ctx->count & 63u);
    ctx->count += (uint64_t)len;
    if (used != 0) {
        size_t room = 64 - used;
        if (len < room) {
            memcpy(ctx->buffer + used, data, len);
            return;
        }
        memcpy(ctx->buffer + used, data, room);
        wa_md5_block(ctx->state, ctx->buffer);
        data += room;
        len -= room;
    }
    while (len >= 64) {
        wa_md5_block(ctx->state, data);
        data += 64;
        len -= 64;
    }
    if (len != 0) {
        memcpy(ctx->buffer, data, len);
    }
}

void wa_md5_final(wa_md5_ctx *ctx, unsigned char digest[16])
{
    size_t used = (size_t)(ctx->count & 63u);
    uint64_t bits = ctx->count << 3;
    int i;
    ctx->buffer[used++] = 0x80;
    if (used > 56) {
        memset(ctx->buffer + used, 0, 64 - used);
        wa_md5_block(ctx->state, ctx->buffer);
        used = 0;
    }
    memset(ctx->buffer + used, 0, 56 - used);
    for (i = 0; i < 8; i++) {
        ctx->buffer[56 + i] = (unsigned char)(bits >> (8 * i));
    }
    wa_md5_block(ctx->state, ctx->buffer);
    for (i = 0; i < 4; i++) {
        store32(digest + 4 * i, ctx->state[i]);
    }
    memset(ctx, 0, sizeof(*ctx));
}

void wa_md5(const unsigned char *data, size_t len, unsigned char digest[16])
{
    wa_md5_ctx ctx;
    wa_md5_init(&ctx);
    wa_md5_update(&ctx, data, len);
    wa_md5_final(&ctx, digest);
}

void wa_hex(const unsigned char *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

void wa_ha1(const unsigned char *user, size_t ulen, const unsigned char *realm, size_t rlen,
            const unsigned char *password, size_t plen, char out[33])
{
    static const unsigned char colon = ':';
    unsigned char digest[16];
    wa_md5_ctx ctx;
    wa_md5_init(&ctx);
    wa_md5_update(&ctx, user, ulen);
    wa_md5_update(&ctx, &colon, 1);
    wa_md5_update(&ctx, realm, rlen);
    wa_md5_update(&ctx, &colon, 1);
    wa_md5_update(&ctx, password, plen);
    wa_md5_final(&ctx, digest);
    wa_hex(digest, 16, out);
    memset(digest, 0, sizeof(digest));
}
