// masec_int.h: masec's bit-accurate integer and fixed-point arithmetic for the HLS backend.
//
// Header-only C++17, standard library only.  Every function here computes exactly
// what masec's Python numerics (mase_compiler.numerics) compute, so that emitted HLS
// C++ can be compiled with g++ for C-simulation and compared bit for bit with the
// interpreter.  Contents:
//
//   Int<W, S>            W-bit signed (S = true) or unsigned integer, 1 <= W <= 64
//   wrap<W, S>(x)        x reduced modulo 2^W (two's complement wrap-around)
//   saturate<W, S>(x)    x clamped to the range of Int<W, S>
//   a + b, a - b, a * b  widening arithmetic, the result type holds every result
//   Round                rounding modes of mase_compiler.numerics.rounding
//   round_shift(x, s, m) x / 2^s rounded with mode m (exact, no floating point)
//   requantize(...)      clamp(round_shift(acc * M, S) + zp, lo, hi)
//   Fixed<W, F, S>       W-bit fixed point with F fraction bits (FixedFormat)
//   dot<N>(a, b)         dot product in an accumulator that cannot overflow
//   mxint8_dot<K>(a, b)  MXINT8 block dot product, exact, as mantissa * 2^exponent
//
// Widths never exceed 64 bits: an operation whose exact result would need more is a
// compile-time error (static_assert), never a silent wrap.
#ifndef MASEC_INT_H
#define MASEC_INT_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace masec {

// ---- Int<W, S> ------------------------------------------------------------------------

// A W-bit integer.  The value lives in `v` (int64_t if signed, uint64_t if not) and is
// always within [min(), max()]; the constructors and functions below keep it there.
template <int W, bool S>
struct Int {
    static_assert(W >= 1 && W <= 64, "Int width must be in 1..64");
    static constexpr int width = W;
    static constexpr bool is_signed = S;
    using rep = std::conditional_t<S, std::int64_t, std::uint64_t>;

    static constexpr rep min() {
        if constexpr (!S) {
            return 0;
        } else if constexpr (W == 64) {
            return std::numeric_limits<std::int64_t>::min();
        } else {
            return -(std::int64_t{1} << (W - 1));
        }
    }
    static constexpr rep max() {
        if constexpr (S) {
            return W == 64 ? std::numeric_limits<std::int64_t>::max() : (std::int64_t{1} << (W - 1)) - 1;
        } else {
            return W == 64 ? std::numeric_limits<std::uint64_t>::max() : (std::uint64_t{1} << W) - 1;
        }
    }

    rep v = 0;

    constexpr Int() = default;

    // Lossless widening from a narrower Int (implicit, like ap_int).
    template <int W2, bool S2,
              typename = std::enable_if_t<(S2 == S && W2 <= W) || (S && !S2 && W2 < W)>>
    constexpr Int(Int<W2, S2> x) : v(static_cast<rep>(x.v)) {}

    // The value `x`, which must lie in [min(), max()]; use wrap() or saturate() when it may not.
    static constexpr Int of(rep x) {
        Int r;
        r.v = x;
        return r;
    }
};

namespace detail {

// a < b for any two integers, whatever their signedness (std::cmp_less is C++20).
template <typename A, typename B>
constexpr bool less(A a, B b) {
    if constexpr (std::is_signed_v<A> == std::is_signed_v<B>) {
        return a < b;
    } else if constexpr (std::is_signed_v<A>) {
        return a < 0 || static_cast<std::uint64_t>(a) < static_cast<std::uint64_t>(b);
    } else {
        return b >= 0 && static_cast<std::uint64_t>(a) < static_cast<std::uint64_t>(b);
    }
}

template <typename T>
struct raw_of { using type = T; static constexpr T get(T x) { return x; } };
template <int W, bool S>
struct raw_of<Int<W, S>> {
    using type = typename Int<W, S>::rep;
    static constexpr type get(Int<W, S> x) { return x.v; }
};

// The plain integer inside `x` (an Int or a built-in integer).
template <typename T>
constexpr auto raw(T x) { return raw_of<T>::get(x); }

constexpr int ceil_log2(std::size_t n) {
    int b = 0;
    while ((std::size_t{1} << b) < n) ++b;
    return b;
}

}  // namespace detail

// x modulo 2^W, as hardware truncation to W bits does (x: an Int or a built-in integer).
template <int W, bool S, typename T>
constexpr Int<W, S> wrap(T x) {
    std::uint64_t bits = static_cast<std::uint64_t>(detail::raw(x));
    if constexpr (W < 64) {
        bits &= (std::uint64_t{1} << W) - 1;
        if (S && (bits >> (W - 1)) != 0) bits |= ~((std::uint64_t{1} << W) - 1);  // sign-extend
    }
    return Int<W, S>::of(static_cast<typename Int<W, S>::rep>(bits));
}

// x clamped to [Int<W, S>::min(), Int<W, S>::max()] (x: an Int or a built-in integer).
template <int W, bool S, typename T>
constexpr Int<W, S> saturate(T x) {
    using R = Int<W, S>;
    const auto r = detail::raw(x);
    if (detail::less(r, R::min())) return R::of(R::min());
    if (detail::less(R::max(), r)) return R::of(R::max());
    return R::of(static_cast<typename R::rep>(r));
}

// ---- widening arithmetic ----------------------------------------------------------------
//
// The rule of HLS ap_int: the result is signed if either operand is, and a difference is
// always signed; a sum or difference is one bit wider than the wider operand, where an
// unsigned operand next to a signed one counts one bit wider; a product is W1 + W2 bits.
// (u8 + u8 is u9, s8 + u8 is s10, u8 - u8 is s9, s8 * u8 is s16.)

template <int W1, bool S1, int W2, bool S2>
constexpr int sum_width = (W1 + (S2 && !S1) > W2 + (S1 && !S2) ? W1 + (S2 && !S1) : W2 + (S1 && !S2)) + 1;

template <int W1, bool S1, int W2, bool S2>
using Sum = Int<sum_width<W1, S1, W2, S2>, S1 || S2>;
template <int W1, bool S1, int W2, bool S2>
using Diff = Int<sum_width<W1, S1, W2, S2>, true>;
template <int W1, bool S1, int W2, bool S2>
using Product = Int<W1 + W2, S1 || S2>;

template <int W1, bool S1, int W2, bool S2>
constexpr Sum<W1, S1, W2, S2> operator+(Int<W1, S1> a, Int<W2, S2> b) {
    using R = Sum<W1, S1, W2, S2>;
    using T = typename R::rep;
    return R::of(static_cast<T>(static_cast<T>(a.v) + static_cast<T>(b.v)));
}

template <int W1, bool S1, int W2, bool S2>
constexpr Diff<W1, S1, W2, S2> operator-(Int<W1, S1> a, Int<W2, S2> b) {
    using R = Diff<W1, S1, W2, S2>;
    return R::of(static_cast<std::int64_t>(a.v) - static_cast<std::int64_t>(b.v));
}

template <int W1, bool S1, int W2, bool S2>
constexpr Product<W1, S1, W2, S2> operator*(Int<W1, S1> a, Int<W2, S2> b) {
    using R = Product<W1, S1, W2, S2>;
    using T = typename R::rep;
    return R::of(static_cast<T>(static_cast<T>(a.v) * static_cast<T>(b.v)));
}

template <int W1, bool S1, int W2, bool S2>
constexpr bool operator==(Int<W1, S1> a, Int<W2, S2> b) {
    return !detail::less(a.v, b.v) && !detail::less(b.v, a.v);
}

// ---- rounding ---------------------------------------------------------------------------

// The rounding modes of mase_compiler.numerics.rounding ("stochastic" has no exact
// hardware equivalent and is not offered).
enum class Round {
    Even,   // half to even (the default everywhere, IEEE 754)
    Away,   // half away from zero
    Floor,  // towards -infinity
    Ceil,   // towards +infinity
    Zero,   // towards zero (truncation)
};

// x / 2^s rounded to an integer with `mode`, computed exactly on integers.  s >= 0;
// any s is allowed (s >= 64 leaves -1, 0 or 1).  The result always fits in int64_t.
constexpr std::int64_t round_shift(std::int64_t x, int s, Round mode) {
    if (s <= 0) return x;
    // x = q * 2^s + r with 0 <= r < 2^s; `half` compares r with 2^(s-1): -1, 0 or +1.
    std::int64_t q = 0;
    bool inexact = false;
    int half = 0;
    if (s < 64) {
        q = x >> s;  // arithmetic shift: floor (defined for negative x since C++20, and by g++)
        const std::uint64_t mask = (std::uint64_t{1} << s) - 1;
        const std::uint64_t r = static_cast<std::uint64_t>(x) & mask;
        const std::uint64_t h = std::uint64_t{1} << (s - 1);
        inexact = r != 0;
        half = r < h ? -1 : (r == h ? 0 : 1);
    } else {
        // |x| <= 2^63 <= 2^(s-1): the quotient lies in [-1/2, 1/2), -1/2 only for -2^63 / 2^64.
        q = x < 0 ? -1 : 0;
        inexact = x != 0;
        half = x >= 0 ? -1 : ((s == 64 && x == std::numeric_limits<std::int64_t>::min()) ? 0 : 1);
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

// round_shift on an Int: the rounded quotient never needs more bits than x itself.
template <int W, bool S>
constexpr Int<W, S> round_shift(Int<W, S> x, int s, Round mode) {
    static_assert(S || W < 64, "round_shift of an unsigned Int needs W < 64");
    return Int<W, S>::of(static_cast<typename Int<W, S>::rep>(round_shift(static_cast<std::int64_t>(x.v), s, mode)));
}

// The last step of every integer layer: clamp(round_shift(acc * M, shift) + zp, lo, hi),
// computed exactly (the real multiplier is M * 2^-shift); lo <= hi.  acc * M is a Product
// of at most 64 bits (checked at compile time).
template <int WA, bool SA, int WM, bool SM>
constexpr std::int64_t requantize(Int<WA, SA> acc, Int<WM, SM> M, int shift, std::int64_t zp, std::int64_t lo,
                                  std::int64_t hi, Round mode = Round::Even) {
    static_assert(SA || SM || WA + WM < 64, "requantize needs a product that fits in int64_t");
    const std::int64_t r = round_shift(static_cast<std::int64_t>((acc * M).v), shift, mode);
    // r + zp without overflow: beyond the int64 range the clamp decides anyway.
    constexpr std::int64_t top = std::numeric_limits<std::int64_t>::max();
    constexpr std::int64_t bottom = std::numeric_limits<std::int64_t>::min();
    if (zp > 0 && r > top - zp) return hi;
    if (zp < 0 && r < bottom - zp) return lo;
    const std::int64_t y = r + zp;
    return y < lo ? lo : (y > hi ? hi : y);
}

// requantize with the output range of Int<W, S>.
template <int W, bool S, int WA, bool SA, int WM, bool SM>
constexpr Int<W, S> requantize_to(Int<WA, SA> acc, Int<WM, SM> M, int shift, std::int64_t zp,
                                  Round mode = Round::Even) {
    static_assert(S || W < 64, "requantize_to an unsigned Int needs W < 64");
    using R = Int<W, S>;
    return R::of(static_cast<typename R::rep>(requantize(acc, M, shift, zp, static_cast<std::int64_t>(R::min()),
                                                         static_cast<std::int64_t>(R::max()), mode)));
}

// ---- fixed point ------------------------------------------------------------------------

// y rounded to an integer-valued double with `mode` (exact: no double rounding).
inline double round_double(double y, Round mode) {
    switch (mode) {
        case Round::Even: return std::nearbyint(y);  // the default FE_TONEAREST mode: half to even
        case Round::Away: return std::round(y);
        case Round::Floor: return std::floor(y);
        case Round::Ceil: return std::ceil(y);
        case Round::Zero: return std::trunc(y);
    }
    return y;
}

// Fixed point with W bits, F fraction bits (F may be negative) and signedness S: the value
// is raw * 2^-F.  Matches mase_compiler.numerics.FixedFormat ("fixed8:frac=4" is
// Fixed<8, 4, true>, "ufixed8:frac=4" is Fixed<8, 4, false>): saturating, any rounding mode.
template <int W, int F, bool S = true>
struct Fixed {
    static constexpr int width = W;
    static constexpr int frac = F;
    using raw_type = Int<W, S>;
    raw_type raw;

    // x rounded onto the grid 2^-F and saturated.  +-inf saturate; NaN, which fixed point
    // cannot hold (FixedFormat.encode rejects it), becomes 0.
    static Fixed from_double(double x, Round mode = Round::Even) {
        Fixed f;
        if (std::isnan(x)) return f;
        const double y = round_double(std::ldexp(x, F), mode);  // x * 2^F is exact
        // 2^(W-1) and 2^W are exact doubles, so these comparisons are exact for every W.
        const double top = std::ldexp(1.0, S ? W - 1 : W);
        if (y >= top) {
            f.raw = raw_type::of(raw_type::max());
        } else if (y < (S ? -top : 0.0)) {
            f.raw = raw_type::of(raw_type::min());
        } else {
            f.raw = raw_type::of(static_cast<typename raw_type::rep>(y));
        }
        return f;
    }

    static constexpr Fixed from_raw(typename raw_type::rep r) {
        Fixed f;
        f.raw = raw_type::of(r);
        return f;
    }

    // The value as a double; exact when it has at most 53 significant bits (always for W <= 53).
    double to_double() const { return std::ldexp(static_cast<double>(raw.v), -F); }
};

// ---- dot products -----------------------------------------------------------------------

// Accumulator of an N-term dot product of Int<W1, S1> and Int<W2, S2>: the product width
// plus ceil(log2 N) bits, which no sum of N products can overflow.
template <std::size_t N, int W1, bool S1, int W2, bool S2>
using DotAcc = Int<W1 + W2 + detail::ceil_log2(N), S1 || S2>;

template <std::size_t N, int W1, bool S1, int W2, bool S2>
constexpr DotAcc<N, W1, S1, W2, S2> dot(const Int<W1, S1> (&a)[N], const Int<W2, S2> (&b)[N]) {
    using R = DotAcc<N, W1, S1, W2, S2>;
    typename R::rep acc = 0;
    for (std::size_t i = 0; i < N; ++i) acc += (a[i] * b[i]).v;
    return R::of(acc);
}

// An exact binary value mantissa * 2^exponent (nan: the value is NaN).
struct Exact {
    std::int64_t mantissa = 0;
    int exponent = 0;
    bool nan = false;
};

// One MXINT8 block (OCP MX v1.0): K int8 elements k with |k| <= 127 meaning k * 2^-6,
// sharing an E8M0 scale code: 2^(code - 127), code 255 is NaN.
template <std::size_t K>
struct MxInt8Block {
    std::uint8_t scale = 127;
    Int<8, true> elem[K];
};

constexpr int E8M0_BIAS = 127;
constexpr std::uint8_t E8M0_NAN = 255;

// Exact dot product of two MXINT8 blocks: the integer dot product of the elements, with
// the two shared exponents and the two 2^-6 element steps folded into the exponent.
template <std::size_t K>
constexpr Exact mxint8_dot(const MxInt8Block<K>& a, const MxInt8Block<K>& b) {
    Exact r;
    if (a.scale == E8M0_NAN || b.scale == E8M0_NAN) {
        r.nan = true;
        return r;
    }
    r.mantissa = static_cast<std::int64_t>(dot(a.elem, b.elem).v);
    r.exponent = (a.scale - E8M0_BIAS) + (b.scale - E8M0_BIAS) - 12;
    return r;
}

}  // namespace masec

#endif  // MASEC_INT_H
