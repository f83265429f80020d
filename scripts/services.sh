#!/usr/bin/env bash
# Starts and stops the throwaway services the scale-out tests run against:
# a PostgreSQL cluster (Debian's postgresql package) and an S3 server
# (versitygw, built into $BERTH_PEERS by scripts/peers.sh), both on loopback
# ports, all their state under DIR.
#
#   eval "$(scripts/services.sh start DIR)"   # prints the export lines
#   scripts/services.sh stop DIR
#
# The tests find them through BERTH_TEST_POSTGRES (a connection URL of a
# superuser) and BERTH_TEST_S3 (http://ACCESS:SECRET@HOST:PORT); each test
# makes its own database or bucket. The cluster trades durability for speed
# (fsync off): it lives for one test run.
set -euo pipefail

cmd="${1:-}"; dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
	echo "usage: $0 start|stop DIR" >&2; exit 2
fi
BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"

pgbin() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ]; then echo "$d"; return; fi
	done
	echo "services: PostgreSQL is not installed (scripts/peers.sh installs it)" >&2
	return 1
}

# as_pg runs a command as the postgres user when we are root (PostgreSQL
# refuses to run as root), else as ourselves.
# PostgreSQL's tools write to /dev/null; on machines where it is not the
# null device (some sandboxes leave a root-owned plain file there) they run
# in a private mount namespace with a real one bound over it.
as_pg() {
	if [ "$(id -u)" -ne 0 ]; then "$@"; return; fi
	if [ -c /dev/null ]; then runuser -u postgres -- "$@"; return; fi
	local null="$dir/null"
	[ -c "$null" ] || { mknod "$null" c 1 3 && chmod 666 "$null"; }
	unshare -m sh -c 'mount --bind "$0" /dev/null && exec runuser -u postgres -- "$@"' "$null" "$@"
}

freeport() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	echo "services: no free port found" >&2; return 1
}

start() {
	mkdir -p "$dir"
	chmod 755 "$dir"
	local bin; bin=$(pgbin)
	local pgdir="$dir/pg" pgport; pgport=$(freeport)
	mkdir -p "$pgdir"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$pgdir"
	as_pg "$bin/initdb" -D "$pgdir/data" -A trust -U berth --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; return 1; }
	as_pg "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -t 60 start -o \
		"-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
		>/dev/null || { cat "$pgdir/log" >&2; return 1; }

	local gw="$BERTH_PEERS/versitygw"
	if [ ! -x "$gw" ]; then
		echo "services: $gw missing (scripts/peers.sh builds it)" >&2; return 1
	fi
	local s3port; s3port=$(freeport)
	local access secret
	access=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	mkdir -p "$dir/s3"
	nohup "$gw" --access "$access" --secret "$secret" --port "127.0.0.1:$s3port" posix "$dir/s3" \
		>"$dir/versitygw.log" 2>&1 </dev/null &
	echo $! >"$dir/versitygw.pid"
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$s3port") 2>/dev/null; then break; fi
		sleep 0.1
	done
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$s3port") 2>/dev/null; then
		cat "$dir/versitygw.log" >&2; return 1
	fi
	echo "export BERTH_TEST_POSTGRES='postgres://berth@127.0.0.1:$pgport/postgres?sslmode=disable'"
	echo "export BERTH_TEST_S3='http://$access:$secret@127.0.0.1:$s3port'"
}

stop() {
	if [ -f "$dir/versitygw.pid" ]; then
		kill "$(cat "$dir/versitygw.pid")" 2>/dev/null || true
		rm -f "$dir/versitygw.pid"
	fi
	if [ -d "$dir/pg/data" ]; then
		local bin; bin=$(pgbin)
		as_pg "$bin/pg_ctl" -D "$dir/pg/data" -m immediate stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
