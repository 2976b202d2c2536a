#!/usr/bin/env bash
# Download, into .whl/, the wheels scripts/gpu_check.py needs on the GPU machine beyond what its image
# already holds (torch, transformers 5.17, peft, accelerate, numpy, pandas, scikit-learn, huggingface-hub,
# tokenizers, safetensors, pyarrow, aiohttp, rich, jaxtyping, protobuf, ... see
# /work/.library/device/KINDS.md): the pinned transformers, transformer-lens and nnsight, and their
# requirements missing there. Run it here, from the repository root; then on the device:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
#   python3 scripts/gpu_check.py --out $OUT/gpu_check.json
# (carry .whl with the call). transformer-lens and nnsight are optional there: gpu_check skips a backend
# that does not import, with a note in its table.
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE="$(git rev-parse --git-common-dir)/info/exclude"
grep -qx '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >> "$EXCLUDE"
mkdir -p .whl
PY=${PY:-python3}
PKGS=(
  transformers==5.23.0 transformer-lens==4.3.0 nnsight==0.8.1
  # transformer-lens requirements the image lacks
  beartype fancy-einsum typeguard transformers-stream-generator==0.0.5 datasets dill multiprocess wandb
  # nnsight requirements the image lacks
  greenlet pydantic pydantic-core annotated-types typing-inspection websocket-client zstandard
)
for p in "${PKGS[@]}"; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$p" \
    || echo "gpu_wheels: no wheel for $p (gpu_check skips what needs it)" >&2
done
du -sh .whl
