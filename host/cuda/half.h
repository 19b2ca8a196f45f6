/*
 * fp16 / bf16 <-> fp32 conversions on the host, in C11: the CUDA backend
 * converts weights once at upload, and the tests build kernel inputs that the
 * CPU reference sees with exactly the same (rounded) values.
 */
#ifndef EMBEDC_HOST_CUDA_HALF_H
#define EMBEDC_HOST_CUDA_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t emb_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float emb_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t emb_f32_to_bf16(float f) {
    uint32_t u = emb_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float emb_bf16_to_f32(uint16_t h) { return emb_bits_f32((uint32_t)h << 16); }

/* IEEE binary16, round to nearest even, subnormals kept, overflow to inf. */
static inline uint16_t emb_f32_to_f16(float f) {
    uint32_t u = emb_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;          /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;         /* rounds past 65504: inf */
    if (a < 0x38800000u) {                                /* below 2^-14: subnormal or 0 */
        if (a < 0x33000000u) return sign;                 /* below 2^-25: rounds to 0 */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)e;                         /* value = m * 2^(e-150), unit 2^-24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (r & 1u))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = a - 0x38000000u;                        /* exponent bias 127 -> 15 */
    uint32_t h = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

static inline float emb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * (1.0f / 16777216.0f);       /* m * 2^-24 */
        return sign ? -v : v;
    }
    if (e == 31) return emb_bits_f32(sign | 0x7f800000u | (m << 13));
    return emb_bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

#endif
