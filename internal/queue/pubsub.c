/* pubsub.c - a subscriber connection for the events the queue scripts
 * publish (see queue.h "pub/sub"). It is made by the module's one
 * handshake (conn.c: TLS, AUTH) and is blocking for that and the
 * SUBSCRIBE write only; reads happen when poll(2) says the
 * socket is readable, so queue_sub_read never waits. */
#include "queue/priv.h"

#include "base/mem.h"

#include <hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Invariant: while `msg` is set, its lines from `off` on are still to
 * be handed out (queue_sub_read), for the queue named by its channel. */
struct queue_sub {
	redisContext *c;
	struct queue_tls *tls;
	redisReply *msg;          /* the message being handed out, or NULL */
	size_t off;               /* its next line */
	char queue[QUEUE_NAME_MAX + 1];
};

struct queue_sub *queue_sub_connect(const struct queue_opts *opts,
				    struct err *err)
{
	struct queue_sub *s = xcalloc(1, sizeof(*s));

	s->c = queue_conn_open(opts, &s->tls, err);
	if (!s->c) {
		queue_sub_free(s);
		s = NULL;
	}
	return s;
}

void queue_sub_free(struct queue_sub *s)
{
	if (!s)
		return;
	if (s->msg)
		freeReplyObject(s->msg);
	if (s->c)
		redisFree(s->c);
	queue_conn_tls_free(s->tls);
	free(s);
}

int queue_sub_subscribe(struct queue_sub *s, const char *queue, struct err *err)
{
	char chan[QUEUE_NAME_MAX + 32];
	int done = 0;

	if (queue_name_check(queue, err) < 0)
		return -1;
	snprintf(chan, sizeof(chan), "wakeq:{%s}:events", queue);
	if (redisAppendCommand(s->c, "SUBSCRIBE %s", chan) != REDIS_OK)
		return err_set(err, ERR_UNAVAILABLE, "redis SUBSCRIBE failed: %s", s->c->errstr);
	while (!done)
		if (redisBufferWrite(s->c, &done) != REDIS_OK)
			return err_set(err, ERR_UNAVAILABLE, "redis SUBSCRIBE failed: %s",
				       s->c->errstr);
	return 0;
}

int queue_sub_fd(const struct queue_sub *s)
{
	return s->c ? s->c->fd : -1;
}

/* The queue name of channel "wakeq:{Q}:events" into out. Returns 0, or
 * -1 when the channel is not one of ours. */
static int channel_queue(const char *chan, size_t clen, char out[QUEUE_NAME_MAX + 1])
{
	const char *open = memchr(chan, '{', clen), *close;

	if (!open)
		return -1;
	close = memchr(open, '}', clen - (size_t)(open - chan));
	if (!close || close - open - 1 <= 0 || close - open - 1 > QUEUE_NAME_MAX)
		return -1;
	memcpy(out, open + 1, (size_t)(close - open - 1));
	out[close - open - 1] = '\0';
	return 0;
}

/* Splits one line "ID\tSTATUS\tPROGRESS\tSTAGE\tTIME" (the last three may
 * be missing or empty). Returns 0, or -1 when malformed. */
static int parse_event(const char *msg, size_t mlen, struct queue_event *ev)
{
	const char *f[5];
	size_t flen[5], i, start = 0, k = 0;

	for (i = 0; i <= mlen && k < 5; i++) {
		if (i == mlen || msg[i] == '\t') {
			f[k] = msg + start;
			flen[k] = i - start;
			k++;
			start = i + 1;
		}
	}
	if (k < 2 || flen[0] != UUID_STR_LEN - 1 || flen[1] == 0 ||
	    flen[1] >= sizeof(ev->status))
		return -1;
	memcpy(ev->id, f[0], flen[0]);
	ev->id[flen[0]] = '\0';
	memcpy(ev->status, f[1], flen[1]);
	ev->status[flen[1]] = '\0';
	ev->progress = -1;
	ev->stage[0] = '\0';
	ev->time_us = 0;
	if (k > 2 && flen[2] > 0 && flen[2] < 32) {
		char num[32], *end;
		double p;

		memcpy(num, f[2], flen[2]);
		num[flen[2]] = '\0';
		p = strtod(num, &end);
		if (*end == '\0' && p >= 0 && p <= 100)
			ev->progress = p;
	}
	if (k > 3 && flen[3] > 0) {
		size_t n = flen[3] < sizeof(ev->stage) - 1 ? flen[3] : sizeof(ev->stage) - 1;

		memcpy(ev->stage, f[3], n);
		ev->stage[n] = '\0';
	}
	if (k > 4 && flen[4] > 0 && flen[4] < 24) {
		char num[24], *end;
		long long t;

		memcpy(num, f[4], flen[4]);
		num[flen[4]] = '\0';
		t = strtoll(num, &end, 10);
		if (*end == '\0' && t > 0)
			ev->time_us = t;
	}
	return 0;
}

/* The next well-formed line of the message being handed out into *ev.
 * Returns 1, or 0 when the message is used up (and freed). */
static int next_line(struct queue_sub *s, struct queue_event *ev)
{
	const redisReply *m = s->msg->element[2];

	while (s->off < m->len) {
		const char *line = m->str + s->off;
		const char *nl = memchr(line, '\n', m->len - s->off);
		size_t len = nl ? (size_t)(nl - line) : m->len - s->off;

		s->off += len + 1;
		memset(ev, 0, sizeof(*ev));
		memcpy(ev->queue, s->queue, sizeof(ev->queue));
		if (parse_event(line, len, ev) == 0)
			return 1;
	}
	freeReplyObject(s->msg);
	s->msg = NULL;
	return 0;
}

int queue_sub_read(struct queue_sub *s, struct queue_event *ev, struct err *err)
{
	void *reply;
	redisReply *r;

	for (;;) {
		if (s->msg && next_line(s, ev))
			return 1;
		reply = NULL;
		if (redisGetReplyFromReader(s->c, &reply) != REDIS_OK)
			return err_set(err, ERR_PROTOCOL, "redis subscriber: %s", s->c->errstr);
		if (!reply) {
			struct pollfd p = { .fd = s->c->fd, .events = POLLIN };

			if (poll(&p, 1, 0) <= 0)
				return 0;
			if (redisBufferRead(s->c) != REDIS_OK)
				return err_set(err, ERR_UNAVAILABLE, "redis subscriber lost: %s",
					       s->c->errstr[0] ? s->c->errstr : "connection closed");
			if (redisGetReplyFromReader(s->c, &reply) != REDIS_OK)
				return err_set(err, ERR_PROTOCOL, "redis subscriber: %s",
					       s->c->errstr);
			if (!reply)
				return 0;
		}
		r = reply;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		    r->element[0]->type == REDIS_REPLY_STRING &&
		    !strcmp(r->element[0]->str, "message") &&
		    r->element[1]->type == REDIS_REPLY_STRING &&
		    r->element[2]->type == REDIS_REPLY_STRING &&
		    channel_queue(r->element[1]->str, r->element[1]->len, s->queue) == 0) {
			s->msg = r;
			s->off = 0;
			continue;
		}
		/* a subscribe confirmation or another channel's message: next */
		freeReplyObject(r);
	}
}
