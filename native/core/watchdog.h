// The request watchdog: a thread that answers the requests of a process whose JavaScript is
// stuck (a busy loop cannot be interrupted from JavaScript) and then ends the process.
//
// The event loop calls Beat() every turn of a short timer; a request registers the socket it
// came on with Add() before its app runs and leaves with Remove() before any byte of its
// response is written. When the loop has not beaten for the timeout while a request older
// than the timeout is registered, the thread writes a complete 504 answer on every registered
// socket (FastCGI: STDOUT with the head and body, the empty STDOUT, END_REQUEST; SCGI: a
// `Status: 504` head; uwsgi and HTTP: an `HTTP/1.1 504` head with `Connection: close`), writes
// one log line to stderr and exits with kExitTimeout. The front server thus gets an answer,
// and does not replay the request onto another worker as it would after a dropped connection.
//
// No Node headers: the addon's binding owns the timer and calls in.
#ifndef TSGI_CORE_WATCHDOG_H_
#define TSGI_CORE_WATCHDOG_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tsgi {
namespace watchdog {

// How a stuck request is answered (the protocol of its connection).
enum class Answer : uint8_t { kFastcgi = 1, kCgi = 2, kHttp = 3 };

// Exit status of a process the watchdog ended (as timeout(1) exits on a timeout).
constexpr int kExitTimeout = 124;
// Room for any answer EncodeAnswer() writes.
constexpr size_t kAnswerMax = 256;

// The 504 answer to one request; returns its length (0 for an unknown kind).
size_t EncodeAnswer(Answer kind, uint16_t request_id, uint8_t* out, size_t cap);

class Watchdog {
 public:
  Watchdog() = default;
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Starts the thread (once). The log line is `prefix` + the number of requests answered +
  // `suffix`; with `json`, `{"level":"error","time":"<ISO time>",` comes first. False when
  // threads or sockets are not available here (Windows) or it runs already.
  bool Start(uint32_t timeout_ms, std::string prefix, std::string suffix, bool json);
  // Registers a request on socket `fd`; returns its slot, or -1 when not running.
  int32_t Add(int fd, Answer kind, uint16_t request_id);
  // The request of `slot` left (its response began, or it ended).
  void Remove(int32_t slot);
  // The event loop turned.
  void Beat() { beat_ms_.store(NowMs(), std::memory_order_relaxed); }
  // When it fires, first stop listening on `fd` (-1: none): a web server that spawned the
  // process on that socket (mod_fcgid) then gets a refused connection for its next request,
  // and starts another process, instead of handing it to this one as it exits.
  void CloseOnFire(int fd) { close_on_fire_.store(fd, std::memory_order_relaxed); }
  // Stops the thread (process teardown).
  void Stop();

  static uint64_t NowMs();

 private:
  struct Slot {
    int fd = -1;  // -1: free
    Answer kind = Answer::kFastcgi;
    uint16_t id = 0;
    uint64_t since_ms = 0;
  };

  void Run();
  [[noreturn]] void Fire(size_t live);

  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  bool running_ = false;
  bool stop_ = false;
  uint32_t timeout_ms_ = 0;
  std::string prefix_, suffix_;
  bool json_ = false;
  std::atomic<int> close_on_fire_{-1};
  std::vector<Slot> slots_;
  std::vector<int32_t> free_;
  size_t live_ = 0;
  std::atomic<uint64_t> beat_ms_{0};
};

}  // namespace watchdog
}  // namespace tsgi

#endif  // TSGI_CORE_WATCHDOG_H_
