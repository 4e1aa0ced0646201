/* mhd: the libmicrohttpd calls serve.c makes, through a table filled when serving starts.
 * Debian's libmicrohttpd.so links GnuTLS, whose start-up (p11-kit, nettle, gmp, ...) costs
 * every process that links it about 3 ms; `tok` must start in about 1 ms when it only
 * tokenizes, so the dynamic builds dlopen the library at --serve (MHD_DLOPEN, set by the
 * Makefile). The static build links its own TLS-free libmicrohttpd.a directly. */
#ifndef MHD_H
#define MHD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <microhttpd.h>

typedef struct {
    __typeof__(&MHD_start_daemon) start_daemon;
    __typeof__(&MHD_stop_daemon) stop_daemon;
    __typeof__(&MHD_create_response_from_buffer) create_response_from_buffer;
    __typeof__(&MHD_destroy_response) destroy_response;
    __typeof__(&MHD_queue_response) queue_response;
    __typeof__(&MHD_add_response_header) add_response_header;
    __typeof__(&MHD_lookup_connection_value) lookup_connection_value;
} mhd_api;

/* Fill api. -1 with err if the library cannot be loaded. */
int mhd_load(mhd_api *api, char *err, size_t errlen);

#endif
