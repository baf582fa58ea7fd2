#!/usr/bin/env bash
# An external target that answers like the model, then dies without a word after its 60th
# request (a crash in the middle of a scenario). Usage: crashing_peer.sh /path/to/iommuspec
n=0
while IFS= read -r line; do
  n=$((n + 1))
  if [ "$n" -gt 60 ]; then
    echo "crashing_peer: simulated crash after 60 requests" >&2
    exit 1
  fi
  printf '%s\n' "$line"
done | "$1" serve-model
