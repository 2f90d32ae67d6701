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

/* conn.c: runs argv on `c` (after ASKING when `asking`: a cluster's ASK
 * redirection) and reads its reply, as redisCommandArgv does but with
 * the write apart from the read. Blocks up to the command timeout.
 * Returns the reply (caller frees; an error reply too), or NULL on an
 * I/O error (c->errstr says why; c is then unusable) with *in_doubt (may
 * be NULL) set to 1 when the command left whole and its answer did not
 * come in time: the server may still run it (a frozen one when it
 * thaws). A command not written whole, or a connection closed or reset,
 * is not in doubt (0): that server runs nothing later. */
redisReply *queue_conn_command(redisContext *c, int asking, int argc,
			       const char **argv, const size_t *lens, int *in_doubt);

/* conn.c: the server's clock minus ours (ms) by one TIME on `c`, off by
 * at most the round trip; a refused TIME gives 0. Blocks. Returns 0, or
 * -1 on an I/O error (c->errstr says why; c is then unusable). */
int queue_conn_skew(redisContext *c, int64_t *skew_ms);

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

/* ---- Redis Cluster (cluster.c) -------------------------------------------
 * For redis+cluster:// URLs. The pure parts (slots, redirections, the
 * slot map) are declared for the unit tests and the fuzzer. */

#define QUEUE_SLOTS 16384

/* CRC16 (XMODEM) of buf, the cluster's key hash: "123456789" -> 0x31C3. */
uint16_t queue_crc16(const char *buf, size_t len);

/* The cluster slot (0..16383) of a key: of its hash tag, the text between
 * the first '{' and the next '}' when not empty, else of the whole key. */
int queue_key_slot(const char *key, size_t len);

/* A redirection reply: "MOVED SLOT HOST:PORT" or "ASK SLOT HOST:PORT". */
struct queue_redirect {
	int ask;            /* 0: MOVED */
	int slot;
	char host[256];     /* "" = the node that answered (Redis 7) */
	int port;
};

/* Reads the error reply text `msg`. Returns 1 with *out set when it is a
 * redirection, 0 when it is another error (out untouched), -1 with err
 * (ERR_PROTOCOL) when it starts as one but is malformed. */
int queue_redirect_parse(const char *msg, struct queue_redirect *out,
			 struct err *err);

/* A slot map as read from CLUSTER SLOTS: owner[s] is 0 (no node serves
 * slot s) or 1 + the index in nodes[] of the master serving it. */
struct queue_slotmap {
	uint16_t *owner;              /* QUEUE_SLOTS entries */
	struct {
		char host[256];
		int port;
	} *nodes;
	size_t nnodes;
};

/* Reads a CLUSTER SLOTS reply into *out (release it); an entry naming no
 * host ("" or "?") is taken for asked_host, the node that answered.
 * Returns 0, or -1 with err (ERR_PROTOCOL naming the bad entry; nothing
 * to release). */
int queue_slots_parse(const redisReply *r, const char *asked_host,
		      struct queue_slotmap *out, struct err *err);
void queue_slotmap_release(struct queue_slotmap *m);

/* A cluster's connections: one per node for commands, one per queue for
 * marker waits. Made from the seed URL `o` (copied); never fails. */
struct queue_cluster;
struct queue_cluster *queue_cluster_new(const struct queue_opts *o);
void queue_cluster_free(struct queue_cluster *cl);

/* Reads the slot map when there is none or it is stale. Returns 0, or -1
 * with err (ERR_UNAVAILABLE: no node answered). */
int queue_cluster_ready(struct queue_cluster *cl, struct err *err);
/* Whether a fresh slot map is held. */
int queue_cluster_connected(const struct queue_cluster *cl);

/* Runs argv on the node serving `slot` (-1: any node), following MOVED
 * (the map is read again) and ASK (with ASKING), except that a script
 * (`script` set) waits out a migration instead of following ASK, as it
 * does TRYAGAIN, within the command timeout. Returns the reply (caller
 * frees; an error reply other than a redirection is returned as is), or
 * NULL with err (ERR_UNAVAILABLE on I/O: the map is read again before
 * the next command). *in_doubt (may be NULL) is set as queue_conn_command
 * says of the last node tried: 1 when argv left whole for it and no
 * answer came in time (it may still run there), else 0 (a redirection
 * is an answer). Blocks. */
redisReply *queue_cluster_command(struct queue_cluster *cl, int slot, int script,
				  int argc, const char **argv, const size_t *lens,
				  int *in_doubt, struct err *err);

/* The clock skew (ms: the node's clock minus ours) of the node serving
 * `slot` (-1: any node), as measured when its connection was opened, the
 * node connected (and the map read) when needed. Returns 0, or -1 with
 * err as queue_cluster_command (nothing is changed). Blocks. */
int queue_cluster_skew(struct queue_cluster *cl, int slot, int64_t *skew_ms,
		       struct err *err);

/* The node indices of the masters serving slots into idx[] (at most max).
 * Returns how many (0 with err when no map could be read). */
size_t queue_cluster_masters(struct queue_cluster *cl, int *idx, size_t max,
			     struct err *err);
/* Runs argv on node `node` (an index from queue_cluster_masters); no
 * redirection is followed. Returns as queue_cluster_command. */
redisReply *queue_cluster_command_at(struct queue_cluster *cl, int node, int argc,
				     const char **argv, const size_t *lens,
				     struct err *err);

/* Marker waits (queue_wait_begin on a cluster): one BLPOP per queue, each
 * on its own connection to the node serving the queue. A BLPOP still
 * outstanding from the last wait is kept, not sent again. The fd to poll
 * is an epoll set of those connections. Poll returns as queue_wait_poll
 * (a slot that moved counts as a marker: look, and wait on the new
 * owner next time); cancel drops every outstanding BLPOP. */
int queue_cluster_wait_begin(struct queue_cluster *cl, const char *const *keys,
			     size_t n, int64_t timeout_ms, struct err *err);
int queue_cluster_wait_fd(const struct queue_cluster *cl);
int queue_cluster_wait_poll(struct queue_cluster *cl, struct err *err);
void queue_cluster_wait_cancel(struct queue_cluster *cl);

#endif
