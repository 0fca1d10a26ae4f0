{
  "targets": [
    {
      "target_name": "kiln_native",
      "sources": ["src/addon.c", "src/fswalk.c", "src/prefetch.c", "src/deflate.c", "src/deflate_walk.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra"],
      "libraries": ["-ldeflate", "-lpthread"]
    }
  ]
}
