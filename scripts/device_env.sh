#!/usr/bin/env bash
# The environment of a lent GPU machine once scripts/device_setup.sh has installed into /tmp: source it in
# every later command of the same warm machine (a command's exports do not carry over to the next one).
export PYTHONPATH=/tmp/ef:/tmp/site PYTHONUNBUFFERED=1 PATH=/tmp/bin:$PATH
export EDGEFUSE="python3 -P -m edgefuse" DATA_RS=.gpu/data/roadscene_train DATA_LLVIP=.gpu/data/llvip_sample
