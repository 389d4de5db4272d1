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
#include <sys/stat.h>
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
	const char *python, *dispatcher, *root, *config;
	int timeout, expose_authtok, quiet, debug, silent;
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
			       .timeout = DEFAULT_TIMEOUT, .silent = (flags & (int)PAM_SILENT) != 0 };
	const struct { const char *name, **dst; } paths[] = {
		{ "dispatcher", &o->dispatcher }, { "python", &o->python },
		{ "root", &o->root }, { "config", &o->config },
	};

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = NULL, **path = NULL;
		char *end;
		long t;

		for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]) && path == NULL; k++)
			if ((v = opt_value(a, paths[k].name)) != NULL)
				path = paths[k].dst;
		if (path != NULL && v[0] == '/')
			*path = v;
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
		else {
			pam_syslog(pamh, LOG_ERR, "unknown option %s", a);
			return -1;
		}
	}
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

static void relay_line(struct relay *r)
{
	r->line[r->len] = '\0';
	r->len = 0;
	for (char *c = r->line; *c != '\0'; c++)
		if ((*c > 0 && *c < ' ' && *c != '\t') || *c == 0x7f)
			*c = '?';
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
	else if (WEXITSTATUS(status) == 0)
		return PAM_SUCCESS;
	else if (WEXITSTATUS(status) == EXIT_FAILED)
		return ph->fail;
	else if (WEXITSTATUS(status) == EXIT_NO_HOOK)
		return PAM_IGNORE;
	else
		(void)snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
	pam_syslog(pamh, LOG_ERR, "%s: dispatcher %s", ph->name, why);
	if (!o->quiet && !o->silent) /* the module's own message; the dispatcher's are above */
		(void)pam_error(pamh, "hookrunner: %s failed: dispatcher %s", ph->name, why);
	return PAM_SYSTEM_ERR;
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
