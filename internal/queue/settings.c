/* settings.c - the table of a queue's settings (the config hash that
 * operators set and the scripts read), their values and their JSON
 * document: the one home of their names, for the API and the CLI. */
#include "queue/queue.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The config hash fields, as config_load in _lib.lua reads them. */
const struct queue_setting queue_settings_table[QUEUE_NSETTINGS] = {
	[QUEUE_SET_RESULT_TTL] = { "result_ttl_s", "result_ttl", 1,
				   QUEUE_RESULT_TTL_MAX,
				   "seconds a done or cancelled job stays (default: RESULT_TTL)" },
	[QUEUE_SET_DONE_MAX] = { "done_max", "done_max", 1, 100000000,
				 "done jobs kept, at most (default 10000)" },
	[QUEUE_SET_DEAD_MAX] = { "dead_max", "dead_max", 1, 100000000,
				 "failed jobs kept in the dead letter, at most (default 10000)" },
	[QUEUE_SET_DEAD_TTL] = { "dead_ttl_s", "dead_ttl", 1,
				 QUEUE_RESULT_TTL_MAX,
				 "seconds a failed job stays (default: until the cap)" },
	[QUEUE_SET_RATE_MAX] = { "rate_max", "rate_max", 1, 1000000,
				 "jobs started per rate_period_s, at most (no limit)" },
	[QUEUE_SET_RATE_PERIOD] = { "rate_period_s", "rate_ms", 1000, 86400000,
				    "the rate limit's period, seconds" },
	[QUEUE_SET_CONCURRENCY] = { "concurrency", "conc", 1, 1000000,
				    "jobs running at once across all workers, at most (no limit)" },
	[QUEUE_SET_GROUP_RATE_MAX] = { "group_rate_max", "grate_max", 1, 1000000,
				       "jobs of one group started per group_rate_period_s" },
	[QUEUE_SET_GROUP_RATE_PERIOD] = { "group_rate_period_s", "grate_ms", 1000, 86400000,
					  "the group rate limit's period, seconds" },
	[QUEUE_SET_GROUP_CONCURRENCY] = { "group_concurrency", "gconc", 1, 1000000,
					  "jobs of one group running at once, at most" },
};

int queue_setting_value(enum queue_setting_id id, double given,
			int64_t *stored, struct err *err)
{
	const struct queue_setting *t = &queue_settings_table[id];
	double v = given * (double)t->scale;

	if (t->scale == 1 && (given != floor(given) || !(given >= 1) ||
			      !(given <= (double)t->max)))
		return err_set(err, ERR_INVALID,
			       "bad setting '%s': expected a whole number from 1 to %lld",
			       t->name, (long long)t->max);
	if (t->scale > 1 && (!(given > 0) || !(v < (double)t->max + 0.5) || llround(v) < 1))
		return err_set(err, ERR_INVALID, "bad setting '%s': expected seconds from %g to %g",
			       t->name, 1.0 / (double)t->scale, (double)t->max / (double)t->scale);
	*stored = llround(v);
	return 0;
}

double queue_setting_given(enum queue_setting_id id, int64_t stored)
{
	return (double)stored / (double)queue_settings_table[id].scale;
}

json_t *queue_settings_to_json(const char *queue, const struct queue_settings *st)
{
	json_t *o = json_object();
	size_t i;

	if (!o)
		abort();
	json_object_set_new(o, "queue", json_string(queue));
	json_object_set_new(o, "paused", json_boolean(st->paused));
	for (i = 0; i < QUEUE_NSETTINGS; i++) {
		const struct queue_setting *t = &queue_settings_table[i];

		json_object_set_new(o, t->name, !st->v[i] ? json_null()
				    : t->scale > 1 ? json_real(queue_setting_given((enum queue_setting_id)i,
										   st->v[i]))
				    : json_integer(st->v[i]));
	}
	return o;
}

int queue_settings_from_json(const json_t *obj, struct queue_settings *st,
			     const char **code, struct err *err)
{
	struct queue_settings r = *st;
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(obj)) {
		*code = "invalid_json";
		return err_set(err, ERR_INVALID, "expected an object of settings");
	}
	json_object_foreach((json_t *)obj, key, v) {
		for (i = 0; i < QUEUE_NSETTINGS; i++)
			if (!strcmp(key, queue_settings_table[i].name))
				break;
		if (i == QUEUE_NSETTINGS) {
			*code = "unknown_field";
			return err_set(err, ERR_INVALID, "unknown setting '%.64s'", key);
		}
		*code = "invalid_field";
		if (json_is_null(v)) {
			r.v[i] = 0;
			continue;
		}
		if (!json_is_number(v))
			return err_set(err, ERR_INVALID, "setting '%s': expected a number or null", key);
		if (queue_setting_value((enum queue_setting_id)i, json_number_value(v), &r.v[i],
					err) < 0)
			return -1;
	}
	*st = r;
	return 0;
}
