#include "wsgiauth.h"

/* Compare two byte strings without an early exit. The loop always runs over b (the expected value), so the time
   depends on the expected length only, never on where the strings first differ nor on the candidate's length. */
int wa_ct_equal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    volatile unsigned char diff = 0;
    size_t i;
    size_t len_diff = alen ^ blen;
    for (i = 0; i < blen; i++) {
        /* When a is shorter, compare b against itself shifted into a's bounds: same work, result forced unequal. */
        unsigned char ca = (alen != 0) ? a[i % alen] : 0;
        diff |= (unsigned char)(ca ^ b[i]);
    }
    diff |= (unsigned char)(len_diff | (len_diff >> 8) | (len_diff >> 16) | (len_diff >> 24));
    return ((unsigned int)diff | (unsigned int)(len_diff != 0)) == 0;
}
