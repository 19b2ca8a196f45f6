/*
 * How much host memory a load may still take: what the kernel would give
 * without swapping (MemAvailable), further capped by a container's cgroup
 * limit (v2 memory.max or v1 memory.limit_in_bytes, less what the cgroup
 * holds beyond reclaimable file pages). EMBEDC_HOST_MEMORY overrides both:
 * a size in bytes (suffixes K, M, G, T: powers of 1024) or "unlimited".
 */
#ifndef EMBEDC_HOST_HOSTMEM_H
#define EMBEDC_HOST_HOSTMEM_H

#include <stddef.h>
#include <stdint.h>

/* 1 and *bytes when a bound is known, with *source naming where it came
 * from ("MemAvailable", "cgroup memory.max", "EMBEDC_HOST_MEMORY"); 0 when
 * nothing bounds it (no /proc, or EMBEDC_HOST_MEMORY=unlimited). */
int emb_host_memory_available(uint64_t *bytes, const char **source);

/* Parses a size as EMBEDC_HOST_MEMORY takes it ("123", "512M", "1.5G");
 * 0 on success. */
int emb_parse_size(const char *s, uint64_t *bytes);

#endif
