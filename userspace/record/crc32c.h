#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli), as Kafka record batches use. Start with crc = 0.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The two implementations behind crc32c(), for tests and benchmarks. crc32c_hw() falls back to
 * the table when the CPU lacks SSE4.2; crc32c_hw_available() says whether it does. */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len);
int crc32c_hw_available(void);

#endif
