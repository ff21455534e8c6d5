// The request watchdog (see watchdog.h).
#include "watchdog.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "fastcgi.h"

#ifndef _WIN32
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace tsgi {
namespace watchdog {

namespace {

const char kBody[] = "Gateway Timeout\n";
const char kCgiHead[] =
    "Status: 504 Gateway Timeout\r\nContent-Type: text/plain; charset=us-ascii\r\n"
    "Content-Length: 16\r\n\r\n";
const char kHttpHead[] =
    "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=us-ascii\r\n"
    "Content-Length: 16\r\nConnection: close\r\n\r\n";

constexpr uint8_t kFcgiStdout = 6;
constexpr uint8_t kFcgiEndRequest = 3;

size_t Append(uint8_t* out, size_t at, size_t cap, const char* text, size_t n) {
  if (at + n > cap) return cap + 1;
  std::memcpy(out + at, text, n);
  return at + n;
}

}  // namespace

size_t EncodeAnswer(Answer kind, uint16_t request_id, uint8_t* out, size_t cap) {
  const size_t body = sizeof(kBody) - 1;
  size_t n = 0;
  switch (kind) {
    case Answer::kCgi:
      n = Append(out, 0, cap, kCgiHead, sizeof(kCgiHead) - 1);
      n = Append(out, n, cap, kBody, body);
      break;
    case Answer::kHttp:
      n = Append(out, 0, cap, kHttpHead, sizeof(kHttpHead) - 1);
      n = Append(out, n, cap, kBody, body);
      break;
    case Answer::kFastcgi: {
      const size_t content = sizeof(kCgiHead) - 1 + body;
      const size_t pad = FcgiPad(content);
      const size_t total = 3 * kFcgiHeaderSize + content + pad + 8;
      if (total > cap) return 0;
      FcgiWriteHeader(out, kFcgiStdout, request_id, static_cast<uint16_t>(content),
                      static_cast<uint8_t>(pad));
      n = kFcgiHeaderSize;
      n = Append(out, n, cap, kCgiHead, sizeof(kCgiHead) - 1);
      n = Append(out, n, cap, kBody, body);
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

bool Watchdog::Start(uint32_t, std::string, std::string, bool) { return false; }
int32_t Watchdog::Add(int, Answer, uint16_t) { return -1; }
void Watchdog::Remove(int32_t) {}
void Watchdog::Stop() {}
void Watchdog::Run() {}
void Watchdog::Fire(size_t) { std::abort(); }

#else

bool Watchdog::Start(uint32_t timeout_ms, std::string prefix, std::string suffix, bool json) {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_ || timeout_ms == 0) return false;
  timeout_ms_ = timeout_ms;
  prefix_ = std::move(prefix);
  suffix_ = std::move(suffix);
  json_ = json;
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
  const auto period = std::chrono::milliseconds(
      timeout_ms_ / 8 < 10 ? 10 : (timeout_ms_ / 8 > 250 ? 250 : timeout_ms_ / 8));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, period);
    if (stop_ || live_ == 0) continue;
    const uint64_t now = NowMs();
    if (now - beat_ms_.load(std::memory_order_relaxed) < timeout_ms_) continue;
    uint64_t oldest = now;
    for (const Slot& s : slots_) {
      if (s.fd >= 0 && s.since_ms < oldest) oldest = s.since_ms;
    }
    if (now - oldest < timeout_ms_) continue;
    Fire(live_);
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

void Watchdog::Fire(size_t live) {
  const int listener = close_on_fire_.load(std::memory_order_relaxed);
  if (listener >= 0) {
    shutdown(listener, SHUT_RDWR);
    close(listener);
  }
  uint8_t answer[kAnswerMax];
  for (const Slot& s : slots_) {
    if (s.fd < 0) continue;
    size_t n = EncodeAnswer(s.kind, s.id, answer, sizeof(answer));
    if (n > 0) WriteAll(s.fd, answer, n);
    shutdown(s.fd, SHUT_WR);
    DrainInput(s.fd);
  }
  std::string line;
  if (json_) {
    char when[40] = "";
    std::time_t t = std::time(nullptr);
    struct tm tm;
    if (gmtime_r(&t, &tm) != nullptr) std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    line += "{\"level\":\"error\",\"time\":\"";
    line += when;
    line += "\",";
  }
  line += prefix_;
  line += std::to_string(live);
  line += suffix_;
  WriteText(line);
  _exit(kExitTimeout);
}

#endif  // _WIN32

}  // namespace watchdog
}  // namespace tsgi
