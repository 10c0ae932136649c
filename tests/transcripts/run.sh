#!/usr/bin/env bash
# Drive the transcript replayer against freshly started servers.
#
#   run.sh golden      regenerate every *.expected from nats-server (REF_SERVER)
#   run.sh selfcheck   replay each transcript against two separate REF_SERVER
#                      processes and diff them (proves masking/quiet-wait are stable)
#   run.sh check       replay against CAND_SERVER (default: REF_SERVER) and
#                      compare with the *.expected golden files
#   run.sh diff        replay against REF_SERVER and CAND_SERVER side by side
#
# Environment:
#   REF_SERVER   reference binary (default: nats-server)
#   CAND_SERVER  candidate binary, e.g. target/debug/natrix (default: REF_SERVER).
#                It must accept: -a HOST -p PORT [--user U --pass P] [--auth TOKEN]
#                [-c FILE]
#   REPLAY       where to build the replayer (default: /tmp/natrix-replay)
#   QUIET_MS     quiet time per step in ms (default: replayer default, 150)
#   ONLY         restrict to one suite: core, auth, token or max_subs
#
# Exit status is non-zero if any transcript differs.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
MODE=${1:-check}
REF_SERVER=${REF_SERVER:-nats-server}
CAND_SERVER=${CAND_SERVER:-$REF_SERVER}
REPLAY=${REPLAY:-/tmp/natrix-replay}
LOGDIR=$(mktemp -d /tmp/natrix-transcripts.XXXXXX)

rustc --edition 2021 -O "$HERE/replay.rs" -o "$REPLAY"

EXTRA=()
if [[ -n "${QUIET_MS:-}" ]]; then EXTRA+=(--quiet-ms "$QUIET_MS"); fi

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# start_server BIN FLAGS... ; sets ADDR
start_server() {
    local bin=$1; shift
    local port
    port=$("$REPLAY" --free-port)
    "$bin" -a 127.0.0.1 -p "$port" "$@" >"$LOGDIR/$(basename "$bin")-$port.log" 2>&1 &
    PIDS+=($!)
    ADDR=127.0.0.1:$port
    "$REPLAY" --wait-for "$ADDR"
}

stop_all() {
    cleanup
    PIDS=()
}

# suite name, directory, server flags
SUITES=(
    "core|$HERE|"
    "auth|$HERE/auth|--user u --pass p"
    "token|$HERE/token|--auth s3cret"
    "max_subs|$HERE/max_subs|-c $HERE/max_subs/server.conf"
)

status=0
for s in "${SUITES[@]}"; do
    IFS='|' read -r name dir flags <<<"$s"
    if [[ -n "${ONLY:-}" && "$ONLY" != "$name" ]]; then continue; fi
    # shellcheck disable=SC2206
    f=($flags)
    echo "=== suite $name ($dir) flags: ${flags:-none}" >&2
    case "$MODE" in
        golden)
            start_server "$REF_SERVER" "${f[@]}"
            "$REPLAY" --server "$ADDR" --write-expected "${EXTRA[@]}" "$dir" >/dev/null || status=1
            ;;
        selfcheck)
            start_server "$REF_SERVER" "${f[@]}"; A=$ADDR
            start_server "$REF_SERVER" "${f[@]}"; B=$ADDR
            "$REPLAY" --server "$A" --server2 "$B" "${EXTRA[@]}" "$dir" || status=1
            ;;
        check)
            start_server "$CAND_SERVER" "${f[@]}"
            "$REPLAY" --server "$ADDR" --check "${EXTRA[@]}" "$dir" || status=1
            ;;
        diff)
            start_server "$REF_SERVER" "${f[@]}"; A=$ADDR
            start_server "$CAND_SERVER" "${f[@]}"; B=$ADDR
            "$REPLAY" --server "$A" --server2 "$B" "${EXTRA[@]}" "$dir" || status=1
            ;;
        *)
            echo "unknown mode $MODE (golden|selfcheck|check|diff)" >&2
            exit 2
            ;;
    esac
    stop_all
done
if [[ $status -eq 0 ]]; then rm -rf "$LOGDIR"; else echo "server logs kept in $LOGDIR" >&2; fi
exit $status
