/*
 * bench:e2e rows "scgi-floor" and "uwsgi-floor": the least any SCGI or uwsgi backend can do
 * behind nginx, which opens one connection per request for both. One process, blocking sockets,
 * the loop uWSGI runs with one process and no threads: accept, read until the request head is
 * whole (SCGI netstring, or uwsgi's 4-byte header and vars block; the GET body is empty), write
 * one fixed answer, close. No variable is decoded and no app runs. bench/e2e.ts builds it with
 * the system C compiler into its temporary directory.
 *
 *   floor scgi|uwsgi PORT      (listens on 127.0.0.1:PORT)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char kScgi[] =
    "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n";
static const char kUwsgi[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n";

/* Bytes of the request head in buf[0..n), or 0 while it is not whole. */
static size_t scgi_head(const unsigned char *buf, size_t n) {
  size_t len = 0, i = 0;
  for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) len = len * 10 + (size_t)(buf[i] - '0');
  if (i == n || buf[i] != ':') return 0;
  return n >= i + 1 + len + 1 ? i + 1 + len + 1 : 0;
}

static size_t uwsgi_head(const unsigned char *buf, size_t n) {
  if (n < 4) return 0;
  size_t len = 4 + (size_t)buf[1] + ((size_t)buf[2] << 8);
  return n >= len ? len : 0;
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "scgi") != 0 && strcmp(argv[1], "uwsgi") != 0)) {
    fprintf(stderr, "usage: floor scgi|uwsgi PORT\n");
    return 2;
  }
  int scgi = strcmp(argv[1], "scgi") == 0;
  const char *answer = scgi ? kScgi : kUwsgi;
  size_t answer_len = strlen(answer);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[2]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 4096) != 0) {
    perror("floor: listen");
    return 1;
  }
  static unsigned char buf[65536 + 4];
  for (;;) {
    int c = accept(ls, NULL, NULL);
    if (c < 0) continue;
    size_t n = 0;
    for (;;) {
      ssize_t r = read(c, buf + n, sizeof buf - n);
      if (r <= 0) break;
      n += (size_t)r;
      if ((scgi ? scgi_head(buf, n) : uwsgi_head(buf, n)) != 0) {
        if (write(c, answer, answer_len) < 0) perror("floor: write");
        break;
      }
      if (n == sizeof buf) break;
    }
    close(c);
  }
}
