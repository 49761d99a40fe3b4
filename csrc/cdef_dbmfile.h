/* dbmfile.c: the operations of every DBM format that only read the head of its handle (see wsgiauth.h). */
const char *wa_dbm_error(void *h);
int wa_dbm_replaced(void *h);
