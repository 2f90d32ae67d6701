/* shared_vars.h - rows that the settings tables of wakeq-api and
 * wakeq-worker both hold: the connection limits of their HTTP servers
 * (httpd.h, "Floods") and the Cloud Tasks settings of a wake sent as a
 * task (wake.h). One home, so that a bound or a help line cannot differ
 * between the two.
 *
 * Each macro expands to rows of a `struct config_var` table. The table's
 * file defines F(field) as offsetof(its settings struct, field), and that
 * struct has the fields named here, of the types config.h gives each kind.
 */
#ifndef WAKEQ_CONFIG_SHARED_VARS_H
#define WAKEQ_CONFIG_SHARED_VARS_H

#include "config/config.h"

/* PER_IP_CONNECTIONS (int64_t per_ip_connections), CONN_RESERVE (int64_t
 * conn_reserve) and HEADER_TIMEOUT (double header_timeout), with the
 * binary's defaults for the first two as text. */
#define CONFIG_VARS_HTTP_LIMITS(per_ip_default, reserve_default)                      \
	{ "PER_IP_CONNECTIONS", CONFIG_INT, F(per_ip_connections), 0, 100000,         \
	  per_ip_default,                                                              \
	  "open connections from one client address at most (0 = no limit)", 0, NULL }, \
	{ "CONN_RESERVE", CONFIG_INT, F(conn_reserve), 1, 99999, reserve_default,     \
	  "connections kept for requests being answered: past MAX_CONNECTIONS - this, " \
	  "a new connection closes the oldest one still sending its request", 0, NULL }, \
	{ "HEADER_TIMEOUT", CONFIG_SECONDS, F(header_timeout), 0.1, 3600, "10",      \
	  "request headers must arrive whole within this of the connect or the last "  \
	  "answer (trickled bytes do not extend it)", 0, NULL }

/* TASKS_PROJECT, TASKS_LOCATION, TASKS_QUEUE, TASKS_SERVICE_ACCOUNT,
 * TASKS_ENDPOINT (char *tasks_...) and TASKS_BUCKET (double tasks_bucket):
 * where WAKE_VIA=cloudtasks makes its tasks. */
#define CONFIG_VARS_CLOUD_TASKS                                                       \
	{ "TASKS_PROJECT", CONFIG_STRING, F(tasks_project), 0, 0, "",                 \
	  "cloudtasks: the project of the queue (empty = the metadata server's)", 0, NULL }, \
	{ "TASKS_LOCATION", CONFIG_STRING, F(tasks_location), 0, 0, "",               \
	  "cloudtasks: the queue's region, e.g. us-central1", 0, NULL },                \
	{ "TASKS_QUEUE", CONFIG_STRING, F(tasks_queue), 0, 0, "",                     \
	  "cloudtasks: the queue id, e.g. wakeq-wake", 0, NULL },                       \
	{ "TASKS_SERVICE_ACCOUNT", CONFIG_STRING, F(tasks_service_account), 0, 0, "", \
	  "cloudtasks: the service account whose OIDC token the tasks carry", 0, NULL }, \
	{ "TASKS_ENDPOINT", CONFIG_STRING, F(tasks_endpoint), 0, 0, "",               \
	  "cloudtasks: the API's base URL (empty = https://cloudtasks.googleapis.com)", \
	  0, NULL },                                                                    \
	{ "TASKS_BUCKET", CONFIG_SECONDS, F(tasks_bucket), 0.001, 3600, "1",          \
	  "cloudtasks: wakes wanted within one bucket of this many seconds share a "    \
	  "task", 0, NULL }

#endif
