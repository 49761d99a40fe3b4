/* libxcrypt (libcrypt.so.1), opened at run time through cffi's ABI mode (no header needed to build): the three
 * functions wsgiauth calls, as <crypt.h> declares them. The sizes wsgiauth passes (struct crypt_data, the output and
 * passphrase limits) are constants in src/wsgiauth/_lowlevel.py; tests/test_syslibs.py checks them against the header
 * where libcrypt-dev is installed. */
char *crypt_rn(const char *phrase, const char *setting, void *data, int size);
int crypt_checksalt(const char *setting);
char *crypt_gensalt_rn(const char *prefix, unsigned long count, const char *rbytes, int nrbytes, char *output,
                       int output_size);
