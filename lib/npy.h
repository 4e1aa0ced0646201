/* npy: NumPy .npy records (format 1.0, little-endian, C order), the tensor stream
 * between programs. Records are written back to back on one stream; each can be
 * opened with numpy.load on a file object in a loop. The reader is strict: a record
 * that is not exactly what we write (big-endian, Fortran order, an unknown dtype, a
 * short body) is refused with a clear reason. */
#ifndef NPY_H
#define NPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { NPY_MAXDIM = 8 };

typedef enum { NPY_I32, NPY_F32, NPY_F16, NPY_BF16 } npy_dtype; /* bf16 travels as '<u2' */

typedef struct {
    npy_dtype dtype;
    int ndim;
    size_t shape[NPY_MAXDIM];
    size_t count;  /* product of shape */
    void *data;    /* count elements, malloc'd / realloc'd by npy_read, capacity cap bytes */
    size_t cap;
} npy;

size_t npy_elsize(npy_dtype t);

/* Read the next record of f into a (reusing a->data). Returns 1, 0 at a clean end of
 * stream, -1 on a malformed or truncated record (err says which). If magic_read is
 * nonzero the 6 magic bytes were already consumed by the caller (format sniffing). */
int npy_read(FILE *f, npy *a, int magic_read, char *err, size_t errlen);

/* Write one record. -1 on a write error. */
int npy_write(FILE *f, npy_dtype t, int ndim, const size_t *shape, const void *data, char *err,
              size_t errlen);

void npy_free(npy *a);

extern const char NPY_MAGIC[6]; /* "\x93NUMPY" */

#endif
