#include <string.h>

#include "wsgiauth.h"

/* Constant-time comparison.
 *
 * No early exit: every byte of the expected value b is read whatever the content. When the lengths differ, b is
 * compared with itself (the pointer is chosen with a mask, not a branch) and the result is forced to "unequal", so
 * the work depends only on blen, the length of the expected value, never on a's content or on where a and b first
 * differ. Eight bytes are folded per step; the accumulator is only inspected once, at the end. */
int wa_ct_equal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    uintptr_t same_len = (uintptr_t)0 - (uintptr_t)(alen == blen); /* all ones when equal lengths */
    const unsigned char *left = (const unsigned char *)(((uintptr_t)a & same_len) | ((uintptr_t)b & ~same_len));
    uint64_t acc = 0;
    size_t i = 0;
    volatile uint64_t result;

    if (blen == 0) {
        return alen == 0;
    }
    for (; i + 8 <= blen; i += 8) {
        uint64_t x, y;
        memcpy(&x, left + i, 8);
        memcpy(&y, b + i, 8);
        acc |= x ^ y;
    }
    for (; i < blen; i++) {
        acc |= (uint64_t)(left[i] ^ b[i]);
    }
    acc |= (uint64_t)(~same_len & 1u);
    result = acc;
    return result == 0;
}
