/* tasks.c - the task lists shared by the drain and the slot threads, and
 * the eventfd that wakes the drain thread.
 *
 * A task lives on exactly one list at a time (w->mu held for every move):
 *
 *   drain takes it  ->  w->ready  ->  a slot runs it (w->running[i])
 *                   ->  w->done   ->  the drain settles it and frees it
 *
 * The drain moves w->done wholesale into a list of its own before it
 * settles; only the drain thread touches that list. The drain and the
 * slots both call in here and never into each other.
 */
#include "worker/worker_int.h"

#include "base/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

void worker_notify(struct worker *w)
{
	uint64_t one = 1;

	if (w->notified)
		return;
	w->notified = 1;
	if (write(w->wake_fd, &one, sizeof(one)) < 0) {
		/* eventfd cannot overflow at one write per wake-up */
	}
}

struct task *task_new(const struct queue_job *job, int qi)
{
	struct task *t = xcalloc(1, sizeof(*t));

	t->job = *job;
	t->qi = qi;
	atomic_init(&t->cancel, 0);
	return t;
}

void task_free(struct task *t)
{
	if (!t)
		return;
	queue_job_release(&t->job);
	free(t->result);
	free(t->error);
	free(t);
}

void task_list_free(struct task *list)
{
	while (list) {
		struct task *t = list;

		list = t->next;
		task_free(t);
	}
}

size_t task_list_len(const struct task *list)
{
	size_t n = 0;

	for (; list; list = list->next)
		n++;
	return n;
}

void task_list_append(struct task **list, struct task *more)
{
	while (*list)
		list = &(*list)->next;
	*list = more;
}

/* Appends `t` to the list head..tail of *n tasks. */
static void fifo_push(struct task **head, struct task **tail, size_t *n, struct task *t)
{
	t->next = NULL;
	*(*tail ? &(*tail)->next : head) = t;
	*tail = t;
	(*n)++;
}

void tasks_push_ready(struct worker *w, struct task *t)
{
	fifo_push(&w->ready, &w->ready_tail, &w->nready, t);
}

struct task *tasks_pop_ready(struct worker *w)
{
	struct task *t = w->ready;

	if (!t)
		return NULL;
	w->ready = t->next;
	if (!w->ready)
		w->ready_tail = NULL;
	w->nready--;
	t->next = NULL;
	return t;
}

void tasks_requeue_ready(struct worker *w, struct task **list)
{
	struct task *t;

	while ((t = w->ready)) {
		w->ready = t->next;
		w->nready--;
		t->next = *list;
		t->outcome = QUEUE_REQUEUE;
		*list = t;
	}
	w->ready_tail = NULL;
}

void tasks_push_done(struct worker *w, struct task *t)
{
	fifo_push(&w->done, &w->done_tail, &w->ndone, t);
}

struct task *tasks_take_done(struct worker *w)
{
	struct task *list = w->done;

	w->done = w->done_tail = NULL;
	w->ndone = 0;
	return list;
}
