# Shared settings for fstore's scripts; source it.
# Builds go to a persistent target dir outside the clone so CI reuses a session's build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fstore/target}"
# Link Debian's RocksDB when it is installed (seconds instead of ~20 minutes of C++).
if [ -z "${ROCKSDB_LIB_DIR:-}" ] && [ -e /usr/lib/x86_64-linux-gnu/librocksdb.so ]; then
  export ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu
fi
