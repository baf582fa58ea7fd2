#!/usr/bin/env bash
# An external target that answers like the model, slowly (50 ms a request): long runs for
# tests that interrupt them. Usage: slow_peer.sh /path/to/iommuspec
while IFS= read -r line; do
  sleep 0.05
  printf '%s\n' "$line"
done | exec "$1" serve-model
