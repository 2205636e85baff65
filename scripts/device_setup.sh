#!/usr/bin/env bash
# Source this on a lent GPU machine (no network; its own torch): installs the carried wheels (.whl/: diffusers and
# what it needs beyond that image) and this checkout into /tmp, without dependencies, and points the chain at the
# carried real pairs (.gpu/data, copied from ../shared/data by the developer).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/ef .
export PYTHONPATH=/tmp/ef:/tmp/site PYTHONUNBUFFERED=1
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 "$@"\n' >/tmp/bin/python && chmod +x /tmp/bin/python && export PATH=/tmp/bin:$PATH
export EDGEFUSE="python3 -P -m edgefuse" DATA_RS=.gpu/data/roadscene_train DATA_LLVIP=.gpu/data/llvip_sample
