/* st: safetensors, read in place. A model directory holds model.safetensors or shards
 * listed in model.safetensors.index.json; every file is mapped read-only and every
 * tensor's offsets are checked against its file's header and size (in range, no
 * overlaps, size = shape x dtype) before anything points into it. Nothing is copied. */
#ifndef ST_H
#define ST_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32, ST_F16, ST_BF16, ST_I8, ST_U8, ST_I32, ST_U32, ST_I64, ST_OTHER } st_dtype;

enum { ST_MAXDIM = 4 };

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    size_t shape[ST_MAXDIM];
    const void *data;  /* into the read-only mapping */
    size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

/* Open dir/model.safetensors, or every shard of dir/model.safetensors.index.json. */
st_file *st_open(const char *dir, char *err, size_t errlen);
/* The same for another file name: dir/<base>.index.json and its shards, else dir/<base>
 * (msModelSlim writes quant_model_weight_w8a8.safetensors, ...). */
st_file *st_open_named(const char *dir, const char *base, char *err, size_t errlen);
void st_close(st_file *f);

/* The tensor called name, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);

/* Nonzero if [p, p+n) lies in one of f's read-only file mappings (f may be NULL). */
int st_maps(const st_file *f, const void *p, size_t n);

/* All tensors, for listing; *n gets the count. */
const st_tensor *st_tensors(const st_file *f, size_t *n);

const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t); /* 0 for ST_OTHER */

/* BLAKE2b-256 over the raw JSON headers of every file, in shard order: part of the model's
 * identity (the weights' names, dtypes, shapes and offsets). */
void st_header_hash(const st_file *f, uint8_t out[32]);

#endif
