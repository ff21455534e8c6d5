// Well-known CGI variable names interned into small ids, so that the TypeScript side takes
// them from a constant table instead of creating a string for each. Id 0 means "not
// well-known". The table is native/core/boundary.h, generated from native/boundary.json with
// the TypeScript one (lib/codec/boundary.ts), which is checked against NameAt() when
// the addon loads.
#ifndef TSGI_CORE_NAMES_H_
#define TSGI_CORE_NAMES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "boundary.h"
#include "common.h"

namespace tsgi {

// Number of table entries including the unused id 0.
size_t NameCount();
// The name with id `id` (1 <= id < NameCount()), or "" for anything else.
const char* NameAt(size_t id);

namespace names {

using boundary::kNames;
constexpr size_t kCount = boundary::kNameCount;
static_assert(kCount < 256, "name ids must fit in a byte");

// Interned names are 4-40 bytes long (scripts/gen-boundary.mjs checks the table).
constexpr size_t kMinLength = 4;
constexpr size_t kMaxLength = 40;
constexpr size_t kSlotBits = 9;
constexpr size_t kSlots = size_t{1} << kSlotBits;  // open addressing, load below 1/4

constexpr size_t Length(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// The hash of a name: its length and its last eight bytes (four when it is shorter) read as a
// little-endian number, multiplied by a 64-bit odd constant; the top bits pick the slot.
// The last bytes tell the table's names apart better than the first ones (HTTP_...).
constexpr uint64_t Slot(uint64_t tail, size_t n) {
  return ((tail + n) * 0x9E3779B97F4A7C15ull) >> (64 - kSlotBits);
}

constexpr uint64_t TailOf(const char* s, size_t n) {
  size_t k = n >= 8 ? 8 : 4;
  uint64_t v = 0;
  for (size_t i = 0; i < k; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(s[n - k + i])) << (8 * i);
  return v;
}

inline uint64_t LoadTail(const uint8_t* p, size_t n) {
  uint64_t v;
  if (n >= 8) {
    std::memcpy(&v, p + n - 8, 8);
  } else {
    uint32_t w;
    std::memcpy(&w, p + n - 4, 4);
    v = w;
  }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = n >= 8 ? __builtin_bswap64(v) : __builtin_bswap32(static_cast<uint32_t>(v));
#endif
  return v;
}

struct Table {
  uint8_t id[kSlots];
  uint8_t length[kCount];
};

constexpr Table BuildTable() {
  Table t{};
  for (size_t id = 0; id < kCount; ++id) t.length[id] = static_cast<uint8_t>(Length(kNames[id]));
  for (size_t id = 1; id < kCount; ++id) {
    size_t n = t.length[id];
    size_t slot = Slot(TailOf(kNames[id], n), n);
    while (t.id[slot] != 0) slot = (slot + 1) % kSlots;
    t.id[slot] = static_cast<uint8_t>(id);
  }
  return t;
}

inline constexpr Table kTable = BuildTable();

// The id of `name`, found at compile time; 0 when it is not in the table.
constexpr uint32_t IdOf(const char* name) {
  for (size_t id = 1; id < kCount; ++id) {
    size_t i = 0;
    while (name[i] != '\0' && name[i] == kNames[id][i]) ++i;
    if (name[i] == '\0' && kNames[id][i] == '\0') return static_cast<uint32_t>(id);
  }
  return 0;
}

}  // namespace names

// The id of the name p[0..n), or 0. Inline: the parsers call it for every pair.
inline uint32_t InternName(const uint8_t* p, size_t n) {
  if (n < names::kMinLength || n > names::kMaxLength) return 0;
  size_t slot = names::Slot(names::LoadTail(p, n), n);
  for (;;) {
    uint8_t id = names::kTable.id[slot];
    if (id == 0) return 0;
    if (names::kTable.length[id] == n && SameBytes(names::kNames[id], p, n)) return id;
    slot = (slot + 1) % names::kSlots;
  }
}

// Ids the parsers test for: a pair whose id is one of these has exactly that name.
constexpr uint32_t kIdContentLength = names::IdOf("CONTENT_LENGTH");
constexpr uint32_t kIdScgi = names::IdOf("SCGI");
static_assert(kIdContentLength != 0 && kIdScgi != 0, "CONTENT_LENGTH and SCGI must be interned");

}  // namespace tsgi

#endif  // TSGI_CORE_NAMES_H_
