// Finding the NUL bytes of an SCGI header block, in order, 64 bytes at a time: vector
// compares give a 64-bit mask of the NULs in 64 bytes, and each NUL then costs a
// count-trailing-zeros. On the short fields of a request head this is several times cheaper
// than a memchr call per field. Without vector compares (simd.h) a byte loop makes the mask.
#ifndef TSGI_CORE_SCAN_H_
#define TSGI_CORE_SCAN_H_

#include <cstddef>
#include <cstdint>

#include "simd.h"

namespace tsgi {

// Bit i set when p[i] is NUL, for i < n (n <= 64).
inline uint64_t NulMaskShort(const uint8_t* p, size_t n) {
  uint64_t m = 0;
  for (size_t i = 0; i < n; ++i) m |= static_cast<uint64_t>(p[i] == 0) << i;
  return m;
}

// Bit i set when p[i] is NUL, for the 64 bytes at p.
inline uint64_t NulMask64(const uint8_t* p) {
#if defined(TSGI_SIMD_SSE2)
  const __m128i zero = _mm_setzero_si128();
  uint64_t m0 = static_cast<uint32_t>(_mm_movemask_epi8(
      _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), zero)));
  uint64_t m1 = static_cast<uint32_t>(_mm_movemask_epi8(
      _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)), zero)));
  uint64_t m2 = static_cast<uint32_t>(_mm_movemask_epi8(
      _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)), zero)));
  uint64_t m3 = static_cast<uint32_t>(_mm_movemask_epi8(
      _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48)), zero)));
  return m0 | (m1 << 16) | (m2 << 32) | (m3 << 48);
#elif defined(TSGI_SIMD_NEON)
  // Each NUL keeps its own bit of 1, 2, 4, ... 128; three pairwise additions then pack the
  // 64 bytes into 8, byte k holding the bits of bytes 8k..8k+7.
  static const uint8_t kBits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bits = vld1q_u8(kBits);
  const uint8x16_t zero = vdupq_n_u8(0);
  uint8x16_t t0 = vandq_u8(vceqq_u8(vld1q_u8(p), zero), bits);
  uint8x16_t t1 = vandq_u8(vceqq_u8(vld1q_u8(p + 16), zero), bits);
  uint8x16_t t2 = vandq_u8(vceqq_u8(vld1q_u8(p + 32), zero), bits);
  uint8x16_t t3 = vandq_u8(vceqq_u8(vld1q_u8(p + 48), zero), bits);
  uint8x16_t s = vpaddq_u8(vpaddq_u8(t0, t1), vpaddq_u8(t2, t3));
  s = vpaddq_u8(s, s);
  return vgetq_lane_u64(vreinterpretq_u64_u8(s), 0);
#else
  return NulMaskShort(p, 64);
#endif
}

// Yields the offsets of the NUL bytes of p[0..n) in increasing order, then n for good.
class NulScanner {
 public:
  NulScanner(const uint8_t* p, size_t n) : p_(p), n_(n) { mask_ = MaskAt(0); }

  size_t Next() {
    while (mask_ == 0) {
      base_ += kWidth;
      if (base_ >= n_) {
        base_ = n_;
        return n_;
      }
      mask_ = MaskAt(base_);
    }
    size_t at = base_ + CountTrailingZeros(mask_);
    mask_ &= mask_ - 1;
    return at;
  }

 private:
  static constexpr size_t kWidth = 64;

  // The NULs of p[at..at+64) within the block: the last 64 bytes of the block, shifted, for
  // a tail in a block of 64 bytes or more.
  uint64_t MaskAt(size_t at) const {
    size_t left = n_ - at;
    if (left >= kWidth) return NulMask64(p_ + at);
    if (n_ >= kWidth) return NulMask64(p_ + n_ - kWidth) >> (kWidth - left);
    return NulMaskShort(p_ + at, left);
  }

  const uint8_t* p_;
  size_t n_;
  size_t base_ = 0;
  uint64_t mask_ = 0;
};

}  // namespace tsgi

#endif  // TSGI_CORE_SCAN_H_
