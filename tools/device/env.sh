# sourced at the start of every device call: packages, data, paths
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1 BNOPT_DATA=/tmp/cifar WANDB_MODE=disabled
if [ ! -f /tmp/site/.ok ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && touch /tmp/site/.ok || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src
mkdir -p /tmp/cifar
for p in .devdata/p*; do [ -d "$p" ] && cp -n "$p"/* /tmp/cifar/ 2>/dev/null; done
ls -la /tmp/cifar
