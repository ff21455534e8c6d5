#include "names.h"

#include <array>
#include <cstring>

#include "common.h"

namespace tsgi {
namespace {

// Order is the id; append only (lib/codec/native.ts holds the same list).
constexpr const char* kNames[] = {
    "",
    "REQUEST_METHOD",
    "REQUEST_URI",
    "REQUEST_SCHEME",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "DOCUMENT_URI",
    "DOCUMENT_ROOT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_ADDR",
    "SERVER_ADMIN",
    "SERVER_SIGNATURE",
    "GATEWAY_INTERFACE",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REMOTE_HOST",
    "REMOTE_USER",
    "AUTH_TYPE",
    "HTTPS",
    "REDIRECT_STATUS",
    "CONTEXT_PREFIX",
    "CONTEXT_DOCUMENT_ROOT",
    "PATH",
    "SCGI",
    "UWSGI_SCHEME",
    "FCGI_MAX_CONNS",
    "FCGI_MAX_REQS",
    "FCGI_MPXS_CONNS",
    "HTTP_HOST",
    "HTTP_USER_AGENT",
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_ACCEPT_CHARSET",
    "HTTP_CONNECTION",
    "HTTP_KEEP_ALIVE",
    "HTTP_COOKIE",
    "HTTP_REFERER",
    "HTTP_ORIGIN",
    "HTTP_CACHE_CONTROL",
    "HTTP_PRAGMA",
    "HTTP_AUTHORIZATION",
    "HTTP_CONTENT_TYPE",
    "HTTP_CONTENT_LENGTH",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_TE",
    "HTTP_EXPECT",
    "HTTP_RANGE",
    "HTTP_IF_RANGE",
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_UPGRADE",
    "HTTP_UPGRADE_INSECURE_REQUESTS",
    "HTTP_DNT",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_REAL_IP",
    "HTTP_X_REQUESTED_WITH",
    "HTTP_FORWARDED",
    "HTTP_VIA",
    "HTTP_SEC_FETCH_DEST",
    "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_SITE",
    "HTTP_SEC_FETCH_USER",
    "HTTP_SEC_CH_UA",
    "HTTP_SEC_CH_UA_MOBILE",
    "HTTP_SEC_CH_UA_PLATFORM",
    "HTTP_PROXY",
};
constexpr size_t kCount = sizeof(kNames) / sizeof(kNames[0]);
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
