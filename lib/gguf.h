/* gguf: GGUF files (llama.cpp's format, versions 2 and 3), read in place.
 *
 * The file is mapped read-only and parsed through a bounds-checked cursor: the header,
 * every metadata key/value (arrays nested, strings sized, all against the bytes left),
 * every tensor info (name, dims, ggml type, offset), general.alignment, and the data
 * section. Before a tensor is handed out, its dims are checked for overflow and for
 * whole blocks of its type, its offset for alignment and for the place llama.cpp's
 * writer puts it (each tensor right after the one before, padded), and its bytes for
 * lying inside the file. Nothing is copied: keys, strings and tensor data point into
 * the mapping (strings are not NUL-terminated: gguf_str has a length). */
#ifndef GGUF_H
#define GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Metadata value types, as the format numbers them. */
typedef enum {
    GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL,
    GGUF_STRING, GGUF_ARRAY, GGUF_U64, GGUF_I64, GGUF_F64, GGUF_NTYPES
} gguf_vtype;

/* ggml tensor types this code computes with (others are parsed and sized, not used). */
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q8_0 = 8, GGML_Q4_K = 12, GGML_Q6_K = 14,
       GGML_Q8_K = 15, GGML_BF16 = 30 };

typedef struct {
    const char *s; /* into the mapping, not NUL-terminated */
    size_t n;
} gguf_str;

typedef struct {
    gguf_str key;
    gguf_vtype type;
    gguf_vtype elem;   /* GGUF_ARRAY: the element type */
    uint64_t count;    /* GGUF_ARRAY: the number of elements */
    const uint8_t *v;  /* the value (an array: its first element), into the mapping */
    size_t len;        /* bytes of the value (an array: of its elements) */
} gguf_kv;

enum { GGUF_MAXDIM = 4, GGUF_MAXNAME = 63 };

typedef struct {
    gguf_str name;
    int ndim;
    uint64_t ne[GGUF_MAXDIM]; /* ne[0] innermost (contiguous), as ggml orders them */
    uint32_t type;            /* ggml type id */
    uint64_t offset;          /* from the start of the data section */
    const uint8_t *data;      /* into the mapping */
    size_t nbytes;
} gguf_tensor;

typedef struct {
    const uint8_t *base; /* the whole file */
    size_t size;
    uint32_t version;
    size_t alignment;
    gguf_kv *kv;
    size_t n_kv;
    gguf_tensor *t;
    size_t n_tensors;
    size_t info_end;  /* bytes [0, info_end) hold header, metadata and tensor infos */
    size_t data_off;  /* start of the data section */
    void *map_data;   /* the mapping, when gguf_open made one */
    size_t map_size;
} gguf;

/* 1 if path is a regular file named *.gguf or starting with the GGUF magic, else 0. */
int gguf_is_file(const char *path);

/* Map and parse path. NULL with "path: why" in err on error. */
gguf *gguf_open(const char *path, char *err, size_t errlen);
/* Parse buf[0..size) (which must outlive g) into g; name is for messages. 0, or -1
 * with "name: why" in err (g is then empty; gguf_free(g)-safe either way). */
int gguf_parse(gguf *g, const uint8_t *buf, size_t size, const char *name, char *err, size_t errlen);
/* Free what gguf_parse allocated (g itself is the caller's). */
void gguf_clear(gguf *g);
/* Free a gguf from gguf_open (and its mapping). NULL is fine. */
void gguf_close(gguf *g);

/* The key/value or tensor named key, or NULL. */
const gguf_kv *gguf_find(const gguf *g, const char *key);
const gguf_tensor *gguf_tensor_find(const gguf *g, const char *name);

/* The value of kv as an unsigned integer (any integer type, a negative one refused):
 * 0, or -1 if it is not one. */
int gguf_kv_uint(const gguf_kv *kv, uint64_t *out);
/* As a double (f32, f64, or any integer): 0 or -1. */
int gguf_kv_num(const gguf_kv *kv, double *out);
/* Element i of an array of integers (any integer type), as int64: 0 or -1. */
int gguf_arr_int(const gguf_kv *kv, uint64_t i, int64_t *out);
/* Walk an array of strings: *at = 0 before the first; each call gives the next string
 * (checked at parse time, so this cannot run out of bounds). 0, or -1 at the end or if
 * kv is not an array of strings. */
int gguf_arr_next_str(const gguf_kv *kv, size_t *at, gguf_str *out);

/* 1 if s equals the C string c. */
int gguf_str_is(gguf_str s, const char *c);

/* The name of ggml type t ("Q4_K"), or NULL if unknown. */
const char *gguf_type_name(uint32_t t);

/* The model_format of .gguf files (gguf_model.c), for model.c's table. */
struct model_format;
extern const struct model_format model_format_gguf;

#endif
