#include "names.h"

#include <array>
#include <cstring>

#include "boundary.h"
#include "common.h"

namespace tsgi {
namespace {

// The names and their ids: native/core/boundary.h, generated from native/boundary.json.
using boundary::kNames;
constexpr size_t kCount = boundary::kNameCount;
static_assert(kCount < 256, "name ids must fit in a byte");

constexpr size_t kSlots = 512;  // open addressing, load below 1/4

constexpr size_t Length(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

template <typename Byte>
constexpr size_t Hash(const Byte* p, size_t n) {
  return (n * 131u + static_cast<size_t>(static_cast<uint8_t>(p[n - 1])) * 31u +
          static_cast<size_t>(static_cast<uint8_t>(p[n / 2])) * 7u +
          static_cast<size_t>(static_cast<uint8_t>(p[(n * 3) / 4]))) %
         kSlots;
}

constexpr std::array<uint8_t, kSlots> BuildTable() {
  std::array<uint8_t, kSlots> table{};
  for (size_t id = 1; id < kCount; ++id) {
    size_t slot = Hash(kNames[id], Length(kNames[id]));
    while (table[slot] != 0) slot = (slot + 1) % kSlots;
    table[slot] = static_cast<uint8_t>(id);
  }
  return table;
}

constexpr std::array<uint8_t, kSlots> kTable = BuildTable();

constexpr std::array<uint8_t, kCount> BuildLengths() {
  std::array<uint8_t, kCount> lengths{};
  for (size_t id = 0; id < kCount; ++id) lengths[id] = static_cast<uint8_t>(Length(kNames[id]));
  return lengths;
}

constexpr std::array<uint8_t, kCount> kLengths = BuildLengths();

}  // namespace

size_t NameCount() { return kCount; }

const char* NameAt(size_t id) { return id < kCount ? kNames[id] : ""; }

uint32_t InternName(const uint8_t* p, size_t n) {
  if (n < 4 || n > 40) return 0;
  size_t slot = Hash(p, n);
  for (;;) {
    uint8_t id = kTable[slot];
    if (id == 0) return 0;
    if (kLengths[id] == n && SameBytes(kNames[id], p, n)) return id;
    slot = (slot + 1) % kSlots;
  }
}

}  // namespace tsgi
