// libFuzzer harness: ScgiParser over arbitrary bytes, whole and chunked (parser_harness.h).
#include "core/scgi.h"
#include "parser_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tsgi_fuzz::RunParserFuzz<tsgi::ScgiParser>(data, size, tsgi_fuzz::kBodyTraits);
}
