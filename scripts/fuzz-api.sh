#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis against its own OpenAPI description
# (/api/openapi.json): every operation, with generated and malformed bodies, headers, query
# and path parameters, as an admin API key. Fails on any 5xx and on any answer that is not as
# documented (status code, content type, schema), and on a request that breaks the schema
# yet is accepted. Not checked: that every request the schema allows is accepted (a string
# the schema allows need not be a valid phone number).
#
# FUZZ_EXAMPLES bounds the cases per operation (default 20); FUZZ_SEED fixes the data.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v st >/dev/null 2>&1 || python3 -m pip install --quiet 'schemathesis>=4.3,<5'
# The binary the test suite uses (same features).
cargo test --workspace --no-run --quiet
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/wagate"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export WAGATE_DATA_DIR="$work/data" WAGATE_HOST=127.0.0.1 PORT="$port" WAGATE_SANDBOX=true \
  WAGATE_LOG_FORMAT=json RUST_LOG=warn WAGATE_ADMIN_PASSWORD=fuzz-admin-password
"$bin" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
key=$("$bin" apikey create --user admin --name fuzz --scopes admin | sed -n 's/^key: //p')
token=$(curl -fsS "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username": "admin", "password": "fuzz-admin-password"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
# Credentials for each security scheme of the description (query tokens are never API keys).
cat >"$work/schemathesis.toml" <<TOML
[auth.openapi.bearer]
bearer = "$key"
[auth.openapi.api_key]
api_key = "$key"
[auth.openapi.query_token]
api_key = "$token"
TOML

fuzz() {
  st --config-file "$work/schemathesis.toml" run "http://127.0.0.1:$port/api/openapi.json" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "${FUZZ_EXAMPLES:-20}" --seed "${FUZZ_SEED:-20261202}" \
    --workers 2 --no-color "$@"
}
# Revoking an API key or disabling a user can take away the fuzzer's own key: those two
# operations run last, after every other one.
last=(--include-name "DELETE /api/v1/api-keys/{id}" --include-name "PATCH /api/v1/users/{id}")
fuzz --exclude-name "DELETE /api/v1/api-keys/{id}" --exclude-name "PATCH /api/v1/users/{id}"
fuzz "${last[@]}"
