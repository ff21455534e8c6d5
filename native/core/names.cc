#include "names.h"

namespace tsgi {

size_t NameCount() { return names::kCount; }

const char* NameAt(size_t id) { return id < names::kCount ? names::kNames[id] : ""; }

}  // namespace tsgi
