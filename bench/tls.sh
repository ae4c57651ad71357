#!/usr/bin/env bash
# bench/tls.sh — full TLS handshakes per second with an ECDSA P-256 certificate: the
# edge's TLS stack (Go, supervisor/edge/certs: policy + GetCertificate, file mode) vs
# Debian's nginx 1.22 (OpenSSL 3.0, 2 workers), same certificate, same client, same run.
#
# Every request is a new TCP connection and a full handshake (session tickets and caches
# off on both servers, no client session cache), then one HTTP/1.1 GET with
# Connection: close. The load driver is bench/cmd/tlsbench (closed loop, CONC
# connections); it skips certificate verification so that its own CPU goes to
# handshakes, and reads the servers' CPU time from /proc, so the table also shows
# handshakes per server CPU second (less sensitive to the client sharing the 2 cores).
# Rounds alternate nginx and Go; the table shows medians. Everything listens on 127.0.0.1.
#
# Scenarios (client key shares / protocol):
#   tls13-x25519    TLS 1.3, client offers X25519 only (what both servers then use)
#   tls13-default   TLS 1.3, Go's default client shares (X25519MLKEM768 + X25519): Go's
#                   server picks the hybrid post-quantum group, nginx (OpenSSL 3.0)
#                   can only do X25519 — more work for Go, and more security
#   tls13-p256      TLS 1.3, client offers P-256 only
#   tls12-x25519    TLS 1.2, ECDHE-ECDSA-AES128-GCM-SHA256 over X25519
# ("x25519" clients also list P-256, without a key share for it: OpenSSL refuses a TLS 1.2
# client whose groups lack the ECDSA certificate's curve.)
#
#   DURATION   per run (default 10s)       ROUNDS   rounds per scenario (default 3)
#   CONC       concurrent connections (default 16)
#   GO_PROCS   GOMAXPROCS of the Go server (default: all cores)
#   SCENARIOS  subset, space separated (default: all four)
#   RESULT     output (default bench/results/tls.json)
# Needs: go, nginx (apt-get install -y nginx; its service is not used), python3.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-16}
GO_PROCS=${GO_PROCS:-}
SCENARIOS=${SCENARIOS:-tls13-x25519 tls13-default tls13-p256 tls12-x25519}
RESULT=${RESULT:-bench/results/tls.json}

command -v nginx >/dev/null || { echo "tls.sh: nginx not found (apt-get install -y nginx)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "tls.sh: python3 not found" >&2; exit 1; }

work=$(mktemp -d /tmp/corpintel-tlsbench-XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

log() { printf '[tls.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
	local port=$1 i
	for ((i = 0; i < 100; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "tls.sh: nothing listens on 127.0.0.1:$port" >&2
	return 1
}

log "building bench/cmd/tlsbench"
go build -o "$work/tlsbench" ./bench/cmd/tlsbench
"$work/tlsbench" gencert -dir "$work" -name edge.corpintel.test

# --- nginx: foreground, 2 workers, loopback, same certificate and policy ------------
nginx_port=$(free_port)
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/nginx/tmp/body;
	proxy_temp_path $work/nginx/tmp/proxy;
	fastcgi_temp_path $work/nginx/tmp/fastcgi;
	uwsgi_temp_path $work/nginx/tmp/uwsgi;
	scgi_temp_path $work/nginx/tmp/scgi;
	server_tokens off;
	keepalive_timeout 0;
	server {
		listen 127.0.0.1:$nginx_port ssl;
		server_name edge.corpintel.test;
		ssl_certificate $work/cert.pem;
		ssl_certificate_key $work/key.pem;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
		ssl_ecdh_curve X25519:prime256v1:secp384r1;
		ssl_session_tickets off;
		ssl_session_cache off;
		location / { default_type text/plain; return 200 "ok\n"; }
	}
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_port "$nginx_port"
nginx_workers=$(pgrep -P "$nginx_pid" | paste -sd, -)
[[ -n $nginx_workers ]] || { echo "tls.sh: no nginx workers" >&2; exit 1; }

# --- the edge's TLS stack -------------------------------------------------------------
go_port=$(free_port)
if [[ -n $GO_PROCS ]]; then export GOMAXPROCS=$GO_PROCS; fi
"$work/tlsbench" serve -addr "127.0.0.1:$go_port" -cert "$work/cert.pem" -key "$work/key.pem" >"$work/go.out" 2>&1 &
go_pid=$!
pids+=("$go_pid")
unset GOMAXPROCS
wait_port "$go_port"

load() { # scenario server port pids
	local scenario=$1 server=$2 port=$3 spids=$4 curves tlsv
	case $scenario in
		tls13-x25519) curves=x25519 tlsv=1.3 ;;
		tls13-default) curves=default tlsv=1.3 ;;
		tls13-p256) curves=p256 tlsv=1.3 ;;
		tls12-x25519) curves=x25519 tlsv=1.2 ;;
		*) echo "tls.sh: unknown scenario $scenario" >&2; exit 1 ;;
	esac
	"$work/tlsbench" load -addr "127.0.0.1:$port" -sni edge.corpintel.test -conc "$CONC" -duration "$DURATION" \
		-curves "$curves" -tls "$tlsv" -pids "$spids" |
		python3 -c 'import json,sys; r=json.load(sys.stdin); r["scenario"]=sys.argv[1]; r["server"]=sys.argv[2]; r["round"]=int(sys.argv[3]); print(json.dumps(r))' \
			"$scenario" "$server" "$round" >>"$work/runs.jsonl"
	tail -n1 "$work/runs.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %-14s %-6s round %d: %6.0f/s  %6.0f per server CPU s  %s %s  errors %d" % (r["scenario"], r["server"], r["round"], r["per_second"], r.get("handshakes_per_server_cpu_second", 0), r["tls_version"], r["group"], r["errors"]))' >&2
}

load1=$(cut -d' ' -f1 /proc/loadavg)
log "nginx pid $nginx_pid (workers $nginx_workers) on :$nginx_port, Go pid $go_pid on :$go_port; load average $load1"
log "warm-up"
round=0
DURATION=2s load tls13-x25519 nginx "$nginx_port" "$nginx_workers"
DURATION=2s load tls13-x25519 go "$go_port" "$go_pid"
: >"$work/runs.jsonl"
for ((round = 1; round <= ROUNDS; round++)); do
	for s in $SCENARIOS; do
		# Alternate who goes first, so neither always runs on a warmer or cooler machine.
		if ((round % 2)); then
			load "$s" nginx "$nginx_port" "$nginx_workers"
			load "$s" go "$go_port" "$go_pid"
		else
			load "$s" go "$go_port" "$go_pid"
			load "$s" nginx "$nginx_port" "$nginx_workers"
		fi
	done
done
load2=$(cut -d' ' -f1 /proc/loadavg)

mkdir -p "$(dirname "$RESULT")"
python3 - "$work/runs.jsonl" "$RESULT" "$load1" "$load2" "$DURATION" "$ROUNDS" "$CONC" "${GO_PROCS:-$(nproc)}" <<'PY'
import json, statistics, subprocess, sys, datetime, os
runs_path, out, load1, load2, duration, rounds, conc, goprocs = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path)]
def rev():
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"
def nginx_version():
    r = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    return r.stderr.strip().replace("nginx version: ", "")
scen = []
for r in runs:
    if r["scenario"] not in scen:
        scen.append(r["scenario"])
table = []
print()
print("| scenario | server | handshakes/s (median) | per server CPU s | group | runs | errors |")
print("|---|---|---:|---:|---|---|---:|")
for s in scen:
    row = {"scenario": s}
    for srv in ("nginx", "go"):
        rs = [r for r in runs if r["scenario"] == s and r["server"] == srv]
        med = statistics.median(r["per_second"] for r in rs)
        cpu = statistics.median(r.get("handshakes_per_server_cpu_second", 0) for r in rs)
        row[srv] = {"per_second_median": round(med, 1), "per_server_cpu_second_median": round(cpu, 1),
                    "runs": [round(r["per_second"], 1) for r in rs], "errors": sum(r["errors"] for r in rs),
                    "tls_version": rs[0]["tls_version"], "group": rs[0]["group"], "cipher": rs[0]["cipher"],
                    "latency_p50_ms": statistics.median(r["latency_p50_ms"] for r in rs),
                    "latency_p99_ms": statistics.median(r["latency_p99_ms"] for r in rs)}
        print("| %s | %s | %.0f | %.0f | %s | %s | %d |" % (s, srv, med, cpu, rs[0]["group"],
              " ".join("%.0f" % r["per_second"] for r in rs), row[srv]["errors"]))
    row["ratio_go_vs_nginx"] = round(row["go"]["per_second_median"] / max(row["nginx"]["per_second_median"], 1e-9), 3)
    row["ratio_per_cpu_second"] = round(row["go"]["per_server_cpu_second_median"] / max(row["nginx"]["per_server_cpu_second_median"], 1e-9), 3)
    table.append(row)
print()
for row in table:
    print("%-14s Go / nginx = %.2fx (per server CPU second %.2fx)" % (row["scenario"], row["ratio_go_vs_nginx"], row["ratio_per_cpu_second"]))
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "revision": rev(),
    "machine": {"cpus": os.cpu_count(), "load_average_before": float(load1), "load_average_after": float(load2)},
    "command": "bench/tls.sh",
    "parameters": {"duration": duration, "rounds": int(rounds), "conc": int(conc), "go_gomaxprocs": int(goprocs),
                   "nginx_workers": 2, "certificate": "ECDSA P-256", "session_resumption": "off (both)",
                   "client": "bench/cmd/tlsbench load (Go, no verification, new connection per request)"},
    "servers": {"nginx": nginx_version() + " (Debian, OpenSSL 3.0)", "go": subprocess.check_output(["go", "version"], text=True).strip()},
    "target_ratio_min": 1.0,
    "previous_measurement": {"nginx_per_second": 2768, "naive_go_per_second": 2481},
    "scenarios": table,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
print("wrote", out)
PY
