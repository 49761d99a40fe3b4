#define WA_APR1_SIZE 40
int wa_md5crypt(const unsigned char *pw, size_t pwlen, const char *magic, const unsigned char *salt, size_t saltlen,
                char *out, size_t outlen);
int wa_apr1(const unsigned char *pw, size_t pwlen, const unsigned char *salt, size_t saltlen, char *out,
            size_t outlen);
int wa_apr1_verify(const unsigned char *pw, size_t pwlen, const char *stored, size_t storedlen);
