// The check macro of the native unit tests: a failed CHECK prints where and goes on; the
// test binary's main() ends with `return CheckReport();`.
#ifndef TSGI_TEST_CHECK_H
#define TSGI_TEST_CHECK_H

#include <cstdio>

inline int g_failures = 0;
inline int g_checks = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    ++g_checks;                                                              \
    if (!(cond)) {                                                           \
      ++g_failures;                                                          \
      std::fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond); \
    }                                                                        \
  } while (0)

// Prints the counts; the binary's exit status (0 when every check passed).
inline int CheckReport() {
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}

#endif  // TSGI_TEST_CHECK_H
