void wa_md5(const unsigned char *data, size_t len, unsigned char digest[16]);
void wa_ha1(const unsigned char *user, size_t ulen, const unsigned char *realm, size_t rlen,
            const unsigned char *password, size_t plen, char out[33]);
