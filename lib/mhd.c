/* mhd: libmicrohttpd, loaded at run time in dynamic builds (see mhd.h). This is the one
 * place that knows how the library is reached. */
#include "mhd.h"

#include "util.h"

#ifdef MHD_DLOPEN
#include <dlfcn.h>

int mhd_load(mhd_api *a, char *err, size_t errlen) {
    void *h = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libmicrohttpd.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) return seterr(err, errlen, "libmicrohttpd: %s (install libmicrohttpd12)", dlerror());
#define SYM(f)                                                                                  \
    if (!(*(void **)&a->f = dlsym(h, "MHD_" #f)))                                               \
        return seterr(err, errlen, "libmicrohttpd: no MHD_" #f);
    SYM(start_daemon)
    SYM(stop_daemon)
    SYM(create_response_from_buffer)
    SYM(destroy_response)
    SYM(queue_response)
    SYM(add_response_header)
    SYM(lookup_connection_value)
#undef SYM
    return 0; /* the handle stays open for the life of the process */
}

#else

int mhd_load(mhd_api *a, char *err, size_t errlen) {
    (void)err, (void)errlen;
    *a = (mhd_api){MHD_start_daemon,       MHD_stop_daemon,     MHD_create_response_from_buffer,
                   MHD_destroy_response,   MHD_queue_response,  MHD_add_response_header,
                   MHD_lookup_connection_value};
    return 0;
}

#endif
