#!/usr/bin/env bash
# Starts a local Redis on 127.0.0.1:6379 for the job queue unless one already answers there.
set -euo pipefail
port="${REDIS_PORT:-6379}"
if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
  exit 0
fi
dir="${REDIS_DIR:-/var/lib/evidence-redis}"
mkdir -p "$dir"
redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --dir "$dir" \
  --appendonly yes --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
for _ in $(seq 1 50); do
  redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "redis-server did not answer on 127.0.0.1:$port (see $dir/redis.log)" >&2
exit 1
