/* buf.h - a growable byte buffer, always NUL-terminated (git's strbuf).
 *
 *   struct buf b = BUF_INIT;
 *   buf_printf(&b, "%d jobs", n);
 *   use(b.data, b.len);
 *   buf_release(&b);
 */
#ifndef WAKEQ_BASE_BUF_H
#define WAKEQ_BASE_BUF_H

#include <stddef.h>

struct buf {
	char *data; /* NUL-terminated; "" (static) until the first append */
	size_t len;
	size_t cap;
};

extern char buf_empty[];
#define BUF_INIT { buf_empty, 0, 0 }

void buf_init(struct buf *b);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Takes the heap string out of `b` (caller frees) and re-inits `b`. */
char *buf_detach(struct buf *b, size_t *len);

#endif
