int wa_ct_equal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen);
