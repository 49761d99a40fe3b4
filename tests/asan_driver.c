/* A standalone fuzz driver for wsgiauth's C core, built with -fsanitize=address,undefined by `make asan` and by
 * tests/test_fuzz.py::test_c_core_under_asan (see asan_build() there). It links csrc/sdbm.c, dbmfile.c, apr1.c, md5.c
 * and ct.c directly, so no sanitizer runtime has to be preloaded into a Python interpreter. (libxcrypt and libgdbm are
 * called from Python through cffi's ABI mode: no C of ours wraps them.)
 *
 * Usage: asan_driver SECONDS SEED WORKDIR CORPUS_FILE...
 *
 * Every corpus file is run once as it is, then the driver mutates randomly chosen corpus inputs (bit flips, byte
 * sets, interesting 16-bit values, chunk insertion/deletion, splicing) until SECONDS have passed. The first byte of
 * an input picks the target:
 *
 *   0  SDBM: bytes 1-2 = little-endian length of the .dir image, then the .dir image, then the .pag image. The two
 *      files are written into WORKDIR and opened read-only: every key is listed with wa_sdbm_next and fetched back,
 *      a few keys taken from the input are fetched, then the same files are opened for writing and a pair is stored
 *      and deleted (what htdbm would do to a damaged database).
 *   1  apr1: byte 1 = password length, then the password, then the stored hash (wa_apr1_verify), plus wa_md5crypt
 *      with the same bytes as a salt.
 *   2  MD5 / HA1: wa_md5 over the rest, wa_ha1 over three slices of it, wa_hex.
 *   3  ct_equal: byte 1 = split point.
 *
 * Any error a sanitizer finds aborts the process with its report (-fno-sanitize-recover=all); a clean run prints
 * "asan_driver: N inputs, 0 errors" and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wsgiauth.h"

#define MAX_INPUT 65536
#define MAX_CORPUS 4096

static uint64_t rng_state;
static char dbpath[4096], dirpath[4096], pagpath[4096];

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static void write_file(const char *path, const unsigned char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        exit(2);
    }
    size_t put = 0;
    while (put < len) {
        ssize_t r = write(fd, data + put, len - put);
        if (r < 0) {
            perror(path);
            exit(2);
        }
        put += (size_t)r;
    }
    close(fd);
}

static void run_sdbm(const unsigned char *d, size_t n)
{
    char err[256];
    unsigned char out[2048];
    size_t len = 0;
    size_t dirlen;
    if (n < 2) {
        return;
    }
    dirlen = (size_t)d[0] | ((size_t)d[1] << 8);
    d += 2;
    n -= 2;
    if (dirlen > n) {
        dirlen = n;
    }
    write_file(dirpath, d, dirlen);
    write_file(pagpath, d + dirlen, n - dirlen);

    wa_sdbm *db = wa_sdbm_open(dbpath, 0, 0, err, sizeof err);
    if (db != NULL) {
        for (int guard = 0; guard < 4096; guard++) {
            size_t klen = 0;
            int rc = wa_sdbm_next(db, guard == 0, out, sizeof out, &klen);
            if (rc != 1) {
                break;
            }
            unsigned char key[2048];
            memcpy(key, out, klen);
            (void)wa_sdbm_fetch(db, key, klen, out, sizeof out, &len);
            (void)wa_sdbm_fetch(db, key, klen, out, 1, &len); /* buffer too small: WA_DBM_SMALL */
        }
        for (size_t i = 0; i + 1 < n && i < 64; i += 7) {
            size_t klen = 1 + (d[i] % 16);
            if (i + klen <= n) {
                (void)wa_sdbm_fetch(db, d + i, klen, out, sizeof out, &len);
            }
        }
        (void)wa_dbm_error(db);
        (void)wa_sdbm_replaced(db);
        wa_sdbm_close(db);
    }

    db = wa_sdbm_open(dbpath, 1, 0, err, sizeof err);
    if (db != NULL) {
        const unsigned char *key = n > 4 ? d + (n / 2) : (const unsigned char *)"alice";
        size_t klen = n > 4 ? 1 + (d[n / 2] % 8) : 5;
        if (key + klen > d + n) {
            key = (const unsigned char *)"alice";
            klen = 5;
        }
        for (int round = 0; round < 3; round++) {
            unsigned char value[600];
            memset(value, 'v' + round, sizeof value);
            (void)wa_sdbm_store(db, key, klen, value, (size_t)(rnd() % sizeof value));
        }
        (void)wa_sdbm_fetch(db, key, klen, out, sizeof out, &len);
        (void)wa_sdbm_delete(db, key, klen);
        (void)wa_sdbm_delete(db, (const unsigned char *)"nobody", 6);
        wa_sdbm_close(db);
    }
}

static void run_apr1(const unsigned char *d, size_t n)
{
    char out[WA_APR1_SIZE];
    if (n < 1) {
        return;
    }
    size_t pwlen = d[0];
    d++;
    n--;
    if (pwlen > n) {
        pwlen = n;
    }
    const unsigned char *pw = d;
    const unsigned char *stored = d + pwlen;
    size_t storedlen = n - pwlen;
    /* the stored hash is a counted string here, not NUL-terminated: ASan sees any over-read */
    char *copy = malloc(storedlen ? storedlen : 1);
    memcpy(copy, stored, storedlen);
    (void)wa_apr1_verify(pw, pwlen, copy, storedlen);
    free(copy);
    (void)wa_md5crypt(pw, pwlen, "$1$", stored, storedlen > 8 ? 8 : storedlen, out, sizeof out);
    (void)wa_apr1(pw, pwlen, stored, storedlen, out, sizeof out);
    (void)wa_apr1(pw, pwlen, stored, storedlen, out, 8); /* too small an output buffer */
}

static void run_md5(const unsigned char *d, size_t n)
{
    unsigned char digest[16];
    char hex[33], ha1[33];
    wa_md5(d, n, digest);
    wa_hex(digest, 16, hex);
    size_t a = n / 3, b = (2 * n) / 3;
    wa_ha1(d, a, d + a, b - a, d + b, n - b, ha1);
    wa_md5_ctx ctx;
    wa_md5_init(&ctx);
    for (size_t i = 0; i < n; i += 1 + (i % 97)) {
        size_t step = 1 + (i % 97);
        wa_md5_update(&ctx, d + i, (i + step <= n) ? step : n - i);
    }
    wa_md5_final(&ctx, digest);
}

static void run_ct(const unsigned char *d, size_t n)
{
    if (n < 1) {
        return;
    }
    size_t split = d[0];
    d++;
    n--;
    if (split > n) {
        split = n;
    }
    unsigned char *a = malloc(split ? split : 1), *b = malloc(n - split ? n - split : 1);
    memcpy(a, d, split);
    memcpy(b, d + split, n - split);
    (void)wa_ct_equal(a, split, b, n - split);
    (void)wa_ct_equal(a, split, a, split);
    free(a);
    free(b);
}

static void run_one(const unsigned char *d, size_t n)
{
    if (n == 0) {
        return;
    }
    switch (d[0] % 4) {
    case 0:
        run_sdbm(d + 1, n - 1);
        break;
    case 1:
        run_apr1(d + 1, n - 1);
        break;
    case 2:
        run_md5(d + 1, n - 1);
        break;
    default:
        run_ct(d + 1, n - 1);
        break;
    }
}

static size_t mutate(unsigned char *buf, size_t n, unsigned char **corpus, size_t *sizes, size_t count)
{
    static const int16_t interesting[] = {0, 1, -1, 2, 4, 0x7f, 0x80, 0xff, 0x100, 0x3ff, 0x400, 0x401,
                                          0x7fff, -0x8000, 1008, 1022, 1024, 512, 511};
    int rounds = 1 + (int)(rnd() % 6);
    for (int r = 0; r < rounds; r++) {
        uint64_t op = rnd() % 7;
        if (n == 0) {
            buf[0] = (unsigned char)rnd();
            n = 1;
            continue;
        }
        size_t at = (size_t)(rnd() % n);
        switch (op) {
        case 0: /* flip one bit (never the target selector) */
            if (at > 0) {
                buf[at] ^= (unsigned char)(1u << (rnd() % 8));
            }
            break;
        case 1: /* set a byte */
            if (at > 0) {
                buf[at] = (unsigned char)rnd();
            }
            break;
        case 2: /* an interesting 16-bit value, native order, at an even offset (SDBM offsets) */
            if (at > 0 && at + 2 <= n) {
                int16_t v = interesting[rnd() % (sizeof interesting / sizeof interesting[0])];
                size_t even = at & ~(size_t)1;
                if (even == 0) {
                    even = 2;
                }
                if (even + 2 <= n) {
                    memcpy(buf + even, &v, 2);
                }
            }
            break;
        case 3: /* delete a chunk */
            if (at > 0) {
                size_t len = 1 + (size_t)(rnd() % 64);
                if (at + len > n) {
                    len = n - at;
                }
                memmove(buf + at, buf + at + len, n - at - len);
                n -= len;
            }
            break;
        case 4: /* insert random bytes */
        {
            size_t len = 1 + (size_t)(rnd() % 64);
            if (at > 0 && n + len <= MAX_INPUT) {
                memmove(buf + at + len, buf + at, n - at);
                for (size_t i = 0; i < len; i++) {
                    buf[at + i] = (unsigned char)rnd();
                }
                n += len;
            }
            break;
        }
        case 5: /* copy a chunk from another corpus input of the same target */
        {
            size_t other = (size_t)(rnd() % count);
            if (sizes[other] > 1 && at > 0) {
                size_t from = 1 + (size_t)(rnd() % (sizes[other] - 1));
                size_t len = 1 + (size_t)(rnd() % 256);
                if (from + len > sizes[other]) {
                    len = sizes[other] - from;
                }
                if (at + len > n) {
                    len = n - at;
                }
                memcpy(buf + at, corpus[other] + from, len);
            }
            break;
        }
        default: /* truncate */
            if (at > 1) {
                n = at;
            }
            break;
        }
    }
    return n;
}

static unsigned char *read_input(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    unsigned char *data = malloc(MAX_INPUT);
    *size = fread(data, 1, MAX_INPUT, f);
    fclose(f);
    return data;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s SECONDS SEED WORKDIR CORPUS_FILE...\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[1]);
    rng_state = strtoull(argv[2], NULL, 10) | 1;
    snprintf(dbpath, sizeof dbpath, "%s/fuzz", argv[3]);
    snprintf(dirpath, sizeof dirpath, "%s/fuzz.dir", argv[3]);
    snprintf(pagpath, sizeof pagpath, "%s/fuzz.pag", argv[3]);

    size_t count = 0;
    unsigned char *corpus[MAX_CORPUS];
    size_t sizes[MAX_CORPUS];
    for (int i = 4; i < argc && count < MAX_CORPUS; i++) {
        corpus[count] = read_input(argv[i], &sizes[count]);
        count++;
    }
    unsigned long long runs = 0;
    for (size_t i = 0; i < count; i++) {
        run_one(corpus[i], sizes[i]);
        runs++;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    unsigned char *buf = malloc(MAX_INPUT);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        if (elapsed >= seconds || count == 0) {
            break;
        }
        size_t pick = (size_t)(rnd() % count);
        memcpy(buf, corpus[pick], sizes[pick]);
        size_t n = mutate(buf, sizes[pick], corpus, sizes, count);
        /* an exact-size heap copy, so that ASan catches a read one byte past the input */
        unsigned char *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        run_one(exact, n);
        free(exact);
        runs++;
    }
    free(buf);
    for (size_t i = 0; i < count; i++) {
        free(corpus[i]);
    }
    printf("asan_driver: %llu inputs, 0 errors\n", runs);
    return 0;
}
