/* The first non-zero error_code in a response: what the request metrics label it with. */
#include <string.h>

#include "protocol/codec.h"

int16_t kfirst_error(const struct kmsg_desc *d, int16_t ver, const void *msg)
{
    const char *base = msg;
    for (int i = 0; i < d->nfields; i++) {
        const struct kfield *f = &d->fields[i];
        if (ver < f->min_ver || ver > f->max_ver)
            continue;
        if (f->type == KT_INT16 && !strcmp(f->name, "error_code")) {
            int16_t e;
            memcpy(&e, base + f->offset, sizeof(e));
            if (e)
                return e;
        } else if (f->type == KT_ARRAY && f->elem) {
            const char *elems;
            int32_t n;
            memcpy(&elems, base + f->offset, sizeof(elems));
            memcpy(&n, base + f->count_offset, sizeof(n));
            for (int32_t k = 0; elems && k < n; k++) {
                int16_t e = kfirst_error(f->elem, ver, elems + (size_t)k * f->elem->size);
                if (e)
                    return e;
            }
        }
    }
    return 0;
}
