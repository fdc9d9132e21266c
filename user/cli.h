/* The operator commands that work on the pinned state: status, failover/failback/auto, detach. */
#ifndef FS_CLI_H
#define FS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "view.h"

/* Exit codes of every command. */
#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* Prints the status of one service (name) or all (NULL) as a table or JSON. */
int cli_status(const char *pin_path, const char *name, bool json, bool watch);
/* Forces the active backend of a service (backend: index or address; NULL = first backup). */
int cli_failover(const char *pin_path, const char *name, const char *backend);
/* Forces the primary. */
int cli_failback(const char *pin_path, const char *name);
/* Returns the service to automatic decisions. */
int cli_auto(const char *pin_path, const char *name);
/* Removes the programs from the TC hooks and the pins (see loader_detach). */
int cli_detach(const char *pin_path, bool force);

/* Renderers, separate so tests can check them without maps. */
void cli_print_table(const struct view *v, const char *name, FILE *out);
void cli_print_json(const struct view *v, const char *name, FILE *out);

#endif
