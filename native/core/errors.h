// Error numbers of the native codec. The order is the order of ERROR_CODES in
// lib/codec/errors.ts (index 0 means "no error"); keep the two in sync.
#ifndef TSGI_CORE_ERRORS_H_
#define TSGI_CORE_ERRORS_H_

#include <cstdint>

namespace tsgi {

enum class Err : int32_t {
  kNone = 0,
  kFcgiBadVersion = 1,
  kFcgiRecordTooLarge = 2,
  kFcgiBadRequestId = 3,
  kFcgiBadBegin = 4,
  kFcgiBadEnd = 5,
  kFcgiBadUnknownType = 6,
  kFcgiBadParams = 7,
  kFcgiParamsTooLarge = 8,
  kFcgiTooManyParams = 9,
  kScgiBadNetstring = 10,
  kScgiHeadersTooLarge = 11,
  kScgiBadHeaders = 12,
  kScgiNoContentLength = 13,
  kScgiBadContentLength = 14,
  kScgiNoScgi = 15,
  kScgiTooManyParams = 16,
  kUwsgiBadModifier = 17,
  kUwsgiHeadersTooLarge = 18,
  kUwsgiBadVars = 19,
  kUwsgiBadContentLength = 20,
  kUwsgiTooManyParams = 21,
  kHeadBadStatus = 22,
  kHeadBadName = 23,
  kHeadBadValue = 24,
  kEncodeNotLatin1 = 25,
  kEncodeTooLarge = 26,
  kEncodeBadArgument = 27,
};

// Message variants (the `variant` argument of errorMessage() in lib/codec/errors.ts).
constexpr int32_t kVariantNetstringLength = 0;  // SCGI_BAD_NETSTRING: malformed length
constexpr int32_t kVariantNetstringComma = 1;   // SCGI_BAD_NETSTRING: no ','
constexpr int32_t kVariantRecordTooLarge = 0;   // ENCODE_TOO_LARGE: record content
constexpr int32_t kVariantUwsgiTooLarge = 1;    // ENCODE_TOO_LARGE: uwsgi vars block
constexpr int32_t kVariantInvalidArgument = 0;  // ENCODE_BAD_ARGUMENT: invalid argument
constexpr int32_t kVariantOddHeaders = 1;       // ENCODE_BAD_ARGUMENT: headers not pairs
constexpr int32_t kVariantOddPairs = 2;         // ENCODE_BAD_ARGUMENT: pairs not pairs
constexpr int32_t kVariantScgiNul = 3;          // ENCODE_BAD_ARGUMENT: NUL in SCGI header

// An error as a value: the code, the message variant and the numbers the message names
// (`a` is N/V/T, `b` is M/I; for HEAD_BAD_NAME/HEAD_BAD_VALUE `a` is the index of the
// offending header name in the flat headers array). Numbers are doubles so that a limit
// given by the caller and a 10-digit netstring length both pass through exactly.
struct Error {
  Err code = Err::kNone;
  int32_t variant = 0;
  double a = 0;
  double b = 0;

  bool ok() const { return code == Err::kNone; }
};

inline Error MakeError(Err code, double a = 0, double b = 0, int32_t variant = 0) {
  Error e;
  e.code = code;
  e.variant = variant;
  e.a = a;
  e.b = b;
  return e;
}

}  // namespace tsgi

#endif  // TSGI_CORE_ERRORS_H_
