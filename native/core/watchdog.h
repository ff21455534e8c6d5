// The request watchdog: a thread that answers the requests of a process whose JavaScript is
// stuck (a busy loop cannot be interrupted from JavaScript), or that grew above its memory
// limit (a runaway allocation), and then ends the process.
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
// With a memory limit, the thread also reads the process's resident size (/proc/self/statm on
// Linux, the peak from getrusage elsewhere) every kRssPeriodMs; above the limit it answers the
// registered requests the same way with a 500, logs one line and exits with kExitMemory,
// whether the event loop turns or not.
//
// Before answering, it stops listening on the sockets given to CloseOnFire() and removes their
// unix socket files, so that nothing connects to the process while it ends.
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

// Why the watchdog ends the process: the answer is a 504 for a timeout, a 500 for memory.
enum class Cause : uint8_t { kTimeout = 0, kMemory = 1 };

// Exit status of a process the watchdog ended on a timeout (as timeout(1) exits).
constexpr int kExitTimeout = 124;
// Exit status of a process the watchdog ended above its memory limit (as the shell reports
// a process the kernel's out-of-memory killer ended: 128 + SIGKILL).
constexpr int kExitMemory = 137;
// How often the resident size is read when there is a memory limit.
constexpr uint32_t kRssPeriodMs = 20;
// Room for any answer EncodeAnswer() writes.
constexpr size_t kAnswerMax = 256;

// The answer to one request (504 for kTimeout, 500 for kMemory); returns its length (0 for an
// unknown kind).
size_t EncodeAnswer(Answer kind, uint16_t request_id, uint8_t* out, size_t cap,
                    Cause cause = Cause::kTimeout);

// The resident size of this process in bytes (0 when it cannot be read).
uint64_t ResidentBytes();

// What the watchdog watches, and the log line of each cause. In a line, `{requests}` stands
// for the number of requests answered and `{rss}` for the resident size in MB.
struct Limits {
  uint32_t timeout_ms = 0;     // 0: no busy-loop check
  uint64_t max_rss_bytes = 0;  // 0: no memory check
  std::string timeout_line;
  std::string memory_line;
  bool json = false;  // prefix each line with `{"level":"error","time":"<ISO time>",`
};

class Watchdog {
 public:
  Watchdog() = default;
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Starts the thread (once). False when threads or sockets are not available here (Windows),
  // when it runs already, or when `limits` has neither a timeout nor a memory limit.
  bool Start(Limits limits);
  // Registers a request on socket `fd`; returns its slot, or -1 when not running.
  int32_t Add(int fd, Answer kind, uint16_t request_id);
  // The request of `slot` left (its response began, or it ended).
  void Remove(int32_t slot);
  // The event loop turned.
  void Beat() { beat_ms_.store(NowMs(), std::memory_order_relaxed); }
  // When it fires, first stop listening on `fd` and remove the unix socket file `path` (empty:
  // none, as for a socket a web server gave): a web server that spawned the process on that
  // socket (mod_fcgid) then gets a refused connection for its next request, and a CGI bridge
  // finds no socket, so either starts another process instead of handing the request to this
  // one as it exits. Any number of listeners; each call adds one.
  void CloseOnFire(int fd, std::string path);
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

  struct Listener {
    int fd;
    std::string path;
  };

  void Run();
  [[noreturn]] void Fire(Cause cause, uint64_t rss);

  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  bool running_ = false;
  bool stop_ = false;
  Limits limits_;
  std::vector<Listener> listeners_;
  std::vector<Slot> slots_;
  std::vector<int32_t> free_;
  size_t live_ = 0;
  std::atomic<uint64_t> beat_ms_{0};
};

}  // namespace watchdog
}  // namespace tsgi

#endif  // TSGI_CORE_WATCHDOG_H_
