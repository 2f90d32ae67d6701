/* priv.h - what the files of the queue module share (not public). */
#ifndef WAKEQ_QUEUE_PRIV_H
#define WAKEQ_QUEUE_PRIV_H

#include "queue/queue.h"

#include <hiredis.h>

/* The TLS settings of a connection's owner (an OpenSSL client context
 * in builds with hiredis_ssl: CA, peer verification), made on its first
 * rediss:// connect and kept for its reconnects. */
struct queue_tls;

/* conn.c: the one Redis handshake of the module. Connects as `o` says
 * (connect timeout), starts TLS for rediss:// (making *tls when NULL),
 * AUTH and SELECT as the URL says, and leaves the command timeout set.
 * Blocks up to the connect timeout plus a command timeout per command.
 * Returns a blocking context (caller frees with redisFree), or NULL with
 * err: ERR_UNAVAILABLE (unreachable, I/O, the server's certificate
 * refused: untrusted, expired, or not for the URL's host), ERR_AUTH
 * (password refused), ERR_INVALID (db refused, TLS set-up failed). */
redisContext *queue_conn_open(const struct queue_opts *o,
			      struct queue_tls **tls, struct err *err);

/* Frees what queue_conn_open made in *tls (NULL is fine). */
void queue_conn_tls_free(struct queue_tls *tls);

/* queue.c, for the pool: whether `q` holds a live connection, and
 * (re)connects it now when it does not (honouring its backoff). The
 * latter returns 0 or -1 with err as queue_connect says. */
int queue_connected(const struct queue *q);
/* Whether the last command on q left whole and got no answer within the
 * command timeout (the connection was dropped): the server is silent. */
int queue_unanswered(const struct queue *q);
int queue_reconnect(struct queue *q, struct err *err);

/* schedule.c, for queue.c: up to `max` fire times (ms) of `s` after
 * after_ms into out[], ascending. Returns how many (0: none within eight
 * years) or -1 with err (a bad cron or zone). */
int queue_schedule_times(const struct queue_schedule *s, int64_t after_ms,
			 int64_t *out, size_t max, struct err *err);
const char *queue_catchup_name(enum queue_catchup c);
int queue_catchup_parse(const char *s, enum queue_catchup *out);

#endif
