#!/usr/bin/env bash
# Zero-downtime deploy of a new release with docker compose (docs/deploy.md).
#
#   scripts/deploy.sh            # build, migrate, roll web replicas, restart workers and beat
#
# 1. build the new image; 2. migrate (expand-only migrations: the old release keeps running on
# the new schema); 3. drain each web replica in turn (/ready 503: the proxy stops sending it
# requests), replace it, and wait until the new one is healthy (/ready) before touching the
# next, so the proxy always has one serving; 4. restart workers
# warm (SIGTERM: running tasks finish or go back to the queue) and beat.
set -euo pipefail
cd "$(dirname "$0")/.."

WEB_REPLICAS=${WEB_REPLICAS:-"web web-2"}
WORKERS=${WORKERS:-"worker"}
TIMEOUT=${DEPLOY_READY_TIMEOUT:-120}

wait_healthy() {
    local service=$1 deadline=$((SECONDS + TIMEOUT)) container status
    container=$(docker compose ps -q "$service")
    while ((SECONDS < deadline)); do
        status=$(docker inspect --format '{{.State.Health.Status}}' "$container" 2>/dev/null || true)
        if [[ $status == healthy ]]; then
            echo "deploy: $service is healthy"
            return 0
        fi
        sleep 2
    done
    echo "deploy: $service did not become healthy in ${TIMEOUT}s; stopping the rollout" >&2
    docker compose logs --tail 50 "$service" >&2
    return 1
}

echo "deploy: building"
docker compose build
echo "deploy: migrating"
docker compose run --rm migrate
for web in $WEB_REPLICAS; do
    echo "deploy: draining $web"
    # /ready answers 503 from now on: the proxy's health check (every second) takes the
    # replica out before it stops, so no request is sent to a closing socket.
    docker compose exec -T "$web" sh -c 'touch "$READY_DRAIN_FILE"'
    sleep "${DRAIN_SECONDS:-5}"
    echo "deploy: replacing $web"
    docker compose up -d --no-deps --force-recreate "$web"
    wait_healthy "$web"
done
for worker in $WORKERS; do
    echo "deploy: restarting $worker (warm)"
    docker compose up -d --no-deps --force-recreate "$worker"
    wait_healthy "$worker"
done
docker compose up -d --no-deps --force-recreate beat
wait_healthy beat
echo "deploy: done"
