#!/usr/bin/env bash
# Runs k6 from its official image (grafana/k6) as if it were on PATH:
# host networking, so 127.0.0.1 is the machine's, and the repository mounted
# at the same relative paths, so `k6/docker.sh run k6/spike.js` works from
# the repository root. The Makefile uses it when no k6 is on PATH: k6 is
# AGPL-licensed, so this project runs it as a separate program and never
# builds it into or beside its own code.
set -euo pipefail
command -v docker >/dev/null 2>&1 || {
  echo "k6/docker.sh: neither k6 nor docker is installed; install k6 (https://grafana.com/docs/k6/latest/set-up/install-k6/) or docker, or set K6=/path/to/k6" >&2
  exit 2
}
root=$(cd "$(dirname "$0")/.." && pwd)
# The scripts read their parameters from upper-case variables (k6/lib.js
# env()); pass those through, but not the host's own PATH, HOME and the like.
pass=()
while IFS= read -r name; do
  case $name in PATH|HOME|USER|SHELL|PWD|OLDPWD|HOSTNAME|TERM|LANG|SHLVL|TMPDIR|LOGNAME|MAIL|_) continue ;; esac
  pass+=(-e "$name")
done < <(compgen -e | grep -E '^[A-Z][A-Z0-9_]*$')
exec docker run --rm -i --network host --user "$(id -u):$(id -g)" \
  -v "$root:$root" -w "$PWD" "${pass[@]}" "${K6_IMAGE:-grafana/k6:1.8.1}" "$@"
