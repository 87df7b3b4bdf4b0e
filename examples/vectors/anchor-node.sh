#!/usr/bin/env bash
# A throwaway single-validator chain (chain id 1337) for generate.js's ChainDataAnchoring vectors: Klaytn v1.12.1
# (the default) or, with --flavour kaia, Kaia v2.2.1.
#
# Klaytn and Kaia nodes alike refuse locally submitted anchoring txs (0x48/0x49/0x4a: "locally anchoring chaindata
# tx is not allowed in this node") unless started with --txpool.allow-local-anchortx, which the shared local
# clusters (scripts/localnet, either flavour) do not set. This node does, and is isolated: its own homi genesis, no
# peers, its own ports. The recipe is the same for both flavours (Kaia v2's homi/kcn take the same flags; its
# genesis turns every hard fork on at block 0, like scripts/localnet's kaia flavour).
#
#   examples/vectors/anchor-node.sh [--flavour klaytn|kaia] up     start it; prints ANCHOR_HTTP=…,
#                                                                  ANCHOR_ACCOUNTS=…, ANCHOR_FLAVOUR=… (also in $DIR/env)
#   examples/vectors/anchor-node.sh [--flavour klaytn|kaia] down   stop it (by its recorded pid), delete its dir
#
# The flavour may also come from ANCHOR_FLAVOUR. Both flavours can run at once (their dirs and ports differ):
#   klaytn: dir ${TMPDIR:-/tmp}/kengate-anchor-node,      p2p 32423, HTTP 8951, binaries $KENGATE_HOME/klaytn-v1.12.1/bin
#   kaia:   dir ${TMPDIR:-/tmp}/kengate-anchor-node-kaia, p2p 32433, HTTP 8961, binaries $KENGATE_HOME/kaia-v2.2.1/bin
# Env: ANCHOR_DIR overrides the dir. KENGATE_HOME defaults to ~/.cache/kengate; `scripts/localnet [--flavour kaia]
# install` builds the binaries.
set -euo pipefail

FLAVOUR="${ANCHOR_FLAVOUR:-klaytn}"
if [[ "${1:-}" == --flavour || "${1:-}" == --flavor ]]; then
  FLAVOUR="${2:-}"
  shift 2 || true
elif [[ "${1:-}" == --flavour=* || "${1:-}" == --flavor=* ]]; then
  FLAVOUR="${1#*=}"
  shift
fi
HOME_DIR="${KENGATE_HOME:-$HOME/.cache/kengate}"
case "$FLAVOUR" in
  klaytn)
    DIR="${ANCHOR_DIR:-${TMPDIR:-/tmp}/kengate-anchor-node}"
    BIN="$HOME_DIR/klaytn-v1.12.1/bin"
    P2P_PORT=32423
    HTTP_PORT=8951
    NETWORK_ID=13370
    RPC_APIS=klay,eth,net
    ;;
  kaia)
    DIR="${ANCHOR_DIR:-${TMPDIR:-/tmp}/kengate-anchor-node-kaia}"
    BIN="$HOME_DIR/kaia-v2.2.1/bin"
    P2P_PORT=32433
    HTTP_PORT=8961
    NETWORK_ID=13371
    # Kaia v2: `kaia` is the real namespace, `klay` an alias of it.
    RPC_APIS=kaia,klay,eth,net
    ;;
  *)
    printf 'anchor-node: error: unknown flavour %s (klaytn or kaia)\n' "'$FLAVOUR'" >&2
    exit 2
    ;;
esac
CHAIN_ID=1337

say() { printf 'anchor-node: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

rpc_head() {
  curl -sS --max-time 2 -H 'Content-Type: application/json' \
    --data '{"jsonrpc":"2.0","id":1,"method":"klay_blockNumber","params":[]}' "http://127.0.0.1:$HTTP_PORT" 2>/dev/null |
    python3 -c 'import json,sys; print(int(json.load(sys.stdin)["result"], 16))'
}

up() {
  for b in homi kcn; do [[ -x "$BIN/$b" ]] || die "$BIN/$b missing (run scripts/localnet --flavour $FLAVOUR install)"; done
  if [[ -s "$DIR/pid" ]] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
    say "already running (pid $(cat "$DIR/pid"))"
    cat "$DIR/env"
    return
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  # homi `local` tries to fetch Grafana dashboards; a closed loopback proxy makes that fail at once.
  (cd "$DIR" && HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
    http_proxy=http://127.0.0.1:9 NO_PROXY='' no_proxy='' "$BIN/homi" setup --gen-type local --cn-num 1 \
    --test-num 2 --chainID "$CHAIN_ID" --network-id "$NETWORK_ID" --p2p-port "$P2P_PORT" -o "$DIR/homi") \
    >"$DIR/homi.log" 2>&1 || die "homi setup failed (see $DIR/homi.log)"
  mkdir -p "$DIR/data/klay"
  cp "$DIR/homi/keys/nodekey1" "$DIR/data/klay/nodekey"
  echo '[]' >"$DIR/data/klay/static-nodes.json"
  "$BIN/kcn" init --datadir "$DIR/data" "$DIR/homi/scripts/genesis.json" >"$DIR/init.log" 2>&1 ||
    die "genesis init failed (see $DIR/init.log)"
  local rewardbase
  rewardbase="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Address"])' "$DIR/homi/keys/validator1")"
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$DIR/pid" "$BIN/kcn" --datadir "$DIR/data" \
    --port "$P2P_PORT" --networkid "$NETWORK_ID" --nodiscover --nat none --netrestrict 127.0.0.0/8 --ntp.disable \
    --ipcdisable --rpc --rpcaddr 127.0.0.1 --rpcport "$HTTP_PORT" --rpcapi "$RPC_APIS" \
    --rewardbase "$rewardbase" --block-generation-interval 1 --txpool.allow-local-anchortx \
    --db.leveldb.cache-size 16 --state.cache-size 32 >"$DIR/node.log" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 60; i++)); do
    if [[ "$(rpc_head 2>/dev/null || echo 0)" -ge 2 ]]; then break; fi
    sleep 1
  done
  [[ "$(rpc_head 2>/dev/null || echo 0)" -ge 2 ]] || die "no blocks after 60 s (see $DIR/node.log)"
  python3 - "$DIR/homi/keys_test" "$DIR/accounts.json" <<'EOF'
import json, os, sys
d, out = sys.argv[1], sys.argv[2]
accs = []
for i in (1, 2):
    key = open(os.path.join(d, "testkey%d" % i)).read().strip().lower()
    key = key[2:] if key.startswith("0x") else key
    addr = [f for f in os.listdir(os.path.join(d, "keystore%d" % i)) if f.lower().startswith("0x")][0].lower()
    accs.append({"address": addr, "privateKey": "0x" + key})
json.dump(accs, open(out, "w"), indent=1)
EOF
  printf 'ANCHOR_HTTP=http://127.0.0.1:%s\nANCHOR_ACCOUNTS=%s\nANCHOR_FLAVOUR=%s\n' "$HTTP_PORT" "$DIR/accounts.json" \
    "$FLAVOUR" >"$DIR/env"
  say "$FLAVOUR up (pid $(cat "$DIR/pid"))"
  cat "$DIR/env"
}

down() {
  if [[ -s "$DIR/pid" ]]; then
    local pid
    pid="$(cat "$DIR/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
  fi
  rm -rf "$DIR"
  say "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 [--flavour klaytn|kaia] up|down" ;;
esac
