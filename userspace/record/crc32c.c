/* CRC-32C (Castagnoli). It runs over every produced byte, so the hardware path keeps the
 * crc32 instruction busy with three independent streams (latency 3, throughput 1 per cycle)
 * and merges them with precomputed "append N zero bytes" tables, as in Mark Adler's crc32c.c.
 * Without SSE4.2 a slicing-by-8 table does 8 bytes per step. */
#include "record/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define HAVE_X86 1
#endif

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */

/* Block sizes of the three-stream loops: long blocks for bulk data, short ones for the rest. */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t table[8][256];          /* slicing-by-8 */
static uint32_t shift_long[4][256];     /* crc register -> register after LONG_BLOCK zero bytes */
static uint32_t shift_short[4][256];    /* the same for SHORT_BLOCK */
static int have_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Builds the 4x256 table applying len zero bytes to a raw CRC register. The operation is
 * linear, so it is enough to run the 32 single-bit registers through the byte table. */
static void make_shift_table(uint32_t t[4][256], size_t len)
{
    uint32_t basis[32];
    for (int i = 0; i < 32; i++) {
        uint32_t c = 1u << i;
        for (size_t k = 0; k < len; k++)
            c = table[0][c & 0xff] ^ (c >> 8);
        basis[i] = c;
    }
    for (int b = 0; b < 4; b++) {
        for (int n = 0; n < 256; n++) {
            uint32_t v = 0;
            for (int bit = 0; bit < 8; bit++)
                if (n >> bit & 1)
                    v ^= basis[8 * b + bit];
            t[b][n] = v;
        }
    }
}

static void crc32c_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (int n = 0; n < 256; n++)
        for (int k = 1; k < 8; k++)
            table[k][n] = table[0][table[k - 1][n] & 0xff] ^ (table[k - 1][n] >> 8);
    make_shift_table(shift_long, LONG_BLOCK);
    make_shift_table(shift_short, SHORT_BLOCK);
#ifdef HAVE_X86
    have_hw = __builtin_cpu_supports("sse4.2") != 0;
#endif
}

static uint32_t sw(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
              table[4][lo >> 24] ^ table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static inline uint32_t shift(uint32_t t[4][256], uint32_t crc)
{
    return t[0][crc & 0xff] ^ t[1][(crc >> 8) & 0xff] ^ t[2][(crc >> 16) & 0xff] ^ t[3][crc >> 24];
}

#ifdef HAVE_X86
static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Three independent crc32q streams over consecutive blocks of `block` bytes, merged at the end
 * of each round: crc(A B) = shift(crc(A), |B|) ^ crc_from_zero(B). */
#define THREE_WAY(block, shift_table)                                             \
    while (len >= 3 * (size_t)(block)) {                                          \
        uint64_t c1 = 0, c2 = 0;                                                  \
        const uint8_t *end = p + (block);                                         \
        do {                                                                      \
            c0 = _mm_crc32_u64(c0, load64(p));                                    \
            c1 = _mm_crc32_u64(c1, load64(p + (block)));                          \
            c2 = _mm_crc32_u64(c2, load64(p + 2 * (block)));                      \
            p += 8;                                                               \
        } while (p < end);                                                        \
        c0 = shift(shift_table, (uint32_t)c0) ^ (uint32_t)c1;                     \
        c0 = shift(shift_table, (uint32_t)c0) ^ (uint32_t)c2;                     \
        p += 2 * (block);                                                         \
        len -= 3 * (size_t)(block);                                               \
    }

__attribute__((target("sse4.2"))) static uint32_t hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c0 = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        len--;
    }
    THREE_WAY(LONG_BLOCK, shift_long)
    THREE_WAY(SHORT_BLOCK, shift_short)
    while (len >= 8) {
        c0 = _mm_crc32_u64(c0, load64(p));
        p += 8;
        len -= 8;
    }
    while (len--)
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    return ~(uint32_t)c0;
}
#endif

uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&init_once, crc32c_init);
    return sw(crc, data, len);
}

uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&init_once, crc32c_init);
#ifdef HAVE_X86
    if (have_hw)
        return hw(crc, data, len);
#endif
    return sw(crc, data, len);
}

int crc32c_hw_available(void)
{
    pthread_once(&init_once, crc32c_init);
    return have_hw;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len) { return crc32c_hw(crc, data, len); }
