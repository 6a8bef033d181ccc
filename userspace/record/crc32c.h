#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli), as Kafka record batches use. Start with crc = 0.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
