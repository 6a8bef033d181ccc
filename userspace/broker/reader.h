/* Reader threads: object range reads happen here, never on the event loop (a remote store's GET,
 * and a local file's pread too). A fetch asks for every chunk it lacks at once; the chunks one
 * request round wants are gathered, and adjacent chunks of one object become one ranged read.
 * Every request that wants a chunk of a read waits for that read; a read in flight is never asked
 * twice. The bytes in flight are bounded: beyond the bound, requests wait for room. */
#ifndef SLUICE_READER_H
#define SLUICE_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/jobs.h"
#include "broker/waiters.h"
#include "storage/object_format.h"
#include "storage/objstore.h"
#include "util/buf.h"

#define READER_THREADS 4
/* Adjacent chunks are read together up to this many bytes. */
#define READ_RANGE_MAX (16u << 20)
/* Objects up to this size are read whole, and all their chunks cached: a flush writes the chunks
 * of the partitions one worker serves into one object, so the consumers of its other partitions
 * (other connections, other fetches) find theirs in the cache instead of each asking the store.
 * One GET of a few MiB costs about what one more request's latency does. */
#define WHOLE_OBJECT_MAX (4u << 20)

struct read_piece {
    uint64_t pos;
    uint32_t len;
};

struct read_job {
    struct job base;                 /* run by the reader's pool; done = the reader's on_done */
    struct reader *reader;
    char key[128];
    uint64_t pos;                    /* the range read: pieces[0].pos ... end of the last piece */
    uint64_t len;
    struct read_piece *pieces;       /* the chunks in it, by position, back to back */
    int npieces, cap_pieces;
    bool whole;                      /* the whole object: pos 0, len its size */
    struct buf data;                 /* filled by a reader thread */
    int error;                       /* 0 or -1 */
    /* whole: the object's chunks, parsed and its CRC checked by the reader thread (not the loop) */
    struct object_chunk *chunks;
    int nchunks;
    bool parse_failed;
    struct waiters waiters;          /* loop thread only */
    struct read_job *next;           /* the gathered list */
    struct read_job *inflight_next;  /* the loop's list of unfinished jobs */
};

struct reader {
    struct jobs pool;                /* READER_THREADS threads doing the GETs */
    job_done_fn on_done;             /* what the loop does with a finished read */
    struct objstore *objects;        /* thread-safe backend */
    /* loop thread only: */
    struct read_job *inflight;       /* submitted, not yet taken back */
    uint64_t bytes_inflight;
    uint64_t bytes_gathered;         /* of the gathered reads */
    uint64_t bytes_max;              /* fetch-read-bytes: beyond, fetches wait for room */
    struct read_job *gathered;       /* one per wanted chunk, until reader_submit */
    struct waiters room_waiters;     /* requests waiting for bytes in flight to drop */
};

/* on_done(b, &job->base) runs on the loop for each finished read (b NULL at exit: free it), after
 * reader_finished. */
int reader_start(struct reader *r, struct objstore *objects, struct server *srv, job_done_fn on_done);
void reader_stop(struct reader *r);
/* Loop: rq needs the chunk (key, pos, len) of an object of object_size bytes (0: unknown): it
 * waits for the read in flight that has it, or for one gathered now. */
void reader_want(struct reader *r, const char *key, uint64_t pos, uint32_t len, uint64_t object_size,
                 struct request *rq);
/* Loop: sends what was gathered, adjacent chunks of one object merged into one read. */
void reader_submit(struct reader *r);
/* Loop: is there room for more reads? If not, rq waits for some (reader_take_done releases). */
bool reader_room(struct reader *r, struct request *rq);
/* Loop, from on_done: takes a finished job off the in-flight list (room_waiters to release by the
 * caller once all are done). */
void reader_finished(struct reader *r, struct read_job *j);
void read_job_free(struct read_job *j);

#endif
