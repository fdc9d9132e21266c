/* failsteer: command line entry point. */
#include <bpf/libbpf.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "log.h"

#define DEFAULT_PIN_PATH "/sys/fs/bpf/failsteer"
#define FS_VERSION "0.4.0"

static const char usage_text[] =
	"Usage: failsteer COMMAND [OPTIONS]\n"
	"\n"
	"Kernel-assisted failover of TCP services: eBPF steers new connections to the\n"
	"active backend, a Markov model of each backend decides failover and failback.\n"
	"\n"
	"Commands:\n"
	"  run -c FILE [-v]             load, attach and run the daemon in the foreground\n"
	"                               (SIGHUP reloads FILE, SIGTERM/SIGINT stop; the data\n"
	"                               path keeps steering until 'detach')\n"
	"  check -c FILE                validate FILE and print the effective settings\n"
	"  status [--json] [--watch] [SERVICE]\n"
	"                               active backend, P(down), rates, latency, learned\n"
	"                               transition probabilities, MTBF, MTTR, availability\n"
	"  failover SERVICE [BACKEND]   force new connections to BACKEND (index or address,\n"
	"                               default the first backup not believed down)\n"
	"  failback SERVICE             force new connections to the primary\n"
	"  auto SERVICE                 return SERVICE to automatic decisions\n"
	"  detach [--force]             remove the programs from every interface of this\n"
	"                               network namespace and the pins (refused while a\n"
	"                               daemon runs; --force: also without pins)\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE     configuration file (its pin_path is used by every command)\n"
	"  -p, --pin-path DIR    where the state is pinned, for the commands that read it\n"
	"                        (default " DEFAULT_PIN_PATH "; run and check use pin_path)\n"
	"  -j, --json            status as JSON\n"
	"  -w, --watch           status refreshed every second\n"
	"  -v, --verbose         debug logging, libbpf messages included\n"
	"  -f, --force           detach: remove every failsteer filter even without pins\n"
	"  -h, --help            this text (--version: the version)\n"
	"\n"
	"Exit status: 0 ok, 1 runtime error, 2 usage or configuration error.\n"
	"\n"
	"Examples:\n"
	"  failsteer check -c /etc/failsteer/failsteer.conf\n"
	"  failsteer run -c /etc/failsteer/failsteer.conf\n"
	"  failsteer status classifier\n"
	"  failsteer failover classifier 198.18.3.10:8080\n"
	"  failsteer auto classifier\n";

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* Quiet unless -v: failsteer reports every error itself, with context, once. The
	 * netlink chatter of expected cases (clsact already there, no clsact) goes too. */
	if (!log_enabled(LOG_LVL_DEBUG) && (level != LIBBPF_WARN || strstr(fmt, "Kernel error message")))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "failsteer: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nRun 'failsteer --help' for usage.\n");
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "pin-path", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "watch", no_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd, *config = NULL, *pin_path = NULL;
	bool json = false, watch = false, force = false;
	char pin_buf[CFG_PATH_MAX];
	int c, nargs;
	char **args;

	static const char *const commands[] = { "run", "check", "status", "failover", "failback",
						"auto", "detach" };
	bool known = false;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		if (argc > 2)
			return usage_error("%s takes no arguments", argv[1]);
		printf("failsteer %s (BPF programs built in)\n", FS_VERSION);
		return EXIT_OK;
	}
	cmd = argv[1];
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		known |= !strcmp(cmd, commands[i]);
	if (!known) /* before the options: 'failsteer typo -h' is not a success */
		return usage_error("unknown command '%s'", cmd);
	optind = 2;
	while ((c = getopt_long(argc, argv, "c:p:jwvfh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'p': pin_path = optarg; break;
		case 'j': json = true; break;
		case 'w': watch = true; break;
		case 'v': log_set_level(LOG_LVL_DEBUG); break;
		case 'f': force = true; break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: return usage_error("%s", "bad option");
		}
	}
	args = argv + optind;
	nargs = argc - optind;
	libbpf_set_print(libbpf_log);
	/* An option a command does not take is a mistake, not something to ignore. */
	if ((json || watch) && strcmp(cmd, "status"))
		return usage_error("%s takes no --json or --watch (options of status)", cmd);
	if (force && strcmp(cmd, "detach"))
		return usage_error("%s takes no --force (an option of detach)", cmd);
	if (pin_path && (!strcmp(cmd, "run") || !strcmp(cmd, "check")))
		return usage_error("%s takes the pin path from the config (pin_path), not -p", cmd);

	if (!strcmp(cmd, "run") || !strcmp(cmd, "check")) {
		if (!config)
			return usage_error("%s needs -c FILE", cmd);
		if (nargs)
			return usage_error("unexpected argument '%s'", args[0]);
		if (!strcmp(cmd, "run"))
			return daemon_run(config);
		struct cfg cfg;
		char err[512];

		if (cfg_load(config, &cfg, err, sizeof(err))) {
			fprintf(stderr, "failsteer: %s\n", err);
			return EXIT_USAGE;
		}
		printf("# %s: valid, %d service(s); effective settings:\n", config, cfg.n_services);
		cfg_print(&cfg, stdout);
		cfg_free(&cfg);
		return EXIT_OK;
	}

	/* The other commands work on the pinned state: find it. Only the config's pin_path
	 * counts here, so that a config half edited during an incident does not keep the
	 * operator from status, failover or detach; its problems are still shown. */
	if (!pin_path && config) {
		struct cfg cfg;
		char err[512], pin_err[512];

		if (cfg_read_pin_path(config, pin_buf, sizeof(pin_buf), pin_err, sizeof(pin_err))) {
			fprintf(stderr, "failsteer: %s\n", pin_err);
			return EXIT_USAGE;
		}
		if (cfg_load(config, &cfg, err, sizeof(err)))
			fprintf(stderr, "failsteer: warning: %s (only its pin_path is used here)\n", err);
		else
			cfg_free(&cfg);
		pin_path = pin_buf;
	}
	if (!pin_path)
		pin_path = DEFAULT_PIN_PATH;

	if (!strcmp(cmd, "status")) {
		if (nargs > 1)
			return usage_error("unexpected argument '%s'", args[1]);
		return cli_status(pin_path, nargs ? args[0] : NULL, json, watch);
	}
	if (!strcmp(cmd, "failover")) {
		if (nargs < 1 || nargs > 2)
			return usage_error("%s", "usage: failsteer failover SERVICE [BACKEND]");
		return cli_failover(pin_path, args[0], nargs > 1 ? args[1] : NULL);
	}
	if (!strcmp(cmd, "failback") || !strcmp(cmd, "auto")) {
		if (nargs != 1)
			return usage_error("usage: failsteer %s SERVICE", cmd);
		return !strcmp(cmd, "auto") ? cli_auto(pin_path, args[0]) : cli_failback(pin_path, args[0]);
	}
	if (!strcmp(cmd, "detach")) {
		if (nargs)
			return usage_error("unexpected argument '%s'", args[0]);
		return cli_detach(pin_path, force);
	}
	return usage_error("unknown command '%s'", cmd);
}
