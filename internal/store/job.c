/* job.c - lists of job rows outside the database. */
#include "store/store.h"

#include <stdlib.h>

void store_job_list_release(struct store_job_list *list)
{
	if (!list)
		return;
	while (list->len > 0)
		job_info_release(&list->items[--list->len]);
	free(list->items);
	list->items = NULL;
}
