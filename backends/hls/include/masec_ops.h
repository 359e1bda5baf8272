// masec_ops.h: HLS C++ kernels of masec's dataflow ops, bit-exact with mase_compiler.numerics.intops.
//
// Header-only C++17 over masec_int.h.  Each function computes one op on ONE item (one
// inference) held in plain C arrays, with the exact integer arithmetic of the intops
// function of the same name (requantize = mase_compiler.numerics.requant.requantize):
// g++ C-simulation of emitted code is compared bit for bit with the hardware-exact
// interpreter (tests/test_hls_ops.py).  Sizes are template parameters, so every loop
// bound is a constant; element types are plain integer types (int8_t, uint8_t, int16_t,
// int32_t); tensors are flat and row-major.  Per-channel parameters cycle over the last
// axis: element i uses channel i mod C (N % C == 0).
//
// Signatures (namespace masec):
//
//   template <int N, int C, typename TI, typename TO>
//   void rescale(const TI in[N], TO out[N], int zp_in, const std::uint32_t m[C], const std::uint8_t s[C],
//                int zp_out, int lo, int hi);
//       out = clamp(round((in - zp_in) * m[c] / 2^s[c]) + zp_out, lo, hi)
//
//   template <int N, int C, typename TA, typename TB, typename TO>
//   void add(const TA a[N], const TB b[N], TO out[N], int zp_a, const std::int32_t ma[C], int zp_b,
//            const std::int32_t mb[C], int shift, int zp_out, int lo, int hi);
//       out = clamp(round(((a - zp_a) * ma[c] + (b - zp_b) * mb[c]) / 2^shift) + zp_out, lo, hi)
//
//   template <int N, int DEPTH, typename TI, typename TO>
//   void lut(const TI in[N], TO out[N], const TO table[DEPTH], int lo_in);
//       out = table[in - lo_in]                       (0 <= in - lo_in < DEPTH)
//
//   template <int N_IN, int N_OUT, typename T>
//   void gather(const T in[N_IN], T out[N_OUT], const std::int32_t idx[N_OUT], T pad);
//       out[i] = idx[i] < 0 ? pad : in[idx[i]]        (idx[i] < N_IN)
//
//   template <int BATCH, int M, int K, int N, bool REQUANT, typename TA, typename TB, typename TO>
//   void matmul(const TA a[BATCH * M * K], const TB b[BATCH * K * N], TO out[BATCH * M * N], int zp_a,
//               int zp_b, std::uint32_t mult, int shift, int zp_out, int lo, int hi);
//       acc = sum_k (a[t][i][k] - zp_a) * (b[t][k][j] - zp_b)
//       out[t][i][j] = REQUANT ? clamp(round(acc * mult / 2^shift) + zp_out, lo, hi) : clamp(acc, lo, hi)
//       (REQUANT = false ignores mult, shift and zp_out)
//
//   template <int ROWS, int K, int N, bool REQUANT, typename TI, typename TW, typename TO>
//   void linear(const TI in[ROWS * K], TO out[ROWS * N], const TW w[N * K], const std::int32_t* bias,
//               const std::uint32_t* m, const std::uint8_t* s, int zp_in, int zp_out, std::int64_t lo,
//               std::int64_t hi);
//       acc = sum_k (in[r][k] - zp_in) * w[n][k] + bias[n]     (w output-channel major; bias may be null)
//       out[r][n] = REQUANT ? clamp(round(acc * m[n] / 2^s[n]) + zp_out, lo, hi) : clamp(acc, lo, hi)
//       (the dataflow.linear op; m and s are per output channel and ignored without REQUANT)
//
//   template <int ROWS, int N, int F, typename TI, typename TO>
//   void softmax(const TI in[ROWS * N], TO out[ROWS * N], std::uint32_t mult, int shift,
//                const std::uint16_t table[1 << F], std::int64_t numerator, int recip_bits, int zp_out,
//                int lo, int hi);
//       per row: d = max(q) - q; t = clamp(round(d * mult / 2^shift), 0, 16 * 2^F);
//       e = table[t mod 2^F] >> (t >> F); R = floor(numerator / sum(e));
//       out = clamp(round(e * R / 2^recip_bits) + zp_out, lo, hi)
//       (table = intops.exp2_table(F), entries <= 2^15; numerator >= 0)
//
//   template <int ROWS, int D, typename TI, typename TG, typename TO>
//   void layer_norm(const TI in[ROWS * D], TO out[ROWS * D], int zp_in, std::int64_t eps, const TG gamma[D],
//                   const std::int64_t beta[D], std::uint32_t mult, int shift, int zp_out, int lo, int hi,
//                   int recip_bits = NORM_RECIP_BITS, int frac_bits = NORM_FRAC_BITS);
//       per row, x = q - zp_in: s1 = sum x, s2 = sum x^2; sigma = isqrt(D s2 - s1^2 + eps) (eps >= 1);
//       r = floor(2^recip_bits / sigma); n = round((D x - s1) * r / 2^(recip_bits - frac_bits));
//       out = clamp(round((n * gamma[j] + beta[j]) * mult / 2^shift) + zp_out, lo, hi)
//
//   std::uint64_t isqrt(std::uint64_t v);             floor(sqrt(v)), exact on all of uint64, 32 fixed steps
//       (intops.isqrt is exact below 3037000499^2, where its int64 (s + 1)^2 wraps)
//
// "round" is half to even (MASEC_ROUND, default masec::Round::Even: the macro the HLS
// emitter uses too, so -DMASEC_ROUND=masec::Round::Away builds a deliberately wrong design).
// lo <= hi must lie within TO's range; the result is cast to TO.  Shifts are >= 0 (any size).
//
// Widths, for elements int8/16/32 or uint8/16 and zero points of any int value; exact for
// every value the argument types allow unless a precondition is named:
//   rescale    in - zp_in: |.| < 2^32, 33 bits signed (int64); * m (32 bits unsigned): 65 bits -> wide_t
//   add        (a - zp_a) * ma: 33 x 32 bits, |.| < 2^63 (int64); the sum of two: 65 bits -> wide_t
//              (intops.add sums in int64, which wraps beyond 2^63; the header stays exact)
//   matmul     acc int64: exact while K * max|a - zp_a| * max|b - zp_b| < 2^63 (any 16-bit codes
//              with their zero points on the code grid and K < 2^28; intops.matmul's int64
//              has the same limit); acc * mult = 96 bits -> wide_t
//   softmax    d = max - q < 2^32 (int64); d * mult < 2^64 -> wide_t; e <= 2^15; sum <= N 2^15;
//              e * R <= numerator < 2^63 (int64, e <= sum)
//   layer_norm x, s1, s2, D s2 - s1^2 + eps, (D x - s1) * r, n * gamma + beta in int64: exact while
//              D^2 max|x|^2 + eps < 2^63 (D <= 4096 with 16-bit codes) and |beta| < 2^62 (the
//              limits of intops' int64); (D x - s1) * r is at most 2 sqrt(D) 2^recip_bits;
//              acc * mult = 96 bits -> wide_t
// wide_t is g++'s 128-bit integer (an HLS build maps it to ap_int with the widths above).
//
// HLS structure: every op is a dataflow stage (INLINE off) whose inner loops are pipelined
// at II=1: rescale/add/lut/gather 1 cycle per element; matmul K cycles per output (one MAC
// per cycle); softmax 3 passes of N cycles per row plus one divide; layer_norm 2 passes of D
// cycles per row plus the 32-step isqrt and one divide.
#ifndef MASEC_OPS_H
#define MASEC_OPS_H

#include <cstdint>

#include "masec_int.h"

#ifndef MASEC_ROUND
#define MASEC_ROUND masec::Round::Even
#endif

namespace masec {

// The constants of mase_compiler.numerics.intops.
constexpr int EXP_BITS = 15;
constexpr int SOFTMAX_RECIP_BITS = 32;
constexpr int NORM_RECIP_BITS = 40;
constexpr int NORM_FRAC_BITS = 12;

__extension__ typedef __int128 wide_t;           // products that can exceed 64 bits (see Widths)
__extension__ typedef unsigned __int128 uwide_t;

namespace ops_detail {

// x / 2^s rounded with `mode`, exactly, for any s >= 0 (masec::round_shift on 128 bits).
inline wide_t round_shift_wide(wide_t x, int s, Round mode) {
#pragma HLS INLINE
    if (s <= 0) return x;
    // x = q * 2^s + r with 0 <= r < 2^s; `half` compares r with 2^(s-1): -1, 0 or +1.
    wide_t q = 0;
    bool inexact = false;
    int half = 0;
    if (s < 128) {
        q = x >> s;  // arithmetic shift: floor
        const uwide_t mask = (uwide_t{1} << s) - 1;
        const uwide_t r = static_cast<uwide_t>(x) & mask;
        const uwide_t h = uwide_t{1} << (s - 1);
        inexact = r != 0;
        half = r < h ? -1 : (r == h ? 0 : 1);
    } else {
        // |x| <= 2^127 <= 2^(s-1): the quotient lies in [-1/2, 1/2), -1/2 only for -2^127 / 2^128.
        const wide_t lowest = static_cast<wide_t>(uwide_t{1} << 127);
        q = x < 0 ? -1 : 0;
        inexact = x != 0;
        half = x >= 0 ? -1 : ((s == 128 && x == lowest) ? 0 : 1);
    }
    bool up = false;  // whether the result is q + 1 rather than q
    switch (mode) {
        case Round::Floor: up = false; break;
        case Round::Ceil: up = inexact; break;
        case Round::Zero: up = inexact && x < 0; break;
        case Round::Away: up = half > 0 || (half == 0 && x >= 0); break;
        case Round::Even: up = half > 0 || (half == 0 && (q & 1) != 0); break;
    }
    return q + (up ? 1 : 0);
}

// clamp(y, lo, hi) for a 128-bit y; the result fits int64 (lo <= hi).
inline std::int64_t clamp_wide(wide_t y, std::int64_t lo, std::int64_t hi) {
#pragma HLS INLINE
    return y < lo ? lo : (y > hi ? hi : static_cast<std::int64_t>(y));
}

// requant.requantize: clamp(round(acc * m / 2^s) + zp, lo, hi), exact for |acc| < 2^95.
inline std::int64_t requantize_wide(wide_t acc, std::uint32_t m, int s, std::int64_t zp, std::int64_t lo,
                                    std::int64_t hi) {
#pragma HLS INLINE
    return clamp_wide(round_shift_wide(acc * m, s, MASEC_ROUND) + zp, lo, hi);
}

// floor(n / d) for d > 0 (C++ division truncates towards zero).
inline std::int64_t floor_div(std::int64_t n, std::int64_t d) {
#pragma HLS INLINE
    const std::int64_t q = n / d;
    return (n % d != 0 && n < 0) ? q - 1 : q;
}

// The channel after c, cycling over C channels (a counter, not a modulo, for the hardware).
template <int C>
inline int next_channel(int c) {
#pragma HLS INLINE
    return c + 1 == C ? 0 : c + 1;
}

}  // namespace ops_detail

// floor(sqrt(v)), exactly: the digit-by-digit (restoring) square root, one result bit per
// step, 32 fixed steps (a sequential unit in hardware).
inline std::uint64_t isqrt(std::uint64_t v) {
#pragma HLS INLINE off
    std::uint64_t rem = v, root = 0, bit = std::uint64_t{1} << 62;
    for (int i = 0; i < 32; ++i) {
#pragma HLS PIPELINE II=1
        if (rem >= root + bit) {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

// ---- elementwise ------------------------------------------------------------------------

template <int N, int C, typename TI, typename TO>
void rescale(const TI in[N], TO out[N], int zp_in, const std::uint32_t m[C], const std::uint8_t s[C], int zp_out,
             int lo, int hi) {
#pragma HLS INLINE off
    static_assert(N > 0 && C > 0 && N % C == 0, "rescale: N must be a positive multiple of the channel count C");
    int c = 0;
    for (int i = 0; i < N; ++i) {
#pragma HLS PIPELINE II=1
        const wide_t x = static_cast<std::int64_t>(in[i]) - zp_in;  // 33 bits
        out[i] = static_cast<TO>(ops_detail::requantize_wide(x, m[c], s[c], zp_out, lo, hi));
        c = ops_detail::next_channel<C>(c);
    }
}

template <int N, int C, typename TA, typename TB, typename TO>
void add(const TA a[N], const TB b[N], TO out[N], int zp_a, const std::int32_t ma[C], int zp_b,
         const std::int32_t mb[C], int shift, int zp_out, int lo, int hi) {
#pragma HLS INLINE off
    static_assert(N > 0 && C > 0 && N % C == 0, "add: N must be a positive multiple of the channel count C");
    int c = 0;
    for (int i = 0; i < N; ++i) {
#pragma HLS PIPELINE II=1
        // One rounding for the sum (65 bits): better than requantizing each operand first.
        const wide_t acc = static_cast<wide_t>(static_cast<std::int64_t>(a[i]) - zp_a) * ma[c] +
                           static_cast<wide_t>(static_cast<std::int64_t>(b[i]) - zp_b) * mb[c];
        out[i] = static_cast<TO>(
            ops_detail::clamp_wide(ops_detail::round_shift_wide(acc, shift, MASEC_ROUND) + zp_out, lo, hi));
        c = ops_detail::next_channel<C>(c);
    }
}

template <int N, int DEPTH, typename TI, typename TO>
void lut(const TI in[N], TO out[N], const TO table[DEPTH], int lo_in) {
#pragma HLS INLINE off
    static_assert(N > 0 && DEPTH > 0, "lut: N and DEPTH must be positive");
    for (int i = 0; i < N; ++i) {
#pragma HLS PIPELINE II=1
        out[i] = table[static_cast<std::int64_t>(in[i]) - lo_in];
    }
}

// ---- data movement ------------------------------------------------------------------------

template <int N_IN, int N_OUT, typename T>
void gather(const T in[N_IN], T out[N_OUT], const std::int32_t idx[N_OUT], T pad) {
#pragma HLS INLINE off
    static_assert(N_IN > 0 && N_OUT > 0, "gather: N_IN and N_OUT must be positive");
    for (int i = 0; i < N_OUT; ++i) {
#pragma HLS PIPELINE II=1
        const std::int32_t j = idx[i];
        out[i] = j < 0 ? pad : in[j];
    }
}

// ---- activation x activation matmul -------------------------------------------------------

template <int BATCH, int M, int K, int N, bool REQUANT, typename TA, typename TB, typename TO>
void matmul(const TA a[BATCH * M * K], const TB b[BATCH * K * N], TO out[BATCH * M * N], int zp_a, int zp_b,
            std::uint32_t mult, int shift, int zp_out, int lo, int hi) {
#pragma HLS INLINE off
    static_assert(BATCH > 0 && M > 0 && K > 0 && N > 0, "matmul: sizes must be positive");
    for (int t = 0; t < BATCH; ++t) {
        for (int i = 0; i < M; ++i) {
            for (int j = 0; j < N; ++j) {
                std::int64_t acc = 0;
                for (int k = 0; k < K; ++k) {
#pragma HLS PIPELINE II=1
                    acc += (static_cast<std::int64_t>(a[(t * M + i) * K + k]) - zp_a) *
                           (static_cast<std::int64_t>(b[(t * K + k) * N + j]) - zp_b);
                }
                std::int64_t y = 0;
                if constexpr (REQUANT) {
                    y = ops_detail::requantize_wide(acc, mult, shift, zp_out, lo, hi);
                } else {
                    y = acc < lo ? lo : (acc > hi ? hi : acc);
                }
                out[(t * M + i) * N + j] = static_cast<TO>(y);
            }
        }
    }
}

// ---- softmax ------------------------------------------------------------------------------

template <int ROWS, int K, int N, bool REQUANT, typename TI, typename TW, typename TO>
void linear(const TI in[ROWS * K], TO out[ROWS * N], const TW w[N * K], const std::int32_t* bias,
            const std::uint32_t* m, const std::uint8_t* s, int zp_in, int zp_out, std::int64_t lo, std::int64_t hi) {
#pragma HLS INLINE off
    static_assert(ROWS > 0 && K > 0 && N > 0, "linear: sizes must be positive");
    for (int r = 0; r < ROWS; ++r) {
        for (int n = 0; n < N; ++n) {
            std::int64_t acc = bias ? bias[n] : 0;  // 32-bit bias + K products of 17 x 16 bits: int64
            for (int k = 0; k < K; ++k) {
#pragma HLS PIPELINE II=1
                acc += (static_cast<std::int64_t>(in[r * K + k]) - zp_in) * static_cast<std::int64_t>(w[n * K + k]);
            }
            out[r * N + n] = static_cast<TO>(REQUANT ? ops_detail::requantize_wide(acc, m[n], s[n], zp_out, lo, hi)
                                                     : ops_detail::clamp_wide(acc, lo, hi));
        }
    }
}

template <int ROWS, int N, int F, typename TI, typename TO>
void softmax(const TI in[ROWS * N], TO out[ROWS * N], std::uint32_t mult, int shift, const std::uint16_t table[1 << F],
             std::int64_t numerator, int recip_bits, int zp_out, int lo, int hi) {
#pragma HLS INLINE off
    static_assert(ROWS > 0 && N > 0, "softmax: ROWS and N must be positive");
    static_assert(F >= 0 && F <= 24, "softmax: F (fraction bits of the exp2 table) must be in 0..24");
    constexpr std::int64_t limit = std::int64_t{EXP_BITS + 1} << F;  // 2^-16 and below: e = 0
    constexpr std::int64_t frac_mask = (std::int64_t{1} << F) - 1;
    for (int r = 0; r < ROWS; ++r) {
        const int base = r * N;  // plain indexing, no pointer arithmetic: HLS maps `in` to a memory port
        std::int64_t mx = in[base];
        for (int j = 1; j < N; ++j) {
#pragma HLS PIPELINE II=1
            const std::int64_t q = in[base + j];
            mx = q > mx ? q : mx;
        }
        std::uint32_t e[N];  // <= 2^15 each
        std::int64_t sum = 0;
        for (int j = 0; j < N; ++j) {
#pragma HLS PIPELINE II=1
            const std::int64_t d = mx - in[base + j];  // >= 0
            const std::int64_t t = ops_detail::requantize_wide(d, mult, shift, 0, 0, limit);
            e[j] = static_cast<std::uint32_t>(table[t & frac_mask]) >> (t >> F);
            sum += e[j];
        }
        // sum >= table[0] = 2^15 (the maximum's own term): never zero.
        const std::int64_t recip = ops_detail::floor_div(numerator, sum);
        for (int j = 0; j < N; ++j) {
#pragma HLS PIPELINE II=1
            const std::int64_t y = round_shift(static_cast<std::int64_t>(e[j]) * recip, recip_bits, MASEC_ROUND);
            out[base + j] = static_cast<TO>(ops_detail::clamp_wide(static_cast<wide_t>(y) + zp_out, lo, hi));
        }
    }
}

// ---- layer normalization ------------------------------------------------------------------

template <int ROWS, int D, typename TI, typename TG, typename TO>
void layer_norm(const TI in[ROWS * D], TO out[ROWS * D], int zp_in, std::int64_t eps, const TG gamma[D],
                const std::int64_t beta[D], std::uint32_t mult, int shift, int zp_out, int lo, int hi,
                int recip_bits = NORM_RECIP_BITS, int frac_bits = NORM_FRAC_BITS) {
#pragma HLS INLINE off
    static_assert(ROWS > 0 && D > 0, "layer_norm: ROWS and D must be positive");
    for (int r = 0; r < ROWS; ++r) {
        const int base = r * D;
        std::int64_t s1 = 0, s2 = 0;
        for (int j = 0; j < D; ++j) {
#pragma HLS PIPELINE II=1
            const std::int64_t x = static_cast<std::int64_t>(in[base + j]) - zp_in;
            s1 += x;
            s2 += x * x;
        }
        // D times the standard deviation (D^2 var + eps >= 1, so sigma >= 1), one reciprocal per row.
        const std::int64_t var = std::int64_t{D} * s2 - s1 * s1 + eps;
        const std::int64_t sigma = static_cast<std::int64_t>(isqrt(static_cast<std::uint64_t>(var)));
        const std::int64_t recip = (std::int64_t{1} << recip_bits) / sigma;
        for (int j = 0; j < D; ++j) {
#pragma HLS PIPELINE II=1
            const std::int64_t x = static_cast<std::int64_t>(in[base + j]) - zp_in;
            const std::int64_t n = round_shift((std::int64_t{D} * x - s1) * recip, recip_bits - frac_bits, MASEC_ROUND);
            const std::int64_t acc = n * static_cast<std::int64_t>(gamma[j]) + beta[j];
            out[base + j] = static_cast<TO>(ops_detail::requantize_wide(acc, mult, shift, zp_out, lo, hi));
        }
    }
}

}  // namespace masec

#endif  // MASEC_OPS_H
