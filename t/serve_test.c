/* serve_test: serve_run with every serve_opts knob on the command line, so the tests can
 * make idle expiry, the uid cap and the body cap small enough to reach (tok --serve
 * fixes them). Stops cleanly on SIGINT/SIGTERM.
 *
 *   serve_test DIR ADDR PORT MAX_BODY IDLE_S MAX_UIDS [SYSTEM_PROMPT] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "serve.h"
#include "tok.h"
#include "util.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: serve_test DIR ADDR PORT MAX_BODY IDLE_S MAX_UIDS [SYSTEM_PROMPT]\n");
        return EXIT_USAGE;
    }
    char err[512];
    tok *t = tok_load(argv[1], err, sizeof err);
    if (!t) {
        fprintf(stderr, "serve_test: %s\n", err);
        return EXIT_DATA;
    }
    serve_opts o = {argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10), atoi(argv[5]),
                    strtoull(argv[6], NULL, 10), argc == 8 ? argv[7] : NULL};
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = serve_run(t, &o, &stop, err, sizeof err);
    if (rc < 0) fprintf(stderr, "serve_test: %s\n", err);
    tok_free(t);
    return rc < 0 ? EXIT_DATA : EXIT_OK;
}
