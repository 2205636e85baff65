#!/usr/bin/env bash
# Source this on a lent GPU machine (no network; its own torch): installs the carried wheels (.whl/: diffusers and
# what it needs beyond that image) and this checkout into /tmp, without dependencies, and points the chain at the
# carried real pairs (.gpu/data, copied from ../shared/data by the developer).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target /tmp/ef .
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 "$@"\n' >/tmp/bin/python && chmod +x /tmp/bin/python
source "$(dirname "${BASH_SOURCE[0]}")/device_env.sh"
