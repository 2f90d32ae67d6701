/* job.c - lists of job rows outside the database. */
#include "store/store.h"

#include <stdlib.h>

void store_job_list_release(struct store_job_list *list)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < list->len; i++)
		job_info_release(&list->items[i]);
	free(list->items);
	list->items = NULL;
	list->len = 0;
}
