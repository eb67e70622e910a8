#!/usr/bin/env bash
# Runs every test of wagate on a fresh Debian machine: installs what the tests need (Chromium
# and its driver for the browser tests, the database servers, schemathesis for the API fuzz),
# starts the servers, then runs the whole suite (on SQLite), the server's integration tests again
# on PostgreSQL and on MariaDB, the API fuzz and the systemd unit check. The browser tests'
# screenshots are kept in artifacts/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
ls /etc/postgresql/*/main >/dev/null 2>&1 || missing+=(postgresql)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Database servers (the store's PostgreSQL and MariaDB tests use them); starting twice is harmless.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! mariadb-admin --protocol=tcp -h 127.0.0.1 -u root status >/dev/null 2>&1; then
  as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql || true
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# The server's integration tests, and the cluster's failover between processes, once more on
# PostgreSQL and on MariaDB, both at once (each test makes a schema or database of its own): the
# binaries the run above built, nothing rebuilt.
server_tests=$(cargo test --workspace --no-run --message-format=json "$@" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["kind"] == ["test"] and m.get("executable") \
            and ("wagate-server@" in m["package_id"] or m["target"]["name"] == "cluster_failover"):
        print(m["executable"])')
# The cluster's failover (three nodes and 60 WhatsApp clients per test) runs on one database at a
# time, after the others: its 30 s deadlines are about failover, not about sharing two cores.
cluster_tests=$(grep '/cluster_failover-' <<<"$server_tests" || true)
server_tests=$(grep -v '/cluster_failover-' <<<"$server_tests" || true)
for database in postgres mysql; do
  (
    cd crates/server
    for binary in $server_tests; do
      echo "on $database: $(basename "$binary")"
      WAGATE_TEST_DATABASE=$database "$binary" || echo "FAILED on $database: $(basename "$binary")"
    done
  ) >"$log.$database" 2>&1 &
done
wait
for database in postgres mysql; do
  (
    cd crates/server
    for binary in $cluster_tests; do
      echo "on $database: $(basename "$binary")"
      WAGATE_TEST_DATABASE=$database "$binary" || echo "FAILED on $database: $(basename "$binary")"
    done
  ) >>"$log.$database" 2>&1
done
for database in postgres mysql; do
  cat "$log.$database" >>"$log"
  if grep -q "^FAILED on $database" "$log.$database"; then
    grep -E "^(FAILED on|---- |thread .* panicked)" -A3 "$log.$database" | head -n 120
    mkdir -p artifacts
    cp "$log.$database" "artifacts/server-tests-$database.log"
    echo "server tests on $database: failures (above; the whole output in artifacts/server-tests-$database.log)" >&2
    status=1
  else
    echo "server tests on $database: $(grep -c '^test result: ok' "$log.$database") binaries passed"
  fi
  rm -f "$log.$database"
done
# The API against its own description: schemathesis, a bounded number of cases per operation.
if ! FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-10}" ./scripts/fuzz-api.sh >"$log.fuzz" 2>&1; then
  tail -n 80 "$log.fuzz"
  echo "scripts/fuzz-api.sh: failures (above)" >&2
  status=1
else
  grep -E "generated, .* passed" "$log.fuzz" | sed 's/^/fuzz: /'
fi
rm -f "$log.fuzz"
# The systemd unit in deploy/ must load, pointed at the binary these tests built.
unit_dir=$(mktemp -d)
sed "s#/usr/local/bin/wagate#$(realpath "${CARGO_TARGET_DIR:-target}")/debug/wagate#" deploy/wagate.service \
  >"$unit_dir/wagate.service"
if systemd-analyze verify "$unit_dir/wagate.service"; then
  echo "deploy/wagate.service: verified"
else
  echo "deploy/wagate.service: systemd-analyze verify failed" >&2
  status=1
fi
rm -rf "$unit_dir"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
[ -d artifacts/screenshots ] && echo "browser screenshots: artifacts/screenshots/"
exit "$status"
