// Well-known CGI variable names interned into small ids, so that the TypeScript side takes
// them from a constant table instead of creating a string for each. Id 0 means "not
// well-known". The table is native/core/boundary.h, generated from native/boundary.json with
// the TypeScript one (lib/codec/boundary.ts), which is checked against NameAt() when
// the addon loads.
#ifndef TSGI_CORE_NAMES_H_
#define TSGI_CORE_NAMES_H_

#include <cstddef>
#include <cstdint>

namespace tsgi {

// Number of table entries including the unused id 0.
size_t NameCount();
// The name with id `id` (1 <= id < NameCount()), or "" for anything else.
const char* NameAt(size_t id);
// The id of the name p[0..n), or 0.
uint32_t InternName(const uint8_t* p, size_t n);

}  // namespace tsgi

#endif  // TSGI_CORE_NAMES_H_
