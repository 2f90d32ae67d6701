/* mem.h - allocation that never returns NULL.
 *
 * Out of memory aborts the process (as redis and git do): every caller can
 * then treat allocation as infallible and keep one error path for real
 * failures.
 */
#ifndef WAKEQ_BASE_MEM_H
#define WAKEQ_BASE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A heap string from a printf format; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Frees the `n` strings (char * members, NULL or heap) of the struct at
 * `obj` whose offsets (offsetof) off[] lists: a destructor of a struct
 * that owns many strings names them once, in a table. */
void mem_free_strings(void *obj, const size_t *off, size_t n);

#endif
