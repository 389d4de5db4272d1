/*
 * pam_hookrunner.so - run the hookrunner dispatcher for one PAM phase (see pam/README.md).
 *
 * pam_exec.so without its gaps: the child's environment comes from PAM items only (never
 * the PAM environment list, where pam_env.so user_readenv=1 lets a user put LD_PRELOAD),
 * a timeout, one close_range(2), precise PAM codes, and messages to the user.
 *
 * Options (unknown option, relative path, bad number: PAM_SYSTEM_ERR + syslog):
 *   dispatcher=/abs/path  default /usr/lib/python3/dist-packages/hookrunner/__main__.py
 *   python=/abs/path      default /usr/bin/python3
 *   timeout=SECONDS       1..86400, default 60; then SIGTERM to the dispatcher's process
 *                         group, SIGKILL 1 s later, PAM_SYSTEM_ERR
 *   expose_authtok        auth and password: PAM_AUTHTOK (pam_get_authtok(3) asks if unset)
 *                         on the dispatcher's stdin, no newline
 *   quiet                 no failure message of the module's own to the user
 *   debug                 more syslog
 *   root=/abs/dir config=/abs/file   passed on as --root DIR, --config FILE
 *   socket=/abs/path      the warm dispatcher's socket (hookrunner serve), default
 *                         /run/hookrunner/dispatch.sock; not used by default when
 *                         dispatcher= or python= is given (those name an exec'd dispatcher)
 *   nosocket              always exec
 *
 * With a socket (see "The warm dispatcher" below and hookrunner/wire.py) the phase runs in
 * the daemon; the module falls back to exec when the socket is missing, unsafe, refuses, or
 * does not accept within 500 ms, and never after the daemon has started the phase.
 *
 * Child: PYTHON -I -S DISPATCHER run PHASE --msg-fd 3 --ignore-empty [--root D] [--config F]
 * with PAM_USER PAM_SERVICE PAM_RHOST PAM_RUSER PAM_TTY (when set), PAM_TYPE and a fixed
 * PATH; real, effective and saved uid and gid 0 and root's groups when euid is 0 (setuid
 * callers such as su and passwd keep the caller's real uid and groups otherwise);
 * new session, cwd /, umask 022, default signals, stdin /dev/null (or the password),
 * stdout/stderr /dev/null, fd 3 the message pipe: lines "info TEXT" / "error TEXT" go to
 * the user via pam_info / pam_error unless PAM_SILENT ('?' for control characters, 1 KiB a
 * line, 64 KiB in all).
 *
 * Exit status: 0 PAM_SUCCESS; 1 auth PAM_AUTH_ERR, account PAM_PERM_DENIED, password
 * PAM_AUTHTOK_ERR, session PAM_SESSION_ERR; 4 (no hook for the phase) PAM_IGNORE; any other
 * status, a signal, a timeout, a failure to start: PAM_SYSTEM_ERR. setcred: PAM_IGNORE.
 * chauthtok: the PAM_PRELIM_CHECK pass answers PAM_SUCCESS without running anything (as
 * pam_exec), the PAM_UPDATE_AUTHTOK pass runs the dispatcher.
 * While it waits, SIGCHLD is SIG_DFL (as pam_unix does for its helpers) so that no handler
 * of the application reaps our child; the application's disposition is then restored.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD
#include <security/pam_modules.h>
#include <security/pam_ext.h>

#define DEFAULT_PYTHON "/usr/bin/python3"
#define DEFAULT_DISPATCHER "/usr/lib/python3/dist-packages/hookrunner/__main__.py"
#define DEFAULT_TIMEOUT 60
#define MAX_TIMEOUT 86400
#define KILL_GRACE_MS 1000
#define MSG_FD 3
#define MSG_LINE_MAX 1024
#define MSG_TOTAL_MAX 65536
#define EXIT_FAILED 1   /* a hook failed or denied */
#define EXIT_NO_HOOK 4  /* nothing to run for the phase (--ignore-empty) */
#define SAFE_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_SOCKET "/run/hookrunner/dispatch.sock"
#define ACCEPT_MS 500          /* connect, send, "R": else exec */
#define REQUEST_MAX 65536      /* wire.MAX_REQUEST */
#define FALLBACK (-1)          /* nothing ran in the daemon: exec */

/* PAM_TYPE as pam_exec spells it, hookrunner's phase, the PAM code for exit status 1 */
struct phase { const char *type, *name; int fail; };

static const struct phase AUTH = { "auth", "onauth", PAM_AUTH_ERR };
static const struct phase ACCOUNT = { "account", "onaccount", PAM_PERM_DENIED };
static const struct phase PASSWORD = { "password", "onpasswd", PAM_AUTHTOK_ERR };
static const struct phase OPEN = { "open_session", "onsessionopen", PAM_SESSION_ERR };
static const struct phase CLOSE = { "close_session", "onsessionclose", PAM_SESSION_ERR };

/* The PAM items the child gets, by name; nothing else from PAM reaches it. */
static const struct { int item; const char *name; } env_items[] = {
	{ PAM_USER, "PAM_USER" },   { PAM_SERVICE, "PAM_SERVICE" }, { PAM_RHOST, "PAM_RHOST" },
	{ PAM_RUSER, "PAM_RUSER" }, { PAM_TTY, "PAM_TTY" },
};
#define N_ENV_ITEMS (sizeof(env_items) / sizeof(env_items[0]))

struct options {
	const char *python, *dispatcher, *root, *config, *socket;
	int timeout, expose_authtok, quiet, debug, silent, nosocket;
};

/* Message relay state: the line being assembled and the budget spent. */
struct relay {
	pam_handle_t *pamh;
	int show;
	size_t total, len;
	char line[MSG_LINE_MAX + 1];
};

static const char *opt_value(const char *arg, const char *name)
{
	size_t n = strlen(name);
	return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

static int parse_options(pam_handle_t *pamh, int flags, int argc, const char **argv,
			 struct options *o)
{
	*o = (struct options){ .python = DEFAULT_PYTHON, .dispatcher = DEFAULT_DISPATCHER,
			       .socket = DEFAULT_SOCKET, .timeout = DEFAULT_TIMEOUT,
			       .silent = (flags & (int)PAM_SILENT) != 0 };
	const struct { const char *name, **dst; } paths[] = {
		{ "dispatcher", &o->dispatcher }, { "python", &o->python },
		{ "root", &o->root }, { "config", &o->config }, { "socket", &o->socket },
	};
	int socket_given = 0, own_dispatcher = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = NULL, **path = NULL;
		char *end;
		long t;

		for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]) && path == NULL; k++)
			if ((v = opt_value(a, paths[k].name)) != NULL)
				path = paths[k].dst;
		if (path != NULL && v[0] == '/') {
			*path = v;
			socket_given |= path == &o->socket;
			own_dispatcher |= path == &o->python || path == &o->dispatcher;
		}
		else if (path != NULL) {
			pam_syslog(pamh, LOG_ERR, "bad option %s: not an absolute path", a);
			return -1;
		} else if ((v = opt_value(a, "timeout")) != NULL) {
			errno = 0;
			t = strtol(v, &end, 10);
			if (errno != 0 || end == v || *end != '\0' || t < 1 || t > MAX_TIMEOUT) {
				pam_syslog(pamh, LOG_ERR, "bad option %s (1..%d s)", a, MAX_TIMEOUT);
				return -1;
			}
			o->timeout = (int)t;
		} else if (strcmp(a, "expose_authtok") == 0)
			o->expose_authtok = 1;
		else if (strcmp(a, "quiet") == 0)
			o->quiet = 1;
		else if (strcmp(a, "debug") == 0)
			o->debug = 1;
		else if (strcmp(a, "nosocket") == 0)
			o->nosocket = 1;
		else {
			pam_syslog(pamh, LOG_ERR, "unknown option %s", a);
			return -1;
		}
	}
	/* a dispatcher of one's own is exec'd: the daemon runs the installed one */
	if (o->nosocket || (!socket_given && own_dispatcher))
		o->socket = NULL;
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
	*fd = -1;
}

static void free_env(char **env)
{
	for (char **e = env; e != NULL && *e != NULL; e++)
		free(*e);
	free(env);
}

/* The child's whole environment: the PAM items above, PAM_TYPE and a fixed PATH. */
static char **build_env(pam_handle_t *pamh, const struct phase *ph)
{
	char **env = calloc(N_ENV_ITEMS + 3, sizeof(*env));
	size_t n = 0;

	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < N_ENV_ITEMS; i++) {
		const void *v;

		if (pam_get_item(pamh, env_items[i].item, &v) != PAM_SUCCESS || v == NULL)
			continue;
		if (asprintf(&env[n], "%s=%s", env_items[i].name, (const char *)v) < 0)
			goto fail;
		n++;
	}
	if (asprintf(&env[n], "PAM_TYPE=%s", ph->type) < 0)
		goto fail;
	if ((env[++n] = strdup(SAFE_PATH)) == NULL)
		goto fail;
	return env;
fail:
	env[n] = NULL; /* asprintf leaves it undefined on failure */
	free_env(env);
	return NULL;
}

static void close_from(int lowfd)
{
	struct rlimit rl;
	long max = 65536;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned int)lowfd, ~0U, 0U) == 0)
		return;
#endif
	/* Linux < 5.9: one by one up to the descriptor limit */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		max = rl.rlim_cur < 0x7fffffff ? (long)rl.rlim_cur : 0x7fffffff;
	for (long fd = lowfd; fd < max; fd++)
		(void)close((int)fd);
}

/* Root's supplementary groups, looked up before fork (getgrouplist is not async-signal-safe). */
struct root_groups { gid_t list[64]; int n; };

static void get_root_groups(struct root_groups *g)
{
	g->n = (int)(sizeof(g->list) / sizeof(g->list[0]));
	if (getgrouplist("root", 0, g->list, &g->n) < 0 || g->n < 1) {
		g->list[0] = 0; /* no "root" in the database, or more than 64 groups */
		g->n = 1;
	}
}

/* In the forked child: only async-signal-safe calls from here to execve. */
static void __attribute__((noreturn))
child(int in, int null, int msg, char *const argv[], char *const envp[],
      const struct root_groups *groups)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	/*
	 * A setuid caller (su, passwd, chsh, chfn) runs PAM with its real uid and groups and
	 * euid 0: be all root, or dash/bash hooks drop to the caller and the caller may signal
	 * the dispatcher. setresuid last: it gives up the right to change the others.
	 */
	if (geteuid() == 0 && (setresgid(0, 0, 0) != 0 ||
			       setgroups((size_t)groups->n, groups->list) != 0 ||
			       setresuid(0, 0, 0) != 0))
		_exit(127);
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &dfl, NULL); /* fails harmlessly for KILL, STOP, ... */
	if (sigemptyset(&none) != 0 || sigprocmask(SIG_SETMASK, &none, NULL) != 0)
		_exit(127);
	/* lift the sources above fd 3 first, so that no dup2 below is a no-op */
	in = fcntl(in, F_DUPFD_CLOEXEC, MSG_FD + 1);
	null = fcntl(null, F_DUPFD_CLOEXEC, MSG_FD + 1);
	msg = fcntl(msg, F_DUPFD_CLOEXEC, MSG_FD + 1);
	if (in < 0 || null < 0 || msg < 0 || dup2(in, STDIN_FILENO) < 0 ||
	    dup2(null, STDOUT_FILENO) < 0 || dup2(null, STDERR_FILENO) < 0 ||
	    dup2(msg, MSG_FD) < 0)
		_exit(127);
	close_from(MSG_FD + 1);
	if (setsid() < 0 || chdir("/") != 0)
		_exit(127);
	umask(022);
	execve(argv[0], argv, envp);
	_exit(127);
}

static long long now_ms(void)
{
	struct timespec ts = { 0, 0 };

	(void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail with this clock */
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* 1 when the child has exited (left unreaped: its pid and group stay ours), 0 if not. */
static int has_exited(pid_t pid)
{
	siginfo_t si = { .si_pid = 0 };

	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
		return errno == EINTR ? 0 : -1;
	return si.si_pid == pid;
}

/* Length of the valid UTF-8 character at s (1..4), 0 if none starts there (RFC 3629: no
 * overlong form, no surrogate, nothing above U+10FFFF). s is NUL-terminated. */
static size_t utf8_char(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	for (size_t i = 1; i < n; i++, lo = 0x80, hi = 0xbf)
		if (s[i] < lo || s[i] > hi)
			return 0;
	return n;
}

/*
 * What a terminal would act on becomes '?': C0 controls but tab (ESC starts its sequences),
 * DEL, C1 controls (U+0080..U+009F, CSI and OSC among them, also as UTF-8) and each byte
 * that is not part of valid UTF-8, which a terminal may take as C1. Valid UTF-8 text stays.
 * The same rule as the dispatcher's showable().
 */
static void make_showable(char *line)
{
	unsigned char *in = (unsigned char *)line, *out = in;

	while (*in != '\0') {
		size_t n = utf8_char(in);

		if (n == 0 || (n == 1 && ((*in < ' ' && *in != '\t') || *in == 0x7f)) ||
		    (n == 2 && in[0] == 0xc2 && in[1] < 0xa0)) {
			*out++ = '?';
			in += n > 0 ? n : 1;
		} else {
			while (n-- > 0)
				*out++ = *in++;
		}
	}
	*out = '\0';
}

static void relay_line(struct relay *r)
{
	r->line[r->len] = '\0';
	r->len = 0;
	make_showable(r->line);
	if (!r->show)
		return;
	if (strncmp(r->line, "info ", 5) == 0)
		(void)pam_info(r->pamh, "%s", r->line + 5);
	else if (strncmp(r->line, "error ", 6) == 0)
		(void)pam_error(r->pamh, "%s", r->line + 6);
}

/* Read what the pipe holds; 1 at end of file (or error), 0 when it would block. */
static int relay_read(struct relay *r, int fd)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && r->total < MSG_TOTAL_MAX; i++, r->total++) {
			if (buf[i] == '\n')
				relay_line(r);
			else if (r->len < MSG_LINE_MAX && buf[i] != '\0')
				r->line[r->len++] = buf[i]; /* longer lines are cut */
		}
	}
	if (r->len > 0)
		relay_line(r); /* a last line without newline */
	return 1;
}

/*
 * Wait until the child exits or the deadline passes, relaying messages from *msgfd when
 * relay is not NULL. 1: exited, 0: deadline passed, -1: error.
 */
static int wait_exit(pid_t pid, int pidfd, long long deadline, struct relay *r, int *msgfd)
{
	int exited;

	while ((exited = has_exited(pid)) == 0) {
		long long left = deadline - now_ms();
		struct pollfd p[2];
		nfds_t n = 0;

		if (left <= 0)
			return 0;
		if (r != NULL && *msgfd >= 0)
			p[n++] = (struct pollfd){ .fd = *msgfd, .events = POLLIN };
		if (pidfd >= 0)
			p[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		/* without a pidfd (Linux < 5.3), look at the child every 10 ms */
		if (poll(p, n, (int)(pidfd >= 0 || left < 10 ? left : 10)) < 0 && errno != EINTR)
			return -1;
		if (r != NULL && *msgfd >= 0 && p[0].revents != 0 && relay_read(r, *msgfd))
			close_fd(msgfd);
	}
	if (exited > 0 && r != NULL && *msgfd >= 0)
		(void)relay_read(r, *msgfd); /* drain; a grandchild may hold the pipe open */
	return exited;
}

/* The dispatcher failed (not a denial): syslog, tell the user unless quiet, PAM_SYSTEM_ERR. */
static int failed(pam_handle_t *pamh, const struct options *o, const struct phase *ph,
		  const char *why)
{
	pam_syslog(pamh, LOG_ERR, "%s: dispatcher %s", ph->name, why);
	if (!o->quiet && !o->silent) /* the module's own message; the dispatcher's are above */
		(void)pam_error(pamh, "hookrunner: %s failed: dispatcher %s", ph->name, why);
	return PAM_SYSTEM_ERR;
}

/* The PAM code for the dispatcher's exit status (the same for exec and the daemon). */
static int exit_code(pam_handle_t *pamh, const struct options *o, const struct phase *ph,
		     int status)
{
	char why[64];

	if (status == 0)
		return PAM_SUCCESS;
	if (status == EXIT_FAILED)
		return ph->fail;
	if (status == EXIT_NO_HOOK)
		return PAM_IGNORE;
	(void)snprintf(why, sizeof(why), "exited with status %d", status);
	return failed(pamh, o, ph, why);
}

/* Wait for the dispatcher, relaying its messages, and turn its fate into a PAM code. */
static int wait_child(pam_handle_t *pamh, const struct options *o, const struct phase *ph,
		      pid_t pid, int msgfd)
{
	struct relay r = { .pamh = pamh, .show = !o->silent };
#ifdef SYS_pidfd_open
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0U); /* Linux >= 5.3 */
#else
	int pidfd = -1;
#endif
	int status = 0, done;
	char why[64];

	done = wait_exit(pid, pidfd, now_ms() + o->timeout * 1000LL, &r, &msgfd);
	if (done < 0)
		pam_syslog(pamh, LOG_ERR, "%s: waiting for the dispatcher: %m", ph->name);
	if (done == 0 || (done < 0 && has_exited(pid) == 0)) {
		/* kill(pid) too: the child may not have called setsid yet */
		(void)kill(-pid, SIGTERM);
		(void)kill(pid, SIGTERM);
		(void)wait_exit(pid, pidfd, now_ms() + KILL_GRACE_MS, NULL, NULL);
		(void)kill(-pid, SIGKILL); /* the rest of its group, leader reaped or not */
		(void)kill(pid, SIGKILL);
	}
	close_fd(&msgfd);
	close_fd(&pidfd);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			pam_syslog(pamh, LOG_ERR, "%s: waitpid: %m", ph->name);
			return PAM_SYSTEM_ERR;
		}
	}
	if (done < 0)
		return PAM_SYSTEM_ERR;
	if (o->debug)
		pam_syslog(pamh, LOG_DEBUG, "%s: wait status %#x", ph->name, status);
	if (done == 0)
		(void)snprintf(why, sizeof(why), "timed out after %d s", o->timeout);
	else if (WIFSIGNALED(status))
		(void)snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	else
		return exit_code(pamh, o, ph, WEXITSTATUS(status));
	return failed(pamh, o, ph, why);
}

static int run_dispatcher(pam_handle_t *pamh, const struct options *o, const struct phase *ph,
			  const char *authtok)
{
	const char *argv[14] = { o->python, "-I", "-S", o->dispatcher, "run", ph->name,
				 "--msg-fd", "3" /* MSG_FD */, "--ignore-empty" };
	size_t argc = 9;
	int ret = PAM_SYSTEM_ERR, null = -1, msg[2] = { -1, -1 }, tok[2] = { -1, -1 };
	struct sigaction dfl = { .sa_handler = SIG_DFL }, saved;
	struct root_groups groups = { .n = 0 };
	char **envp = NULL;
	pid_t pid;

	if (o->root) {
		argv[argc++] = "--root";
		argv[argc++] = o->root;
	}
	if (o->config) {
		argv[argc++] = "--config";
		argv[argc++] = o->config;
	}
	if (faccessat(AT_FDCWD, o->python, X_OK, AT_EACCESS) != 0 ||
	    faccessat(AT_FDCWD, o->dispatcher, R_OK, AT_EACCESS) != 0) {
		pam_syslog(pamh, LOG_ERR, "cannot run %s %s: %m", o->python, o->dispatcher);
		return PAM_SYSTEM_ERR;
	}
	if ((envp = build_env(pamh, ph)) == NULL) {
		pam_syslog(pamh, LOG_CRIT, "building the environment: %m");
		return PAM_SYSTEM_ERR;
	}
	if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0 || pipe2(msg, O_CLOEXEC) != 0 ||
	    fcntl(msg[0], F_SETFL, O_NONBLOCK) != 0) {
		pam_syslog(pamh, LOG_ERR, "setting up the dispatcher's descriptors: %m");
		goto out;
	}
	if (authtok != NULL) { /* into an empty pipe: a write of up to PIPE_BUF never blocks */
		size_t len = strlen(authtok);

		errno = EMSGSIZE; /* what %m says when the token is too long */
		if (len > PIPE_BUF || pipe2(tok, O_CLOEXEC) != 0 ||
		    write(tok[1], authtok, len) != (ssize_t)len) {
			pam_syslog(pamh, LOG_ERR, "cannot pass a %zu-byte token: %m", len);
			goto out;
		}
		close_fd(&tok[1]); /* the dispatcher reads the token, then end of file */
	}
	if (o->debug)
		pam_syslog(pamh, LOG_DEBUG, "%s: running %s %s", ph->name, o->python, o->dispatcher);
	if (sigaction(SIGCHLD, &dfl, &saved) != 0) {
		pam_syslog(pamh, LOG_ERR, "sigaction: %m");
		goto out;
	}
	if (geteuid() == 0)
		get_root_groups(&groups);
	if ((pid = fork()) == 0)
		child(authtok != NULL ? tok[0] : null, null, msg[1], (char *const *)argv, envp,
		      &groups);
	if (pid > 0) {
		close_fd(&msg[1]);
		ret = wait_child(pamh, o, ph, pid, msg[0]);
		msg[0] = -1; /* closed by wait_child */
	} else
		pam_syslog(pamh, LOG_ERR, "fork: %m");
	(void)sigaction(SIGCHLD, &saved, NULL);
out:
	for (int i = 0; i < 2; i++) {
		close_fd(&msg[i]);
		close_fd(&tok[i]);
	}
	close_fd(&null);
	free_env(envp);
	return ret;
}

/*
 * The warm dispatcher (hookrunner serve): one connection per call, protocol in
 * hookrunner/wire.py. The module commits at one point only, by sending "G" after the
 * daemon's "R"; before that it falls back to exec, after it never does unless the
 * connection ends before the daemon's "S" (then nothing ran).
 */

/* Is one path component's directory (or the socket) root's alone? 0 yes, else logged. */
static int root_only(pam_handle_t *pamh, const char *sock, const char *what,
		     const struct stat *st)
{
	if (st->st_uid == 0 && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0)
		return 0;
	pam_syslog(pamh, LOG_WARNING, "socket %s not used: %s owned by uid %u, mode %04o",
		   sock, what, (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
	return -1;
}

/*
 * 0 if the socket may be used: a socket, and it and every directory up to / (none of them a
 * symlink) root-owned and not writable by group or others. -1 if not: logged, except when
 * it does not exist (no daemon: exec quietly).
 */
static int socket_is_safe(pam_handle_t *pamh, const struct options *o)
{
	char path[PATH_MAX], *name, *next;
	int dir, sub, ret = -1;
	struct stat st;

	if (strlen(o->socket) >= sizeof(path) || strlen(o->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		pam_syslog(pamh, LOG_ERR, "socket %s not used: path too long", o->socket);
		return -1;
	}
	strcpy(path, o->socket);
	if ((dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 || fstat(dir, &st) != 0 ||
	    root_only(pamh, o->socket, "/", &st) != 0)
		goto out;
	for (name = path + 1; (next = strchr(name, '/')) != NULL; name = next + 1) {
		if (next == name)
			continue; /* "//" */
		*next = '\0';
		sub = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			if (errno != ENOENT)
				pam_syslog(pamh, LOG_WARNING, "socket %s not used: %s: %m", o->socket, path);
			goto out;
		}
		(void)close(dir);
		dir = sub;
		if (fstat(dir, &st) != 0 || root_only(pamh, o->socket, path, &st) != 0)
			goto out;
		*next = '/';
	}
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT)
			pam_syslog(pamh, LOG_WARNING, "socket %s not used: %m", o->socket);
		goto out;
	}
	if (!S_ISSOCK(st.st_mode)) {
		pam_syslog(pamh, LOG_WARNING, "socket %s not used: not a socket", o->socket);
		goto out;
	}
	ret = root_only(pamh, o->socket, "the socket", &st);
out:
	if (dir >= 0)
		(void)close(dir);
	return ret;
}

static int add_field(char *buf, size_t *len, const char *key, const char *value)
{
	size_t k = strlen(key), v = strlen(value);

	if (*len + k + v + 3 > REQUEST_MAX) /* '=', NUL, and the final NUL */
		return -1;
	memcpy(buf + *len, key, k);
	buf[*len + k] = '=';
	memcpy(buf + *len + k + 1, value, v + 1);
	*len += k + v + 2;
	return 0;
}

/* The request of wire.py: NUL-terminated fields, then an empty one. NULL if too long. */
static char *build_request(pam_handle_t *pamh, const struct options *o, const struct phase *ph,
			   const char *authtok, size_t *len)
{
	char *buf = malloc(REQUEST_MAX);
	int bad = 0;

	*len = 0;
	if (buf == NULL)
		return NULL;
	bad |= add_field(buf, len, "hookrunner", "1");
	bad |= add_field(buf, len, "phase", ph->name);
	for (size_t i = 0; i < N_ENV_ITEMS; i++) {
		const void *v;

		if (pam_get_item(pamh, env_items[i].item, &v) == PAM_SUCCESS && v != NULL)
			bad |= add_field(buf, len, env_items[i].name, v);
	}
	if (o->root)
		bad |= add_field(buf, len, "root", o->root);
	if (o->config)
		bad |= add_field(buf, len, "config", o->config);
	if (authtok)
		bad |= add_field(buf, len, "authtok", authtok);
	if (bad) {
		explicit_bzero(buf, REQUEST_MAX);
		free(buf);
		return NULL;
	}
	buf[(*len)++] = '\0';
	return buf;
}

/* Wait for fd to be ready for events until deadline: 1 ready, 0 deadline passed, -1 error. */
static int await(int fd, short events, long long deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		long long left = deadline - now_ms();
		int n;

		if (left <= 0)
			return 0;
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -1 : n > 0;
	}
}

/* Send the request, the message pipe's write end with its first byte. 0, or -1. */
static int send_request(int sock, const char *req, size_t len, int fd, long long deadline)
{
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } c;
	size_t off = 0;

	while (off < len) {
		struct iovec iov = { .iov_base = (void *)(req + off), .iov_len = len - off };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (off == 0) {
			struct cmsghdr *h;

			memset(&c, 0, sizeof(c));
			m.msg_control = c.buf;
			m.msg_controllen = sizeof(c.buf);
			h = CMSG_FIRSTHDR(&m);
			h->cmsg_level = SOL_SOCKET;
			h->cmsg_type = SCM_RIGHTS;
			h->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(h), &fd, sizeof(int));
		}
		n = sendmsg(sock, &m, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno == EAGAIN) {
			if (await(sock, POLLOUT, deadline) <= 0)
				return -1;
		} else if (!(n < 0 && errno == EINTR))
			return -1;
	}
	return 0;
}

/* Read one byte by the deadline: 1 read, 0 end of file, -1 deadline passed or error. */
static int read_byte(int sock, long long deadline, char *c)
{
	for (;;) {
		ssize_t n = recv(sock, c, 1, 0);

		if (n >= 0)
			return (int)n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || await(sock, POLLIN, deadline) <= 0)
			return -1;
	}
}

/* The daemon's "E" line, printable, into the log: why it refused. */
static void log_refusal(pam_handle_t *pamh, const struct options *o, int sock, long long deadline)
{
	char why[256], c;
	size_t n = 0;

	while (n < sizeof(why) - 1 && read_byte(sock, deadline, &c) == 1 && c != '\n')
		why[n++] = (c >= ' ' && c < 0x7f) ? c : '?';
	why[n] = '\0';
	pam_syslog(pamh, LOG_WARNING, "socket %s: the daemon refused: %s", o->socket, why);
}

/* Connected to a root daemon (SO_PEERCRED of the listener) through a safe socket: fd, or -1. */
static int connect_daemon(pam_handle_t *pamh, const struct options *o)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred peer;
	socklen_t plen = sizeof(peer);
	int sock;

	if (socket_is_safe(pamh, o) != 0)
		return -1;
	strcpy(sa.sun_path, o->socket); /* length checked by socket_is_safe */
	if ((sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -1;
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		/* ECONNREFUSED: a stale socket; EAGAIN: the daemon's backlog is full */
		pam_syslog(pamh, errno == EAGAIN ? LOG_WARNING : LOG_DEBUG, "socket %s: connect: %m",
			   o->socket);
		(void)close(sock);
		return -1;
	}
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &plen) != 0 || peer.uid != 0) {
		pam_syslog(pamh, LOG_WARNING, "socket %s not used: the daemon is not root", o->socket);
		(void)close(sock);
		return -1;
	}
	return sock;
}

/*
 * After "G": relay messages until the daemon's "S" and status byte, the end of the
 * connection, or the timeout. A PAM code, or FALLBACK if the connection ended before "S".
 */
static int wait_daemon(pam_handle_t *pamh, const struct options *o, const struct phase *ph,
		       int sock, int msgfd)
{
	struct relay r = { .pamh = pamh, .show = !o->silent };
	long long deadline = now_ms() + o->timeout * 1000LL;
	int started = 0, ret;
	char why[64];

	for (;;) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN }, { .fd = msgfd, .events = POLLIN } };
		long long left = deadline - now_ms();
		char c;
		ssize_t n;

		if (left <= 0) {
			(void)snprintf(why, sizeof(why), "timed out after %d s", o->timeout);
			ret = failed(pamh, o, ph, why);
			break;
		}
		if (poll(p, msgfd >= 0 ? 2 : 1, (int)left) < 0 && errno != EINTR) {
			pam_syslog(pamh, LOG_ERR, "%s: waiting for the daemon: %m", ph->name);
			ret = PAM_SYSTEM_ERR;
			break;
		}
		if (msgfd >= 0 && p[1].revents != 0 && relay_read(&r, msgfd))
			close_fd(&msgfd);
		if (p[0].revents == 0)
			continue;
		n = recv(sock, &c, 1, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0 && !started) {
			pam_syslog(pamh, LOG_WARNING, "socket %s: the daemon hung up before starting "
				   "%s: running it by exec", o->socket, ph->name);
			ret = FALLBACK; /* it runs nothing before "S" */
			break;
		}
		if (n <= 0) {
			ret = failed(pamh, o, ph, "closed the connection (daemon)");
			break;
		}
		if (!started && c == 'S') {
			started = 1;
			continue;
		}
		if (!started) {
			ret = failed(pamh, o, ph, "spoke nonsense (daemon)");
			break;
		}
		if (msgfd >= 0)
			(void)relay_read(&r, msgfd); /* what it wrote before its status */
		ret = exit_code(pamh, o, ph, (unsigned char)c);
		break;
	}
	close_fd(&msgfd);
	return ret;
}

/* The phase through the daemon: a PAM code, or FALLBACK when nothing ran there. */
static int via_daemon(pam_handle_t *pamh, const struct options *o, const struct phase *ph,
		      const char *authtok)
{
	long long accept_by = now_ms() + ACCEPT_MS;
	int sock, msg[2] = { -1, -1 }, ret = FALLBACK, got;
	size_t len = 0;
	char *req = NULL, c = 0;

	if ((sock = connect_daemon(pamh, o)) < 0)
		return FALLBACK;
	if ((req = build_request(pamh, o, ph, authtok, &len)) == NULL) {
		pam_syslog(pamh, LOG_WARNING, "%s: request too large for the daemon: exec", ph->name);
		goto out;
	}
	if (pipe2(msg, O_CLOEXEC) != 0 || fcntl(msg[0], F_SETFL, O_NONBLOCK) != 0 ||
	    send_request(sock, req, len, msg[1], accept_by) != 0) {
		pam_syslog(pamh, LOG_WARNING, "socket %s: cannot send the request: exec", o->socket);
		goto out;
	}
	close_fd(&msg[1]); /* the daemon has its own copy */
	got = read_byte(sock, accept_by, &c);
	if (got == 1 && c == 'E') {
		log_refusal(pamh, o, sock, accept_by);
		goto out;
	}
	if (got != 1 || c != 'R') {
		pam_syslog(pamh, LOG_WARNING, "socket %s: the daemon did not accept %s within %d ms: "
			   "exec", o->socket, ph->name, ACCEPT_MS);
		goto out;
	}
	/* the commitment: from here on the daemon may run the phase */
	if (send(sock, "G", 1, MSG_NOSIGNAL) != 1)
		goto out; /* it is gone: it cannot have started */
	if (o->debug)
		pam_syslog(pamh, LOG_DEBUG, "%s: running in the daemon at %s", ph->name, o->socket);
	ret = wait_daemon(pamh, o, ph, sock, msg[0]);
	msg[0] = -1; /* closed by wait_daemon */
out:
	if (req != NULL) {
		explicit_bzero(req, len);
		free(req);
	}
	close_fd(&msg[0]);
	close_fd(&msg[1]);
	(void)close(sock);
	return ret;
}

static int hookrunner(pam_handle_t *pamh, int flags, int argc, const char **argv,
		      const struct phase *ph)
{
	struct options o;
	const char *tok = NULL;

	if (parse_options(pamh, flags, argc, argv, &o) != 0)
		return PAM_SYSTEM_ERR;
	if (o.expose_authtok && (ph == &AUTH || ph == &PASSWORD)) {
		int r = pam_get_authtok(pamh, PAM_AUTHTOK, &tok, NULL);

		if (r != PAM_SUCCESS) {
			pam_syslog(pamh, LOG_ERR, "%s: no token: %s", ph->name, pam_strerror(pamh, r));
			return r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : r;
		}
	}
	if (o.socket != NULL) {
		int r = via_daemon(pamh, &o, ph, tok);

		if (r != FALLBACK)
			return r;
	}
	return run_dispatcher(pamh, &o, ph, tok);
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return hookrunner(pamh, flags, argc, argv, &AUTH);
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh, (void)flags, (void)argc, (void)argv;
	return PAM_IGNORE;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return hookrunner(pamh, flags, argc, argv, &ACCOUNT);
}

PAM_EXTERN int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return flags & PAM_PRELIM_CHECK ? PAM_SUCCESS
					: hookrunner(pamh, flags, argc, argv, &PASSWORD);
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return hookrunner(pamh, flags, argc, argv, &OPEN);
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return hookrunner(pamh, flags, argc, argv, &CLOSE);
}
