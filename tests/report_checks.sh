#!/usr/bin/env bash
# Checks of the reports as a person and a lab would use them:
#   render  : report.html renders in headless Chromium (screenshot) and has its sections
#   partial : an interrupted run leaves a valid report that says it is partial
#   crash   : a target that dies mid-scenario is an error on that scenario, with its log,
#             and the run goes on with a fresh target
set -euo pipefail
iommuspec=$1 what=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
case "$what" in
render)
  "$iommuspec" run --target model --profile linux-6.12 --quiet --out "$work/run"
  chromium=$(command -v chromium || command -v chromium-browser)
  flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
         --disable-background-networking --disable-component-update --disable-sync
         --user-data-dir="$work/profile")
  timeout 120 "$chromium" "${flags[@]}" --window-size=1400,1800 \
    --screenshot="$work/report.png" "file://$work/run/report.html" 2>/dev/null
  timeout 120 "$chromium" "${flags[@]}" --dump-dom "file://$work/run/report.html" \
    > "$work/dom.html" 2>/dev/null
  size=$(stat -c %s "$work/report.png")
  [ "$size" -gt 20000 ] || { echo "screenshot too small ($size bytes)"; exit 1; }
  for section in Summary Targets Findings "Clause matrix" Coverage Timings "<svg"; do
    grep -q "$section" "$work/dom.html" || { echo "report lacks: $section"; exit 1; }
  done
  grep -q "https\?://" <(grep -o 'src="[^"]*"\|href="[^"]*"' "$work/dom.html" || true) &&
    { echo "report loads something from the network"; exit 1; }
  echo "report.html renders ($size bytes of screenshot) with every section"
  ;;
partial)
  set +e
  # A slow external target (50 ms a request) makes the run last about a minute.
  "$iommuspec" run --target external --program "$(dirname "$0")/slow_peer.sh $iommuspec" \
    --quiet --out "$work/run" &
  pid=$!
  sleep 3
  kill -INT $pid
  wait $pid
  code=$?
  set -e
  [ "$code" -eq 2 ] || { echo "interrupted run exited $code, not 2"; exit 1; }
  python3 - "$work/run/results.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["partial"] is True, "results.json does not say partial"
assert len(j["scenarios"]) < j["suite"]["scenarios"], "every scenario ran: not interrupted"
print(f"partial report: {len(j['scenarios'])} of {j['suite']['scenarios']} scenarios")
PY
  grep -q "PARTIAL" "$work/run/report.html" || { echo "report.html does not say partial"; exit 1; }
  grep -q "(PARTIAL)" "$work/run/acs.log" || { echo "acs.log does not say partial"; exit 1; }
  ;;
crash)
  set +e
  "$iommuspec" run --target external --program "$(dirname "$0")/crashing_peer.sh $iommuspec" \
    --quiet --out "$work/run"
  code=$?
  set -e
  [ "$code" -eq 2 ] || { echo "a run with a crashed target exited $code, not 2"; exit 1; }
  python3 - "$work/run/results.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
s = j["summary"]
errors = [x for x in j["scenarios"] if x["verdict"] == "error"]
assert not j["partial"], "the run stopped at the crash"
assert len(j["scenarios"]) == j["suite"]["scenarios"], "not every scenario ran"
assert errors, "the crash was not recorded"
assert all("went away" in x["message"] for x in errors), errors[0]["message"]
assert all("simulated crash" in x.get("log", "") for x in errors), "no log with the error"
assert s["pass"] > 100, f"the run did not go on with fresh targets: {s}"
print(f"{len(errors)} crashed scenarios recorded with their log; {s['pass']} passed on fresh targets")
PY
  ;;
esac
