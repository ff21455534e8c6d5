// The addon's entry point: each file of native/binding adds its part of the exports, in the
// order lib/codec/native.ts and lib/protocol/transport.ts find them (see common.h).
//
// The addon is context-aware: all state lives in per-environment instance data (codec.cc) or
// in the objects it hands to JavaScript; the request watchdog is one per process.

#include "binding/common.h"
#include "transport/transport.h"

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  if (!tsgi::binding::DefineCodec(env, exports)) return nullptr;
#if TSGI_HAS_TRANSPORT
  if (!tsgi::binding::DefineTransport(env, exports)) return nullptr;
  if (!tsgi::binding::DefineWatchdog(env, exports)) return nullptr;
  if (!tsgi::binding::DefineSockets(env, exports)) return nullptr;
#endif
  return exports;
}
