// The request watchdog part of the N-API binding (native/binding/common.h lists the others).
//
// The request watchdog (native/core/watchdog.h): one per process. The environment that
// starts it beats it from an unreferenced libuv timer; JavaScript registers each request.

#include "transport/transport.h"

#if TSGI_HAS_TRANSPORT

#include <new>
#include <string>
#include <utility>

#include "binding/common.h"
#include "core/watchdog.h"

namespace {

using tsgi::binding::Int;
using tsgi::binding::Throw;
using tsgi::binding::Undefined;

tsgi::watchdog::Watchdog g_watchdog;
uv_timer_t* g_beat = nullptr;

void OnBeat(uv_timer_t*) { g_watchdog.Beat(); }

void StopWatchdog(void*) {
  g_watchdog.Stop();
  if (g_beat != nullptr) {
    uv_timer_stop(g_beat);
    uv_close(reinterpret_cast<uv_handle_t*>(g_beat),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    g_beat = nullptr;
  }
}

bool GetString(napi_env env, napi_value v, std::string* out) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &n) != napi_ok) return false;
  out->resize(n + 1);
  if (napi_get_value_string_utf8(env, v, &(*out)[0], n + 1, &n) != napi_ok) return false;
  out->resize(n);
  return true;
}

// watchdogStart(timeoutMs, maxRssBytes, json, timeoutLine, memoryLine): true when it started
// (see tsgi::watchdog::Limits).
napi_value WatchdogStart(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  tsgi::watchdog::Limits limits;
  double max_rss = 0;
  if (argc < 5 || napi_get_value_uint32(env, argv[0], &limits.timeout_ms) != napi_ok ||
      napi_get_value_double(env, argv[1], &max_rss) != napi_ok || !(max_rss >= 0) ||
      napi_get_value_bool(env, argv[2], &limits.json) != napi_ok ||
      !GetString(env, argv[3], &limits.timeout_line) ||
      !GetString(env, argv[4], &limits.memory_line)) {
    return Throw(env, "tsgi: bad watchdogStart call");
  }
  limits.max_rss_bytes = static_cast<uint64_t>(max_rss);
  const uint32_t timeout = limits.timeout_ms;
  napi_value result = nullptr;
  uv_loop_t* loop = nullptr;
  if (g_beat != nullptr || (timeout == 0 && limits.max_rss_bytes == 0) ||
      napi_get_uv_event_loop(env, &loop) != napi_ok) {
    CHECK_NAPI(napi_get_boolean(env, false, &result));
    return result;
  }
  uv_timer_t* timer = new (std::nothrow) uv_timer_t;
  if (timer == nullptr || uv_timer_init(loop, timer) != 0) {
    delete timer;
    CHECK_NAPI(napi_get_boolean(env, false, &result));
    return result;
  }
  /* the beat matters for the timeout only; without one it runs at the longest period */
  const uint64_t period =
      timeout == 0 ? 250 : (timeout / 8 < 10 ? 10 : (timeout / 8 > 250 ? 250 : timeout / 8));
  uv_timer_start(timer, OnBeat, period, period);
  uv_unref(reinterpret_cast<uv_handle_t*>(timer));
  g_beat = timer;
  bool ok = g_watchdog.Start(std::move(limits));
  if (ok) {
    napi_add_env_cleanup_hook(env, StopWatchdog, nullptr);
  } else {
    StopWatchdog(nullptr);
  }
  CHECK_NAPI(napi_get_boolean(env, ok, &result));
  return result;
}

// watchdogAdd(fd, kind, requestId): the request's slot, or -1.
napi_value WatchdogAdd(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t fd = -1;
  uint32_t kind = 0;
  uint32_t id = 0;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &kind) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &id) != napi_ok || kind < 1 || kind > 3 || id > 0xffff) {
    return Int(env, -1);
  }
  return Int(env, g_watchdog.Add(fd, static_cast<tsgi::watchdog::Answer>(kind),
                                 static_cast<uint16_t>(id)));
}

// watchdogRemove(slot)
napi_value WatchdogRemove(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t slot = -1;
  if (argc >= 1 && napi_get_value_int32(env, argv[0], &slot) == napi_ok) g_watchdog.Remove(slot);
  return Undefined(env);
}

// watchdogCloseOnFire(fd, path): a listening socket closed, and its unix socket file `path`
// removed (empty: none), first when the watchdog fires.
napi_value WatchdogCloseOnFire(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t fd = -1;
  std::string path;
  if (argc >= 1 && napi_get_value_int32(env, argv[0], &fd) == napi_ok &&
      (argc < 2 || GetString(env, argv[1], &path))) {
    g_watchdog.CloseOnFire(fd, std::move(path));
  }
  return Undefined(env);
}

}  // namespace

namespace tsgi {
namespace binding {

bool DefineWatchdog(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"watchdogStart", nullptr, WatchdogStart, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"watchdogAdd", nullptr, WatchdogAdd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"watchdogRemove", nullptr, WatchdogRemove, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"watchdogCloseOnFire", nullptr, WatchdogCloseOnFire, nullptr, nullptr, nullptr, napi_default,
       nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}

}  // namespace binding
}  // namespace tsgi

#endif  // TSGI_HAS_TRANSPORT
