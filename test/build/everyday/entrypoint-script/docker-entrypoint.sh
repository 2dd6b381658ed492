#!/bin/bash
# The official database images' entrypoint shape: first-run setup as root, then drop to the service
# user and exec the command so it becomes PID 1 and gets the signals.
set -Eeo pipefail
if [ "${1:0:1}" = '-' ]; then
	set -- appd "$@"
fi
if [ "$1" = 'appd' ] && [ "$(id -u)" = '0' ]; then
	mkdir -p "$APPDATA"
	chown -R appd:appd "$APPDATA"
	exec setpriv --reuid=appd --regid=appd --init-groups "$BASH_SOURCE" "$@"
fi
exec "$@"
