// The vector instructions the hot loops of the codec core may use: SSE2 on x86-64, NEON on
// AArch64, none elsewhere. Defining TSGI_SIMD_PORTABLE selects the plain loops everywhere;
// the native tests build both (scan_test.cc), so the plain loops run on every machine.
#ifndef TSGI_CORE_SIMD_H_
#define TSGI_CORE_SIMD_H_

#include <cstdint>

#if defined(TSGI_SIMD_PORTABLE)
#elif defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define TSGI_SIMD_SSE2 1
#elif defined(__aarch64__) || defined(_M_ARM64)
#include <arm_neon.h>
#define TSGI_SIMD_NEON 1
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif

namespace tsgi {

inline unsigned CountTrailingZeros(uint64_t v) {
#if defined(_MSC_VER) && !defined(__clang__)
  unsigned long i;
  _BitScanForward64(&i, v);
  return static_cast<unsigned>(i);
#else
  return static_cast<unsigned>(__builtin_ctzll(v));
#endif
}

}  // namespace tsgi

#endif  // TSGI_CORE_SIMD_H_
