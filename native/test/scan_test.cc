// Unit tests of the NUL scanner of SCGI header blocks (native/core/scan.h): `ctest` runs this
// binary twice, as built for the machine's vector unit and with TSGI_SIMD_PORTABLE.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/scan.h"
#include "test/check.h"

namespace {

// The offsets of the NULs of `b`, then its length, then its length again.
std::vector<size_t> Naive(const std::vector<uint8_t>& b) {
  std::vector<size_t> out;
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i] == 0) out.push_back(i);
  }
  out.push_back(b.size());
  out.push_back(b.size());
  return out;
}

std::vector<size_t> Scanned(const std::vector<uint8_t>& b, size_t calls) {
  tsgi::NulScanner scanner(b.data(), b.size());
  std::vector<size_t> out;
  for (size_t i = 0; i < calls; ++i) out.push_back(scanner.Next());
  return out;
}

void Check(const std::vector<uint8_t>& b) {
  std::vector<size_t> want = Naive(b);
  CHECK(Scanned(b, want.size()) == want);
}

}  // namespace

int main() {
  // Every length up to 300 (blocks shorter than, equal to and past one or more 64-byte
  // steps, with every tail length), NULs at every position of each length in turn, and
  // pseudo-random contents of several NUL densities.
  Check({});
  uint32_t x = 0x9E3779B9;
  for (size_t n = 1; n <= 300; ++n) {
    Check(std::vector<uint8_t>(n, 0));
    Check(std::vector<uint8_t>(n, 'a'));
    for (size_t at = 0; at < n; ++at) {
      std::vector<uint8_t> one(n, 0xFF);
      one[at] = 0;
      Check(one);
    }
    for (uint32_t density : {2u, 8u, 40u}) {
      std::vector<uint8_t> b(n);
      for (uint8_t& c : b) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = x % density == 0 ? 0 : static_cast<uint8_t>(1 + (x >> 8) % 255);
      }
      Check(b);
    }
  }
  // The scanner reads only inside the block: a block at the end of a larger buffer.
  std::vector<uint8_t> big(200, 0);
  for (size_t n = 0; n <= 100; ++n) {
    tsgi::NulScanner scanner(big.data() + 100, n);
    for (size_t i = 0; i < n; ++i) CHECK(scanner.Next() == i);
    CHECK(scanner.Next() == n);
  }
  return CheckReport();
}
