/* A bump allocator for everything decoded from one request: freed in one call when the
 * response has been sent, so decoders never track individual allocations. */
#ifndef SLUICE_ARENA_H
#define SLUICE_ARENA_H

#include <stddef.h>

#include "util/buf.h"

struct arena_block;
struct arena_adopted;

struct arena {
    struct arena_block *head;
    struct arena_adopted *adopted; /* malloc'd memory freed with the arena */
};

void arena_init(struct arena *a);
void *arena_alloc(struct arena *a, size_t n);   /* zeroed, 16-byte aligned; aborts on out-of-memory */
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* Frees a buffer's memory (its data and capacity, see buf_mem_free) with the arena: a large buffer
 * built elsewhere joins the request's memory without being copied into it. */
void arena_adopt(struct arena *a, void *p, size_t cap);
/* The same for memory freed by release(p) (e.g. a hold on cached bytes). */
void arena_adopt_release(struct arena *a, void *p, void (*release)(void *p));
/* Hands over every block of the arena (its own and adopted ones) for the caller to free with
 * buf_mem_free, leaving the arena empty: memory the encoded answer still points into outlives the
 * request. Returns the count (*out NULL when 0). */
int arena_take(struct arena *a, struct buf_mem **out);
void arena_free(struct arena *a);

#endif
