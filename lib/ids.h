/* ids: reading token streams. A token stream is text by default — decimal ids
 * separated by spaces or tabs, one sequence per line — or int32 .npy records, one
 * sequence per record; the reader tells them apart by the first byte (.npy's magic
 * starts with 0x93, which no text stream does). Lines are returned as soon as they are
 * complete, so a program reading a decode loop's output sees each id as it arrives. */
#ifndef IDS_H
#define IDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "npy.h"

typedef struct {
    FILE *f;
    int mode;      /* 0 = not sniffed yet, 1 = text, 2 = npy */
    size_t line;   /* text: number of the line last read; npy: record number */
    char *lbuf;    /* getline buffer */
    size_t lcap;
    npy rec;
} ids_reader;

void ids_open(ids_reader *r, FILE *f);
void ids_close(ids_reader *r);  /* frees buffers; does not close f */

/* Read the next sequence into *ids (realloc'd, capacity *cap) with length *n. Returns 1,
 * 0 at end of stream, -1 on malformed input (err names the line or record and why).
 * Ids must be in [0, vocab) when vocab > 0. */
int ids_next(ids_reader *r, int32_t **ids, size_t *n, size_t *cap, size_t vocab, char *err,
             size_t errlen);

/* Write ids as one text line ("1 2 3\n"). -1 on a write error. */
int ids_write_text(FILE *f, const int32_t *ids, size_t n);

#endif
