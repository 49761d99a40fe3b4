/* libgdbm (libgdbm.so.6), opened at run time through cffi's ABI mode (no header needed to build): the functions
 * wsgiauth's GDBM reader and writer call (src/wsgiauth/_gdbm.py), as <gdbm.h> declares them. GDBM_FILE is opaque; a
 * datum is passed and returned by value. gdbm_errno is a macro over gdbm_errno_location(). The flag and error values
 * are constants in _gdbm.py; tests/test_syslibs.py checks them against the header where libgdbm-dev is installed. */
typedef struct gdbm_file_info *GDBM_FILE;
typedef struct {
    char *dptr;
    int dsize;
} datum;
GDBM_FILE gdbm_open(const char *name, int block_size, int flags, int mode, void (*fatal_func)(const char *));
int gdbm_close(GDBM_FILE dbf);
int gdbm_store(GDBM_FILE dbf, datum key, datum content, int flag);
datum gdbm_fetch(GDBM_FILE dbf, datum key);
int gdbm_delete(GDBM_FILE dbf, datum key);
datum gdbm_firstkey(GDBM_FILE dbf);
datum gdbm_nextkey(GDBM_FILE dbf, datum key);
int gdbm_sync(GDBM_FILE dbf);
int gdbm_fdesc(GDBM_FILE dbf);
int *gdbm_errno_location(void);
const char *gdbm_strerror(int error);
void free(void *ptr);
