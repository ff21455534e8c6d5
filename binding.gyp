{
  "variables": {
    # `node-gyp rebuild --sanitize=true` (or npm_config_sanitize=true) builds with ASan+UBSan.
    "sanitize%": "false",
  },
  "targets": [
    {
      "target_name": "tsgi",
      "sources": [
        "native/binding/codec.cc",
        "native/binding/module.cc",
        "native/binding/transport.cc",
        "native/binding/watchdog.cc",
        "native/core/fastcgi.cc",
        "native/core/head.cc",
        "native/core/names.cc",
        "native/core/params.cc",
        "native/core/scgi.cc",
        "native/core/uwsgi.cc",
        "native/core/watchdog.cc",
        "native/transport/transport.cc",
      ],
      "include_dirs": ["native"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc!": ["-std=gnu++14", "-std=gnu++17", "-std=gnu++20"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fno-exceptions", "-fno-rtti"],
      "xcode_settings": {
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_ENABLE_CPP_EXCEPTIONS": "NO",
        "GCC_ENABLE_CPP_RTTI": "NO",
        "GCC_TREAT_WARNINGS_AS_ERRORS": "YES",
        "MACOSX_DEPLOYMENT_TARGET": "10.15",
        "WARNING_CFLAGS": ["-Wall", "-Wextra"],
      },
      "msvs_settings": {
        "VCCLCompilerTool": {
          "AdditionalOptions": ["/std:c++17", "/W4", "/WX"],
          "ExceptionHandling": 0,
          "RuntimeTypeInfo": "false",
        },
      },
      "conditions": [
        [
          "OS=='win'",
          {
            "defines": ["_HAS_EXCEPTIONS=0", "_CRT_SECURE_NO_WARNINGS"],
          },
        ],
        [
          "sanitize=='true'",
          {
            "cflags": [
              "-fsanitize=address,undefined",
              "-fno-sanitize-recover=undefined",
              "-fno-omit-frame-pointer",
              "-g",
            ],
            "ldflags": ["-fsanitize=address,undefined"],
            "xcode_settings": {
              "OTHER_CFLAGS": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"],
              "OTHER_LDFLAGS": ["-fsanitize=address,undefined"],
            },
          },
        ],
      ],
    },
    {
      # The CGI program of mod_cgi-only hosts (docs/hosting.md): a plain C executable, no Node.
      "target_name": "tsgi-cgi-bridge",
      "type": "executable",
      "sources": ["native/bridge/tsgi-cgi-bridge.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"],
      "xcode_settings": {"GCC_TREAT_WARNINGS_AS_ERRORS": "YES"},
      "conditions": [["OS=='win'", {"type": "none", "sources": []}]],
    },
  ],
}
