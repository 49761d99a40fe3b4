/* Berkeley DB (libdb-5.3.so), opened at run time through cffi's ABI mode: only the plain functions. Everything else
 * in its C API is a method in a struct of function pointers, whose layout only <db.h> gives; csrc/bdb.c (the module
 * wsgiauth._native_bdb, compiled where db.h exists) calls those, through the db_create and db_strerror that
 * src/wsgiauth/_dbmfile.py hands it from here (so the module is not linked with libdb). */
int db_create(void **dbp, void *dbenv, unsigned int flags);
char *db_strerror(int error);
char *db_version(int *major, int *minor, int *patch);
