{
  "targets": [
    {
      "target_name": "kiln_native",
      "sources": ["src/fswalk.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra"]
    }
  ]
}
