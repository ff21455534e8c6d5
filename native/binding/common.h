// What the files of the N-API binding share (native/binding/ is the only place that includes
// Node headers): a few N-API helpers, and the function with which each file adds its part to
// the addon's exports (module.cc calls them in order).
//
//   codec.cc      the native codec: parsers in pooled slots, encoders, the shared arrays
//   transport.cc  the native connection transport as the Transport class (POSIX only)
//   watchdog.cc   the request watchdog's functions (POSIX only)
//   module.cc     the module entry point
#ifndef TSGI_BINDING_COMMON_H_
#define TSGI_BINDING_COMMON_H_

#include <node_api.h>

#include <cstddef>
#include <cstdint>

// Returns nullptr (an exception is pending, or N-API cannot go on) when an N-API call fails.
#define CHECK_NAPI(call)                   \
  do {                                     \
    if ((call) != napi_ok) return nullptr; \
  } while (0)

namespace tsgi {
namespace binding {

// Throws a TypeError with `message`; returns nullptr, what a callback returns after a throw.
inline napi_value Throw(napi_env env, const char* message) {
  napi_throw_type_error(env, nullptr, message);
  return nullptr;
}

inline napi_value Int(napi_env env, int32_t v) {
  napi_value result = nullptr;
  napi_create_int32(env, v, &result);
  return result;
}

inline napi_value Undefined(napi_env env) {
  napi_value result = nullptr;
  napi_get_undefined(env, &result);
  return result;
}

// The bytes of a Uint8Array (a Buffer), Uint8ClampedArray or Int8Array; false for anything else.
inline bool GetBytes(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  void* raw = nullptr;
  napi_value ab = nullptr;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, v, &type, len, &raw, &ab, &offset) != napi_ok) return false;
  if (type != napi_uint8_array && type != napi_uint8_clamped_array && type != napi_int8_array) {
    return false;
  }
  *data = *len > 0 ? static_cast<uint8_t*>(raw) : nullptr;
  return true;
}

// codec.cc: the per-environment instance data and init, pairArea, release, trimMemory, the
// push functions and the encoders.
bool DefineCodec(napi_env env, napi_value exports);

// transport.cc (when TSGI_HAS_TRANSPORT): the Transport class.
bool DefineTransport(napi_env env, napi_value exports);

// transport.cc (when TSGI_HAS_TRANSPORT): bindTcp, bindUnix, listenFd, keepAlive and
// localAddress, the listening sockets tsgi binds itself.
bool DefineSockets(napi_env env, napi_value exports);

// watchdog.cc (when TSGI_HAS_TRANSPORT): watchdogStart, watchdogAdd, watchdogRemove and
// watchdogCloseOnFire.
bool DefineWatchdog(napi_env env, napi_value exports);

}  // namespace binding
}  // namespace tsgi

#endif  // TSGI_BINDING_COMMON_H_
