/*
 * pamloop SERVICE USER OPERATION N: one pam_start, then OPERATION (open_session,
 * close_session, acct_mgmt or authenticate) N times; prints each call's wall time in
 * nanoseconds, one a line, and exits 1 if a call did not return PAM_SUCCESS or PAM_IGNORE.
 * Not hookrunner: bench/run.py times one PAM phase with it, without a process start per call
 * (run under pam_wrapper: LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 ...).
 */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	(void)msg, (void)data;
	*resp = calloc((size_t)n, sizeof(**resp)); /* no answers: the bench asks for no password */
	return *resp == NULL ? PAM_BUF_ERR : PAM_SUCCESS;
}

int main(int argc, char **argv)
{
	struct pam_conv c = { conv, NULL };
	pam_handle_t *pamh;
	long n;

	if (argc != 5 || (n = strtol(argv[4], NULL, 10)) < 1) {
		fprintf(stderr, "usage: pamloop SERVICE USER OPERATION N\n");
		return 2;
	}
	if (pam_start(argv[1], argv[2], &c, &pamh) != PAM_SUCCESS)
		return 2;
	for (long i = 0; i < n; i++) {
		struct timespec a, b;
		int r;

		clock_gettime(CLOCK_MONOTONIC, &a);
		if (strcmp(argv[3], "open_session") == 0)
			r = pam_open_session(pamh, 0);
		else if (strcmp(argv[3], "close_session") == 0)
			r = pam_close_session(pamh, 0);
		else if (strcmp(argv[3], "acct_mgmt") == 0)
			r = pam_acct_mgmt(pamh, 0);
		else
			r = pam_authenticate(pamh, 0);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (r != PAM_SUCCESS && r != PAM_IGNORE) {
			fprintf(stderr, "pamloop: %s: %s\n", argv[3], pam_strerror(pamh, r));
			return 1;
		}
		printf("%lld\n", (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
	}
	pam_end(pamh, PAM_SUCCESS);
	return 0;
}
