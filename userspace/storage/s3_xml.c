/* See s3_xml.h. */
#include "storage/s3_xml.h"

#include "util/hex.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

bool s3_xml_find(const char *p, const char *end, const char *tag, const char **ts, const char **te)
{
    char open[64], close[64];
    int on = snprintf(open, sizeof(open), "<%s>", tag), cn = snprintf(close, sizeof(close), "</%s>", tag);
    if (cn < 0 || cn >= (int)sizeof(close) || !p || p >= end)
        return false;
    const char *s = memmem(p, (size_t)(end - p), open, (size_t)on);
    if (!s)
        return false;
    s += on;
    const char *e = memmem(s, (size_t)(end - s), close, (size_t)cn);
    if (!e)
        return false;
    *ts = s;
    *te = e;
    return true;
}

static void put_utf8(struct buf *out, unsigned long cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(out, b, n);
}

int s3_xml_unescape(const char *s, const char *e, struct buf *out)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    while (s < e) {
        if (*s != '&') {
            buf_append(out, s++, 1);
            continue;
        }
        const char *semi = memchr(s, ';', (size_t)(e - s));
        if (!semi || semi - s > 10)
            return -1;
        const char *ent = s + 1;
        size_t n = (size_t)(semi - ent);
        bool done = false;
        if (n >= 2 && ent[0] == '#') {
            bool hexa = ent[1] == 'x' || ent[1] == 'X';
            unsigned long cp = 0;
            size_t i = hexa ? 2 : 1;
            if (i == n)
                return -1;
            for (; i < n; i++) {
                int d = hexa ? hex_digit_value(ent[i]) : (ent[i] >= '0' && ent[i] <= '9' ? ent[i] - '0' : -1);
                if (d < 0)
                    return -1;
                cp = cp * (hexa ? 16 : 10) + (unsigned long)d;
            }
            if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return -1;
            put_utf8(out, cp);
            done = true;
        } else {
            for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
                if (strlen(named[i].name) == n && memcmp(ent, named[i].name, n) == 0) {
                    buf_append(out, &named[i].c, 1);
                    done = true;
                    break;
                }
            }
        }
        if (!done)
            return -1;
        s = semi + 1;
    }
    return 0;
}
