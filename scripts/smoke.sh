#!/usr/bin/env bash
# curl smoke test: calls every endpoint of a running digitgen service, checks status codes,
# content types and PNG signatures. One line per check; exits non-zero on the first failure.
# Usage: scripts/smoke.sh http://127.0.0.1:8000   (set DIGITGEN_API_KEY if the service needs it)
set -euo pipefail
BASE="${1:-http://127.0.0.1:8000}"
BASE="${BASE%/}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
AUTH=()
[ -n "${DIGITGEN_API_KEY:-}" ] && AUTH=(-H "Authorization: Bearer ${DIGITGEN_API_KEY}")
PASSED=0

fail() { echo "FAIL  $*"; exit 1; }

# check NAME EXPECTED_STATUS EXPECTED_TYPE_PREFIX [curl args...]; the body lands in $TMP/body
check() {
  local name="$1" want_status="$2" want_type="$3"; shift 3
  local out
  out="$(curl -sS -o "$TMP/body" -w '%{http_code} %{content_type}' "${AUTH[@]}" "$@")" || fail "$name: curl error"
  local status="${out%% *}" type="${out#* }"
  [ "$status" = "$want_status" ] || fail "$name: status $status, expected $want_status: $(head -c 300 "$TMP/body")"
  case "$type" in "$want_type"*) ;; *) fail "$name: content type '$type', expected '$want_type'";; esac
  if [ "$want_type" = "image/png" ]; then
    [ "$(head -c 8 "$TMP/body" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$name: not a PNG"
  fi
  PASSED=$((PASSED + 1))
  echo "ok    $name ($status, $type, $(wc -c < "$TMP/body") bytes)"
}

check "healthz"                   200 application/json "$BASE/healthz"
check "readyz"                    200 application/json "$BASE/readyz"
check "models"                    200 application/json "$BASE/models"
grep -q '"weights_sha256"' "$TMP/body" || fail "models: no weights_sha256"
check "sample gan png"            200 image/png "$BASE/sample?model=gan&seed=1"
cp "$TMP/body" "$TMP/digit.png"
check "sample gan same seed"      200 image/png "$BASE/sample?model=gan&seed=1"
cmp -s "$TMP/body" "$TMP/digit.png" || fail "sample: same seed gave different bytes"
check "sample X-Seed header"      200 image/png -D "$TMP/headers" "$BASE/sample?model=vae&seed=77"
grep -qi '^x-seed: 77' "$TMP/headers" || fail "sample: X-Seed header missing"
check "sample grid png"           200 image/png "$BASE/sample?model=vae&n=16&nrow=4&scale=2"
check "sample json"               200 application/json "$BASE/sample?model=gan&n=2&format=json"
grep -q '"png_base64"' "$TMP/body" || fail "sample json: no png_base64"
check "sample npy"                200 application/x-npy "$BASE/sample?model=gan&n=64&format=npy"
[ "$(head -c 6 "$TMP/body" | tail -c 5)" = "NUMPY" ] || fail "sample npy: not an .npy file"
check "sample digit"              200 image/png "$BASE/sample?model=gan&digit=3&n=4&seed=2"
check "reconstruct multipart"     200 image/png -F "image=@$TMP/digit.png;type=image/png" "$BASE/reconstruct?model=vae"
check "reconstruct raw body"      200 image/png -H 'Content-Type: image/png' --data-binary "@$TMP/digit.png" "$BASE/reconstruct?model=vae&side_by_side=true"
check "encode"                    200 application/json -F "image=@$TMP/digit.png" "$BASE/encode?model=vae"
grep -q '"mu"' "$TMP/body" || fail "encode: no mu"
check "decode"                    200 image/png -H 'Content-Type: application/json' -d '{"model":"vae-normal","latents":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]}' "$BASE/decode"
check "interpolate get"           200 image/png "$BASE/interpolate?model=gan&seed_a=1&seed_b=2&steps=8"
check "interpolate post images"   200 image/png -F "image_a=@$TMP/digit.png" -F "image_b=@$TMP/digit.png" "$BASE/interpolate?model=vae&steps=5"
check "dataset npz"               200 application/x-npz -D "$TMP/headers" "$BASE/dataset?n=100&seed=1"
grep -qi '^x-label-source: generator' "$TMP/headers" || fail "dataset: default model's labels are not exact"
[ "$(head -c 2 "$TMP/body")" = "PK" ] || fail "dataset npz: not a zip archive"
check "dataset tar"               200 application/x-tar "$BASE/dataset?n=10&seed=1&format=tar"
check "metrics"                   200 text/plain "$BASE/metrics"
grep -q 'digitgen_requests_total' "$TMP/body" || fail "metrics: no request counter"
check "openapi"                   200 application/json "$BASE/openapi.json"
check "docs"                      200 text/html "$BASE/docs"
check "unknown model 404"         404 application/json "$BASE/sample?model=nope"
check "bad n 422"                 422 application/json "$BASE/sample?model=gan&n=0"
check "undecodable image 400"     400 application/json -H 'Content-Type: image/png' --data-binary 'not a png' "$BASE/reconstruct"
check "wrong media type 415"      415 application/json -H 'Content-Type: text/plain' --data-binary 'hello' "$BASE/reconstruct"
check "oversized headers 431"     431 application/json -H "X-Big: $(head -c 70000 /dev/zero | tr '\0' a)" "$BASE/healthz"
check "still serving"             200 application/json "$BASE/healthz"
echo "$PASSED passed, 0 failed"
