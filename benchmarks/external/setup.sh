#!/usr/bin/env bash
# Environments for the external frameworks that benchmarks/step_speed.py --external times, each in a venv of
# its own beside the scripts (never in the project's .venv):
#   benchmarks/.venv-numpyro   numpyro + jax + jaxlib (CPU)
#   benchmarks/.venv-pythae    pythae 0.1.2 on the project's torch (torch==2.14.1, numpy pinned to the project's)
# Usage: bash benchmarks/external/setup.sh [numpyro|pythae ...]   (default: both; an existing venv is reused)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"          # benchmarks/
python="${PYTHON:-python3}"
targets=("${@:-numpyro pythae}")
for target in ${targets[@]}; do
  venv="$here/.venv-$target"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  case "$target" in
    numpyro) "$venv/bin/pip" install --quiet numpyro jax jaxlib ;;
    # torch from the project's pin (on local disk here), numpy the project's version
    pythae) "$venv/bin/pip" install --quiet pythae==0.1.2 torch==2.14.1 numpy==2.4.6 ;;
    *) echo "unknown target $target (numpyro or pythae)" >&2; exit 2 ;;
  esac
  echo "$venv: $("$venv/bin/pip" freeze | grep -i -E '^(numpyro|jax|jaxlib|pythae|torch|numpy)==' | tr '\n' ' ')"
done
