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

// A name is looked up by its head and tail: its first and last eight bytes (four when it is
// shorter than eight), read as little-endian numbers. Head and tail overlap or meet for a
// name of up to 16 bytes, so comparing them compares the whole name; longer names compare
// their middle bytes too. The slot is the top bits of (tail + length) times a 64-bit odd
// constant: the last bytes tell the table's names apart better than the first (HTTP_...).
constexpr uint64_t Slot(uint64_t tail, size_t n) {
  return ((tail + n) * 0x9E3779B97F4A7C15ull) >> (64 - kSlotBits);
}

constexpr size_t WordOf(size_t n) { return n >= 8 ? 8 : 4; }

constexpr uint64_t LittleEndianOf(const char* s, size_t k) {
  uint64_t v = 0;
  for (size_t i = 0; i < k; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(s[i])) << (8 * i);
  return v;
}

// The k (4 or 8) bytes at p as a little-endian number.
inline uint64_t LoadLittleEndian(const uint8_t* p, size_t k) {
  uint64_t v;
  if (k == 8) {
    std::memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
  } else {
    uint32_t w;
    std::memcpy(&w, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap32(w);
#endif
    v = w;
  }
  return v;
}

struct Entry {
  uint64_t head;
  uint64_t tail;
  uint8_t length;
};

struct Table {
  uint8_t slot_id[kSlots];
  Entry entry[kCount];
};

constexpr Table BuildTable() {
  Table t{};
  for (size_t id = 1; id < kCount; ++id) {
    const char* name = kNames[id];
    size_t n = Length(name);
    size_t k = WordOf(n);
    t.entry[id] =
        Entry{LittleEndianOf(name, k), LittleEndianOf(name + n - k, k), static_cast<uint8_t>(n)};
    size_t slot = Slot(t.entry[id].tail, n);
    while (t.slot_id[slot] != 0) slot = (slot + 1) % kSlots;
    t.slot_id[slot] = static_cast<uint8_t>(id);
  }
  return t;
}

inline constexpr Table kTable = BuildTable();

constexpr bool LengthsInRange() {
  for (size_t id = 1; id < kCount; ++id) {
    if (kTable.entry[id].length < kMinLength || kTable.entry[id].length > kMaxLength) return false;
  }
  return true;
}
static_assert(LengthsInRange(), "interned names are 4-40 bytes long");

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
  size_t k = names::WordOf(n);
  uint64_t tail = names::LoadLittleEndian(p + n - k, k);
  size_t slot = names::Slot(tail, n);
  for (;;) {
    uint8_t id = names::kTable.slot_id[slot];
    if (id == 0) return 0;
    const names::Entry& e = names::kTable.entry[id];
    if (e.length == n && e.tail == tail && e.head == names::LoadLittleEndian(p, k) &&
        (n <= 16 || SameBytes(names::kNames[id] + 8, p + 8, n - 16))) {
      return id;
    }
    slot = (slot + 1) % names::kSlots;
  }
}

// Ids the parsers test for: a pair whose id is one of these has exactly that name.
constexpr uint32_t kIdContentLength = names::IdOf("CONTENT_LENGTH");
constexpr uint32_t kIdScgi = names::IdOf("SCGI");
static_assert(kIdContentLength != 0 && kIdScgi != 0, "CONTENT_LENGTH and SCGI must be interned");

}  // namespace tsgi

#endif  // TSGI_CORE_NAMES_H_
