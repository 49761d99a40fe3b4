/* wsgiauth C core: the one header of prototypes. Each csrc/cdef_*.h repeats the part exposed to Python. */
#ifndef WSGIAUTH_H
#define WSGIAUTH_H

#include <stddef.h>
#include <stdint.h>

/* ct.c: constant-time comparison. Returns 1 when equal, 0 otherwise; time depends only on the lengths. */
int wa_ct_equal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen);

#endif
