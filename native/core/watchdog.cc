// The request watchdog (see watchdog.h).
#include "watchdog.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "fastcgi.h"

#ifndef _WIN32
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace tsgi {
namespace watchdog {

namespace {

// The answers: a head in CGI form (FastCGI, SCGI) and in HTTP form (uwsgi, HTTP), and a body.
struct Text {
  const char* cgi_head;
  const char* http_head;
  const char* body;
};

const Text kTimeoutText = {
    "Status: 504 Gateway Timeout\r\nContent-Type: text/plain; charset=us-ascii\r\n"
    "Content-Length: 16\r\n\r\n",
    "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=us-ascii\r\n"
    "Content-Length: 16\r\nConnection: close\r\n\r\n",
    "Gateway Timeout\n",
};

const Text kMemoryText = {
    "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=us-ascii\r\n"
    "Content-Length: 22\r\n\r\n",
    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=us-ascii\r\n"
    "Content-Length: 22\r\nConnection: close\r\n\r\n",
    "Internal Server Error\n",
};

constexpr uint8_t kFcgiStdout = 6;
constexpr uint8_t kFcgiEndRequest = 3;

size_t Append(uint8_t* out, size_t at, size_t cap, const char* text, size_t n) {
  if (at + n > cap) return cap + 1;
  std::memcpy(out + at, text, n);
  return at + n;
}

}  // namespace

size_t EncodeAnswer(Answer kind, uint16_t request_id, uint8_t* out, size_t cap, Cause cause) {
  const Text& text = cause == Cause::kMemory ? kMemoryText : kTimeoutText;
  const char* body_text = text.body;
  const char* head_text = text.cgi_head;
  const size_t body = std::strlen(body_text);
  const size_t cgi_head = std::strlen(head_text);
  size_t n = 0;
  switch (kind) {
    case Answer::kCgi:
      n = Append(out, 0, cap, head_text, cgi_head);
      n = Append(out, n, cap, body_text, body);
      break;
    case Answer::kHttp:
      n = Append(out, 0, cap, text.http_head, std::strlen(text.http_head));
      n = Append(out, n, cap, body_text, body);
      break;
    case Answer::kFastcgi: {
      const size_t content = cgi_head + body;
      const size_t pad = FcgiPad(content);
      const size_t total = 3 * kFcgiHeaderSize + content + pad + 8;
      if (total > cap) return 0;
      FcgiWriteHeader(out, kFcgiStdout, request_id, static_cast<uint16_t>(content),
                      static_cast<uint8_t>(pad));
      n = kFcgiHeaderSize;
      n = Append(out, n, cap, head_text, cgi_head);
      n = Append(out, n, cap, body_text, body);
      std::memset(out + n, 0, pad);
      n += pad;
      FcgiWriteHeader(out + n, kFcgiStdout, request_id, 0, 0);
      n += kFcgiHeaderSize;
      FcgiWriteHeader(out + n, kFcgiEndRequest, request_id, 8, 0);
      n += kFcgiHeaderSize;
      std::memset(out + n, 0, 8);  // appStatus 0, FCGI_REQUEST_COMPLETE, reserved
      n += 8;
      break;
    }
    default:
      return 0;
  }
  return n > cap ? 0 : n;
}

uint64_t Watchdog::NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

Watchdog::~Watchdog() { Stop(); }

#ifdef _WIN32

uint64_t ResidentBytes() { return 0; }
bool Watchdog::Start(Limits) { return false; }
int32_t Watchdog::Add(int, Answer, uint16_t) { return -1; }
void Watchdog::Remove(int32_t) {}
void Watchdog::CloseOnFire(int, std::string) {}
void Watchdog::Stop() {}
void Watchdog::Run() {}
void Watchdog::Fire(Cause, uint64_t) { std::abort(); }

#else

uint64_t ResidentBytes() {
#ifdef __linux__
  // statm: size resident shared text lib data dt, in pages
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof(buf) - 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* p = std::strchr(buf, ' ');
  if (p == nullptr) return 0;
  const uint64_t pages = std::strtoull(p + 1, nullptr, 10);
  const long page = sysconf(_SC_PAGESIZE);
  return pages * static_cast<uint64_t>(page > 0 ? page : 4096);
#else
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#ifdef __APPLE__
  return static_cast<uint64_t>(ru.ru_maxrss);  // bytes
#else
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // KiB
#endif
#endif
}

bool Watchdog::Start(Limits limits) {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_ || (limits.timeout_ms == 0 && limits.max_rss_bytes == 0)) return false;
  limits_ = std::move(limits);
  stop_ = false;
  Beat();
  thread_ = std::thread(&Watchdog::Run, this);
  running_ = true;
  return true;
}

int32_t Watchdog::Add(int fd, Answer kind, uint16_t request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!running_ || fd < 0) return -1;
  int32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<int32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[static_cast<size_t>(slot)];
  s.fd = fd;
  s.kind = kind;
  s.id = request_id;
  s.since_ms = NowMs();
  live_++;
  return slot;
}

void Watchdog::Remove(int32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  if (slot < 0 || static_cast<size_t>(slot) >= slots_.size()) return;
  Slot& s = slots_[static_cast<size_t>(slot)];
  if (s.fd < 0) return;
  s.fd = -1;
  free_.push_back(slot);
  live_--;
}

void Watchdog::CloseOnFire(int fd, std::string path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd >= 0) listeners_.push_back(Listener{fd, std::move(path)});
}

void Watchdog::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!running_) return;
    stop_ = true;
    running_ = false;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::Run() {
  const uint32_t timeout_ms = limits_.timeout_ms;
  const uint64_t max_rss = limits_.max_rss_bytes;
  uint32_t period_ms = timeout_ms / 8 < 10 ? 10 : (timeout_ms / 8 > 250 ? 250 : timeout_ms / 8);
  if (timeout_ms == 0 || (max_rss > 0 && period_ms > kRssPeriodMs)) period_ms = kRssPeriodMs;
  const auto period = std::chrono::milliseconds(period_ms);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, period);
    if (stop_) continue;
    if (max_rss > 0) {
      // read without the lock: requests register meanwhile
      lock.unlock();
      const uint64_t rss = ResidentBytes();
      lock.lock();
      if (stop_) continue;
      if (rss > max_rss) Fire(Cause::kMemory, rss);
    }
    if (timeout_ms == 0 || live_ == 0) continue;
    const uint64_t now = NowMs();
    if (now - beat_ms_.load(std::memory_order_relaxed) < timeout_ms) continue;
    uint64_t oldest = now;
    for (const Slot& s : slots_) {
      if (s.fd >= 0 && s.since_ms < oldest) oldest = s.since_ms;
    }
    if (now - oldest < timeout_ms) continue;
    Fire(Cause::kTimeout, 0);
  }
}

namespace {

// Writes all of bytes on a non-blocking socket, waiting a little when it is full.
void WriteAll(int fd, const uint8_t* p, size_t n) {
  int waits = 0;
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && waits++ < 10) {
      struct pollfd pfd = {fd, POLLOUT, 0};
      poll(&pfd, 1, 20);
      continue;
    }
    return;
  }
}

// Reads and drops what the peer sent, so that the exit does not reset the connection.
void DrainInput(int fd) {
  char buf[4096];
  for (int i = 0; i < 64; i++) {
    ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r > 0 || (r < 0 && errno == EINTR)) continue;
    return;
  }
}

// `line` with every `{key}` replaced by `value`.
std::string Fill(std::string line, const char* key, const std::string& value) {
  const size_t k = std::strlen(key);
  for (size_t at = line.find(key); at != std::string::npos;
       at = line.find(key, at + value.size())) {
    line.replace(at, k, value);
  }
  return line;
}

void WriteText(const std::string& s) {
  const char* p = s.data();
  size_t n = s.size();
  while (n > 0) {
    ssize_t w = write(2, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void Watchdog::Fire(Cause cause, uint64_t rss) {
  // First nothing new: the socket file goes (a connect finds none), then the listener (a
  // connect is refused).
  for (const Listener& l : listeners_) {
    if (!l.path.empty()) unlink(l.path.c_str());
    shutdown(l.fd, SHUT_RDWR);
    close(l.fd);
  }
  uint8_t answer[kAnswerMax];
  for (const Slot& s : slots_) {
    if (s.fd < 0) continue;
    size_t n = EncodeAnswer(s.kind, s.id, answer, sizeof(answer), cause);
    if (n > 0) WriteAll(s.fd, answer, n);
    shutdown(s.fd, SHUT_WR);
    DrainInput(s.fd);
  }
  std::string line;
  if (limits_.json) {
    char when[40] = "";
    std::time_t t = std::time(nullptr);
    struct tm tm;
    if (gmtime_r(&t, &tm) != nullptr) std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    line += "{\"level\":\"error\",\"time\":\"";
    line += when;
    line += "\",";
  }
  std::string text = cause == Cause::kMemory ? limits_.memory_line : limits_.timeout_line;
  text = Fill(std::move(text), "{requests}", std::to_string(live_));
  text = Fill(std::move(text), "{rss}", std::to_string((rss + (1024 * 1024 - 1)) / (1024 * 1024)));
  line += text;
  WriteText(line);
  _exit(cause == Cause::kMemory ? kExitMemory : kExitTimeout);
}

#endif  // _WIN32

}  // namespace watchdog
}  // namespace tsgi
