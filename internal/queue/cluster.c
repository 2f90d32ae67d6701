/* cluster.c - Redis Cluster for the queue (redis+cluster://): the slot of
 * a key, the slot map (CLUSTER SLOTS), one connection per node made by
 * the module's one handshake (conn.c), commands sent to the node owning
 * their key's slot with MOVED and ASK followed, and the workers' marker
 * waits spread over one connection per queue (a BLPOP over several
 * queues would be CROSSSLOT).
 *
 * Invariants: map.owner[s] is 0 (unknown) or 1 + the index of a master
 * in map.nodes[], conns[i] its connection or NULL; the nodes only grow
 * while the struct lives, so an index stays
 * valid across refreshes (a node gone from the map is simply never
 * chosen again). `stale` asks for a refresh before the next command: it
 * is set by a MOVED and by an I/O error, the two signs that the map
 * changed (a failover, a reshard).
 *
 * Scripts and migrations: a queue's scripts declare one key (the prefix
 * wakeq:{Q}:, which never exists) and touch the others by name, so while
 * a slot is being migrated the owner answers ASK for every script. Run
 * on the importing node, a script would see half-moved data (a pending
 * entry whose job hash is still on the other node); so a script never
 * follows ASK: it is retried on the owner until the migration ends (the
 * MOVED), within the command timeout. Plain one-key commands follow ASK:
 * the key they name has already moved whole (MIGRATE is atomic per key).
 */
#include "queue/priv.h"

#include "base/clock.h"
#include "base/fd.h"
#include "base/mem.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_REDIRECTS 8           /* per command: a map changing under us */
#define RETRY_SLEEP_US 20000      /* between tries while a slot migrates */
#define MAX_WAITERS 64            /* queues one cluster wait can cover */

/* ---- slots -------------------------------------------------------------- */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), as Redis Cluster
 * specifies: "123456789" gives 0x31C3. */
uint16_t queue_crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;
	size_t i;
	int b;

	for (i = 0; i < len; i++) {
		crc ^= (uint16_t)((unsigned char)buf[i] << 8);
		for (b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

int queue_key_slot(const char *key, size_t len)
{
	size_t s, e;

	/* the hash tag: what lies between the first '{' and the first '}'
	 * after it, when not empty; else the whole key */
	for (s = 0; s < len && key[s] != '{'; s++)
		;
	if (s < len) {
		for (e = s + 1; e < len && key[e] != '}'; e++)
			;
		if (e < len && e > s + 1)
			return queue_crc16(key + s + 1, e - s - 1) & (QUEUE_SLOTS - 1);
	}
	return queue_crc16(key, len) & (QUEUE_SLOTS - 1);
}

/* Parses "PORT" at s[0..n) into *port. Returns 0 or -1. */
static int parse_port(const char *s, size_t n, int *port)
{
	int v = 0;
	size_t i;

	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = v;
	return 0;
}

int queue_redirect_parse(const char *msg, struct queue_redirect *out,
			 struct err *err)
{
	struct queue_redirect r;
	const char *p, *addr, *colon;
	long slot = 0;
	size_t n;

	memset(&r, 0, sizeof(r));
	if (!strncmp(msg, "MOVED", 5) && (msg[5] == ' ' || !msg[5])) {
		p = msg + 5;
	} else if (!strncmp(msg, "ASK", 3) && (msg[3] == ' ' || !msg[3])) {
		p = msg + 3;
		r.ask = 1;
	} else {
		return 0;
	}
	if (*p++ != ' ')
		goto bad;
	if (*p < '0' || *p > '9')
		goto bad;
	while (*p >= '0' && *p <= '9' && slot < QUEUE_SLOTS)
		slot = slot * 10 + (*p++ - '0');
	if (slot >= QUEUE_SLOTS || *p != ' ')
		goto bad;
	addr = p + 1;
	/* HOST:PORT; the host may hold colons (IPv6) or be empty (Redis 7:
	 * the node that answered) */
	colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(r.host) ||
	    parse_port(colon + 1, strlen(colon + 1), &r.port) < 0)
		goto bad;
	n = (size_t)(colon - addr);
	memcpy(r.host, addr, n);
	r.host[n] = '\0';
	if (strpbrk(r.host, " \t\r\n"))
		goto bad;
	r.slot = (int)slot;
	*out = r;
	return 1;
bad:
	return err_set(err, ERR_PROTOCOL, "bad cluster redirection from redis: '%.80s'", msg);
}

/* ---- the slot map ------------------------------------------------------- */

void queue_slotmap_release(struct queue_slotmap *m)
{
	if (!m)
		return;
	free(m->owner);
	free(m->nodes);
	memset(m, 0, sizeof(*m));
}

/* The index of host:port in m->nodes, added when new. */
static size_t map_node(struct queue_slotmap *m, const char *host, int port)
{
	size_t i;

	for (i = 0; i < m->nnodes; i++)
		if (m->nodes[i].port == port && !strcmp(m->nodes[i].host, host))
			return i;
	m->nodes = xrealloc(m->nodes, (m->nnodes + 1) * sizeof(*m->nodes));
	memset(&m->nodes[m->nnodes], 0, sizeof(*m->nodes));
	snprintf(m->nodes[m->nnodes].host, sizeof(m->nodes[0].host), "%s", host);
	m->nodes[m->nnodes].port = port;
	return m->nnodes++;
}

static int reply_int(const redisReply *r, long long *v)
{
	if (r->type == REDIS_REPLY_INTEGER) {
		*v = r->integer;
		return 0;
	}
	return -1;
}

int queue_slots_parse(const redisReply *r, const char *asked_host,
		      struct queue_slotmap *out, struct err *err)
{
	struct queue_slotmap m;
	size_t i;

	memset(&m, 0, sizeof(m));
	if (r->type == REDIS_REPLY_ERROR)
		return err_set(err, ERR_PROTOCOL, "redis refused CLUSTER SLOTS: %.200s", r->str);
	if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
		return err_set(err, ERR_PROTOCOL,
			       "bad CLUSTER SLOTS reply from redis: %s",
			       r->type == REDIS_REPLY_ARRAY ? "no slot is served" : "not an array");
	m.owner = xcalloc(QUEUE_SLOTS, sizeof(*m.owner));
	for (i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i], *master;
		long long from, to, port, s;
		const char *host;
		size_t idx;

		/* [from, to, [host, port, id, ...], replica...] */
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    reply_int(e->element[0], &from) < 0 || reply_int(e->element[1], &to) < 0 ||
		    from < 0 || to < from || to >= QUEUE_SLOTS)
			goto bad;
		master = e->element[2];
		if (master->type != REDIS_REPLY_ARRAY || master->elements < 2 ||
		    master->element[0]->type != REDIS_REPLY_STRING ||
		    reply_int(master->element[1], &port) < 0 || port < 1 || port > 65535 ||
		    master->element[0]->len >= sizeof(m.nodes[0].host) ||
		    strlen(master->element[0]->str) != master->element[0]->len)
			goto bad;
		host = master->element[0]->str;
		/* "" or "?": the node does not know its address; it is the one
		 * that answered */
		if (!host[0] || !strcmp(host, "?"))
			host = asked_host;
		if (strpbrk(host, " \t\r\n"))
			goto bad;
		idx = map_node(&m, host, (int)port);
		/* a partly served cluster is still usable: unserved slots stay 0 */
		for (s = from; s <= to; s++)
			m.owner[s] = (uint16_t)(idx + 1);
	}
	*out = m;
	return 0;
bad:
	queue_slotmap_release(&m);
	return err_set(err, ERR_PROTOCOL, "bad CLUSTER SLOTS reply from redis: entry %zu", i);
}

/* ---- connections -------------------------------------------------------- */

/* One queue's marker wait: its own connection, since a BLPOP blocks it. */
struct waiter {
	char key[QUEUE_NAME_MAX + 32];
	int slot;
	int node;             /* where c is connected */
	redisContext *c;
	int outstanding;      /* a BLPOP was sent and not answered yet */
};

struct queue_cluster {
	struct queue_opts opts;   /* the seed's; host and port set per node */
	struct queue_tls *tls;
	struct queue_slotmap map; /* owner NULL: no map yet; see the top */
	redisContext **conns;     /* per map.nodes[i], for commands */
	int64_t *skew_ms;         /* per node: its clock - ours (ms), measured
				   * when conns[i] was opened */
	size_t nconns;
	int stale;
	struct waiter *w;
	size_t nw;
	int epfd;                 /* the waiters' sockets, for one poll */
};

struct queue_cluster *queue_cluster_new(const struct queue_opts *o)
{
	struct queue_cluster *cl = xcalloc(1, sizeof(*cl));

	cl->opts = *o;
	cl->epfd = -1;
	return cl;
}

static void waiters_free(struct queue_cluster *cl)
{
	size_t i;

	for (i = 0; i < cl->nw; i++)
		if (cl->w[i].c)
			redisFree(cl->w[i].c);
	free(cl->w);
	cl->w = NULL;
	cl->nw = 0;
}

void queue_cluster_free(struct queue_cluster *cl)
{
	size_t i;

	if (!cl)
		return;
	waiters_free(cl);
	fd_close(&cl->epfd);
	for (i = 0; i < cl->nconns; i++)
		if (cl->conns[i])
			redisFree(cl->conns[i]);
	free(cl->conns);
	free(cl->skew_ms);
	queue_slotmap_release(&cl->map);
	queue_conn_tls_free(cl->tls);
	queue_opts_release(&cl->opts);
	free(cl);
}

/* The index of host:port among the nodes, added when new. */
static size_t node_index(struct queue_cluster *cl, const char *host, int port)
{
	size_t i = map_node(&cl->map, host, port);

	if (cl->nconns < cl->map.nnodes) {
		cl->conns = xrealloc(cl->conns, cl->map.nnodes * sizeof(*cl->conns));
		memset(cl->conns + cl->nconns, 0,
		       (cl->map.nnodes - cl->nconns) * sizeof(*cl->conns));
		cl->skew_ms = xrealloc(cl->skew_ms, cl->map.nnodes * sizeof(*cl->skew_ms));
		memset(cl->skew_ms + cl->nconns, 0,
		       (cl->map.nnodes - cl->nconns) * sizeof(*cl->skew_ms));
		cl->nconns = cl->map.nnodes;
	}
	return i;
}

#define NODE(cl, i) (&(cl)->map.nodes[i])

/* A connection to host:port by the module's handshake. */
static redisContext *open_at(struct queue_cluster *cl, size_t i, struct err *err)
{
	struct queue_opts o = cl->opts;
	redisContext *c;

	snprintf(o.url.host, sizeof(o.url.host), "%s", NODE(cl, i)->host);
	o.url.port = NODE(cl, i)->port;
	c = queue_conn_open(&o, &cl->tls, err);
	queue_opts_release(&o);
	return c;
}

static void node_drop(struct queue_cluster *cl, size_t i)
{
	if (cl->conns[i])
		redisFree(cl->conns[i]);
	cl->conns[i] = NULL;
}

/* Node i's command connection, opened when there is none, with the
 * node's clock skew measured (the nodes of a cluster have a clock each). */
static redisContext *node_conn(struct queue_cluster *cl, size_t i, struct err *err)
{
	if (cl->conns[i])
		return cl->conns[i];
	if (!(cl->conns[i] = open_at(cl, i, err)))
		return NULL;
	if (queue_conn_skew(cl->conns[i], &cl->skew_ms[i]) < 0) {
		err_set(err, ERR_UNAVAILABLE, "cannot connect to redis at '%s:%d': %s",
			NODE(cl, i)->host, NODE(cl, i)->port,
			cl->conns[i]->errstr[0] ? cl->conns[i]->errstr : "connection lost");
		node_drop(cl, i);
	}
	return cl->conns[i];
}

/* Reads the slot map from node i. Returns 0 or -1 (err set). */
static int refresh_from(struct queue_cluster *cl, size_t i, struct err *err)
{
	struct queue_slotmap m;
	redisContext *c;
	redisReply *r;
	uint16_t *tr;
	size_t s, k;
	int rc;

	if (!(c = node_conn(cl, i, err)))
		return -1;
	r = redisCommand(c, "CLUSTER SLOTS");
	if (!r) {
		err_set(err, ERR_UNAVAILABLE, "redis CLUSTER SLOTS failed at '%s:%d': %s",
			NODE(cl, i)->host, NODE(cl, i)->port,
			c->errstr[0] ? c->errstr : "connection lost");
		node_drop(cl, i);
		return -1;
	}
	rc = queue_slots_parse(r, NODE(cl, i)->host, &m, err);
	freeReplyObject(r);
	if (rc < 0)
		return -1;
	if (!cl->map.owner)
		cl->map.owner = xmalloc(QUEUE_SLOTS * sizeof(*cl->map.owner));
	/* the parsed map's node indices into ours (which only grow), found
	 * once a node, not once a slot */
	tr = xmalloc(m.nnodes * sizeof(*tr));
	for (k = 0; k < m.nnodes; k++)
		tr[k] = (uint16_t)(node_index(cl, m.nodes[k].host, m.nodes[k].port) + 1);
	for (s = 0; s < QUEUE_SLOTS; s++)
		cl->map.owner[s] = m.owner[s] ? tr[m.owner[s] - 1] : 0;
	free(tr);
	queue_slotmap_release(&m);
	cl->stale = 0;
	return 0;
}

/* Reads the slot map from the first node that answers: those connected
 * first, then every node known, then the seed of the URL. */
static int refresh(struct queue_cluster *cl, struct err *err)
{
	struct err e;
	size_t i;

	err_set(&e, ERR_UNAVAILABLE, "no redis cluster node known");
	for (i = 0; i < cl->map.nnodes; i++)
		if (cl->conns[i] && refresh_from(cl, i, &e) == 0)
			return 0;
	for (i = 0; i < cl->map.nnodes; i++)
		if (!cl->conns[i] && refresh_from(cl, i, &e) == 0)
			return 0;
	i = node_index(cl, cl->opts.url.host, cl->opts.url.port);
	if (!cl->conns[i] && refresh_from(cl, i, &e) == 0)
		return 0;
	if (err)
		*err = e;
	return -1;
}

int queue_cluster_ready(struct queue_cluster *cl, struct err *err)
{
	if (cl->map.owner && !cl->stale)
		return 0;
	return refresh(cl, err);
}

int queue_cluster_connected(const struct queue_cluster *cl)
{
	return cl->map.owner && !cl->stale;
}

/* The node serving `slot` (-1: any), connected. Returns its index, or
 * -1 with err. */
static int pick(struct queue_cluster *cl, int slot, struct err *err)
{
	size_t i;

	if (queue_cluster_ready(cl, err) < 0)
		return -1;
	if (slot < 0) {
		for (i = 0; i < cl->map.nnodes; i++)
			if (cl->conns[i])
				return (int)i;
		for (i = 0; i < QUEUE_SLOTS; i++)
			if (cl->map.owner[i])
				break;
		slot = i < QUEUE_SLOTS ? (int)i : 0;
	}
	if (!cl->map.owner[slot]) {
		cl->stale = 1;
		return err_set(err, ERR_UNAVAILABLE, "redis cluster serves no node for slot %d", slot);
	}
	if (!node_conn(cl, cl->map.owner[slot] - 1u, err)) {
		/* our map may be older than the cluster's (a failover we
		 * have not heard of): read it again once, and go to the new
		 * owner if there is one */
		unsigned dead = cl->map.owner[slot];

		if (refresh(cl, NULL) == 0 && cl->map.owner[slot] &&
		    cl->map.owner[slot] != dead &&
		    node_conn(cl, cl->map.owner[slot] - 1u, NULL))
			return cl->map.owner[slot] - 1;
		cl->stale = 1;
		return -1;
	}
	return cl->map.owner[slot] - 1;
}

/* Whether an idle connection was closed by its node (a node killed or
 * restarted, a failover closing its clients): it has something to read
 * although nothing was asked. Then nothing sent on it could have run,
 * so the command goes out on a new connection instead of failing. One
 * poll(2), no command. */
static int conn_closed(const redisContext *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/* Sends argv to node i (after ASKING when asking) and reads its reply.
 * Returns it, or NULL on an I/O error (err set, the node dropped) with
 * *in_doubt (may be NULL) as queue_conn_command says. */
static redisReply *send_at(struct queue_cluster *cl, size_t i, int asking, int argc,
			   const char **argv, const size_t *lens, int *in_doubt,
			   struct err *err)
{
	redisContext *c = cl->conns[i];
	redisReply *r;

	r = queue_conn_command(c, asking, argc, argv, lens, in_doubt);
	if (!r) {
		err_set(err, ERR_UNAVAILABLE, "redis %s failed at '%s:%d': %s",
			argc ? argv[0] : "command", NODE(cl, i)->host, NODE(cl, i)->port,
			c->errstr[0] ? c->errstr : "connection lost");
		node_drop(cl, i);
		cl->stale = 1;
	}
	return r;
}

redisReply *queue_cluster_command(struct queue_cluster *cl, int slot, int script,
				  int argc, const char **argv, const size_t *lens,
				  int *in_doubt, struct err *err)
{
	double tmo = cl->opts.command_timeout_s > 0 ? cl->opts.command_timeout_s : 10;
	int64_t deadline = clock_mono_us() + (int64_t)(tmo * 1e6);
	struct queue_redirect rd;
	int redirects = 0, asking = -1, i, k;
	redisReply *r;

	/* only the last try can be in doubt: each one before it was
	 * answered by a redirection or TRYAGAIN, so it ran nowhere */
	if (in_doubt)
		*in_doubt = 0;
	for (;;) {
		if (asking >= 0) {
			i = asking;
			if (!node_conn(cl, (size_t)i, err))
				return NULL;
		} else if ((i = pick(cl, slot, err)) < 0) {
			return NULL;
		}
		if (conn_closed(cl->conns[i]) && ++redirects <= MAX_REDIRECTS) {
			node_drop(cl, (size_t)i);
			cl->stale = 1;
			continue;
		}
		r = send_at(cl, (size_t)i, asking >= 0, argc, argv, lens, in_doubt, err);
		if (!r)
			return NULL;
		if (r->type != REDIS_REPLY_ERROR)
			return r;
		k = queue_redirect_parse(r->str, &rd, err);
		if (k < 0) {
			freeReplyObject(r);
			return NULL;
		}
		if (k == 0 && strncmp(r->str, "TRYAGAIN", 8))
			return r; /* the caller's to read */
		if (k == 0 || (rd.ask && script)) {
			/* a migration in progress: wait for it (see the top) */
			if (clock_mono_us() + RETRY_SLEEP_US > deadline) {
				if (k == 0)
					return r; /* TRYAGAIN: unavailable to the caller */
				err_set(err, ERR_UNAVAILABLE,
					"redis cluster slot %d is being migrated; try again", rd.slot);
				freeReplyObject(r);
				return NULL;
			}
			freeReplyObject(r);
			clock_sleep_us(RETRY_SLEEP_US);
			asking = -1;
			continue;
		}
		if (++redirects > MAX_REDIRECTS) {
			err_set(err, ERR_UNAVAILABLE, "redis cluster redirected %s more than %d times: %.100s",
				argc ? argv[0] : "a command", MAX_REDIRECTS, r->str);
			freeReplyObject(r);
			return NULL;
		}
		freeReplyObject(r);
		/* an empty host: the node that answered (copied: node_index
		 * may move the nodes) */
		if (!rd.host[0])
			snprintf(rd.host, sizeof(rd.host), "%s", NODE(cl, i)->host);
		i = (int)node_index(cl, rd.host, rd.port);
		if (rd.ask) {
			asking = i;
			continue;
		}
		/* MOVED: the whole map is read again (a failover or a reshard
		 * moves more than one slot), and this slot is where the node
		 * said, the freshest word on it */
		asking = -1;
		if (refresh(cl, NULL) < 0 && !cl->map.owner)
			cl->map.owner = xcalloc(QUEUE_SLOTS, sizeof(*cl->map.owner));
		cl->map.owner[rd.slot] = (uint16_t)(i + 1);
		cl->stale = 0;
	}
}

int queue_cluster_skew(struct queue_cluster *cl, int slot, int64_t *skew_ms,
		       struct err *err)
{
	int i = pick(cl, slot, err);

	if (i < 0)
		return -1;
	*skew_ms = cl->skew_ms[i];
	return 0;
}

size_t queue_cluster_masters(struct queue_cluster *cl, int *idx, size_t max,
			     struct err *err)
{
	size_t n = 0, i, s;
	char *serves;

	if (queue_cluster_ready(cl, err) < 0)
		return 0;
	serves = xcalloc(cl->map.nnodes + 1, 1);
	for (s = 0; s < QUEUE_SLOTS; s++)
		serves[cl->map.owner[s]] = 1;
	for (i = 0; i < cl->map.nnodes && n < max; i++)
		if (serves[i + 1])
			idx[n++] = (int)i;
	free(serves);
	return n;
}

redisReply *queue_cluster_command_at(struct queue_cluster *cl, int node, int argc,
				     const char **argv, const size_t *lens,
				     struct err *err)
{
	if (node < 0 || (size_t)node >= cl->map.nnodes)
		return (void)err_set(err, ERR_INTERNAL, "no such cluster node"), NULL;
	if (!node_conn(cl, (size_t)node, err)) {
		cl->stale = 1;
		return NULL;
	}
	return send_at(cl, (size_t)node, 0, argc, argv, lens, NULL, err);
}

/* ---- waits -------------------------------------------------------------- */

static void waiter_drop(struct waiter *w)
{
	if (w->c) {
		/* closing the socket takes it out of the epoll set */
		redisFree(w->c);
		w->c = NULL;
	}
	w->outstanding = 0;
}

/* Whether the waiters are those of `keys` (same order). */
static int same_keys(const struct queue_cluster *cl, const char *const *keys, size_t n)
{
	size_t i;

	if (n != cl->nw)
		return 0;
	for (i = 0; i < n; i++)
		if (strcmp(cl->w[i].key, keys[i]))
			return 0;
	return 1;
}

int queue_cluster_wait_begin(struct queue_cluster *cl, const char *const *keys,
			     size_t n, int64_t timeout_ms, struct err *err)
{
	char secs[32];
	size_t i, sent = 0;
	struct err e;
	int rc = -1;

	if (n > MAX_WAITERS) {
		err_set(err, ERR_INVALID, "cannot wait on %zu queues of a cluster: %d at most",
			n, MAX_WAITERS);
		goto out;
	}
	err_set(&e, ERR_UNAVAILABLE, "no queue to wait on");
	if (!same_keys(cl, keys, n)) {
		waiters_free(cl);
		cl->w = xcalloc(n ? n : 1, sizeof(*cl->w));
		cl->nw = n;
		for (i = 0; i < n; i++) {
			snprintf(cl->w[i].key, sizeof(cl->w[i].key), "%s", keys[i]);
			cl->w[i].slot = queue_key_slot(keys[i], strlen(keys[i]));
		}
	}
	if (cl->epfd < 0 && (cl->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		err_set(err, ERR_INTERNAL, "cannot wait on the cluster: epoll: %s", strerror(errno));
		goto out;
	}
	snprintf(secs, sizeof(secs), "%.3f", (double)(timeout_ms < 1 ? 1 : timeout_ms) / 1000.0);
	for (i = 0; i < cl->nw; i++) {
		struct waiter *w = &cl->w[i];
		const char *argv[3] = { "BLPOP", w->key, secs };
		int node, done = 0;

		if (w->outstanding) {
			sent++; /* still blocked from the last wait: keep it */
			continue;
		}
		if ((node = pick(cl, w->slot, &e)) < 0)
			continue;
		if (w->c && w->node != node)
			waiter_drop(w); /* its slot moved */
		if (!w->c) {
			struct epoll_event ev = { .events = EPOLLIN };

			if (!(w->c = open_at(cl, (size_t)node, &e))) {
				cl->stale = 1;
				continue;
			}
			w->node = node;
			ev.data.u64 = i;
			if (epoll_ctl(cl->epfd, EPOLL_CTL_ADD, w->c->fd, &ev) < 0) {
				err_set(&e, ERR_INTERNAL, "cannot wait on the cluster: epoll: %s",
					strerror(errno));
				waiter_drop(w);
				continue;
			}
		}
		if (redisAppendCommandArgv(w->c, 3, argv, NULL) != REDIS_OK)
			goto lost;
		while (!done)
			if (redisBufferWrite(w->c, &done) != REDIS_OK)
				goto lost;
		w->outstanding = 1;
		sent++;
		continue;
lost:
		err_set(&e, ERR_UNAVAILABLE, "redis BLPOP failed: %s",
			w->c->errstr[0] ? w->c->errstr : "connection lost");
		waiter_drop(w);
		cl->stale = 1;
	}
	if (!sent) {
		if (err)
			*err = e;
		goto out;
	}
	rc = 0;
out:
	return rc;
}

int queue_cluster_wait_fd(const struct queue_cluster *cl)
{
	return cl->epfd;
}

int queue_cluster_wait_poll(struct queue_cluster *cl, struct err *err)
{
	struct pollfd pfd[MAX_WAITERS];
	size_t i, np = 0, map[MAX_WAITERS];
	int got = 0, timedout = 0, failed = 0, left = 0;

	for (i = 0; i < cl->nw && np < MAX_WAITERS; i++)
		if (cl->w[i].outstanding) {
			pfd[np].fd = cl->w[i].c->fd;
			pfd[np].events = POLLIN;
			pfd[np].revents = 0;
			map[np++] = i;
		}
	if (np == 0)
		return err_set(err, ERR_INTERNAL, "no wait in progress");
	if (poll(pfd, (nfds_t)np, 0) < 0)
		return err_set(err, ERR_INTERNAL, "cannot poll the cluster waits: %s", strerror(errno));
	for (i = 0; i < np; i++) {
		struct waiter *w = &cl->w[map[i]];
		struct queue_redirect rd;
		void *reply = NULL;
		redisReply *r;

		if (!pfd[i].revents) {
			left++;
			continue;
		}
		if (redisBufferRead(w->c) != REDIS_OK ||
		    redisGetReplyFromReader(w->c, &reply) != REDIS_OK) {
			/* the node went away: a take will tell what is due */
			waiter_drop(w);
			cl->stale = 1;
			got = 1;
			continue;
		}
		if (!reply) {
			left++;
			continue;
		}
		w->outstanding = 0;
		r = reply;
		if (r->type == REDIS_REPLY_ERROR) {
			if (queue_redirect_parse(r->str, &rd, NULL) == 1 ||
			    !strncmp(r->str, "TRYAGAIN", 8) || !strncmp(r->str, "CLUSTERDOWN", 11)) {
				/* the slot moved (a blocked BLPOP is redirected):
				 * look, and wait on the new owner next time */
				cl->stale = 1;
				waiter_drop(w);
				got = 1;
			} else {
				err_set(err, ERR_PROTOCOL, "redis error: %s", r->str);
				failed = 1;
			}
		} else if (r->type == REDIS_REPLY_ARRAY) {
			got = 1;
		} else {
			timedout = 1;
		}
		freeReplyObject(r);
	}
	if (got)
		return 1;
	if (failed)
		return -1;
	if (timedout)
		return 0;
	return 2;
}

void queue_cluster_wait_cancel(struct queue_cluster *cl)
{
	size_t i;

	for (i = 0; i < cl->nw; i++)
		if (cl->w[i].outstanding)
			waiter_drop(&cl->w[i]);
}
