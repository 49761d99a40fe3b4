#define WA_CRYPT_OUTPUT_SIZE 384
#define WA_CRYPT_MAX_PASSPHRASE_SIZE 512
#define WA_CRYPT_SALT_OK 0
#define WA_CRYPT_SALT_INVALID 1
#define WA_CRYPT_SALT_METHOD_DISABLED 2
#define WA_CRYPT_SALT_METHOD_LEGACY 3
#define WA_CRYPT_SALT_TOO_CHEAP 4
int wa_crypt(const char *phrase, const char *setting, char *out, size_t outlen);
int wa_crypt_verify(const char *phrase, const char *stored, size_t storedlen);
int wa_crypt_checksalt(const char *setting);
int wa_crypt_gensalt(const char *prefix, unsigned long count, char *out, size_t outlen);
