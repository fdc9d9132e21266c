/* The failsteer daemon: load and attach, then every tick read counters, run the detector,
 * steer, probe, persist its state in pinned maps; SIGHUP reloads, SIGTERM stops. */
#ifndef FS_DAEMON_H
#define FS_DAEMON_H

#include <stdbool.h>

/* Runs in the foreground until SIGTERM/SIGINT. Returns an exit code (0, 1 runtime, 2 config). */
int daemon_run(const char *cfg_path);

#endif
