#!/usr/bin/env bash
# Starts or stops the test servers on 127.0.0.1, each on a free port:
#   scripts/services.sh start DIR   starts redis-server and tansu, writes DIR/env
#                                   (FSTORE_REDIS_URL, FSTORE_KAFKA_BROKERS) and DIR/*.pid
#   scripts/services.sh stop DIR    stops them by pid
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?state dir}
mkdir -p "$dir"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # file pattern seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

case "$cmd" in
start)
  rport=$(free_port)
  redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no \
    --daemonize no --logfile "$dir/redis.log" &
  echo $! > "$dir/redis.pid"
  if ! wait_for "$dir/redis.log" "Ready to accept connections" 20; then
    echo "services: redis-server did not start; log:" >&2; cat "$dir/redis.log" >&2; exit 1
  fi

  kport=$(free_port)
  tansu=$("$(dirname "$0")/tansu-path.sh") || { echo "services: tansu not found; run scripts/setup.sh" >&2; exit 1; }
  (cd "$dir" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$kport" \
     --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine memory://tansu/ \
     > "$dir/tansu.log" 2>&1) &
  echo $! > "$dir/tansu.pid"
  for _ in $(seq 1 300); do
    (echo > "/dev/tcp/127.0.0.1/$kport") 2>/dev/null && break
    sleep 0.1
  done
  if ! (echo > "/dev/tcp/127.0.0.1/$kport") 2>/dev/null; then
    echo "services: tansu did not start; log:" >&2; cat "$dir/tansu.log" >&2; exit 1
  fi
  cat > "$dir/env" <<ENV
export FSTORE_REDIS_URL=redis://127.0.0.1:$rport/0
export FSTORE_KAFKA_BROKERS=127.0.0.1:$kport
ENV
  echo "services: redis on 127.0.0.1:$rport (pid $(cat "$dir/redis.pid")), tansu on 127.0.0.1:$kport (pid $(cat "$dir/tansu.pid"))"
  ;;
stop)
  for s in tansu redis; do
    if [ -f "$dir/$s.pid" ]; then
      pid=$(cat "$dir/$s.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$s.pid"
    fi
  done
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
